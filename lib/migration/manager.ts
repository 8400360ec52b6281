/**
 * The migration manager of one machine (QEMU's MigrationState and the qmp_migrate* entry
 * points of migration.c): it owns the migration status, the role this machine plays, the
 * settings, the transports of the current migration, and the run-state changes migration
 * causes. The monitor and library users call in here; the CLI only wires argv to it.
 *
 *   const m = new MigrationManager(machine);
 *   m.options.setCapabilities([{ capability: 'return-path', state: true }]);
 *   await m.migrate('unix:/run/mig.sock');       // resolves once started
 *   const final = await m.done();                // 'completed' | 'failed' | 'cancelled'
 *   m.query();                                   // query-migrate
 *
 * Events: 'status' (status, previous), 'pass' (n), 'incoming-failed' (error, exitOnError).
 * Refusals are MigrationErrors with QEMU's texts (code EMIG_STATE or EMIG_SETTING).
 *
 * Modes: normal; cpr-transfer (cpr/: the new process maps this one's RAM; the CPR state goes
 * out on the cpr channel before `migrate` returns); cpr-reboot (the guest stops before
 * anything is saved). cpr-exec is refused.
 */
import { EventEmitter } from 'node:events';
import type { VirtMachine } from '../machine/virt';
import type { ByteChannel } from '../stream';
import { connectAddress, listenAddress, parseUri, peekSocket, supportsMultiChannel, type IncomingListener, type MigrationAddress } from '../transport';
import { CprSource, checkCprMode, checkCprTransfer, warmUpLoading, warmUpSaving, type CprHandover, type CprIncomingHooks } from './cpr';
import { MigrationError } from './errors';
import { IncomingMigration } from './incoming';
import { sourceInfo, type MigrationInfo } from './info';
import { MigrationOptions, refusedParameters, type MigrationHostSupport } from './options';
import { OutgoingMigration } from './outgoing';
import { postcopyUnsupportedReason } from './postcopy/destination';
import { MISSING_CHANNEL_MS, MULTIFD_MAGIC } from './multifd';
import { MigrationRunState } from './run-state';
import { isRunning, isTerminal, MigrationState, type MigrationStatus } from './state';
import { QEMU_VM_FILE_MAGIC } from './wire';

export type MigrationRole = 'none' | 'source' | 'destination';

export interface ManagerOptions {
  /** Settings to use (default: QEMU's defaults with the machine type's compat). */
  options?: MigrationOptions;
  /** -S: an incoming guest stays paused after loading. */
  startPaused?: boolean;
  host?: MigrationHostSupport;
  /** cpr-transfer, old process: the descriptors besides RAM to hand over (the serial). */
  handover?: CprHandover;
}

export interface MigrateOptions {
  /** migrate resume=true (postcopy recovery). */
  resume?: boolean;
  /** cpr-transfer's second channel. */
  cpr?: MigrationAddress;
  /** fd:NAME: the descriptor named by the monitor's getfd. */
  lookupFd?: (name: string) => number | undefined;
}

export interface IncomingOptions {
  /** default true: 'incoming-failed' says the process should exit (QEMU's exit-on-error) */
  exitOnError?: boolean;
  lookupFd?: (name: string) => number | undefined;
}

const refuse = (desc: string) => new MigrationError('EMIG_STATE', desc);

export class MigrationManager extends EventEmitter {
  readonly options: MigrationOptions;
  readonly runState: MigrationRunState;
  private readonly state = new MigrationState();
  private readonly startPaused: boolean;
  private roleNow: MigrationRole = 'none';
  private outgoing: OutgoingMigration | null = null;
  private incomingMig: IncomingMigration | null = null;
  private listener: IncomingListener | null = null;
  private incomingStarted = false;
  private recovering: IncomingListener | null = null;
  private lastError: string | undefined;
  private running: Promise<void> | null = null;
  private cprIncoming: CprIncomingHooks | null = null;
  private readonly handover: CprHandover | undefined;

