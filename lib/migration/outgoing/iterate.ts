/**
 * Iteration phase (QEMU migration_iteration_run): PART sections under the rate limit; every
 * 100 ms the estimator re-computes bandwidth and threshold; at the end of each pass over the
 * bitmap the dirty log is synced for the exact figure, and the phase ends when what is dirty
 * fits under the threshold (and, with switchover-ack, the destination has agreed).
 *
 * Why only at a pass end: QEMU also switches over mid-pass once its estimate drops under the
 * threshold, which sends up to a whole downtime-limit's worth of pages with the guest stopped.
 * Finishing the pass first costs nothing extra and leaves only what the guest dirtied
 * meanwhile for the downtime.
 */
import type { OutgoingContext } from './context';

/** QEMU's migration_can_switchover(): switchover-ack holds it back until the destination
 * acknowledged, unless the guest is not running (then nothing can change any more). */
export function canSwitchover(ctx: OutgoingContext): boolean {
  if (!ctx.options.caps['switchover-ack']) return true;
  if (!ctx.deps.vm.running) return true;
  return ctx.switchoverAcked;
}

/** Iterate until the migration can complete by precopy ('complete') or, once
 * migrate-start-postcopy was asked, switch to postcopy ('postcopy'): everything in RAM can
 * follow in postcopy, so nothing has to fit under the threshold first (QEMU's must_precopy is
 * zero for RAM). Precopy still wins when it can finish right now. */
export async function iteratePhase(ctx: OutgoingContext): Promise<'complete' | 'postcopy'> {
  const sv = ctx.sv!;
  const f = ctx.f!;
  const est = ctx.estimator!;
  for (;;) {
    ctx.checkCancel();
    if (sv.pending(false) === 0 && est.fits(sv.pending(true)) && canSwitchover(ctx)) return 'complete';
    if (ctx.startPostcopy && canSwitchover(ctx)) return 'postcopy';
    await sv.iterate();
    if (f.needsDrain) await f.drain();
    if (f.rateLimitExceeded()) await f.waitRateLimit();
    est.update(ctx.transferred(), ctx.pagesSent());
    ctx.stats.expectedDowntime = est.expectedDowntime;
    ctx.stats.mbps = est.mbps;
    ctx.stats.pagesPerSecond = est.pagesPerSecond;
    // Let the monitor, timers and the return path run between iterations.
    await new Promise<void>((r) => setImmediate(r));
  }
}
