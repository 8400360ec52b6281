/**
 * One live migration between two processes of the same engine — livemig, or QEMU itself
 * (qemu-system-riscv64, found as guests/qemu-run.js finds it) — driven the same way over QMP,
 * so the two are compared in the same run on the same machine:
 *
 *   source + destination (-incoming defer) → capabilities and parameters on both
 *   (multifd with `channels` ≥ 1) → migrate-incoming → wait for the guest's `ready` output →
 *   migrate → poll query-migrate; after `raiseAfterS` seconds downtime-limit goes to its
 *   maximum, which forces the switchover of a guest that would not converge (the busy ab guest
 *   rewrites all of its RAM on every pass) → the final query-migrate.
 *
 * The stream rate is transferred ÷ total-time: every byte of every channel over the whole
 * migration, the figure the issue compares with QEMU's.
 */
import * as path from 'node:path';
import { cpuSpent, ROOT, sleep, threadCpu, tmpdir, VmProcess } from './harness';

/** 'other': another livemig build (--other PATH/dist/lib/cli/livemig.js), for before/after
 * comparisons in the same run. */
export type Engine = 'livemig' | 'qemu' | 'other';

export interface MigrationRun {
  engine: Engine;
  guest: string;
  mem: string;
  append?: string;
  /** 0: the main channel only; n ≥ 1: multifd with n channels */
  channels: number;
  transport: 'unix' | 'tcp';
  downtimeLimit: number;
  /** seconds after which downtime-limit is raised to its maximum (forced switchover) */
  raiseAfterS?: number;
  ready: RegExp;
  timeoutS: number;
  autoConverge?: boolean;
  zeroPageDetection?: string;
  /** engine 'other': that build's dist/lib/cli/livemig.js */
  otherScript?: string;
}

/** CPU seconds each side spent from `migrate` to the end, by thread role. */
export interface CpuUse {
  src: Record<string, number>;
  dst: Record<string, number>;
}

export interface MigrationOutcome {
  info: any;
  cpu: CpuUse;
  passes: number;
  throttle: number;
  expectedDowntime: number | null;
  /** downtime-limit was raised before the switchover */
  forced: boolean;
}

const MAX_DOWNTIME_LIMIT = 2000 * 1000;

/** qemu-system-riscv64's path, or null: a bench that needs it skips without it. */
export function findQemu(): string | null {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const run = require(path.join(ROOT, 'guests', 'qemu-run.js')) as { findQemu(): string | null };
  return run.findQemu();
}

export async function runMigration(o: MigrationRun): Promise<MigrationOutcome> {
  const dir = tmpdir();
  const kernel = path.join(ROOT, 'guests', `${o.guest}.elf`);
  const common = ['-M', 'virt', '-m', o.mem, '-smp', '1', '-bios', 'none', '-kernel', kernel, '-display', 'none', '-serial', 'stdio', '-monitor', 'none'];
  if (o.append) common.push('-append', o.append);
  // QEMU names its threads only when asked; livemig always does.
  if (o.engine === 'qemu') common.push('-name', 'debug-threads=on');
  const binary = o.engine === 'qemu' ? (findQemu() ?? undefined) : undefined;
  if (o.engine === 'qemu' && !binary) throw new Error('qemu-system-riscv64 not found');
  const script = o.engine === 'other' ? o.otherScript : undefined;
  if (o.engine === 'other' && !script) throw new Error('no other livemig build given (--other)');
  const src = new VmProcess(path.join(dir, 'src.qmp'), common, binary, script);
  const dst = new VmProcess(path.join(dir, 'dst.qmp'), [...common, '-incoming', 'defer'], binary, script);
  try {
    await src.connect();
    await dst.connect();
    const caps = [
      { capability: 'return-path', state: true },
      { capability: 'auto-converge', state: !!o.autoConverge },
      // Only named when on: a build without multifd refuses the name even when off.
      ...(o.channels > 0 ? [{ capability: 'multifd', state: true }] : []),
    ];
    for (const v of [src, dst]) {
      await v.qmp.execute('migrate-set-capabilities', { capabilities: caps });
      const p: Record<string, unknown> = {};
      if (o.channels > 0) p['multifd-channels'] = o.channels;
      if (o.zeroPageDetection) p['zero-page-detection'] = o.zeroPageDetection;
      if (Object.keys(p).length) await v.qmp.execute('migrate-set-parameters', p);
    }
    const sock = path.join(dir, 'mig.sock');
    await dst.qmp.execute('migrate-incoming', { uri: o.transport === 'unix' ? `unix:${sock}` : 'tcp:127.0.0.1:0' });
    const uri = o.transport === 'unix' ? `unix:${sock}` : `tcp:127.0.0.1:${(await dst.qmp.execute('query-migrate'))['socket-address'][0].port}`;
    await src.waitOutput(o.ready);
    await src.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 0, 'downtime-limit': o.downtimeLimit });
    const before = [threadCpu(src.pid), threadCpu(dst.pid)];
    await src.qmp.execute('migrate', { uri });
    const r = await watch(src, o);
    const cpu = { src: roles(cpuSpent(before[0], threadCpu(src.pid))), dst: roles(cpuSpent(before[1], threadCpu(dst.pid))) };
    return { ...r, cpu };
  } finally {
    await Promise.all([src.stop(), dst.stop()]);
  }
}