  constructor(
    readonly machine: VirtMachine,
    opts: ManagerOptions = {},
  ) {
    super();
    this.options =
      opts.options ??
      new MigrationOptions({
        globals: machine.type.compat.migration,
        host: opts.host ?? { postcopyUnsupportedReason: () => postcopyUnsupportedReason(this.options.params['x-postcopy-placement']) },
      });
    this.options.bind({
      migrationRunning: () => this.roleNow === 'source' && isRunning(this.state.status),
      incomingStarted: () => this.incomingStarted,
      runState: () => machine.runState,
    });
    this.runState = new MigrationRunState(machine);
    this.startPaused = opts.startPaused ?? false;
    this.handover = opts.handover;
    this.state.onChange((status, previous) => this.emit('status', status, previous));
  }

  get status(): MigrationStatus {
    return this.state.status;
  }

  get role(): MigrationRole {
    return this.roleNow;
  }

  /** The addresses an incoming migration listens on (query-migrate socket-address). */
  get listenAddresses(): IncomingListener['addresses'] {
    return this.listener?.addresses ?? [];
  }

  /** Resolves with the final status of the migration under way (at once if none runs). */
  async done(): Promise<MigrationStatus> {
    await this.running;
    return this.state.status;
  }

  /** Resolves when the status is one of `want` (or rejects once it ends otherwise). */
  waitFor(want: MigrationStatus | MigrationStatus[]): Promise<MigrationStatus> {
    const set = new Set(Array.isArray(want) ? want : [want]);
    if (set.has(this.state.status)) return Promise.resolve(this.state.status);
    return new Promise((resolve, reject) => {
      const l = (s: MigrationStatus) => {
        if (set.has(s)) {
          this.off('status', l);
          resolve(s);
        } else if (isTerminal(s)) {
          this.off('status', l);
          reject(new MigrationError('EMIG_STATE', `migration ended ${s}${this.lastError ? `: ${this.lastError}` : ''}`));
        }
      };
      this.on('status', l);
    });
  }

  /* ---- source ---- */

  /** qmp_migrate(): start migrating to `target` (a URI or an address). Resolves once started. */
  async migrate(target: string | MigrationAddress, opts: MigrateOptions = {}): Promise<void> {
    if (opts.resume) {
      if (!this.outgoing || this.state.status !== 'postcopy-paused') throw refuse('Cannot resume if there is no paused migration');
      if (this.options.caps['release-ram']) throw refuse('Postcopy recovery is not possible with release-ram: the source has freed the pages it sent');
      this.outgoing.resume(typeof target === 'string' ? parseAddress(target) : target);
      return;
    }
    if (isRunning(this.state.status)) throw refuse("There's a migration process in progress");
    if (this.roleNow === 'destination' || this.machine.runState === 'inmigrate') throw refuse('Guest is waiting for an incoming migration');
    if (this.machine.runState === 'postmigrate') throw refuse('Cannot migrate a guest that has already been migrated away');
    const p = this.options.params;
    const mode = p.mode;
    if (mode === 'cpr-exec') throw new MigrationError('EMIG_SETTING', "Migration mode 'cpr-exec' is not supported by livemig (it would exec the new binary in this process)");
    if (opts.cpr && mode !== 'cpr-transfer') throw new MigrationError('EMIG_SETTING', "A 'cpr' channel needs mode cpr-transfer");
    refusedParameters(p, this.options.caps);
    const addr = typeof target === 'string' ? parseAddress(target) : target;
    if (mode === 'cpr-transfer') checkCprTransfer(addr, opts.cpr, this.machine.ramBlocks, this.options.caps);
    else checkCprMode(mode, this.options.caps);
    multiChannelCheck(this.options, addr);
    this.roleNow = 'source';
    this.lastError = undefined;
    // ---- cpr-transfer: the state goes out now, and failing to send it fails `migrate` ----
    let cpr: CprSource | undefined;
    if (mode === 'cpr-transfer') {
      this.outgoing = null;
      this.state.reset('setup');
      try {
        cpr = await CprSource.start(opts.cpr!, this.machine.ramBlocks, this.handover, () => warmUpSaving(this.machine, this.options));
      } catch (e) {
        this.lastError = e instanceof Error ? e.message : String(e);
        this.state.reset('failed');
        throw e;
      }
    }
    // ----
    const out = new OutgoingMigration({
      machine: this.machine,
      options: this.options,
      state: this.state,
      vm: this.runState,
      connect: (a) => connectAddress(a, { lookupFd: opts.lookupFd }),
      onPass: (pass) => this.emit('pass', pass),
      mode,
      cpr,
    });
    this.outgoing = out;
    // The status is 'setup' from here on, before the first await: a second migrate is refused.
    this.running = out.run(addr).then(() => {
      this.lastError = out.stats.errorDesc;
    });
    await Promise.resolve();
  }

