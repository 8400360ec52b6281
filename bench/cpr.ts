/**
 * cpr-transfer: upgrading the livemig process under a running guest, by RAM size.
 *
 *   pause       last instruction on the old process (its vCPUs park) → first on the new one
 *               (a vCPU leaves its park), both stamped with CLOCK_MONOTONIC by the vCPU threads
 *               and read with x-query-vcpu-times
 *   total time  `migrate` → completed (query-migrate total-time on the old process)
 *   bytes sent  the main stream (query-migrate ram.transferred): header, block list, devices
 *   memory      RSS of both processes once the new one runs (VmRSS, RssAnon, RssShmem), and
 *               their proportional share of shared memory (Pss_Shmem, smaps_rollup): the two
 *               shares add up to one RssShmem, so the guest's memory is there once
 *
 * The guest is ab with `size=64M`: it fills and then keeps rewriting 64 MiB, so that much of
 * its RAM (plus its image and device tree) is touched whatever the RAM size; memfd pages
 * nobody touched are never allocated, which is what lets a 16 GiB guest run here.
 *
 * Ceilings, measured in the same run: a vCPU stop → cont round trip inside one process (the
 * same stamps, nothing in between), and handing two memfds of the guest's size to another
 * socket end over SCM_RIGHTS and mapping them. ratio = pause ÷ the stop/cont round trip.
 *
 *   node dist/bench/cpr.js [--mem 256M,1G,4G,16G] [--runs 5] [--smp 1]
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FdSocket, MemfdMapping } from '../lib/host';
import { VirtMachine } from '../lib/machine/virt';
import { parseSize } from '../lib/util/size';
import { arg, report, ROOT, sleep, tmpdir, VmProcess, waitMigration } from './harness';

const APPEND = 'size=64M';
const KERNEL = path.join(ROOT, 'guests', 'ab.elf');

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

const round = (x: number, d = 3) => +x.toFixed(d);

/** Bytes, from the kB figures of /proc/PID/status and smaps_rollup. */
function procMem(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  const text = fs.readFileSync(`/proc/${pid}/status`, 'utf8') + fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  for (const line of text.split('\n')) {
    const m = /^(VmRSS|RssAnon|RssShmem|Pss_Shmem):\s+(\d+) kB/.exec(line);
    if (m) out[m[1]] = Number(m[2]) * 1024;
  }
  return out;
}

interface Sample {
  pauseMs: number;
  totalMs: number;
  transferred: number;
  downtimeMs: number;
  oldMem: Record<string, number>;
  newMem: Record<string, number>;
}

