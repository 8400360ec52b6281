/**
 * Host side effects from devices (UART output, power-off, reset), carried from whichever thread
 * runs the device code to the main thread. A bounded multi-producer single-consumer ring in a
 * SharedArrayBuffer (Vyukov's bounded queue, one sequence word per cell), so every vCPU thread
 * can post without a lock and the main thread drains without polling.
 *
 * Words of the Int32Array:
 *
 *   0 TAIL     next position a producer claims (compare-exchange)
 *   1 HEAD     next position the consumer reads (consumer only; shared for pending())
 *   2 SIGNAL   bumped after every publish; the consumer sleeps on it with Atomics.waitAsync
 *   3 WAITING  1 while the consumer sleeps: producers only notify then
 *   4 SPACE    bumped by the consumer after it frees cells; full producers Atomics.wait on it
 *   5 DROPPED  records dropped because the ring stayed full
 *   8 + 3i     cell i: SEQ, KIND, VALUE
 *
 * A cell's SEQ is i when free for position i, pos+1 once position pos is published, and
 * pos+capacity after the consumer took it. Positions wrap at 2^32 (all arithmetic is |0).
 * A producer's records get increasing positions and the consumer reads positions in order, so
 * each producer's order is kept and every record is seen exactly once.
 *
 * Lost wake-up check (all Atomics are sequentially consistent):
 *
 *   producer                         consumer
 *   publish cell                     seen = SIGNAL; drain ...
 *   SIGNAL += 1                      WAITING = 1
 *   if WAITING: notify(SIGNAL)       if SIGNAL != seen: retry, else waitAsync(SIGNAL, seen)
 *
 * Either the producer sees WAITING and notifies, or the consumer sees the new SIGNAL (and
 * waitAsync itself compares SIGNAL with `seen` atomically).
 */
import { isMainThread } from 'node:worker_threads';

/** Effect kinds; the value word's meaning depends on the kind. */
export const Effect = {
  /** value = uart id << 8 | byte: a byte the guest transmitted */
  UART_TX: 1,
  /** value = uart id: the guest read RBR; the receive side may deliver more input now */
  UART_RX_READY: 2,
  /** value = exit status (sifive_test pass 0x5555 → 0, fail 0x3333 → code) */
  POWER_OFF: 3,
  /** value = 0: guest-requested system reset (sifive_test 0x7777) */
  RESET: 4,
} as const;

const TAIL = 0;
const HEAD = 1;
const SIGNAL = 2;
const WAITING = 3;
const SPACE = 4;
const DROPPED = 5;
const CELLS = 8;

export interface EffectQueueShare {
  readonly buffer: SharedArrayBuffer;
  readonly capacity: number;
}

export type EffectHandler = (kind: number, value: number) => void;

export interface Drainer {
  /** Stop after the current batch; `done` resolves once the loop has left. */
  stop(): void;
  readonly done: Promise<void>;
}

/** Atomics.waitAsync (ES2024; in Node since 16) typed for our ES2022 lib. */
const waitAsync = (
  Atomics as unknown as {
    waitAsync(a: Int32Array, i: number, v: number): { async: boolean; value: Promise<string> | string };
  }
).waitAsync.bind(Atomics);

export class EffectQueue {
  private readonly a: Int32Array;
  private readonly mask: number;
  readonly capacity: number;

  /** Main thread, once. `capacity` is rounded up to a power of two. */
  static createShare(capacity = 4096): EffectQueueShare {
    let cap = 2;
    while (cap < capacity) cap *= 2;
    const buffer = new SharedArrayBuffer(4 * (CELLS + 3 * cap));
    const a = new Int32Array(buffer);
    for (let i = 0; i < cap; i++) a[CELLS + 3 * i] = i;
    return { buffer, capacity: cap };
  }

  constructor(share: EffectQueueShare) {
    this.a = new Int32Array(share.buffer);
    this.capacity = share.capacity;
    this.mask = share.capacity - 1;
  }