/** Threads by what they do: the guest's vCPUs, the main thread, QEMU's migration thread, the
 * multifd channels, livemig's populate helper, threads that ended before the migration did
 * (livemig's multifd channels stop at completion), and the rest (V8's and libuv's helpers,
 * QEMU's RCU and I/O threads). */
function roles(spent: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = { guest: 0, main: 0, migration: 0, channels: 0, populate: 0, ended: 0, other: 0 };
  for (const [name, t] of Object.entries(spent)) {
    const role = /^vcpu\d+$|^CPU \d+\/TCG$/.test(name)
      ? 'guest'
      : name === 'main'
        ? 'main'
        : name === 'live_migration'
          ? 'migration'
          : /^multifd(send|recv)_\d+$/.test(name)
            ? 'channels'
            : name === 'populate'
              ? 'populate'
              : name === '(ended)'
                ? 'ended'
                : 'other';
    out[role] = +(out[role] + t).toFixed(2);
  }
  return out;
}

async function watch(src: VmProcess, o: MigrationRun): Promise<Omit<MigrationOutcome, 'cpu'>> {
  let expected: number | null = null;
  let throttle = 0;
  let forced = false;
  const t0 = Date.now();
  for (;;) {
    const info = await src.qmp.execute('query-migrate');
    if (info.status === 'active' && typeof info['expected-downtime'] === 'number') expected = info['expected-downtime'];
    if (typeof info['cpu-throttle-percentage'] === 'number') throttle = Math.max(throttle, info['cpu-throttle-percentage']);
    const passes = info.ram?.['dirty-sync-count'] ?? 0;
    if (['completed', 'failed', 'cancelled'].includes(info.status)) return { info, passes, throttle, expectedDowntime: expected, forced };
    if (!forced && o.raiseAfterS !== undefined && Date.now() - t0 > o.raiseAfterS * 1000) {
      forced = true;
      await src.qmp.execute('migrate-set-parameters', { 'downtime-limit': MAX_DOWNTIME_LIMIT });
    }
    if (Date.now() - t0 > o.timeoutS * 1000) {
      await src.qmp.execute('migrate_cancel');
      await sleep(500);
      const last = await src.qmp.execute('query-migrate');
      return { info: { ...last, status: 'did-not-converge', last: info }, passes, throttle, expectedDowntime: expected, forced };
    }
    await sleep(25);
  }
}

/** Bytes per second over the migration's total time, in GB/s. */
export function gbps(bytes: number, totalMs: number | undefined): number | null {
  return totalMs ? +(bytes / (totalMs / 1000) / 1e9).toFixed(3) : null;
}

/** "livemig", "livemig multifd×2", "qemu", "qemu multifd×2": a run's label in summaries. */
export function runLabel(engine: Engine, channels: number): string {
  return channels > 0 ? `${engine} multifd×${channels}` : engine;
}
