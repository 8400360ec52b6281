import { EffectQueue, Effect } from '../../../lib/machine/devices/effect-queue';

describe('EffectQueue (single thread)', () => {
  test('capacity rounds up to a power of two; FIFO order; full → push false', () => {
    const q = new EffectQueue(EffectQueue.createShare(5));
    expect(q.capacity).toBe(8);
    for (let i = 0; i < 8; i++) expect(q.push(Effect.UART_TX, i)).toBe(true);
    expect(q.push(Effect.UART_TX, 99)).toBe(false);
    expect(q.pending()).toBe(8);
    const out: number[] = [];
    expect(q.drain((_k, v) => out.push(v))).toBe(8);
    expect(out).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(q.drain(() => {})).toBe(0);
  });

  test('wraps around many times and keeps kinds with values', () => {
    const q = new EffectQueue(EffectQueue.createShare(4));
    const out: [number, number][] = [];
    for (let i = 0; i < 1000; i++) {
      q.push(1 + (i % 4), -i);
      if (i % 3 === 2) q.drain((k, v) => out.push([k, v]));
    }
    q.drain((k, v) => out.push([k, v]));
    expect(out.length).toBe(1000);
    expect(out.every(([k, v], i) => k === 1 + (i % 4) && v === -i)).toBe(true);
  });

  test('pushWait on the main thread cannot wait for itself: drops and counts', () => {
    const q = new EffectQueue(EffectQueue.createShare(2));
    expect(q.pushWait(1, 1)).toBe(true);
    expect(q.pushWait(1, 2)).toBe(true);
    expect(q.pushWait(1, 3)).toBe(false);
    expect(q.dropped()).toBe(1);
  });

  test('startDrain wakes on a post (Atomics.waitAsync), and stop ends it', async () => {
    const share = EffectQueue.createShare(16);
    const producer = new EffectQueue(share);
    const consumer = new EffectQueue(share);
    const got: number[] = [];
    let wake!: () => void;
    let arrived = new Promise<void>((r) => (wake = r));
    const d = consumer.startDrain((_k, v) => {
      got.push(v);
      wake();
    });
    await new Promise((r) => setTimeout(r, 5)); // the consumer is asleep now
    producer.push(Effect.POWER_OFF, 7);
    await arrived;
    expect(got).toEqual([7]);
    arrived = new Promise<void>((r) => (wake = r));
    producer.push(Effect.RESET, 0);
    await arrived;
    d.stop();
    await d.done;
    expect(got).toEqual([7, 0]);
  });
});
