/**
 * The shared control block between the main thread and one vCPU worker (Int32 words in a
 * SharedArrayBuffer). The main thread writes RUN and THROTTLE; the worker writes STATE, TID and
 * RETIRED.
 *
 *   main                                  vCPU worker
 *   RUN = PARK; kick(h)  ───────────────► run() exits 'kick' at the next block boundary
 *                                         STATE = PARKED; notify(STATE)
 *   await STATE == PARKED  ◄────────────  wait(RUN == PARK)
 *   RUN = GO; notify(RUN)  ─────────────► STATE = RUNNING; run()
 */

export const CTL_RUN = 0;
export const CTL_STATE = 1;
/** auto-converge: percentage of time the vCPU sleeps (0..99). */
export const CTL_THROTTLE = 2;
/** Kernel thread id of the worker (gettid), for mapping userfaultfd faults to vCPUs. */
export const CTL_TID = 3;
/** Instructions retired, low 32 bits (wraps); for progress displays and benchmarks. */
export const CTL_RETIRED_LO = 4;
export const CTL_RETIRED_HI = 5;
export const CTL_WORDS = 12;

/**
 * Two 64-bit stamps after the words (a BigInt64Array from byte 32), CLOCK_MONOTONIC in ns
 * (process.hrtime.bigint(), the same clock in every process of the host): when the worker last
 * parked — its last instruction before a stop — and when it last left a park to run — its first
 * instruction after a cont. cpr-transfer's pause is the new process's RUNNING stamp minus the
 * old one's PARKED stamp.
 */
export const STAMP_PARKED = 0;
export const STAMP_RUNNING = 1;

export function stampsOf(ctl: Int32Array): BigInt64Array {
  return new BigInt64Array(ctl.buffer, 8 * 4, 2);
}

export const RUN_PARK = 0;
export const RUN_GO = 1;
export const RUN_EXIT = 2;

export const STATE_STARTING = 0;
export const STATE_RUNNING = 1;
export const STATE_PARKED = 2;
/** Stopped by a guest trap loop; parks like PARKED but reported to the main thread. */
export const STATE_HALTED = 3;
export const STATE_EXITED = 4;

export function newControlBlock(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(4 * CTL_WORDS));
}

/** CPU throttle timeslice (QEMU's CPU_THROTTLE_TIMESLICE_NS, 10 ms). */
export const THROTTLE_TIMESLICE_MS = 10;

/** How long to sleep after running one timeslice at `pct` percent throttle
 * (QEMU cpu_throttle_thread: pct / (1 - pct) × timeslice). */
export function throttleSleepMs(pct: number): number {
  if (pct <= 0) return 0;
  const p = Math.min(pct, 99) / 100;
  return (p / (1 - p)) * THROTTLE_TIMESLICE_MS;
}

/** How long waitAllParked blocks the calling thread before it yields to the event loop. */
export const PARK_SPIN_MS = 2;

const parkedOrGone = (s: number) => s === STATE_PARKED || s === STATE_HALTED || s === STATE_EXITED;

/**
 * Resolves once every vCPU has parked (or halted in a trap loop, or exited). A running hart
 * parks within a block: it is waited for right here, in the kernel, for up to PARK_SPIN_MS —
 * through the event loop each hart would cost a wake-up of its own, and a stop is a guest
 * pause. A hart still busy after that is awaited asynchronously.
 */
export async function waitAllParked(ctl: readonly Int32Array[]): Promise<void> {
  const until = performance.now() + PARK_SPIN_MS;
  for (const c of ctl) {
    for (;;) {
      const s = Atomics.load(c, CTL_STATE);
      const left = until - performance.now();
      if (parkedOrGone(s) || left <= 0) break;
      Atomics.wait(c, CTL_STATE, s, left);
    }
  }
  await Promise.all(ctl.map(waitParked));
}

async function waitParked(c: Int32Array): Promise<void> {
  for (;;) {
    const s = Atomics.load(c, CTL_STATE);
    if (parkedOrGone(s)) return;
    const r = (Atomics as unknown as { waitAsync(a: Int32Array, i: number, v: number, t?: number): { value: Promise<string> | string } }).waitAsync(c, CTL_STATE, s, 1000);
    if (typeof r.value !== 'string') await r.value;
  }
}

/** The latest park over every vCPU and the earliest run after it (0n for never). */
export function latestStamps(ctl: readonly Int32Array[]): { parked: bigint; running: bigint } {
  let parked = 0n;
  let running = 0n;
  for (const c of ctl) {
    const s = stampsOf(c);
    const p = Atomics.load(s, STAMP_PARKED);
    const r = Atomics.load(s, STAMP_RUNNING);
    if (p > parked) parked = p;
    if (r !== 0n && (running === 0n || r < running)) running = r;
  }
  return { parked, running };
}