  /** migrate_cancel: cancels a running outgoing migration; nothing to do otherwise; refused
   * once postcopy has handed the guest over. */
  cancel(): void {
    this.outgoing?.cancel();
  }

  /** migrate-continue: leave the pre-switchover pause. */
  continue(state: MigrationStatus): void {
    if (!this.outgoing || this.state.status !== state) throw refuse(`Migration not in expected state: ${this.state.status}`);
    this.outgoing.continueFrom(state);
  }

  /** migrate-start-postcopy (qmp_migrate_start_postcopy). */
  startPostcopy(): void {
    if (!this.options.caps['postcopy-ram']) throw new MigrationError('EMIG_SETTING', 'Enable postcopy with migrate_set_capability before the start of migration');
    if (this.state.status === 'none' || this.roleNow !== 'source') throw refuse('Postcopy must be started after migration has been started');
    // Not an error once the migration has finished: that would race with the command.
    this.outgoing?.startPostcopy();
  }

  /** migrate-recover (destination, postcopy-paused): listen on `target` for the new channel. */
  async recover(target: string | MigrationAddress, opts: { lookupFd?: (name: string) => number | undefined } = {}): Promise<void> {
    const inc = this.incomingMig;
    if (this.roleNow !== 'destination' || !inc || this.state.status !== 'postcopy-paused') {
      throw refuse('Migrate recover can only be run when postcopy is paused.');
    }
    const addr = typeof target === 'string' ? parseAddress(target) : target;
    // A recovery asked again replaces the one still waiting for its source.
    await this.recovering?.close().catch(() => undefined);
    const listener = await listenAddress(addr, { lookupFd: opts.lookupFd });
    this.listener = listener;
    this.recovering = listener;
    void (async () => {
      try {
        inc.recover(await listener.accept());
        if (this.options.caps['postcopy-preempt']) inc.adoptPreempt(await listener.accept());
      } catch {
        /* the listener was closed, or the source gave up: still paused, recover may be retried */
      } finally {
        await listener.close().catch(() => undefined);
      }
    })();
  }

  /** migrate-pause: break the channels of a postcopy migration so both sides pause. */
  pause(): void {
    if (this.roleNow === 'source' && this.outgoing) return this.outgoing.pause();
    if (this.roleNow === 'destination' && this.incomingMig) return this.incomingMig.pauseNow();
    throw refuse('migrate-pause is currently only supported during postcopy-active or postcopy-recover state');
  }

  /* ---- destination ---- */

  /**
   * `-incoming defer` or any -incoming: the guest waits for a stream (run state inmigrate).
   * With `cpr`, RAM came from the old process on the cpr channel (cpr-transfer).
   */
  expectIncoming(opts: { cpr?: CprIncomingHooks } = {}): void {
    this.runState.incomingStarted();
    this.cprIncoming = opts.cpr ?? null;
    // The destination takes the page faults of fresh RAM while it waits (populate-worker.ts);
    // adopted RAM holds the guest already, and populating would allocate its untouched pages.
    // A postcopy destination's RAM is all discarded at ADVISE: nothing to populate either.
    if (!this.cprIncoming && !this.options.caps['postcopy-ram']) this.machine.populateAhead();
  }

