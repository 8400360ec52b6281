/**
 * QEMU's migration rate limit (migration/migration-stats.c, migration.c):
 *
 *   max-bandwidth B bytes/s is enforced per BUFFER_DELAY = 100 ms window as B / 10 bytes
 *   (XFER_LIMIT_RATIO = 1000 / BUFFER_DELAY). The budget counts every byte the stream has
 *   transferred since the window started (queued bytes included, as qemu_file_transferred
 *   does). "Exceeded" means used > budget (strictly). 0 means unlimited (RATE_LIMIT_DISABLED).
 *   When exceeded, the migration thread sleeps until the window ends, then a new window
 *   starts at the current transferred count.
 *
 *   window  ├──────── 100 ms ────────┤├──────── 100 ms ────────┤
 *   bytes   ████████████ budget=B/10 ▲  sleep until window end   ████ …
 *                                    exceeded()
 *
 * The limit can be changed while running (migrate-set-parameters max-bandwidth); the new
 * budget applies at once to the current window. Time comes from an injectable Clock so tests
 * drive windows without sleeping.
 */

/** Milliseconds clock with a sleep; the only source of time in the stream layer. */
export interface Clock {
  /** Monotonic milliseconds. */
  now(): number;
  sleep(ms: number): Promise<void>;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms))),
};

/** A clock that moves only when told to; sleepers wake when `advance` passes their deadline. */
export class ManualClock implements Clock {
  private t: number;
  private sleepers: { at: number; resolve: () => void }[] = [];

  constructor(start = 0) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  sleep(ms: number): Promise<void> {
    if (ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.sleepers.push({ at: this.t + ms, resolve });
    });
  }

  /** Move time forward and wake every sleeper whose deadline has come. */
  advance(ms: number): void {
    this.t += ms;
    const due = this.sleepers.filter((s) => s.at <= this.t);
    this.sleepers = this.sleepers.filter((s) => s.at > this.t);
    for (const s of due) s.resolve();
  }

  /** Number of sleepers still waiting (for tests). */
  get pending(): number {
    return this.sleepers.length;
  }
}

/** QEMU's BUFFER_DELAY: the rate-limit window, and the bandwidth-estimate period. */
export const BUFFER_DELAY_MS = 100;
/** QEMU's XFER_LIMIT_RATIO: windows per second. */
export const XFER_LIMIT_RATIO = 1000 / BUFFER_DELAY_MS;

export class RateLimiter {
  private budget = 0;
  private bandwidth = 0;
  private windowStart: number;
  private windowStartBytes = 0;

  constructor(
    readonly clock: Clock = systemClock,
    maxBandwidth = 0,
  ) {
    this.windowStart = clock.now();
    this.setMaxBandwidth(maxBandwidth);
  }

  /** Bytes per second; 0 = unlimited. Takes effect in the current window. */
  setMaxBandwidth(bytesPerSecond: number): void {
    if (!Number.isFinite(bytesPerSecond) || bytesPerSecond < 0) {
      throw new RangeError(`max-bandwidth must be a non-negative number, got ${bytesPerSecond}`);
    }
    this.bandwidth = Math.floor(bytesPerSecond);
    // migration_rate_set(): "'limit' is per second. But we check it each BUFFER_DELAY ms."
    this.budget = Math.floor(this.bandwidth / XFER_LIMIT_RATIO);
  }

  get maxBandwidth(): number {
    return this.bandwidth;
  }

  /** Bytes allowed per window (max-bandwidth / 10); 0 = unlimited. */
  get windowBudget(): number {
    return this.budget;
  }

  /** Start a new window now, counting from `transferred` (QEMU's migration_rate_reset). */
  reset(transferred: number): void {
    this.windowStart = this.clock.now();
    this.windowStartBytes = transferred;
  }

  /** Whether the stream, having transferred `transferred` bytes in all, is over budget in the
   * current window. A window whose 100 ms have passed is rolled over first. */
  exceeded(transferred: number): boolean {
    if (this.budget === 0) return false;
    if (this.clock.now() - this.windowStart >= BUFFER_DELAY_MS) this.reset(transferred);
    return transferred - this.windowStartBytes > this.budget;
  }

  /** Bytes the current window still allows (Infinity when unlimited): what the next run of
   * pages may send before the limit is exceeded. */
  remaining(transferred: number): number {
    if (this.budget === 0) return Infinity;
    if (this.clock.now() - this.windowStart >= BUFFER_DELAY_MS) this.reset(transferred);
    return Math.max(0, this.budget - (transferred - this.windowStartBytes));
  }

  /** Milliseconds until the current window ends (0 if it already has). */
  msUntilWindowEnd(): number {
    return Math.max(0, this.windowStart + BUFFER_DELAY_MS - this.clock.now());
  }

  /** Sleep until the current window ends, then start the next one at `transferred()`
   * (QEMU's migration_rate_limit: sleep out the window when over budget). */
  async waitForWindow(transferred: () => number): Promise<void> {
    const ms = this.msUntilWindowEnd();
    if (ms > 0) await this.clock.sleep(ms);
    this.reset(transferred());
  }
}
