/**
 * What the postcopy threads share (lib/migration/postcopy/shared.ts): the page ring (order,
 * wrap-around, a full ring dropping what does not fit, `pending`, the wake word, and a
 * producer in another thread), the page keys, and the atomic bitmap helpers at word edges.
 */
import { Worker } from 'node:worker_threads';
import {
  BLOCK_KEY, clearBit, newBitmap, PageRing, pageKey, R_WAKE, splitKey, testAndSet, testBit, waitAsync,
} from '../../../lib/migration/postcopy/shared';

const CAPACITY = 8192;

function drained(ring: PageRing): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  ring.drain((k, t) => out.push([k, t]));
  return out;
}

describe('PageRing', () => {
  test('entries come out in order, with their times; pending says whether any wait', () => {
    const ring = new PageRing();
    expect(ring.pending).toBe(false);
    ring.push(pageKey(1, 5), 1.5);
    ring.push(pageKey(0, 2 ** 40 - 1), 2.5);
    expect(ring.pending).toBe(true);
    expect(drained(ring)).toEqual([
      [BLOCK_KEY + 5, 1.5],
      [2 ** 40 - 1, 2.5],
    ]);
    expect(ring.pending).toBe(false);
    expect(drained(ring)).toEqual([]);
  });

  test('wraps around its capacity many times without losing or reordering', () => {
    const ring = new PageRing();
    let next = 0;
    let expected = 0;
    for (let round = 0; round < 7; round++) {
      // Uneven batches so the write index crosses the end of the slots at different offsets.
      const n = 3000 + round * 517;
      for (let i = 0; i < n; i++) ring.push(next++, round);
      // Checked by hand: tens of thousands of expect() calls would dominate the test.
      for (const [k, t] of drained(ring)) {
        if (k !== expected || t !== round) throw new Error(`entry ${expected}: got (${k}, ${t})`);
        expected++;
      }
    }
    expect(expected).toBe(next);
    expect(next).toBeGreaterThan(3 * CAPACITY);
  });

  test('a full ring drops new entries and keeps the ones it has', () => {
    const ring = new PageRing();
    for (let i = 0; i < CAPACITY + 10; i++) ring.push(i, 0);
    const out = drained(ring);
    expect(out).toHaveLength(CAPACITY);
    expect(out[0][0]).toBe(0);
    expect(out[CAPACITY - 1][0]).toBe(CAPACITY - 1);
    // After a drain there is room again, and order carries on from the last kept entry.
    ring.push(99999, 1);
    expect(drained(ring)).toEqual([[99999, 1]]);
  });

  test('a consumer over the same buffer sees the producer\'s entries; every push bumps the wake word', () => {
    const a = new PageRing();
    const b = new PageRing(a.buffer);
    const wake0 = Atomics.load(b.ctrl, R_WAKE);
    a.push(7, 1);
    a.push(8, 2);
    expect(Atomics.load(b.ctrl, R_WAKE)).toBe(wake0 + 2);
    expect(drained(b)).toEqual([
      [7, 1],
      [8, 2],
    ]);
    expect(a.pending).toBe(false);
  });

  test('a producer in another thread wakes a waiter, and every entry arrives', async () => {
    const ring = new PageRing();
    const N = 20000;
    const src = `
      const { workerData } = require('node:worker_threads');
      const ctrl = new Int32Array(workerData, 0, 4);
      const slots = new Float64Array(workerData, 16, ${CAPACITY} * 2);
      // PageRing.push, inlined: the worker runs plain JavaScript.
      for (let k = 0; k < ${N}; ) {
        const w = Atomics.load(ctrl, 0);
        if (w - Atomics.load(ctrl, 1) >= ${CAPACITY}) { Atomics.wait(ctrl, 3, 0, 1); continue; }
        const i = (w % ${CAPACITY}) * 2;
        slots[i] = k; slots[i + 1] = -k;
        Atomics.store(ctrl, 0, w + 1);
        Atomics.add(ctrl, 2, 1);
        Atomics.notify(ctrl, 2);
        k++;
      }`;
    const w = new Worker(src, { eval: true, workerData: ring.buffer });
    const exited = new Promise<number>((r) => w.once('exit', r));
    let next = 0;
    const deadline = Date.now() + 15000;
    while (next < N && Date.now() < deadline) {
      const seen = Atomics.load(ring.ctrl, R_WAKE);
      ring.drain((k, t) => {
        if (k !== next || t !== -k) throw new Error(`entry ${next}: got (${k}, ${t})`);
        next++;
      });
      if (next < N) await waitAsync(ring.ctrl, R_WAKE, seen, 100);
    }
    expect(next).toBe(N);
    expect(await exited).toBe(0);
  });
});

describe('page keys and bitmaps', () => {
  test('a key names one page of one block, for every block and page index', () => {
    for (const [b, p] of [[0, 0], [0, 2 ** 40 - 1], [1, 0], [3, 123456789], [1000, 2 ** 39]]) {
      expect(splitKey(pageKey(b, p))).toEqual([b, p]);
    }
    expect(pageKey(1, 0)).toBe(BLOCK_KEY);
    expect(Number.isSafeInteger(pageKey(4095, 2 ** 40 - 1))).toBe(true);
  });

  test('testAndSet, testBit and clearBit at word edges, the sign bit included', () => {
    const bits = newBitmap(70);
    expect(bits.length).toBe(3);
    expect(bits.buffer).toBeInstanceOf(SharedArrayBuffer);
    for (const p of [0, 30, 31, 32, 63, 64, 69]) {
      expect(testBit(bits, p)).toBe(false);
      expect(testAndSet(bits, p)).toBe(false);
      expect(testAndSet(bits, p)).toBe(true);
      expect(testBit(bits, p)).toBe(true);
    }
    expect(bits[0] >>> 0).toBe((1 | (1 << 30) | (1 << 31)) >>> 0);
    expect(bits[1] >>> 0).toBe((1 | (1 << 31)) >>> 0);
    clearBit(bits, 31);
    clearBit(bits, 32);
    expect(testBit(bits, 31)).toBe(false);
    expect(testBit(bits, 32)).toBe(false);
    expect(testBit(bits, 30)).toBe(true);
    expect(testBit(bits, 63)).toBe(true);
    expect(newBitmap(0).length).toBe(0);
    expect(newBitmap(32).length).toBe(1);
    expect(newBitmap(33).length).toBe(2);
  });
});
