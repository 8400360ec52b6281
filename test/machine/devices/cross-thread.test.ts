/**
 * Devices shared between threads: each worker builds the device from the same share, as every
 * vCPU worker does, and the main thread drains effects with Atomics.waitAsync.
 */
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { HartLines, MIP_MSIP } from '../../../lib/machine/bus';
import { AtomicLock } from '../../../lib/machine/devices/atomic-lock';
import { Clint } from '../../../lib/machine/devices/clint';
import { Effect, EffectQueue } from '../../../lib/machine/devices/effect-queue';
import { Plic } from '../../../lib/machine/devices/plic';
import { defineStruct } from '../../../lib/machine/devices/shared-struct';
import { Uart16550 } from '../../../lib/machine/devices/uart16550';
import { UART0_IRQ, UART_IER } from '../../../lib/machine/devices/uart16550-regs';

const WORKER = path.join(__dirname, 'workers/device-worker.js');

function run(data: object): { worker: Worker; done: Promise<any> } {
  const worker = new Worker(WORKER, { workerData: data });
  const done = new Promise<any>((resolve, reject) => {
    worker.on('message', (m) => m.done && resolve(m));
    worker.on('error', reject);
  });
  return { worker, done };
}

describe('devices across threads', () => {
  test('two workers write the UART at once: every byte exactly once, per-thread order kept', async () => {
    const harts = 2;
    const lines = new HartLines(harts);
    const effectsShare = EffectQueue.createShare(64); // small: exercises back-pressure
    const plicShare = Plic.createShare({ harts });
    const uartShare = Uart16550.createShare();
    const effects = new EffectQueue(effectsShare);
    const plic = new Plic(plicShare, { lines });
    const uart = new Uart16550(uartShare, { effects, irq: plic.line(UART0_IRQ) });
    plic.write(4 * UART0_IRQ, 4, 1);
    plic.write(0x2000, 4, 1 << UART0_IRQ);
    uart.write(UART_IER, 1, 0x02); // THR-empty interrupts: every write also drives the PLIC

    const count = 20_000;
    const got: number[][] = [[], []];
    let total = 0;
    let finished!: () => void;
    const all = new Promise<void>((r) => (finished = r));
    let otherKinds = 0;
    const drainer = effects.startDrain((kind, value) => {
      if (kind !== Effect.UART_TX) otherKinds++;
      got[(value >> 7) & 1].push(value & 0x7f);
      if (++total === 2 * count) finished();
    });
    const common = { harts, lines: lines.buffer, effects: effectsShare, plic: plicShare, uart: uartShare, count };
    const a = run({ mode: 'uart-writer', tag: 0x00, ...common });
    const b = run({ mode: 'uart-writer', tag: 0x80, ...common });
    const results = await Promise.all([a.done, b.done]);
    await all;
    drainer.stop();
    await drainer.done;
    expect(results.map((r) => r.dropped)).toEqual([0, 0]);
    expect(otherKinds).toBe(0);
    for (const seq of got) {
      expect(seq.length).toBe(count);
      expect(seq.every((v, i) => v === i % 128)).toBe(true);
    }
    expect(effects.pending()).toBe(0);
    await Promise.all([a.worker.terminate(), b.worker.terminate()]);
  });

  test('a worker sets msip for another hart: MSIP raised and its wake word bumped', async () => {
    const harts = 2;
    const lines = new HartLines(harts);
    const clintShare = Clint.createShare({ harts });
    const seen = Atomics.load(lines.wake, 1);
    const waitAsync = (Atomics as any).waitAsync(lines.wake, 1, seen);
    const w = run({ mode: 'msip', harts, lines: lines.buffer, clint: clintShare, target: 1 });
    await w.done;
    expect(await waitAsync.value).toBe('ok');
    expect(Atomics.load(lines.wake, 1)).toBe(seen + 1);
    expect(lines.get(1) & MIP_MSIP).toBe(MIP_MSIP);
    expect(lines.get(0) & MIP_MSIP).toBe(0);
    await w.worker.terminate();
  });

  test('mtime agrees across threads (default host clock)', async () => {
    const harts = 1;
    const lines = new HartLines(harts);
    const clintShare = Clint.createShare({ harts });
    const clint = new Clint(clintShare, { lines });
    clint.resumeTime();
    const worker = new Worker(WORKER, { workerData: { mode: 'mtime', harts, lines: lines.buffer, clint: clintShare } });
    const next = () => new Promise<any>((r) => worker.once('message', r));
    await next(); // ready
    for (let i = 0; i < 50; i++) {
      const before = clint.mtime();
      worker.postMessage('read');
      const { mtime } = await next();
      const after = clint.mtime();
      // One tick of slack for the two threads' clock calibrations.
      expect(mtime).toBeGreaterThanOrEqual(before - 1);
      expect(mtime).toBeLessThanOrEqual(after + 1);
    }
    await worker.terminate();
  });

  test('the Atomics lock makes a plain read-modify-write exact across threads', async () => {
    const struct = defineStruct({ lock: 'i32', counter: 'f64' });
    const state = struct.create();
    const count = 100_000;
    const ws = [run({ mode: 'lock', state, count }), run({ mode: 'lock', state, count })];
    // The main thread takes the lock too.
    const s = struct.view(state);
    const lock = new AtomicLock(s.$i32, struct.wordIndex('lock'));
    for (let i = 0; i < count; i++) lock.with(() => (s.counter = s.counter + 1));
    await Promise.all(ws.map((w) => w.done));
    expect(s.counter).toBe(3 * count);
    await Promise.all(ws.map((w) => w.worker.terminate()));
  });
});
