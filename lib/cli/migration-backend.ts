/**
 * The monitor's migration commands, wired to the engine and the transports for one process:
 * `migrate`, `migrate-incoming`, `migrate_cancel`, `migrate-continue`, `query-migrate`.
 * Capability and parameter storage stays in the monitor's MigrationConfig; the engine reads it.
 */
import type { VirtMachine } from '../machine/virt';
import { IncomingMigration } from '../migration/incoming';
import { OutgoingMigration } from '../migration/outgoing';
import { isRunning, MigrationState, type MigrationStatus } from '../migration/state';
import type { CommandContext, IncomingRequest, MigrateRequest, MigrationBackend, MigrationInfo } from '../monitor/backend';
import { QmpError } from '../monitor/errors';
import type { EventBus, MigrationConfig } from '../monitor';
import { connectAddress, listenAddress, parseUri, type IncomingListener, type MigrationAddress } from '../transport';

export interface MigrationBackendDeps {
  machine: VirtMachine;
  config: MigrationConfig;
  events: EventBus;
  startPaused: boolean;
  /** An incoming migration failed and exit-on-error is set: the process must exit. */
  onIncomingFatal(err: Error): void;
}

const generic = (desc: string) => new QmpError('GenericError', desc);

export class ProcessMigration implements MigrationBackend {
  readonly config: MigrationConfig;
  private readonly state = new MigrationState();
  private outgoing: OutgoingMigration | null = null;
  private incomingMig: IncomingMigration | null = null;
  private listener: IncomingListener | null = null;
  private role: 'none' | 'source' | 'destination' = 'none';
  private lastError: string | undefined;

  constructor(private readonly deps: MigrationBackendDeps) {
    this.config = deps.config;
    this.state.onChange((status) => {
      this.config.setOutgoingStatus(this.role === 'source' ? status : 'none');
      if (this.config.capability('events')) deps.events.emit('MIGRATION', { status });
    });
  }

  get status(): MigrationStatus {
    return this.state.status;
  }

  /** `-incoming URI` on the command line, or migrate-incoming after `-incoming defer`. */
  async startIncoming(addr: MigrationAddress, exitOnError: boolean, ctx?: CommandContext): Promise<void> {
    if (this.role !== 'none' || this.listener) throw generic('The incoming migration has already been started');
    this.role = 'destination';
    this.config.markIncomingStarted();
    const { machine } = this.deps;
    machine.runState = 'inmigrate';
    this.state.reset('setup');
    this.listener = await listenAddress(addr, { lookupFd: ctx ? (n) => ctx.fds.take(n) : undefined });
    void this.acceptOne(exitOnError);
  }

  private async acceptOne(exitOnError: boolean): Promise<void> {
    const listener = this.listener!;
    let channel;
    try {
      channel = await listener.accept();
    } catch (e) {
      return this.incomingFailed(e as Error, exitOnError);
    }
    // Precopy uses one channel: stop accepting (QEMU closes the listener once it has the main
    // channel, unless more channels are expected).
    await listener.close().catch(() => {});
    const inc = new IncomingMigration({ machine: this.deps.machine, state: this.state, startPaused: this.deps.startPaused });
    this.incomingMig = inc;
    const r = await inc.run(channel);
    if (!r.ok) return this.incomingFailed(r.error!, exitOnError);
  }

  private incomingFailed(err: Error, exitOnError: boolean): void {
    this.lastError = err.message;
    if (this.state.status !== 'failed') this.state.reset('failed');
    process.stderr.write(`livemig: load of migration failed: ${err.message}\n`);
    if (exitOnError) this.deps.onIncomingFatal(err);
  }

  async incoming(req: IncomingRequest, ctx: CommandContext): Promise<void> {
    if (!this.deps.machine || this.deps.machine.runState !== 'inmigrate' || this.listener || this.role !== 'none') {
      throw generic("'-incoming' was not specified on the command line");
    }
    const addr = req.uri !== undefined ? this.parse(req.uri) : (req.main!.addr as MigrationAddress);
    await this.startIncoming(addr, req.exitOnError, ctx);
  }

