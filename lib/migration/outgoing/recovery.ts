/**
 * Postcopy recovery on the source (QEMU migration.c postcopy_pause / postcopy_do_resume, ram.c
 * ram_resume_prepare):
 *
 *   postcopy-active ──channel broke──▶ postcopy-paused (the guest stays stopped here; it runs on
 *        ▲                              the destination, whose faulting vCPUs wait)
 *        │                 migrate {uri, resume: true}
 *        │                              ▼
 *        │                        postcopy-recover-setup: connect (no header: the stream goes on)
 *        │                              ▼
 *        │                        postcopy-recover: RECV_BITMAP per block → the destination's
 *        │                        received bitmap, inverted, is the dirty bitmap; [preempt channel
 *        │                        again]; POSTCOPY_RESUME → RESUME_ACK
 *        └──────────────────────────────┘   any failure in between: postcopy-paused again
 */
import type { MigrationAddress } from '../../transport/uri';
import { QemuFileWriter, RateLimiter } from '../../stream';
import { MigrationError } from '../errors';
import { decodeCounted, encodeCounted, RESUME_ACK_VALUE } from '../postcopy/wire';
import { be32At } from '../return-path';
import { MIG_CMD, MIG_RP_MSG } from '../wire';
import type { OutgoingContext } from './context';
import { abortChannel } from '../postcopy/shared';

/** Handlers for the recovery's return-path messages (registered once, at setup). */
export function registerRecoveryHandlers(ctx: OutgoingContext): void {
  ctx.rp!.on(MIG_RP_MSG.RECV_BITMAP, (msg) => {
    const name = decodeCounted(msg.payload, 'RECV_BITMAP');
    const expected = ctx.recoveryBitmaps;
    if (!expected || !expected.has(name)) throw new MigrationError('EMIG_RETURN_PATH', `RECV_BITMAP for '${name}' was not asked for`, { section: 'return-path', field: 'RECV_BITMAP' });
    ctx.saver!.applyReceived(name, msg.extra ?? new Uint8Array(0));
    expected.get(name)!();
  });
  ctx.rp!.on(MIG_RP_MSG.RESUME_ACK, (msg) => {
    const v = be32At(msg.payload);
    if (v !== RESUME_ACK_VALUE) throw new MigrationError('EMIG_RETURN_PATH', `RESUME_ACK with value ${v}`, { section: 'return-path', field: 'RESUME_ACK' });
    ctx.resumeAcked?.();
  });
}

/** Pause on `err`, then wait for `migrate resume=true` and recover; retried until it works. */
export async function pauseAndRecover(ctx: OutgoingContext, thrown: Error): Promise<void> {
  const { state } = ctx.deps;
  const err = ctx.returnPathError ?? thrown;
  if (!state.cas('postcopy-active', 'postcopy-paused') && !state.cas('postcopy-recover', 'postcopy-paused') && !state.cas('postcopy-recover-setup', 'postcopy-paused')) {
    throw err;
  }
  // The pause answers it; a recovery brings a new return path.
  ctx.returnPathError = null;
  ctx.pageServer?.dropPreempt();
  ctx.stats.errorDesc = err.message;
  process.stderr.write(`livemig: Detected IO failure for postcopy. Migration paused. (${err.message})\n`);
  abortChannel(ctx.channel);
  for (;;) {
    const addr = await new Promise<MigrationAddress>((resolve, reject) => {
      ctx.resumeWith = resolve;
      ctx.resumeAborted = reject;
      if (ctx.cancelled) reject(new MigrationError('EMIG_CANCELLED', 'migration cancelled'));
    });
    ctx.resumeWith = null;
    ctx.resumeAborted = null;
    try {
      await resume(ctx, addr);
      return;
    } catch (thrown) {
      if (ctx.cancelled) throw thrown;
      const e = ctx.returnPathError ?? thrown;
      ctx.returnPathError = null;
      ctx.pageServer?.dropPreempt();
      abortChannel(ctx.channel);
      ctx.stats.errorDesc = (e as Error).message;
      process.stderr.write(`livemig: postcopy recovery failed: ${(e as Error).message}\n`);
      state.reset('postcopy-paused');
    }
  }
}

async function resume(ctx: OutgoingContext, addr: MigrationAddress): Promise<void> {
  const { state } = ctx.deps;
  state.cas('postcopy-paused', 'postcopy-recover-setup');
  const channel = await ctx.deps.connect(addr);
  ctx.channel = channel;
  if (channel.fd === undefined) throw new MigrationError('EMIG_STATE', 'postcopy recovery needs a socket transport');
  const f = new QemuFileWriter(channel, { rateLimiter: new RateLimiter(undefined, ctx.options.params['max-postcopy-bandwidth']) });
  ctx.bytesBeforeRecovery += ctx.f?.position ?? 0;
  ctx.f = f;
  ctx.sv!.useWriter(f);
  ctx.addr = addr;
  if (!state.cas('postcopy-recover-setup', 'postcopy-recover')) throw new MigrationError('EMIG_STATE', `status ${state.status} during recovery`);
  ctx.pageServer!.useReturnPath(channel.fd);
  // ram_resume_prepare: the destination says what it has; the rest is dirty again.
  const waits: Promise<void>[] = [];
  ctx.recoveryBitmaps = new Map();
  for (const b of ctx.saver!.share().blocks) {
    waits.push(new Promise<void>((resolve) => ctx.recoveryBitmaps!.set(b.name, resolve)));
    ctx.sv!.command(MIG_CMD.RECV_BITMAP, encodeCounted(b.name));
  }
  await f.drain();
  await settle(ctx, Promise.all(waits));
  ctx.recoveryBitmaps = null;
  if (ctx.options.caps['postcopy-preempt']) {
    const ch = await ctx.deps.connect(addr);
    const detach = (ch as { detach?: () => number }).detach;
    if (!detach) throw new MigrationError('EMIG_STATE', 'postcopy-preempt needs a socket transport');
    ctx.pageServer!.usePreempt(detach.call(ch));
  }
  const acked = new Promise<void>((resolve) => (ctx.resumeAcked = resolve));
  ctx.sv!.command(MIG_CMD.POSTCOPY_RESUME);
  await f.drain();
  await settle(ctx, acked);
  ctx.resumeAcked = null;
  if (!state.cas('postcopy-recover', 'postcopy-active')) throw new MigrationError('EMIG_STATE', `status ${state.status} during recovery`);
  ctx.stats.errorDesc = undefined;
}

/** Wait for `p`, or fail if the stream or the return path breaks first. */
async function settle<T>(ctx: OutgoingContext, p: Promise<T>): Promise<T> {
  const broken = ctx.rp!.shut.then((s) => {
    throw new MigrationError('EMIG_PEER', `destination ended the migration during recovery (SHUT status ${s})`);
  });
  return Promise.race([p, broken]);
}