async function upgrade(mem: string, smp: number): Promise<Sample> {
  const dir = tmpdir();
  const common = ['-M', 'virt,aux-ram-share=on', '-m', mem, '-smp', String(smp), '-bios', 'none', '-kernel', KERNEL, '-append', APPEND,
    '-display', 'none', '-serial', 'stdio', '-monitor', 'none'];
  const old = new VmProcess(path.join(dir, 'old.qmp'), common);
  let nu: VmProcess | null = null;
  try {
    await old.connect();
    await old.waitOutput(/AB/);
    const cpr = path.join(dir, 'cpr.sock');
    const main = path.join(dir, 'main.sock');
    const ch = (type: string, p: string) => ({ 'channel-type': type, addr: { transport: 'socket', type: 'unix', path: p } });
    nu = new VmProcess(path.join(dir, 'new.qmp'), [...common, '-incoming', `unix:${main}`, '-incoming', JSON.stringify(ch('cpr', cpr))]);
    while (!fs.existsSync(cpr)) await sleep(10);
    await old.qmp.execute('migrate-set-parameters', { mode: 'cpr-transfer' });
    await old.qmp.execute('migrate', { channels: [ch('main', main), ch('cpr', cpr)] });
    const info = await waitMigration(old.qmp, 10);
    if (info.status !== 'completed') throw new Error(`cpr-transfer ${info.status}: ${info['error-desc']}`);
    await nu.connect();
    const before = nu.output.length;
    while (nu.output.length < before + 2) await sleep(20); // the guest runs there
    const t0 = await old.qmp.execute('x-query-vcpu-times');
    const t1 = await nu.qmp.execute('x-query-vcpu-times');
    return {
      pauseMs: (t1.running - t0.parked) / 1000,
      totalMs: info['total-time'],
      transferred: info.ram.transferred,
      downtimeMs: info.downtime,
      oldMem: procMem(old.proc.pid!),
      newMem: procMem(nu.proc.pid!),
    };
  } finally {
    old.kill();
    nu?.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** stop → cont inside one process: the pause with nothing between the two (ms, median). */
async function stopContRoundTrip(rounds: number, smp: number): Promise<number> {
  const m = await VirtMachine.create({ memSize: 64 * 2 ** 20, smp, kernel: fs.readFileSync(KERNEL), append: 'size=16M' });
  try {
    m.cont();
    await sleep(300);
    const xs: number[] = [];
    for (let i = 0; i < rounds; i++) {
      await m.stop();
      const { parked } = m.vcpuStamps();
      m.cont();
      let running = 0n;
      while ((running = m.vcpuStamps().running) <= parked) await new Promise((r) => setImmediate(r));
      xs.push(Number(running - parked) / 1e6);
      await sleep(5);
    }
    return median(xs);
  } finally {
    await m.destroy();
  }
}

/** Two memfds of `size` bytes (the guest's RAM and ROM) over SCM_RIGHTS, mapped on the other
 * end and unmapped (ms, median). */
async function fdPassAndMap(size: number, rounds: number): Promise<number> {
  const ram = MemfdMapping.create({ name: 'ram', size });
  const rom = MemfdMapping.create({ name: 'rom', size: 60 * 1024 });
  const [a, b] = FdSocket.pair();
  try {
    const xs: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const t0 = process.hrtime.bigint();
      await a.send(Uint8Array.of(0x20), [ram.fd, rom.fd]);
      const msg = (await b.recv())!;
      const maps = msg.fds.map((fd) => MemfdMapping.fromFd(fd, { ownsFd: true }));
      const t1 = process.hrtime.bigint();
      for (const m of maps) m.close();
      xs.push(Number(t1 - t0) / 1e6);
    }
    return median(xs);
  } finally {
    a.close();
    b.close();
    ram.close();
    rom.close();
  }
}

async function main(): Promise<void> {
  const runs = Number(arg('runs', '5'));
  const smp = Number(arg('smp', '1'));
  for (const mem of arg('mem', '256M,1G,4G,16G').split(',')) {
    const size = parseSize(mem, 2 ** 20);
    const samples: Sample[] = [];
    for (let i = 0; i < runs; i++) samples.push(await upgrade(mem, smp));
    const roundTrip = await stopContRoundTrip(50, smp);
    const passMap = await fdPassAndMap(size, 50);
    const pause = median(samples.map((s) => s.pauseMs));
    const last = samples[samples.length - 1];
    report({
      bench: 'cpr-transfer',
      params: { mem, smp, guest: 'ab', append: APPEND, runs, touched: '64 MiB working set + image + device tree' },
      figures: {
        'pause-ms': round(pause),
        'pause-ms-min': round(Math.min(...samples.map((s) => s.pauseMs))),
        'pause-ms-all': samples.map((s) => round(s.pauseMs)),
        'total-time-ms': median(samples.map((s) => s.totalMs)),
        'source-downtime-ms': median(samples.map((s) => s.downtimeMs)),
        'bytes-sent': last.transferred,
        'old-rss': last.oldMem,
        'new-rss': last.newMem,
        // One copy: the two proportional shares of the shared guest memory add up to it.
        'shared-copies': round((last.oldMem.Pss_Shmem + last.newMem.Pss_Shmem) / last.newMem.RssShmem, 2),
      },
      ceiling: { 'stop-cont-round-trip-ms': round(roundTrip), 'scm-rights-pass-and-map-ms': round(passMap) },
      ratio: roundTrip > 0 ? round(pause / roundTrip, 2) : null,
    });
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`cpr bench: ${e instanceof Error ? e.stack : e}\n`);
    process.exit(1);
  },
);
