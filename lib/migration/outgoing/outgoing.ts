/**
 * An outgoing migration (QEMU migration/migration.c migration_thread), run through its phases:
 *
 *   setup.ts     connect, header, return path, START sections        status setup → active
 *   iterate.ts   PART sections until the dirty set fits the threshold, or postcopy is asked
 *   complete.ts  stop, END + FULL sections, EOF, SHUT             → [pre-switchover →] device
 *                                                                   → completed
 *   postcopy.ts  stop, discards, device package, then pages on demand and in the background
 *                  → device → postcopy-device → postcopy-active → completed
 *   recovery.ts  postcopy-paused ⇄ postcopy-recover-setup → postcopy-recover → postcopy-active
 *
 * Any failure or cancel before the destination may run the guest leaves the source guest as
 * it was: running again if it was running (QEMU migration_iteration_finish /
 * migrate_fd_cleanup), and the status failed (with error-desc) or cancelled. Once postcopy has
 * handed the guest over, failures pause instead and cancel is refused.
 *
 * CPR modes (cpr/source.ts): cpr-transfer first waits for the new process to hang up the cpr
 * channel, sends no page and hands the serial over at the stop; cpr-reboot stops the guest
 * before anything is saved.
 */
import type { MigrationAddress } from '../../transport/uri';
import { MigrationError } from '../errors';
import type { MigrationStatus } from '../state';
import { settleBeforeStop } from '../cpr/source';
import { completePrecopy } from './complete';
import { OutgoingContext, type OutgoingDeps, type OutgoingStats } from './context';
import { iteratePhase } from './iterate';
import { inPostcopy, postcopyRun, postcopyStart } from './postcopy';
import { pauseAndRecover } from './recovery';
import { abortChannel } from '../postcopy/shared';
import { setupPhase } from './setup';

export class OutgoingMigration {
  private readonly ctx: OutgoingContext;
  private running: Promise<void> | null = null;

  constructor(deps: OutgoingDeps) {
    this.ctx = new OutgoingContext(deps);
  }

  get status(): MigrationStatus {
    return this.ctx.state.status;
  }

  get stats(): OutgoingStats {
    return this.ctx.stats;
  }

  /** Run the whole migration. Never rejects: the outcome is the final status. */
  async run(addr: MigrationAddress): Promise<void> {
    const unhook = this.ctx.deps.machine.onDestroy(() => this.abortForDestroy());
    try {
      this.running = this.execute(addr);
      await this.running;
    } finally {
      unhook();
    }
  }

  /**
   * The machine is being destroyed: end the migration wherever it is (postcopy and its pause
   * included: there is no guest left to keep) and wait until nothing reads guest RAM any more —
   * the RAM scan on this thread and the page server's, which would fault on unmapped memory.
   */
  private async abortForDestroy(): Promise<void> {
    const ctx = this.ctx;
    const err = new MigrationError('EMIG_CANCELLED', 'the machine was destroyed during the migration');
    ctx.cancelled = true;
    ctx.continueResolve?.();
    ctx.resumeAborted?.(err);
    abortChannel(ctx.channel, err);
    await this.running;
  }

  private async execute(addr: MigrationAddress): Promise<void> {
    const ctx = this.ctx;
    const { state, vm } = ctx.deps;
    const wasRunning = vm.running;
    ctx.vmWasRunning = wasRunning;
    try {
      // ---- cpr hooks (cpr/source.ts) ----
      if (ctx.deps.cpr) await ctx.deps.cpr.listening;
      ctx.checkCancel();
      if (ctx.deps.mode === 'cpr-reboot') await stopFirst(ctx);
      // ----
      await setupPhase(ctx, addr);
      if ((await iteratePhase(ctx)) === 'postcopy') {
        await postcopyStart(ctx);
        ctx.destinationRuns = true;
        await postcopyRun(ctx, pauseAndRecover);
      } else {
        if (ctx.deps.cpr) await settleBeforeStop(ctx);
        await completePrecopy(ctx);
      }
      vm.outgoingCompleted();
      ctx.deps.cpr?.completed();
    } catch (thrown) {
      // A stream that failed because the return path broke reports why the return path broke.
      const e = ctx.returnPathError ?? thrown;
      ctx.stats.errorDesc = e instanceof Error ? e.message : String(e);
      abortChannel(ctx.channel, e instanceof Error ? e : undefined);
      ctx.multifd?.abort();
      if (ctx.cancelled) state.cas('cancelling', 'cancelled') || state.reset('cancelled');
      else state.reset('failed');
      // cpr-transfer: the serial comes back before the guest runs again.
      await ctx.deps.cpr?.failed().catch((err: Error) => process.stderr.write(`livemig: taking the serial back failed: ${err.message}\n`));
      // Once the destination may run the guest, this one must stay stopped.
      if (!ctx.destinationRuns) vm.outgoingFailed(wasRunning);
    } finally {
      ctx.throttle?.stop();
      await ctx.multifd?.close();
      await ctx.pageServer?.stop();
      ctx.saver?.saveCleanup();
      for (const c of ctx.cleanups.splice(0)) c();
      this.refreshStats();
      ctx.stats.totalTime = ctx.now() - ctx.stats.startTime;
    }
  }

