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
