/**
 * When to switch over, and what it will cost (QEMU migration.c migration_update_counters,
 * migration_iteration_run). Pure bookkeeping over an injected clock: the outgoing migration
 * feeds it bytes sent and dirty syncs, and asks for the threshold and expected-downtime.
 *
 *   bandwidth  every ≥ 100 ms (QEMU's BUFFER_DELAY): the lower of the last window's rate and
 *              the rate over the current pass, or avail-switchover-bandwidth when set
 *   threshold  bandwidth × (downtime-limit − SWITCHOVER_OVERHEAD_MS): bytes that may still be
 *              dirty when the guest stops
 *   expected   the passes to come, modelled by predictDowntime()
 *
 * Why the lower of two rates: a single fast window (pages the destination had already
 * faulted in, a burst into socket buffers) would promise more than the final pass gets.
 * Why the overhead: the limit should bound the whole pause, not only the transfer.
 */

/**
 * What a switchover costs besides sending pages: parking the vCPUs, the final sync, device
 * state, the destination's resume and its SHUT on the return path (measured at 10–25 ms here).
 */
export const SWITCHOVER_OVERHEAD_MS = 15;

/** QEMU's BUFFER_DELAY: bandwidth is re-estimated every 100 ms. */
export const BUFFER_DELAY_MS = 100;

const PAGE_SIZE = 4096;

/** Bytes that may still be dirty at switchover (bandwidth in bytes per ms). */
export function switchoverThreshold(bandwidth: number, downtimeLimit: number): number {
  return bandwidth * Math.max(0, downtimeLimit - SWITCHOVER_OVERHEAD_MS);
}

/**
 * expected-downtime: how long the guest will be stopped if the migration goes on as it goes.
 * Each pass sends what the previous one left dirty (d pages at `bandwidth`), during which the
 * guest dirties distinct pages at `dirtyRate` (saturating at the RAM's page count); the
 * switchover comes at the first pass end where d fits under the threshold, and the downtime is
 * sending that d. QEMU reports dirty-bytes-rate ÷ bandwidth, which ignores the threshold and
 * how passes shrink; this follows the switchover rule the engine actually applies.
 */
export function predictDowntime(p: { dirtyPages: number; dirtyRate: number; bandwidth: number; threshold: number; pages: number }): number {
  const bwPages = p.bandwidth / PAGE_SIZE; // pages per ms
  const limit = p.threshold / PAGE_SIZE;
  let d = p.dirtyPages;
  for (let i = 0; i < 32 && d > limit; i++) {
    const t = d / bwPages;
    const next = p.pages * (1 - Math.exp((-p.dirtyRate * t) / p.pages));
    if (next >= d) break; // not converging: report what a stop now would cost
    d = next;
  }
  return d / bwPages;
}

/** What the estimator reads of the RAM saver. */
export interface DirtySource {
  /** Pages dirty in the migration bitmap now. */
  readonly dirtyPages: number;
  /** Bytes of RAM being migrated. */
  readonly totalBytes: number;
  /** Pages written since the last sync without taking them; -1 if unknown. */
  peekDirtied(): number;
}

export interface EstimatorSettings {
  downtimeLimit(): number;
  /** bytes per second; 0 = estimate */
  availSwitchoverBandwidth(): number;
}

export class SwitchoverEstimator {
  /** bytes per ms */
  bandwidth = 0;
  threshold = 0;
  expectedDowntime: number;
  /** megabits per second over the last window (query-migrate mbps) */
  mbps = 0;
  pagesPerSecond = 0;

  private winStart: number;
  private winBytes = 0;
  private winPages = 0;
  private passStart: number;
  private passBytes = 0;
  /** when the last dirty sync happened; -1 before the first */
  private lastSyncAt = -1;
  private dirtyAtLastSync = -1;
  /** distinct pages dirtied per ms over the last pass */
  private dirtyRate = 0;

