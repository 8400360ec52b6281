/**
 * An outgoing migration (QEMU migration/migration.c migration_thread), run through its phases:
 *
 *   setup.ts     connect, header, return path, START sections        status setup → active
 *   iterate.ts   PART sections until the dirty set fits the threshold
 *   complete.ts  stop, END + FULL sections, EOF, SHUT             → [pre-switchover →] device
 *                                                                   → completed
 *
 * Any failure or cancel before completion leaves the source guest as it was: running again
 * if it was running (QEMU migration_iteration_finish / migrate_fd_cleanup), and the status
 * failed (with error-desc) or cancelled.
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
import { setupPhase } from './setup';

export class OutgoingMigration {
  private readonly ctx: OutgoingContext;

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
      await iteratePhase(ctx);
      if (ctx.deps.cpr) await settleBeforeStop(ctx);
      await completePrecopy(ctx);
      vm.outgoingCompleted();
      ctx.deps.cpr?.completed();
    } catch (e) {
      ctx.stats.errorDesc = e instanceof Error ? e.message : String(e);
      ctx.channel?.destroy(e instanceof Error ? e : undefined);
      if (ctx.cancelled) state.cas('cancelling', 'cancelled') || state.reset('cancelled');
      else state.reset('failed');
      // cpr-transfer: the serial comes back before the guest runs again.
      await ctx.deps.cpr?.failed().catch((err: Error) => process.stderr.write(`livemig: taking the serial back failed: ${err.message}\n`));
      vm.outgoingFailed(wasRunning);
    } finally {
      ctx.throttle?.stop();
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
    const states: readonly MigrationStatus[] = ctx.deps.cpr ? ['setup', 'active', 'pre-switchover'] : ['setup', 'active', 'pre-switchover', 'device'];
    for (const from of states) {
      if (ctx.state.cas(from, 'cancelling')) {
        ctx.cancelled = true;
        ctx.continueResolve?.();
        ctx.deps.cpr?.cancel();
        ctx.channel?.destroy(new MigrationError('EMIG_CANCELLED', 'migration cancelled'));
        return true;
      }
    }
    return false;
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
    s.transferred = ctx.f?.position ?? 0;
    s.remaining = status === 'completed' ? 0 : (ctx.saver?.dirtyPages ?? 0) * 4096;
    s.total = ctx.saver?.totalBytes ?? ctx.deps.machine.ramBlocks.reduce((n, b) => n + b.size, 0);
    s.duplicate = c?.duplicate ?? 0;
    s.normal = c?.normal ?? 0;
    s.throttlePercentage = ctx.throttle?.percentage ?? 0;
    if (ctx.stopTime === 0) s.precopyBytes = s.transferred;
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
