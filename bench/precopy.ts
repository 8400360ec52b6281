/**
 * Live precopy between two livemig processes over a unix socket, measured against the machine:
 *
 *   idle:  the idle guest, 1 GiB and 4 GiB. What its RAM holds: the guest fills its default
 *          range, from 0x8001_5000 (above its image and stacks) to RAM end − 2 MiB or the FDT
 *          at 0xbfe0_0000, whichever is lower, with xorshift64 words (byte 0 of every page 0):
 *          at both sizes 261,611 pages (1022 MiB) of pseudo-random data, none of it zero.
 *          Besides that only the image, the stacks and the FDT; the FDT's 2 MiB slot and, with
 *          4 GiB, the 3 GiB above it were never written (memfd holes, sent as zero pages
 *          without being read). So 1 GiB is 99.8% data, 4 GiB 25%. Reported: the wire
 *          throughput (bytes transferred ÷ total time) and the guest-RAM throughput (RAM size
 *          ÷ total time); the wire one next to a raw unix-socket stream of the same bytes in
 *          the same process layout, measured in the same run; and downtime.
 *   dirty: the dirty guest at 50, 250, 1000 pages/ms with downtime-limit 300 and 50 ms: does it
 *          converge, real downtime vs the limit, and expected-downtime (the last value seen
 *          while active) vs the real one. downtime-limit is a limit the engine aims under,
 *          not a ceiling of the machine: it goes in the line's `limit`, and `ceiling` is null.
 *
 * One JSON line per result. Usage:
 *   node dist/bench/precopy.js [--case idle|dirty|all] [--mem 1G,4G] [--dirty-mem 1G]
 *                              [--rates 50,250,1000] [--limits 300,50] [--timeout 180]
 *                              [--no-auto-converge]
 * The dirty cases run with auto-converge (a guest dirtying 1000 pages/ms = 4 GB/s outruns
 * any link here without throttling); --no-auto-converge shows that.
 */
import * as path from 'node:path';
import { parseSize } from '../lib/util/size';
import { arg, flag, rawUnixStream, report, sleep, tmpdir, VmProcess, ROOT } from './harness';

interface Run {
  info: any;
  throttle: number;
  expectedDowntime: number | null;
  passes: number;
}

async function migrate(opts: { guest: string; mem: string; append?: string; downtimeLimit: number; ready: RegExp; timeoutS: number; autoConverge?: boolean }): Promise<Run> {
  const dir = tmpdir();
  const kernel = path.join(ROOT, 'guests', `${opts.guest}.elf`);
  const common = ['-M', 'virt', '-m', opts.mem, '-smp', '1', '-bios', 'none', '-kernel', kernel, '-display', 'none', '-serial', 'stdio', '-monitor', 'none'];
  if (opts.append) common.push('-append', opts.append);
  const sock = path.join(dir, 'mig.sock');
  const src = new VmProcess(path.join(dir, 'src.qmp'), common);
  const dst = new VmProcess(path.join(dir, 'dst.qmp'), [...common, '-incoming', `unix:${sock}`]);
  try {
    await src.connect();
    await dst.connect();
    await src.waitOutput(opts.ready);
    for (const v of [src, dst]) {
      await v.qmp.execute('migrate-set-capabilities', {
        capabilities: [
          { capability: 'return-path', state: true },
          { capability: 'auto-converge', state: !!opts.autoConverge },
        ],
      });
    }
    await src.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 0, 'downtime-limit': opts.downtimeLimit });
    await src.qmp.execute('migrate', { uri: `unix:${sock}` });
    let expected: number | null = null;
    let throttle = 0;
    const t0 = Date.now();
    for (;;) {
      const info = await src.qmp.execute('query-migrate');
      if (info.status === 'active' && typeof info['expected-downtime'] === 'number') expected = info['expected-downtime'];
      if (typeof info['cpu-throttle-percentage'] === 'number') throttle = Math.max(throttle, info['cpu-throttle-percentage']);
      if (['completed', 'failed', 'cancelled'].includes(info.status)) {
        return { info, throttle, expectedDowntime: expected, passes: info.ram?.['dirty-sync-count'] ?? 0 };
      }
      if (Date.now() - t0 > opts.timeoutS * 1000) {
        await src.qmp.execute('migrate_cancel');
        await sleep(500);
        const last = await src.qmp.execute('query-migrate');
        return { info: { ...last, status: 'did-not-converge', last: info }, throttle, expectedDowntime: expected, passes: info.ram?.['dirty-sync-count'] ?? 0 };
      }
      await sleep(25);
    }
  } finally {
    await Promise.all([src.stop(), dst.stop()]);
  }
}