  /** migrate_cancel: true if there was something to cancel. A cpr-transfer past the stop is
   * not cancelled: the new process may already run the guest on the same RAM, and only its
   * answer (or its death) may decide. */
  cancel(): boolean {
    const ctx = this.ctx;
    // QEMU: once postcopy started the source cannot take the guest back.
    if (inPostcopy(ctx.state.status)) throw new MigrationError('EMIG_STATE', 'Postcopy migration in progress, cannot cancel.');
    const states: readonly MigrationStatus[] = ctx.deps.cpr ? ['setup', 'active', 'pre-switchover'] : ['setup', 'active', 'pre-switchover', 'device'];
    for (const from of states) {
      if (ctx.state.cas(from, 'cancelling')) {
        ctx.cancelled = true;
        ctx.continueResolve?.();
        ctx.deps.cpr?.cancel();
        const err = new MigrationError('EMIG_CANCELLED', 'migration cancelled');
        ctx.multifd?.abort(err);
        ctx.channel?.destroy(err);
        return true;
      }
    }
    return false;
  }

  /** migrate-start-postcopy: switch to postcopy as soon as the iteration allows. */
  startPostcopy(): void {
    this.ctx.startPostcopy = true;
  }

  /** migrate resume=true: recover a paused postcopy over a new channel to `addr`. */
  resume(addr: MigrationAddress): void {
    const ctx = this.ctx;
    if (ctx.state.status !== 'postcopy-paused' || !ctx.resumeWith) throw new MigrationError('EMIG_STATE', 'Cannot resume if there is no paused migration');
    ctx.resumeWith(addr);
  }

  /** migrate-pause: break the channel so both sides pause (postcopy-active or -recover). */
  pause(): void {
    const ctx = this.ctx;
    const s = ctx.state.status;
    if (s !== 'postcopy-active' && s !== 'postcopy-recover') {
      throw new MigrationError('EMIG_STATE', 'migrate-pause is currently only supported during postcopy-active or postcopy-recover state');
    }
    abortChannel(ctx.channel, new MigrationError('EMIG_PEER', 'migration paused (migrate-pause)'));
  }

  /** migrate-continue from pre-switchover. */
  continueFrom(status: MigrationStatus): void {
    const ctx = this.ctx;
    if (ctx.state.status !== status || status !== 'pre-switchover' || !ctx.continueResolve) {
      throw new MigrationError('EMIG_STATE', `Migration not in expected state: ${ctx.state.status}`);
    }
    ctx.continueResolve();
  }

  /** The figures as of now (query-migrate). */
  refreshStats(): OutgoingStats {
    const ctx = this.ctx;
    const s = ctx.stats;
    const c = ctx.saver?.counters;
    const status = ctx.state.status;
    s.transferred = ctx.transferred();
    s.multifdBytes = ctx.multifd?.bytes ?? 0;
    s.remaining = status === 'completed' ? 0 : (ctx.saver?.dirtyPages ?? 0) * 4096;
    s.total = ctx.saver?.totalBytes ?? ctx.deps.machine.ramBlocks.reduce((n, b) => n + b.size, 0);
    s.duplicate = c?.duplicate ?? 0;
    s.normal = (c?.normal ?? 0) + (ctx.pageServer?.preemptPages ?? 0);
    s.throttlePercentage = ctx.throttle?.percentage ?? 0;
    if (ctx.stopTime === 0) s.precopyBytes = s.transferred;
    if (ctx.postcopyStartBytes >= 0) s.postcopyBytes = s.transferred - ctx.postcopyStartBytes;
    s.postcopyRequests = ctx.pageServer?.requestCount ?? 0;
    if (status === 'completed') s.dirtyPagesRate = 0;
    if (!['completed', 'failed', 'cancelled'].includes(status)) s.totalTime = ctx.now() - s.startTime;
    return s;
  }
}

/** cpr-reboot: the guest stops before anything is saved, so nothing is dirty-tracked and the
 * state is one point in time (QEMU stops in migration_connect for every CPR mode). */
async function stopFirst(ctx: OutgoingContext): Promise<void> {
  ctx.stopTime = ctx.now();
  await ctx.deps.vm.stopForSwitchover();
}
