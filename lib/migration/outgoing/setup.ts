/**
 * Setup phase (QEMU migration_thread → qemu_savevm_state_header/setup):
 *
 *   connect → header + configuration → [OPEN_RETURN_PATH, PING 1] → [multifd: open the
 *   channels] → START sections (RAM: every page dirty, the block list) → status setup → active
 */
import type { MigrationAddress } from '../../transport/uri';
import { QemuFileReader, QemuFileWriter, RateLimiter } from '../../stream';
import type { RunState } from '../globalstate';
import { RamSaver } from '../ram-save';
import { SaveVm } from '../savevm';
import { configurationFor, globalStateFor, machineRegistry, streamFormat } from '../sections';
import { Throttle } from '../throttle';
import { MigrationError } from '../errors';
import { MultifdSender } from '../multifd';
import { abortChannel } from '../postcopy/shared';
import { encodeAdvise } from '../postcopy/wire';
import { MIG_CMD, MIG_RP_MSG } from '../wire';
import type { OutgoingContext } from './context';
import { SwitchoverEstimator } from './estimator';
import { PageServerClient } from './page-server-client';
import { registerRecoveryHandlers } from './recovery';
import { ReturnPathReader } from './return-path';

/** LIVEMIG_DEBUG_MIGRATION=1: one stderr line per dirty sync (pass, dirty pages, rates). */
export const DEBUG = !!process.env.LIVEMIG_DEBUG_MIGRATION;

export async function setupPhase(ctx: OutgoingContext, addr: MigrationAddress): Promise<void> {
  const { machine, state } = ctx.deps;
  const options = ctx.options;
  state.reset('setup');
  ctx.addr = addr;
  const channel = await ctx.deps.connect(addr);
  ctx.channel = channel;
  ctx.checkCancel();

  const limiter = new RateLimiter(undefined, options.params['max-bandwidth']);
  const f = new QemuFileWriter(channel, { rateLimiter: limiter });
  ctx.f = f;
  // max-bandwidth acts on a running migration, until the switchover lifts the limit;
  // max-postcopy-bandwidth on the background stream once postcopy runs (QEMU
  // migrate_params_apply), on whichever writer a recovery left in place.
  ctx.cleanups.push(
    options.subscribe((c) => {
      if (c.kind !== 'parameters') return;
      if (c.changed.includes('max-bandwidth') && ctx.stopTime === 0) {
        limiter.setMaxBandwidth(options.params['max-bandwidth']);
      }
      if (c.changed.includes('max-postcopy-bandwidth') && ctx.postcopyStartBytes >= 0) {
        ctx.f?.rateLimiter?.setMaxBandwidth(options.params['max-postcopy-bandwidth']);
      }
    }),
  );

  const saver = new RamSaver(machine.ramBlocks, {
    makeLog: (b) => machine.makeDirtyLog(b),
    zeroPageDetection: () => options.params['zero-page-detection'],
    onSync: (pass, newly) => onSync(ctx, pass, newly),
    now: ctx.now,
    ignoreShared: options.caps['x-ignore-shared'],
    mode: ctx.deps.mode,
  });
  ctx.saver = saver;
  ctx.throttle = new Throttle(options, machine, ctx.now);
  ctx.estimator = new SwitchoverEstimator(
    { downtimeLimit: () => options.params['downtime-limit'], availSwitchoverBandwidth: () => options.params['avail-switchover-bandwidth'] },
    saver,
    ctx.now,
  );
  // What the guest did when `migrate` came: cpr-reboot has stopped it since.
  const runStateAtStart: RunState = ctx.vmWasRunning ? 'running' : 'paused';
  const sv = new SaveVm(f, machineRegistry(machine, saver, globalStateFor(() => runStateAtStart), options), configurationFor(machine, options), streamFormat(options));
  ctx.sv = sv;

  const postcopy = options.caps['postcopy-ram'];
  if (postcopy && channel.fd === undefined) {
    throw new MigrationError('EMIG_SETTING', 'postcopy-ram needs a socket transport (unix:, tcp:, or fd: of a socket)');
  }
  sv.writeHeader();
  // cpr-transfer always: the old process must hear the new one's SHUT 0 before it lets go.
  const returnPath = options.caps['return-path'] || postcopy || !!ctx.deps.cpr;
  if (returnPath) {
    sv.command(MIG_CMD.OPEN_RETURN_PATH);
    sv.ping(1);
  }
  // QEMU: ADVISE before the RAM block list (it decides how the list is read).
  if (postcopy) sv.command(MIG_CMD.POSTCOPY_ADVISE, encodeAdvise(4096, 4096));
  if (returnPath && !postcopy) {
    const rp = new ReturnPathReader(new QemuFileReader(channel));
    ctx.rp = rp;
    rp.shut.catch((e: Error) => ctx.returnPathBroke(e));
    void rp.run();
  }
  if (options.caps.multifd) await openMultifd(ctx, addr);
  await sv.setup();
  if (postcopy) {
    // Postcopy reads the return path on its own thread (page-server.ts), which needs the
    // migration bitmap: made by the RAM START above. Nothing the destination sent meanwhile is
    // lost; it waits in the socket.
    const server = new PageServerClient(channel.fd!, saver.share(), options.caps['release-ram']);
    ctx.pageServer = server;
    ctx.rp = server;
    server.onBroken = (e) => ctx.returnPathBroke(e);
    saver.requests = server.requests;
    registerRecoveryHandlers(ctx);
  }
  ctx.rp?.on(MIG_RP_MSG.SWITCHOVER_ACK, () => {
    ctx.switchoverAcked = true;
  });
  await f.drain();
  ctx.checkCancel();
  ctx.stats.setupTime = ctx.now() - ctx.stats.startTime;
  ctx.advance('setup', 'active');
  ctx.estimator.start(ctx.transferred(), ctx.pagesSent());
}

