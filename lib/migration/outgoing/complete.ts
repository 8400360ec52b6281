/**
 * Precopy completion (QEMU migration_completion → qemu_savevm_state_complete_precopy):
 *
 *   [pause in pre-switchover until migrate-continue] → status device → stop the guest
 *   (finish-migrate) → [cpr-transfer: serial input paused] → rate limit lifted →
 *   [SWITCHOVER_START] → END sections (RAM: final sync and the last pages) → device FULL
 *   sections → [cpr-transfer: the serial let go] → EOF + vmdesc → flush and half-close →
 *   [with a return path: the destination's SHUT 0] → downtime measured
 */
import { MigrationError } from '../errors';
import type { OutgoingContext } from './context';
import { DEBUG } from './setup';

/**
 * The switchover's start, precopy's and postcopy's alike (QEMU migration_switchover_prepare +
 * the stop): [pre-switchover until migrate-continue] → device, the guest stopped, no throttle,
 * no rate limit.
 */
export async function stopForSwitchover(ctx: OutgoingContext): Promise<void> {
  const f = ctx.f!;
  if (ctx.options.caps['pause-before-switchover']) {
    ctx.advance('active', 'pre-switchover');
    await new Promise<void>((r) => (ctx.continueResolve = r));
    ctx.continueResolve = null;
    ctx.checkCancel();
    ctx.advance('pre-switchover', 'device');
  } else {
    ctx.advance('active', 'device');
  }
  // cpr-reboot stopped the guest before the setup: the downtime counts from there.
  if (ctx.stopTime === 0) {
    ctx.stopTime = ctx.now();
    ctx.bytesAtStop = ctx.transferred();
  }
  await ctx.deps.vm.stopForSwitchover();
  ctx.stoppedAt = ctx.now();
  ctx.deps.cpr?.stopped();
  ctx.throttle?.stop();
  f.rateLimiter?.setMaxBandwidth(0);
}

export async function completePrecopy(ctx: OutgoingContext): Promise<void> {
  const { state } = ctx.deps;
  const sv = ctx.sv!;
  const f = ctx.f!;
  await stopForSwitchover(ctx);
  await sv.complete();
  const tRam = ctx.now();
  sv.saveDevices();
  await ctx.deps.cpr?.devicesSent();
  sv.finish();
  const err = await f.close();
  const tSent = ctx.now();
  if (err) throw err instanceof MigrationError ? err : new MigrationError('EMIG_PEER', err.message, { cause: err });
  ctx.checkCancel();
  if (ctx.rp) {
    const status = await ctx.rp.shut;
    if (status !== 0) throw new MigrationError('EMIG_PEER', `destination reported failure (SHUT status ${status})`);
  }
  ctx.stats.downtime = ctx.now() - ctx.stopTime;
  ctx.stats.downtimeBytes = ctx.transferred() - ctx.bytesAtStop;
  ctx.stats.precopyBytes = ctx.bytesAtStop;
  if (DEBUG) {
    const ms = (t: number) => Math.round(t - ctx.stopTime);
    process.stderr.write(`migration: downtime ${Math.round(ctx.stats.downtime)} ms (vCPUs parked ${ms(ctx.stoppedAt)}, RAM sent ${ms(tRam)}, stream ended ${ms(tSent)}), ${ctx.stats.downtimeBytes} bytes after stop\n`);
  }
  state.cas('device', 'completed');
}