  /** Whether `expectIncoming` was called and no incoming migration has started yet. */
  get awaitingIncoming(): boolean {
    return this.machine.runState === 'inmigrate' && !this.listener && this.roleNow === 'none';
  }

  /** qmp_migrate_incoming(): listen on `target` and load the first stream that arrives. */
  async incoming(target: string | MigrationAddress, opts: IncomingOptions = {}): Promise<void> {
    if (this.roleNow !== 'none' || this.listener) throw refuse('The incoming migration has already been started');
    refusedParameters(this.options.params, this.options.caps);
    const addr = typeof target === 'string' ? parseAddress(target) : target;
    multiChannelCheck(this.options, addr);
    this.roleNow = 'destination';
    this.incomingStarted = true;
    this.runState.incomingStarted();
    this.state.reset('setup');
    try {
      // With postcopy-ram on, ADVISE discards all of RAM (as QEMU's ram_postcopy_incoming_init
      // does): pages faulted in ahead would only be punched out again, at 0.25 s per GiB.
      if (this.options.caps['postcopy-ram']) await this.machine.stopPopulating();
      // cpr-transfer: the old guest still runs; compile the code of its pause now.
      if (this.cprIncoming) await warmUpLoading(this.machine, this.options);
      this.listener = await listenAddress(addr, { lookupFd: opts.lookupFd });
    } catch (e) {
      this.state.reset('failed');
      this.lastError = e instanceof Error ? e.message : String(e);
      throw e;
    } finally {
      // cpr-transfer: closing the cpr channel tells the old process to connect (QEMU closes it
      // whether or not listening worked; if not, the old one's connect fails and it resumes).
      this.cprIncoming?.listening();
    }
    this.running = this.acceptOne(opts.exitOnError ?? true);
  }

  private async acceptOne(exitOnError: boolean): Promise<void> {
    const listener = this.listener!;
    const inc = new IncomingMigration({
      machine: this.machine,
      options: this.options,
      state: this.state,
      vm: this.runState,
      startPaused: this.startPaused,
      cpr: this.cprIncoming ?? undefined,
    });
    this.incomingMig = inc;
    let channel;
    try {
      channel = this.options.caps.multifd ? await acceptMultifd(listener, inc, this.options.params['multifd-channels']) : await listener.accept();
    } catch (e) {
      await inc.multifd?.close();
      return this.incomingFailed(e as Error, exitOnError);
    }
    // QEMU closes the listener once it has the main channel, unless more channels are expected:
    // the postcopy preempt channel connects when postcopy starts; multifd channels are taken
    // by acceptMultifd until all are there.
    if (this.options.caps['postcopy-preempt']) {
      void listener
        .accept()
        .then((ch) => inc.adoptPreempt(ch))
        .catch(() => undefined);
    } else if (!this.options.caps.multifd) {
      await listener.close().catch(() => {});
    }
    const r = await inc.run(channel);
    await listener.close().catch(() => {});
    if (!r.ok) return this.incomingFailed(r.error!, exitOnError);
  }

  private incomingFailed(err: Error, exitOnError: boolean): void {
    this.lastError = err.message;
    if (this.state.status !== 'failed') this.state.reset('failed');
    this.emit('incoming-failed', err, exitOnError);
  }

  /** Guest-physical [addr, addr+len) may be read by this thread once this resolves: a
   * postcopy destination fetches the pages it is still missing first. */
  async ensurePresent(addr: number, len: number): Promise<void> {
    if (this.roleNow === 'destination') await this.incomingMig?.ensurePresent(addr, len);
  }

  /* ---- query-migrate ---- */

