/**
 * What the postcopy destination's main thread and its fault worker share (SharedArrayBuffers,
 * so both read and write them without a message):
 *
 *   per RAM block   received bitmap   a page is in place (loader or worker set it, atomically)
 *                   requested bitmap  the worker has asked the source for the page
 *   placement ring  the loader's placements of requested pages: (page key, time), one
 *                   producer (main) and one consumer (worker); the worker ends the waits of
 *                   the faults that asked for them
 *   stats           blocktime and latency figures the worker keeps for query-migrate
 *
 * The ordering that keeps a fault from waiting forever: the worker sets `requested` before it
 * tests `received`; the loader sets `received` (after placing) before it tests `requested`.
 * With sequentially consistent Atomics at least one of them sees the other's bit, so either
 * the worker sees the page is there, or the loader tells it through the ring (or both: a ring
 * entry nobody waits for is dropped).
 *
 *   worker                              loader (main)
 *   Atomics.or(requested, p)            COPY page p
 *   if Atomics.load(received, p): done  Atomics.or(received, p)
 *   else send REQ_PAGES, wait           if Atomics.load(requested, p): ring ← (p, now)
 */
import { native } from '../../host';
import { LATENCY_BUCKETS } from './blocktime';

/** A page's key across blocks: block index × 2^40 + page index (2^40 pages = 4 PiB). */
export const BLOCK_KEY = 2 ** 40;

export function pageKey(block: number, page: number): number {
  return block * BLOCK_KEY + page;
}

export function splitKey(key: number): [number, number] {
  const block = Math.floor(key / BLOCK_KEY);
  return [block, key - block * BLOCK_KEY];
}

/** Sets bit `page`; returns whether it was set before. */
export function testAndSet(bits: Int32Array, page: number): boolean {
  const m = 1 << (page & 31);
  return (Atomics.or(bits, page >>> 5, m) & m) !== 0;
}

export function testBit(bits: Int32Array, page: number): boolean {
  return (Atomics.load(bits, page >>> 5) & (1 << (page & 31))) !== 0;
}

export function clearBit(bits: Int32Array, page: number): void {
  Atomics.and(bits, page >>> 5, ~(1 << (page & 31)));
}

export function newBitmap(pages: number): Int32Array {
  return new Int32Array(new SharedArrayBuffer(Math.ceil(pages / 32) * 4));
}

/** What the worker needs of a RAM block (plain data, postMessage-able). */
export interface SharedBlock {
  name: string;
  /** start of the block's mapping in this process */
  addr: number;
  size: number;
  received: Int32Array;
  requested: Int32Array;
  /** minor placement: a second mapping of the same memfd, not registered with userfaultfd */
  aliasAddr?: number;
  /** minor placement: who writes a page through the alias. Writing a page the guest may
   * already have changed would undo its write, so exactly one placer may claim each page. */
  claimed?: Int32Array;
}

/* ---- page ring: (page key, time) from one thread to another ---- */

const RING_CAPACITY = 8192;
const R_WRITE = 0;
const R_READ = 1;
/** bumped and notified on every push: the worker waits on it */
export const R_WAKE = 2;

/** A single-producer, single-consumer ring of (page key, time) pairs: the destination's loader
 * tells the fault worker about placements; the source's page server hands page requests to
 * the main thread. A waiter on the wake word is notified on every push. */
export class PageRing {
  readonly ctrl: Int32Array;
  readonly slots: Float64Array;

  constructor(readonly buffer: SharedArrayBuffer = new SharedArrayBuffer(16 + RING_CAPACITY * 16)) {
    this.ctrl = new Int32Array(buffer, 0, 4);
    this.slots = new Float64Array(buffer, 16, RING_CAPACITY * 2);
  }

  /** Producer: push (`key`, `time` ms). A full ring drops the entry: every consumer can find
   * out what it missed by looking (the fault worker sweeps its waiting faults; a dropped page
   * request is served by the background scan anyway). */
  push(key: number, time: number): void {
    const w = Atomics.load(this.ctrl, R_WRITE);
    if (w - Atomics.load(this.ctrl, R_READ) >= RING_CAPACITY) return;
    const i = (w % RING_CAPACITY) * 2;
    this.slots[i] = key;
    this.slots[i + 1] = time;
    Atomics.store(this.ctrl, R_WRITE, w + 1);
    Atomics.add(this.ctrl, R_WAKE, 1);
    Atomics.notify(this.ctrl, R_WAKE);
  }

  /** Consumer: whether anything waits (one load each: cheap enough to ask per page). */
  get pending(): boolean {
    return Atomics.load(this.ctrl, R_WRITE) !== Atomics.load(this.ctrl, R_READ);
  }