  async migrate(req: MigrateRequest, ctx: CommandContext): Promise<void> {
    if (req.resume) throw generic('Cannot resume if there is no paused migration');
    if (isRunning(this.state.status)) throw generic("There's a migration process in progress");
    if (this.role === 'destination' || this.deps.machine.runState === 'inmigrate') {
      throw generic('Guest is waiting for an incoming migration');
    }
    if (req.cpr) throw generic('cpr-transfer is not available in this build');
    const addr = req.uri !== undefined ? this.parse(req.uri) : (req.main!.addr as MigrationAddress);
    this.role = 'source';
    this.lastError = undefined;
    const { machine, config, events } = this.deps;
    const out = new OutgoingMigration({
      machine,
      settings: config,
      state: this.state,
      connect: (a) => connectAddress(a, { lookupFd: (n) => ctx.fds.take(n) }),
      onPass: (pass) => {
        if (config.capability('events')) events.emit('MIGRATION_PASS', { pass });
      },
    });
    this.outgoing = out;
    void out.run(addr).then(() => {
      this.lastError = out.stats.errorDesc;
    });
  }

  cancel(): void {
    this.outgoing?.cancel();
  }

  continue(state: string): void {
    if (!this.outgoing || this.state.status !== state) {
      throw generic(`Migration not in expected state: ${this.state.status}`);
    }
    this.outgoing.continueFrom(state as MigrationStatus);
  }

  info(): MigrationInfo {
    const status = this.state.status;
    if (status === 'none' && this.role === 'none') return {};
    const info: Record<string, unknown> = { status };
    if (this.role === 'destination') {
      const addrs = this.listener?.addresses;
      if (addrs && addrs.length && status !== 'completed') info['socket-address'] = addrs.map((a) => ({ ...a }));
      if (this.lastError && status === 'failed') info['error-desc'] = this.lastError;
      return info as MigrationInfo;
    }
    const out = this.outgoing;
    if (!out) return info as MigrationInfo;
    const s = out.refreshStats();
    if (status === 'failed' || status === 'cancelled' || status === 'cancelling') {
      if (s.errorDesc && status === 'failed') info['error-desc'] = s.errorDesc;
      return info as MigrationInfo;
    }
    if (status === 'setup') return info as MigrationInfo;
    info['total-time'] = Math.round(s.totalTime);
    if (status === 'completed') info.downtime = Math.round(s.downtime);
    else info['expected-downtime'] = Math.round(s.expectedDowntime);
    info['setup-time'] = Math.round(s.setupTime);
    info.ram = {
      transferred: s.transferred,
      remaining: s.remaining,
      total: s.total,
      duplicate: s.duplicate,
      normal: s.normal,
      'normal-bytes': s.normal * 4096,
      'dirty-pages-rate': s.dirtyPagesRate,
      mbps: s.mbps,
      'dirty-sync-count': s.dirtySyncCount,
      'postcopy-requests': 0,
      'page-size': 4096,
      'multifd-bytes': 0,
      'pages-per-second': Math.round(s.pagesPerSecond),
      'precopy-bytes': s.precopyBytes,
      'downtime-bytes': s.downtimeBytes,
      'postcopy-bytes': 0,
      'dirty-sync-missed-zero-copy': 0,
    };
    if (s.throttlePercentage > 0 || this.config.capability('auto-converge')) info['cpu-throttle-percentage'] = s.throttlePercentage;
    return info as MigrationInfo;
  }

  startPostcopy(): void {
    throw generic('postcopy is not available in this build (enable the postcopy-ram capability in a later version)');
  }

  recover(): void {
    throw generic('Migrate recover can only be run when postcopy is paused.');
  }

  pause(): void {
    throw generic('migrate-pause is currently only supported during postcopy-active or postcopy-recover state');
  }

  private parse(uri: string): MigrationAddress {
    try {
      return parseUri(uri);
    } catch (e) {
      throw generic(e instanceof Error ? e.message : String(e));
    }
  }
}
