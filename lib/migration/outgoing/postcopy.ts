/**
 * Postcopy on the source (QEMU migration.c postcopy_start, ram.c postcopy paths):
 *
 *   start     [preempt: open the second channel] → [pre-switchover] → device: stop the guest,
 *             [SWITCHOVER_START], final sync, RAM_DISCARD of every dirty range, PING 2,
 *             PACKAGED { LISTEN, device state, PING 3, PING 0x42, RUN }, PING 4
 *             → postcopy-device → (PONG 0x42: the destination loaded the devices) postcopy-active
 *   background  RAM PART sections until nothing is dirty, requested pages first (preempt:
 *             the page server sends them itself), under max-postcopy-bandwidth
 *   complete  [preempt: EOS on the preempt channel] RAM END, EOF (no vmdesc in postcopy),
 *             SHUT 0 → completed
 *
 * Until the destination has the devices (PONG 0x42) a failure fails the migration and the
 * source guest runs again, as in precopy. After it the guest runs only on the destination:
 * a broken channel pauses both sides (postcopy-paused), cancel is refused, and
 * `migrate resume=true` on a new channel recovers (recovery.ts).
 */
import { MigrationError } from '../errors';
import { PING_PACKAGED_LOADED, encodeDiscard, MAX_DISCARDS_PER_COMMAND } from '../postcopy/wire';
import { MIG_CMD } from '../wire';
import type { OutgoingContext } from './context';
import { DEBUG } from './setup';
import { buildPackage } from './package';
import { stopForSwitchover } from './complete';

/** QEMU's "postcopy has started": cancel is refused from here on. */
export function inPostcopy(status: string): boolean {
  return status.startsWith('postcopy-');
}

export async function postcopyStart(ctx: OutgoingContext): Promise<void> {
  const sv = ctx.sv!;
  const saver = ctx.saver!;
  if (ctx.options.caps['postcopy-preempt']) await openPreempt(ctx);
  await stopForSwitchover(ctx);
  const f = ctx.f!;
  if (ctx.options.globals['send-switchover-start']) sv.command(MIG_CMD.SWITCHOVER_START);
  saver.sync();
  for (const { block, ranges } of saver.discardRanges()) {
    for (let i = 0; i < ranges.length; i += MAX_DISCARDS_PER_COMMAND) {
      sv.command(MIG_CMD.POSTCOPY_RAM_DISCARD, encodeDiscard(block, ranges.slice(i, i + MAX_DISCARDS_PER_COMMAND)));
    }
  }
  // A discard makes the destination forget what it had: the next record names its block.
  saver.resetScan();
  sv.ping(2);
  const blob = buildPackage(ctx);
  const size = Buffer.alloc(4);
  size.writeUInt32BE(blob.length);
  sv.command(MIG_CMD.PACKAGED, size);
  f.putBuffer(blob);
  await f.drain();
  ctx.checkCancel();
  ctx.stats.downtime = ctx.now() - ctx.stopTime;
  sv.ping(4);
  if (ctx.options.caps['release-ram']) {
    saver.releaseClean();
    saver.releaseSent = true;
  }
  f.rateLimiter?.setMaxBandwidth(ctx.options.params['max-postcopy-bandwidth']);
  ctx.stats.precopyBytes = ctx.bytesAtStop;
  ctx.postcopyStartBytes = ctx.transferred();
  if (ctx.rp) {
    ctx.advance('device', 'postcopy-device');
    // The destination answers 0x42 once the devices are loaded, just before it runs the guest.
    await Promise.race([ctx.rp.pong(PING_PACKAGED_LOADED), ctx.rp.shut.then((s) => {
      throw new MigrationError('EMIG_PEER', `destination ended the migration before running the guest (SHUT status ${s})`);
    })]);
    ctx.advance('postcopy-device', 'postcopy-active');
  } else {
    ctx.advance('device', 'postcopy-active');
  }
  if (DEBUG) process.stderr.write(`migration: postcopy started, downtime ${Math.round(ctx.stats.downtime)} ms\n`);
}

/** Background pages, then the end of the stream; a broken channel pauses (see recovery.ts). */
export async function postcopyRun(ctx: OutgoingContext, recover: (ctx: OutgoingContext, err: Error) => Promise<void>): Promise<void> {
  for (;;) {
    try {
      await background(ctx);
      await finish(ctx);
      return;
    } catch (e) {
      if (ctx.cancelled) throw e;
      await recover(ctx, e as Error);
    }
  }
}

async function background(ctx: OutgoingContext): Promise<void> {
  const sv = ctx.sv!;
  for (;;) {
    const f = ctx.f!;
    ctx.checkCancel();
    if (ctx.saver!.dirtyPages === 0 && !ctx.saver!.requests?.pending) return;
    await sv.iterate();
    if (f.needsDrain) await f.drain();
    if (f.rateLimitExceeded()) await f.waitRateLimit();
    ctx.estimator!.update(ctx.transferred(), ctx.pagesSent());
    ctx.stats.mbps = ctx.estimator!.mbps;
    ctx.stats.pagesPerSecond = ctx.estimator!.pagesPerSecond;
    await new Promise<void>((r) => setImmediate(r));
  }
}

/** qemu_savevm_state_complete_postcopy: END sections, EOF, and the destination's SHUT. */
async function finish(ctx: OutgoingContext): Promise<void> {
  const sv = ctx.sv!;
  const f = ctx.f!;
  if (ctx.options.caps['postcopy-preempt']) await ctx.pageServer?.endPreempt();
  await sv.complete(false);
  sv.finish(false);
  const err = await f.close();
  if (err) throw err instanceof MigrationError ? err : new MigrationError('EMIG_PEER', err.message, { cause: err });
  ctx.checkCancel();
  if (ctx.rp) {
    const status = await ctx.rp.shut;
    if (status !== 0) throw new MigrationError('EMIG_PEER', `destination reported failure (SHUT status ${status})`);
  }
  ctx.state.cas('postcopy-active', 'completed');
}

/** The preempt channel: a second connection to the same address, once the main channel is
 * known to be up (a PONG arrived), so the destination takes the first one as main. */
async function openPreempt(ctx: OutgoingContext): Promise<void> {
  await ctx.rp!.pong(1);
  const ch = await ctx.deps.connect(ctx.addr!);
  ctx.checkCancel();
  const detach = (ch as { detach?: () => number }).detach;
  if (!detach || !ctx.pageServer) {
    ch.destroy();
    throw new MigrationError('EMIG_STATE', 'postcopy-preempt needs a socket transport (unix:, tcp:)');
  }
  ctx.pageServer.usePreempt(detach.call(ch));
}