  query(): MigrationInfo {
    const status = this.state.status;
    if (status === 'none' && this.roleNow === 'none') return {};
    if (this.roleNow === 'destination') {
      const info: MigrationInfo = { status };
      const addrs = this.listener?.addresses;
      if (addrs && addrs.length && status !== 'completed') info['socket-address'] = addrs.map((a) => ({ ...a }));
      if (this.lastError && status === 'failed') info['error-desc'] = this.lastError;
      if (status === 'postcopy-paused' && this.incomingMig?.errorDesc) info['error-desc'] = this.incomingMig.errorDesc;
      const pc = this.incomingMig?.postcopyFigures();
      if (pc && this.options.caps['postcopy-blocktime']) Object.assign(info, postcopyInfo(pc));
      return info;
    }
    const out = this.outgoing;
    if (!out) return status === 'failed' && this.lastError ? { status, 'error-desc': this.lastError } : { status };
    return sourceInfo(status, out.refreshStats(), this.options.caps['auto-converge']);
  }
}

/** The destination's blocktime members (QEMU fill_destination_postcopy_migration_info). */
function postcopyInfo(pc: import('./postcopy/shared').PostcopyDestinationStats): MigrationInfo {
  const ns = (ms: number) => Math.round(ms * 1e6);
  return {
    'postcopy-blocktime': Math.round(pc.totalBlocktimeMs),
    'postcopy-vcpu-blocktime': pc.vcpuBlocktimeMs.map((v) => Math.round(v)),
    'postcopy-latency': ns(pc.latencyMs),
    'postcopy-vcpu-latency': pc.vcpuLatencyMs.map(ns),
    'postcopy-non-vcpu-latency': ns(pc.nonVcpuLatencyMs),
    'postcopy-latency-dist': pc.histogram,
  };
}

/**
 * With multifd every connection is told apart by its first four bytes (QEMU
 * migration_ioc_process_incoming): "QEVM" starts the main stream, MULTIFD_MAGIC a page channel.
 * Resolves with the main channel; goes on accepting in the background until `channels` page
 * channels came too, then closes the listener.
 */
function acceptMultifd(listener: IncomingListener, inc: IncomingMigration, channels: number): Promise<ByteChannel> {
  return new Promise((resolve, reject) => {
    let main = false;
    const classify = async (ch: ByteChannel): Promise<void> => {
      const head = ch.fd !== undefined ? await peekSocket(ch.fd, 4, MISSING_CHANNEL_MS, 'multifd') : new Uint8Array(0);
      const magic = head.length === 4 ? Buffer.from(head).readUInt32BE(0) : -1;
      if (magic === QEMU_VM_FILE_MAGIC && !main) {
        main = true;
        return resolve(ch);
      }
      if (magic === MULTIFD_MAGIC) return inc.adoptMultifd(ch);
      ch.destroy();
      const err = new MigrationError('EMIG_HEADER', `unknown channel magic: ${magic < 0 ? 'none' : magic.toString(16)}`, { field: 'magic' });
      if (!main) reject(err);
    };
    void (async () => {
      try {
        for (let n = 0; n < channels + 1; n++) {
          const ch = await listener.accept();
          classify(ch).catch((e: Error) => (main ? undefined : reject(e)));
        }
        await listener.close();
      } catch (e) {
        if (!main) reject(e as Error);
      }
    })();
  });
}

/** QEMU migrate_channels_parse / qemu_start_incoming_migration: multifd needs a transport that
 * can open more than one connection. */
function multiChannelCheck(options: MigrationOptions, addr: MigrationAddress): void {
  if (options.caps.multifd && !supportsMultiChannel(addr)) throw new MigrationError('EMIG_SETTING', 'Migration requires multi-channel URIs (e.g. tcp)');
}

function parseAddress(uri: string): MigrationAddress {
  try {
    return parseUri(uri);
  } catch (e) {
    throw new MigrationError('EMIG_SETTING', e instanceof Error ? e.message : String(e));
  }
}
