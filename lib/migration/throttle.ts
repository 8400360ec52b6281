/**
 * Dirty-rate accounting and auto-converge (QEMU ram.c migration_bitmap_sync /
 * migration_trigger_throttle / mig_throttle_guest_down).
 *
 * At a bitmap sync at least 1 s after the previous period began:
 *   dirty-pages-rate = pages dirtied in the period × 1000 / elapsed ms
 *   if auto-converge and the bytes dirtied in the period exceed throttle-trigger-threshold %
 *   of the bytes sent in it, for the second time in a row of such periods: throttle the
 *   guest — first to cpu-throttle-initial %, then + cpu-throttle-increment % each time,
 *   capped at max-cpu-throttle %.
 */
import type { VirtMachine } from '../machine/virt';
import { numParam, type MigrationSettings } from './settings';

const PAGE_SIZE = 4096;
const PERIOD_MS = 1000;

export class Throttle {
  private periodStart: number;
  private periodPages = 0;
  private xferAtPeriodStart = 0;
  private highCount = 0;
  private pct = 0;

  constructor(
    private readonly settings: MigrationSettings,
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
    if (this.settings.capability('auto-converge')) {
      const threshold = numParam(this.settings, 'throttle-trigger-threshold') / 100;
      if (dirtyBytes > xferBytes * threshold) {
        if (++this.highCount >= 2) {
          this.highCount = 0;
          this.throttleDown();
        }
      }
    }
    this.periodStart = now;
    this.periodPages = 0;
    this.xferAtPeriodStart = transferred;
    return rate;
  }

  private throttleDown(): void {
    const initial = numParam(this.settings, 'cpu-throttle-initial');
    const inc = numParam(this.settings, 'cpu-throttle-increment');
    const max = numParam(this.settings, 'max-cpu-throttle');
    this.pct = this.pct === 0 ? initial : Math.min(this.pct + inc, max);
    this.machine.setThrottle(this.pct);
  }

  /** Migration over (or switching over): the guest runs at full speed again. */
  stop(): void {
    if (this.pct !== 0) this.machine.setThrottle(0);
    this.pct = 0;
  }
}
