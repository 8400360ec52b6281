/**
 * The monitor's migration commands over a MigrationManager: QMP/HMP requests become manager
 * calls, manager events become MIGRATION / MIGRATION_PASS. Everything about migration itself
 * (status, settings, rules, run state) lives in the manager; this adds only what belongs to
 * the monitor: "fd:NAME" resolved against the monitor's getfd table, and the rule that
 * migrate-incoming needs `-incoming defer`.
 */
import type { MigrationManager } from '../migration';
import type { MigrationOptions } from '../migration';
import type { MigrationStatus } from '../migration';
import type { MigrationAddress as TransportAddress } from '../transport';
import type { CommandContext, IncomingRequest, MigrateRequest, MigrationBackend, MigrationInfo, MonitorEventSink } from './backend';
import { genericError } from './errors';

export class ManagerMigrationBackend implements MigrationBackend {
  constructor(
    readonly manager: MigrationManager,
    events: MonitorEventSink,
  ) {
    // The bus drops both unless the 'events' capability is on (migrate_events()).
    manager.on('status', (status: MigrationStatus) => events.emit('MIGRATION', { status }));
    manager.on('pass', (pass: number) => events.emit('MIGRATION_PASS', { pass }));
  }

  get config(): MigrationOptions {
    return this.manager.options;
  }

  async migrate(req: MigrateRequest, ctx: CommandContext): Promise<void> {
    const target = req.uri ?? (req.main!.addr as TransportAddress);
    await this.manager.migrate(target, {
      resume: req.resume,
      cpr: req.cpr?.addr as TransportAddress | undefined,
      lookupFd: (n) => ctx.fds.take(n),
    });
  }

  async incoming(req: IncomingRequest, ctx: CommandContext): Promise<void> {
    if (!this.manager.awaitingIncoming) throw genericError("'-incoming' was not specified on the command line");
    const target = req.uri ?? (req.main!.addr as TransportAddress);
    await this.manager.incoming(target, { exitOnError: req.exitOnError, lookupFd: (n) => ctx.fds.take(n) });
  }

  cancel(): void {
    this.manager.cancel();
  }

  continue(state: MigrationStatus): void {
    this.manager.continue(state);
  }

  info(): MigrationInfo {
    return this.manager.query() as MigrationInfo;
  }

  startPostcopy(): void {
    this.manager.startPostcopy();
  }

  async recover(uri: string, ctx: CommandContext): Promise<void> {
    await this.manager.recover(uri, { lookupFd: (n) => ctx.fds.take(n) });
  }

  pause(): void {
    this.manager.pause();
  }
}
