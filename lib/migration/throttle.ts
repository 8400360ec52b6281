/**
 * Dirty-rate accounting and auto-converge (QEMU ram.c migration_bitmap_sync /
 * migration_trigger_throttle / mig_throttle_guest_down).
 *
 * At a bitmap sync at least 1 s after the previous period began:
 *   dirty-pages-rate = pages dirtied in the period × 1000 / elapsed ms
 *   if auto-converge and the bytes dirtied in the period exceed throttle-trigger-threshold %
 *   of the bytes sent in it, for the second time in a row of such periods: throttle the
 *   guest — first to cpu-throttle-initial %, then + cpu-throttle-increment % each time,
 *   capped at max-cpu-throttle %. With cpu-throttle-tailslow the step shrinks near the end:
 *   it is at most what would bring the guest's CPU share down to where its dirtying matches
 *   the threshold (cpu_now × threshold_bytes ÷ dirty_bytes), so a guest close to converging
 *   is not throttled harder than it needs.
 */
import type { VirtMachine } from '../machine/virt';
import type { MigrationOptions } from './options';

const PAGE_SIZE = 4096;
const PERIOD_MS = 1000;

export class Throttle {
  private periodStart: number;
  private periodPages = 0;
  private xferAtPeriodStart = 0;
  private highCount = 0;
  private pct = 0;

  constructor(
    private readonly options: MigrationOptions,
    private readonly machine: VirtMachine,
    private readonly now: () => number,
  ) {
    this.periodStart = now();
  }

  get percentage(): number {
    return this.pct;
  }

  /** After a sync that found `newlyDirty` pages, with `transferred` bytes sent so far.
   * Returns the new dirty-pages-rate when a period closed, else null. */
  onSync(newlyDirty: number, transferred: number): number | null {
    this.periodPages += newlyDirty;
    const now = this.now();
    const elapsed = now - this.periodStart;
    if (elapsed < PERIOD_MS) return null;
    const rate = Math.round((this.periodPages * 1000) / elapsed);
    const dirtyBytes = this.periodPages * PAGE_SIZE;
    const xferBytes = transferred - this.xferAtPeriodStart;
    if (this.options.caps['auto-converge']) {
      const thresholdBytes = (xferBytes * this.options.params['throttle-trigger-threshold']) / 100;
      if (dirtyBytes > thresholdBytes) {
        if (++this.highCount >= 2) {
          this.highCount = 0;
          this.throttleDown(dirtyBytes, thresholdBytes);
        }
      }
    }
    this.periodStart = now;
    this.periodPages = 0;
    this.xferAtPeriodStart = transferred;
    return rate;
  }

  /** mig_throttle_guest_down(). */
  private throttleDown(dirtyBytes: number, thresholdBytes: number): void {
    const p = this.options.params;
    if (this.pct === 0) {
      this.pct = p['cpu-throttle-initial'];
    } else {
      let inc = p['cpu-throttle-increment'];
      if (p['cpu-throttle-tailslow']) {
        const cpuNow = 100 - this.pct;
        // QEMU computes in uint64: the ideal share is truncated before the subtraction.
        const cpuIdeal = Math.floor(cpuNow * (thresholdBytes / dirtyBytes));
        inc = Math.min(cpuNow - cpuIdeal, inc);
      }
      this.pct = Math.min(this.pct + inc, p['max-cpu-throttle']);
    }
    this.machine.setThrottle(this.pct);
  }

  /** Migration over (or switching over): the guest runs at full speed again. */
  stop(): void {
    if (this.pct !== 0) this.machine.setThrottle(0);
    this.pct = 0;
  }
}