  constructor(
    private readonly settings: EstimatorSettings,
    private readonly dirty: DirtySource,
    private readonly now: () => number,
  ) {
    this.expectedDowntime = settings.downtimeLimit();
    this.winStart = now();
    this.passStart = this.winStart;
  }

  /** The stream starts its first pass with `bytes` already sent and `pages` counted. */
  start(bytes: number, pages: number): void {
    this.winStart = this.now();
    this.winBytes = bytes;
    this.winPages = pages;
  }

  /** After each iteration: re-estimate once a window of ≥ BUFFER_DELAY_MS has passed. */
  update(bytes: number, pages: number): void {
    const now = this.now();
    const spent = now - this.winStart;
    if (spent < BUFFER_DELAY_MS) return;
    const inWindow = bytes - this.winBytes;
    this.mbps = (inWindow * 8) / (spent / 1000) / 1e6;
    this.pagesPerSecond = ((pages - this.winPages) * 1000) / spent;
    const passSpent = now - this.passStart;
    const passBw = passSpent >= BUFFER_DELAY_MS ? (bytes - this.passBytes) / passSpent : Infinity;
    const avail = this.settings.availSwitchoverBandwidth();
    this.bandwidth = avail > 0 ? avail / 1000 : Math.min(inWindow / spent, passBw);
    this.threshold = switchoverThreshold(this.bandwidth, this.settings.downtimeLimit());
    this.updateExpected();
    this.winStart = now;
    this.winBytes = bytes;
    this.winPages = pages;
  }

  /** A dirty sync at a pass end (not the final one): it tells how much the guest dirtied
   * while the pass was sent. `bytes` is the stream position at the sync. */
  onSync(pass: number, bytes: number, final: boolean): void {
    const now = this.now();
    if (pass >= 2 && !final && this.lastSyncAt >= 0 && now - this.lastSyncAt >= BUFFER_DELAY_MS) {
      this.dirtyAtLastSync = this.dirty.dirtyPages;
      this.dirtyRate = this.dirtyAtLastSync / (now - this.lastSyncAt);
      this.updateExpected();
    }
    this.lastSyncAt = now;
    this.passStart = now;
    this.passBytes = bytes;
  }

  /** Whether what is dirty now may be sent with the guest stopped. */
  fits(pendingBytes: number): boolean {
    return pendingBytes <= this.threshold;
  }

  /** A one-line account for LIVEMIG_DEBUG_MIGRATION. */
  describe(): string {
    return `rate ${this.dirtyRate.toFixed(1)} pages/ms, bandwidth ${(this.bandwidth / 1e3).toFixed(0)} MB/s, threshold ${Math.round(this.threshold / PAGE_SIZE)} pages, expected ${Math.round(this.expectedDowntime)} ms`;
  }

  private updateExpected(): void {
    if (this.bandwidth <= 0) return;
    const pages = this.dirty.totalBytes / PAGE_SIZE || 1;
    if (this.dirtyAtLastSync < 0) {
      // Still in the first pass: what the guest has dirtied so far, scaled to the whole pass,
      // is the best guess at what the first switchover check will find.
      const dirtied = this.dirty.peekDirtied();
      const elapsed = this.now() - this.lastSyncAt;
      if (dirtied < 0 || this.lastSyncAt < 0 || elapsed <= 0) return;
      const passMs = elapsed + (this.dirty.dirtyPages * PAGE_SIZE) / this.bandwidth;
      this.dirtyRate = dirtied / elapsed;
      const atPassEnd = pages * (1 - Math.exp((-this.dirtyRate * passMs) / pages));
      this.expectedDowntime = SWITCHOVER_OVERHEAD_MS + predictDowntime({ dirtyPages: atPassEnd, dirtyRate: this.dirtyRate, bandwidth: this.bandwidth, threshold: this.threshold, pages });
      return;
    }
    this.expectedDowntime =
      SWITCHOVER_OVERHEAD_MS + predictDowntime({ dirtyPages: this.dirtyAtLastSync, dirtyRate: this.dirtyRate, bandwidth: this.bandwidth, threshold: this.threshold, pages });
  }
}