  /** Consumer: every entry pushed since the last drain. */
  drain(fn: (key: number, time: number) => void): void {
    let r = Atomics.load(this.ctrl, R_READ);
    const w = Atomics.load(this.ctrl, R_WRITE);
    for (; r < w; r++) {
      const i = (r % RING_CAPACITY) * 2;
      fn(this.slots[i], this.slots[i + 1]);
    }
    Atomics.store(this.ctrl, R_READ, r);
  }
}

/* ---- statistics ---- */

const S_FAULTS = 0;
const S_LATENCY = 1;
const S_TOTAL = 2;
const S_NONVCPU_FAULTS = 3;
const S_NONVCPU_LATENCY = 4;
const S_REQUESTS = 5;
const S_WORKER_PLACED = 6;
const S_HIST = 8;
const S_VCPU = S_HIST + LATENCY_BUCKETS;

export interface PostcopyDestinationStats {
  faults: number;
  /** page requests sent to the source */
  requests: number;
  /** pages the worker placed from the preempt channel */
  preemptPages: number;
  totalBlocktimeMs: number;
  vcpuBlocktimeMs: number[];
  /** average over all faults, ms */
  latencyMs: number;
  vcpuLatencyMs: number[];
  nonVcpuLatencyMs: number;
  histogram: number[];
}

export class SharedStats {
  readonly f64: Float64Array;

  constructor(
    readonly vcpus: number,
    readonly buffer: SharedArrayBuffer = new SharedArrayBuffer((S_VCPU + vcpus * 3) * 8),
  ) {
    this.f64 = new Float64Array(buffer);
  }

  /** Worker: publish its figures (single writer; a reader may see a torn update, which only
   * moves a figure by one fault). */
  publish(s: import('./blocktime').BlocktimeStats, requests: number, preemptPages: number): void {
    const a = this.f64;
    a[S_FAULTS] = s.faults;
    a[S_LATENCY] = s.latencySum;
    a[S_TOTAL] = s.totalBlocktime;
    a[S_NONVCPU_FAULTS] = s.nonVcpuFaults;
    a[S_NONVCPU_LATENCY] = s.nonVcpuLatencySum;
    a[S_REQUESTS] = requests;
    a[S_WORKER_PLACED] = preemptPages;
    for (let i = 0; i < LATENCY_BUCKETS; i++) a[S_HIST + i] = s.latencyHistogram[i];
    for (let v = 0; v < this.vcpus; v++) {
      a[S_VCPU + v * 3] = s.vcpuBlocktime[v];
      a[S_VCPU + v * 3 + 1] = s.vcpuLatencySum[v];
      a[S_VCPU + v * 3 + 2] = s.vcpuFaults[v];
    }
  }

  read(): PostcopyDestinationStats {
    const a = this.f64;
    const avg = (sum: number, n: number) => (n > 0 ? sum / n : 0);
    const vcpuLatencyMs: number[] = [];
    const vcpuBlocktimeMs: number[] = [];
    for (let v = 0; v < this.vcpus; v++) {
      vcpuBlocktimeMs.push(a[S_VCPU + v * 3]);
      vcpuLatencyMs.push(avg(a[S_VCPU + v * 3 + 1], a[S_VCPU + v * 3 + 2]));
    }
    return {
      faults: a[S_FAULTS],
      requests: a[S_REQUESTS],
      preemptPages: a[S_WORKER_PLACED],
      totalBlocktimeMs: a[S_TOTAL],
      vcpuBlocktimeMs,
      latencyMs: avg(a[S_LATENCY], a[S_FAULTS]),
      vcpuLatencyMs,
      nonVcpuLatencyMs: avg(a[S_NONVCPU_LATENCY], a[S_NONVCPU_FAULTS]),
      histogram: Array.from(a.subarray(S_HIST, S_HIST + LATENCY_BUCKETS)),
    };
  }
}

/** CLOCK_MONOTONIC in ms, the same in every thread (performance.now() has a per-thread origin). */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

type WaitAsync = (a: Int32Array, index: number, value: number, timeoutMs?: number) => { async: boolean; value: Promise<string> | string };

/** Atomics.waitAsync (Node 20 has it; the ES2022 typings do not): resolves when the word at
 * `index` is notified or no longer `value`, or after `timeoutMs`. */
export function waitAsync(a: Int32Array, index: number, value: number, timeoutMs: number): Promise<void> {
  const r = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync(a, index, value, timeoutMs);
  return r.async ? (r.value as Promise<string>).then(() => undefined) : Promise.resolve();
}

/**
 * End a channel's connection for every descriptor of it (QEMU's qemu_file_shutdown), then
 * destroy it: a postcopy thread holds a dup of the socket, and closing ours alone would leave
 * the connection open, so the peer would never learn that this side paused or failed.
 */
export function abortChannel(ch: { fd?: number; destroy(err?: Error): void } | null | undefined, err?: Error): void {
  if (!ch) return;
  if (ch.fd !== undefined) {
    try {
      native.shutdown(ch.fd);
    } catch {
      /* not connected (any more) */
    }
  }
  ch.destroy(err);
}
