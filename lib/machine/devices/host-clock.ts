/**
 * The host's monotonic clock in nanoseconds, as devices read it (time is injected, so
 * tests can drive it). Tests pass a ManualClock and drive time without sleeping.
 *
 * The default must agree across the worker threads of one process, because every hart computes
 * mtime itself. `process.hrtime` reads CLOCK_MONOTONIC, one clock for the whole process, but
 * costs a BigInt or an array per call; `performance.now()` is cheaper, but is only specified
 * relative to its thread's own time origin. (Node 20 happens to give workers the process's
 * origin; nothing promises that, and browsers and older Nodes differ.) So each thread measures,
 * once, the offset between the two — the pair of hrtime reads around one performance.now() with
 * the smallest gap, midpoint — and then answers `performance.now() * 1e6 + offset`, a value on
 * the hrtime axis. Threads agree to within that gap (measured: ~0.2 µs, about one 10 MHz tick).
 */

export interface HostClock {
  /** Monotonic host time in nanoseconds; comparable across threads of one process. */
  nowNs(): number;
}

const CALIBRATION_SAMPLES = 64;

function calibrate(): number {
  let bestGap = Infinity;
  let offset = 0;
  for (let i = 0; i < CALIBRATION_SAMPLES; i++) {
    const a = process.hrtime.bigint();
    const p = performance.now();
    const b = process.hrtime.bigint();
    const gap = Number(b - a);
    if (gap < bestGap) {
      bestGap = gap;
      offset = Number(a) + gap / 2 - p * 1e6;
    }
  }
  return offset;
}

let threadOffset: number | undefined;

/** This thread's calibrated default clock (calibrated on first use). */
export const monotonicClock: HostClock = {
  nowNs(): number {
    if (threadOffset === undefined) threadOffset = calibrate();
    return performance.now() * 1e6 + threadOffset;
  },
};

/** A clock that moves only when told to: for tests. Not shared across threads. */
export class ManualClock implements HostClock {
  constructor(private ns = 0) {}
  nowNs(): number {
    return this.ns;
  }
  advance(ns: number): void {
    this.ns += ns;
  }
  set(ns: number): void {
    this.ns = ns;
  }
}