/** Bytes per second over the migration's total time, in GB/s. */
function gbps(bytes: number, totalMs: number | undefined): number | null {
  return totalMs ? +(bytes / (totalMs / 1000) / 1e9).toFixed(3) : null;
}

async function idleCase(mem: string, timeoutS: number): Promise<void> {
  const r = await migrate({ guest: 'idle', mem, downtimeLimit: 300, ready: /tick 1\n/, timeoutS });
  const info = r.info;
  const bytes = info.ram?.transferred ?? 0;
  const wire = gbps(bytes, info['total-time']);
  const ceiling = await rawUnixStream(Math.max(bytes, 64 * 2 ** 20), tmpdir());
  report({
    bench: 'precopy-idle',
    params: { mem, guest: 'idle', transport: 'unix', 'downtime-limit': 300 },
    figures: {
      status: info.status,
      'wire-GBps': wire,
      'guest-ram-GBps': gbps(parseSize(mem, 2 ** 20), info['total-time']),
      'total-time-ms': info['total-time'],
      'downtime-ms': info.downtime,
      'setup-time-ms': info['setup-time'],
      transferred: bytes,
      passes: r.passes,
      normal: info.ram?.normal,
      duplicate: info.ram?.duplicate,
    },
    ceiling: { 'raw-unix-socket-GBps': +ceiling.toFixed(3) },
    // The wire throughput against the socket: the same bytes, so the same work for it.
    ratio: wire !== null && ceiling > 0 ? +(wire / ceiling).toFixed(3) : null,
  });
}

async function dirtyCase(mem: string, rate: number, limit: number, timeoutS: number, autoConverge: boolean): Promise<void> {
  const r = await migrate({ guest: 'dirty', mem, append: `rate=${rate}`, downtimeLimit: limit, ready: /tick 1\n/, timeoutS, autoConverge });
  const info = r.info;
  const downtime = info.downtime ?? null;
  report({
    bench: 'precopy-dirty',
    params: { mem, guest: 'dirty', rate, 'downtime-limit': limit, transport: 'unix', 'auto-converge': autoConverge },
    figures: {
      status: info.status,
      converged: info.status === 'completed',
      'downtime-ms': downtime,
      'expected-downtime-ms': r.expectedDowntime,
      'expected-vs-real': downtime && r.expectedDowntime !== null ? +(r.expectedDowntime / downtime).toFixed(2) : null,
      'total-time-ms': info['total-time'] ?? null,
      'cpu-throttle-percentage': r.throttle,
      'wire-GBps': gbps(info.ram?.transferred ?? 0, info['total-time']),
      'guest-ram-GBps': gbps(parseSize(mem, 2 ** 20), info['total-time']),
      passes: r.passes,
      transferred: info.ram?.transferred ?? null,
    },
    ceiling: null,
    ratio: null,
    limit: {
      'downtime-limit-ms': limit,
      'downtime-vs-limit': downtime !== null ? +(downtime / limit).toFixed(3) : null,
      within: downtime !== null ? downtime <= limit : null,
    },
  });
}

async function main(): Promise<void> {
  const which = arg('case', 'all');
  const timeoutS = Number(arg('timeout', '180'));
  if (which === 'idle' || which === 'all') {
    for (const mem of arg('mem', '1G,4G').split(',')) await idleCase(mem, timeoutS);
  }
  if (which === 'dirty' || which === 'all') {
    const mem = arg('dirty-mem', '1G');
    parseSize(mem, 2 ** 20);
    for (const limit of arg('limits', '300,50').split(',').map(Number)) {
      for (const rate of arg('rates', '50,250,1000').split(',').map(Number)) await dirtyCase(mem, rate, limit, timeoutS, !flag('no-auto-converge'));
    }
  }
}

main().catch((e) => {
  process.stderr.write(`precopy bench: ${e instanceof Error ? e.stack : e}\n`);
  process.exit(1);
});