  /** Any thread. Returns false (and posts nothing) when the ring is full. */
  push(kind: number, value: number): boolean {
    const a = this.a;
    let pos = Atomics.load(a, TAIL);
    let cell: number;
    for (;;) {
      cell = CELLS + 3 * (pos & this.mask);
      const dif = (Atomics.load(a, cell) - pos) | 0;
      if (dif === 0) {
        const seen = Atomics.compareExchange(a, TAIL, pos, (pos + 1) | 0);
        if (seen === pos) break;
        pos = seen;
      } else if (dif < 0) {
        return false;
      } else {
        pos = Atomics.load(a, TAIL);
      }
    }
    Atomics.store(a, cell + 1, kind);
    Atomics.store(a, cell + 2, value);
    Atomics.store(a, cell, (pos + 1) | 0);
    Atomics.add(a, SIGNAL, 1);
    if (Atomics.load(a, WAITING) !== 0) Atomics.notify(a, SIGNAL);
    return true;
  }

  /**
   * Like push, but when the ring is full a worker thread waits (up to `timeoutMs` in total) for
   * the consumer to make room: back-pressure, as a slow serial line gives. The main thread
   * cannot wait for itself, so there, and after the timeout, the record is dropped and counted.
   */
  pushWait(kind: number, value: number, timeoutMs = 100): boolean {
    if (this.push(kind, value)) return true;
    const a = this.a;
    if (!isMainThread) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const space = Atomics.load(a, SPACE);
        if (this.push(kind, value)) return true;
        const left = deadline - Date.now();
        if (left <= 0) break;
        Atomics.wait(a, SPACE, space, left);
      }
    }
    Atomics.add(a, DROPPED, 1);
    return false;
  }

  /** Records posted and not yet drained (approximate while producers run). */
  pending(): number {
    return (Atomics.load(this.a, TAIL) - Atomics.load(this.a, HEAD)) | 0;
  }

  /** Records dropped because the ring stayed full. */
  dropped(): number {
    return Atomics.load(this.a, DROPPED);
  }

  /** Consumer (main thread) only: hands every published record to `handler`, in order. */
  drain(handler: EffectHandler): number {
    const a = this.a;
    let pos = Atomics.load(a, HEAD);
    let n = 0;
    for (;;) {
      const cell = CELLS + 3 * (pos & this.mask);
      if (Atomics.load(a, cell) !== ((pos + 1) | 0)) break;
      const kind = Atomics.load(a, cell + 1);
      const value = Atomics.load(a, cell + 2);
      Atomics.store(a, cell, (pos + this.capacity) | 0);
      pos = (pos + 1) | 0;
      Atomics.store(a, HEAD, pos);
      n++;
      handler(kind, value);
    }
    if (n > 0) {
      Atomics.add(a, SPACE, 1);
      Atomics.notify(a, SPACE);
    }
    return n;
  }

  /**
   * Consumer (main thread) only: drains now and again whenever a producer posts, sleeping in
   * Atomics.waitAsync in between (no polling, no timers). A pending waitAsync does not keep the
   * process alive; the owner keeps its own handles.
   */
  startDrain(handler: EffectHandler): Drainer {
    const a = this.a;
    let stopped = false;
    let wakeSelf: (() => void) | undefined;
    const loop = async () => {
      while (!stopped) {
        const seen = Atomics.load(a, SIGNAL);
        this.drain(handler);
        if (stopped) break;
        Atomics.store(a, WAITING, 1);
        if (Atomics.load(a, SIGNAL) === seen) {
          const w = waitAsync(a, SIGNAL, seen);
          if (w.async) {
            await Promise.race([w.value, new Promise<void>((r) => (wakeSelf = r))]);
          }
        }
        Atomics.store(a, WAITING, 0);
      }
      this.drain(handler);
    };
    const done = loop();
    return {
      stop() {
        stopped = true;
        wakeSelf?.();
      },
      done,
    };
  }
}