/** The multifd channels (QEMU multifd_send_setup), before the RAM block list: the destination
 * has them all by the time it reads the first MULTIFD_FLUSH. A channel that fails later fails
 * the migration as the main channel would. */
async function openMultifd(ctx: OutgoingContext, addr: MigrationAddress): Promise<void> {
  const f = ctx.f!;
  const mf = await MultifdSender.open({
    channels: ctx.options.params['multifd-channels'],
    uuid: ctx.deps.machine.uuid ?? new Uint8Array(16),
    blocks: ctx.saver!.migratedBlocks(),
    connect: () => ctx.deps.connect(addr),
    onFailure: (err) => {
      f.setError(err);
      abortChannel(ctx.channel, err);
    },
  });
  ctx.multifd = mf;
  ctx.saver!.multifd = mf;
  // max-bandwidth counts every channel's bytes (QEMU's rate limit does).
  f.otherChannels = () => mf.bytes;
  ctx.checkCancel();
}

/** After every bitmap sync (migration_bitmap_sync): estimator, stats, events, throttle. */
function onSync(ctx: OutgoingContext, pass: number, newlyDirty: number): void {
  const pos = ctx.transferred();
  ctx.estimator?.onSync(pass, pos, ctx.stopTime !== 0);
  if (ctx.estimator) ctx.stats.expectedDowntime = ctx.estimator.expectedDowntime;
  if (DEBUG) {
    process.stderr.write(`migration: pass ${pass} at ${Math.round(ctx.now() - ctx.stats.startTime)} ms: dirty ${ctx.saver?.dirtyPages} pages (+${newlyDirty}), ${ctx.estimator?.describe()}\n`);
  }
  ctx.stats.dirtySyncCount = pass;
  ctx.deps.onPass?.(pass);
  const r = ctx.throttle?.onSync(newlyDirty, pos);
  if (r !== null && r !== undefined) ctx.stats.dirtyPagesRate = r;
}
