/**
 * How fast the board stops and restarts its vCPUs: `stop()` (every hart parked) and `cont()`
 * (every hart running again) while the ab guest runs on 1, 2, 4 and 8 harts, p50/p99 in µs.
 * The ceiling is a bare futex round trip between two threads (Atomics.notify → Atomics.wait
 * wakes → reply) measured in the same run: a park needs at least one such hop per hart.
 *
 *   node dist/bench/vcpu.js [--rounds 200] [--smp 1,2,4,8]
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { VirtMachine } from '../lib/machine/virt';
import { CTL_STATE, STATE_RUNNING } from '../lib/machine/vcpu-control';
import { arg, report, ROOT } from './harness';

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

/** Futex ping-pong between the main thread and a worker, µs per round trip. */
async function futexRoundTrip(rounds: number): Promise<number[]> {
  const sab = new SharedArrayBuffer(8);
  const a = new Int32Array(sab);
  const w = new Worker(
    `const { workerData } = require('node:worker_threads');
     const a = new Int32Array(workerData);
     for (;;) { Atomics.wait(a, 0, 0); if (Atomics.load(a, 0) === 2) break;
                Atomics.store(a, 0, 0); Atomics.store(a, 1, 1); Atomics.notify(a, 1); }`,
    { eval: true, workerData: sab },
  );
  await new Promise((r) => setTimeout(r, 50));
  const out: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const t0 = performance.now();
    Atomics.store(a, 1, 0);
    Atomics.store(a, 0, 1);
    Atomics.notify(a, 0);
    Atomics.wait(a, 1, 0, 1000);
    out.push((performance.now() - t0) * 1000);
  }
  Atomics.store(a, 0, 2);
  Atomics.notify(a, 0);
  await w.terminate();
  return out;
}

async function main(): Promise<void> {
  const rounds = Number(arg('rounds', '200'));
  const futex = await futexRoundTrip(rounds * 4);
  const ceiling = { 'futex-round-trip-p50-us': +pct(futex, 50).toFixed(1), 'futex-round-trip-p99-us': +pct(futex, 99).toFixed(1) };
  for (const smp of arg('smp', '1,2,4,8').split(',').map(Number)) {
    const m = await VirtMachine.create({ memSize: 64 * 2 ** 20, smp, kernel: fs.readFileSync(path.join(ROOT, 'guests', 'ab.elf')), append: 'size=4M' });
    m.cont();
    await new Promise((r) => setTimeout(r, 300));
    const stops: number[] = [];
    const conts: number[] = [];
    const ctl = (m as unknown as { ctl: Int32Array[] }).ctl;
    for (let i = 0; i < rounds; i++) {
      let t0 = performance.now();
      await m.stop();
      stops.push((performance.now() - t0) * 1000);
      t0 = performance.now();
      m.cont();
      // Running again = every hart has left its park (reported RUNNING).
      while (!ctl.every((c) => Atomics.load(c, CTL_STATE) === STATE_RUNNING)) await new Promise((r) => setImmediate(r));
      conts.push((performance.now() - t0) * 1000);
      await new Promise((r) => setTimeout(r, 2));
    }
    await m.destroy();
    report({
      bench: 'vcpu-stop-cont',
      params: { smp, guest: 'ab', rounds },
      figures: {
        'stop-p50-us': +pct(stops, 50).toFixed(1),
        'stop-p99-us': +pct(stops, 99).toFixed(1),
        'cont-p50-us': +pct(conts, 50).toFixed(1),
        'cont-p99-us': +pct(conts, 99).toFixed(1),
      },
      ceiling,
      ratio: +(pct(stops, 50) / pct(futex, 50)).toFixed(2),
    });
  }
}

main().catch((e) => {
  process.stderr.write(`vcpu bench: ${e instanceof Error ? e.stack : e}\n`);
  process.exit(1);
});
