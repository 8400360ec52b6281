/**
 * worker_thread entry that runs one hart (QEMU's vCPU thread). It wraps the board's RAM and
 * devices from their shares, then loops: run a slice of instructions, park when asked, sleep in
 * the kernel while the hart waits for an interrupt, sleep the throttle's share of each timeslice.
 *
 * A guest access to a RAM page that is not there yet (postcopy destination) blocks this thread
 * inside the kernel on a userfaultfd fault until the main thread places the page.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { gettid, native } from '../host';
import type { HartEnv } from './bus';
import { Hart, HartState } from './cpu';
import { regionFromShare, type RamBlockShare } from './ram';
import { buildVirtDevices, type VirtShares } from './virt-devices';
import {
  CTL_RETIRED_HI,
  CTL_RETIRED_LO,
  CTL_RUN,
  CTL_STATE,
  CTL_THROTTLE,
  CTL_TID,
  RUN_EXIT,
  RUN_GO,
  RUN_PARK,
  STATE_EXITED,
  STATE_HALTED,
  STATE_PARKED,
  STATE_RUNNING,
  STAMP_PARKED,
  STAMP_RUNNING,
  stampsOf,
  THROTTLE_TIMESLICE_MS,
  throttleSleepMs,
} from './vcpu-control';

export interface VcpuWorkerData {
  hartId: number;
  ctl: SharedArrayBuffer;
  state: SharedArrayBuffer;
  ram: RamBlockShare[];
  devices: VirtShares;
  guestErrors: boolean;
}

/** Instructions per run() slice; a kick ends a slice early, so this only bounds latency of
 * the throttle and retired-count bookkeeping. */
const SLICE = 1 << 20;

function main(d: VcpuWorkerData): void {
  const ctl = new Int32Array(d.ctl);
  const stamps = stampsOf(ctl);
  const devs = buildVirtDevices(d.devices, {
    log: d.guestErrors ? (dev, msg) => parentPort?.postMessage({ type: 'guest-error', hart: d.hartId, device: dev, message: msg }) : undefined,
  });
  const env: HartEnv = {
    hartId: d.hartId,
    ram: d.ram.map(regionFromShare),
    mmio: devs.lookup,
    lines: devs.lines,
    timebase: devs.clint,
  };
  const state = new HartState(d.state, { lines: devs.lines });
  const hart = new Hart(env, state);
  const wake = devs.lines.wake;
  const h = d.hartId;
  Atomics.store(ctl, CTL_TID, gettid());
  native.setThreadName(`vcpu${d.hartId}`);

  let retired = 0;
  // A trap loop stops the hart until the board resets it (a reset bumps the state generation).
  let trappedGen = -1;
  let sliceStart = performance.now();
  for (;;) {
    const run = Atomics.load(ctl, CTL_RUN);
    if (run === RUN_EXIT) break;
    if (run === RUN_PARK) {
      Atomics.store(stamps, STAMP_PARKED, process.hrtime.bigint());
      Atomics.store(ctl, CTL_STATE, STATE_PARKED);
      Atomics.notify(ctl, CTL_STATE);
      Atomics.wait(ctl, CTL_RUN, RUN_PARK);
      if (Atomics.load(ctl, CTL_RUN) === RUN_GO) Atomics.store(stamps, STAMP_RUNNING, process.hrtime.bigint());
      sliceStart = performance.now();
      continue;
    }
    if (trappedGen === state.generation) {
      Atomics.store(ctl, CTL_STATE, STATE_HALTED);
      const seen = Atomics.load(wake, h);
      if (Atomics.load(ctl, CTL_RUN) !== RUN_PARK && trappedGen === state.generation) Atomics.wait(wake, h, seen);
      continue;
    }
    if (Atomics.load(ctl, CTL_STATE) !== STATE_RUNNING) Atomics.store(ctl, CTL_STATE, STATE_RUNNING);

    const exit = hart.run(SLICE);
    retired += exit.executed;
    Atomics.store(ctl, CTL_RETIRED_LO, retired | 0);
    Atomics.store(ctl, CTL_RETIRED_HI, Math.floor(retired / 2 ** 32) | 0);

    if (exit.reason === 'wfi') {
      const deadline = hart.nextTimerDeadline();
      let timeout = Infinity;
      if (deadline !== Infinity) {
        const ticks = deadline - devs.clint.mtime();
        if (ticks <= 0) continue;
        // Clint frequency: 10 MHz → 1e4 ticks per ms. Time may be paused (VM stopped): then
        // the hart is parked anyway and a kick wakes it.
        timeout = Math.max(0, ticks / (devs.clint.freq / 1000));
      }
      // wake0 is the wake word as the run began: a line raised since then ends the wait at once.
      Atomics.wait(wake, h, hart.wake0, timeout);
      sliceStart = performance.now();
    } else if (exit.reason === 'trap-loop') {
      trappedGen = state.generation;
      parentPort?.postMessage({ type: 'trap-loop', hart: h, info: exit.trapLoop });
    }

    const pct = Atomics.load(ctl, CTL_THROTTLE);
    if (pct > 0) {
      const now = performance.now();
      if (now - sliceStart >= THROTTLE_TIMESLICE_MS) {
        // auto-converge: sleep, but wake at once for a park request (RUN changes).
        Atomics.wait(ctl, CTL_RUN, Atomics.load(ctl, CTL_RUN), throttleSleepMs(pct));
        sliceStart = performance.now();
      }
    }
  }
  Atomics.store(ctl, CTL_STATE, STATE_EXITED);
  Atomics.notify(ctl, CTL_STATE);
}

main(workerData as VcpuWorkerData);
