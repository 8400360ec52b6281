/**
 * The monitor as a whole: one dispatcher and event bus shared by every QMP and HMP endpoint.
 *
 *   const monitor = new Monitor({ backend });           // backend emits via monitor.events
 *   await monitor.startFromConfig({ qmp: cfg.qmp, monitor: cfg.monitor });
 *   await monitor.ready;                                 // wait=on endpoints have a client
 *   ... machine runs ...
 *   await monitor.close();                               // e.g. after 'quit'
 */

import type { Readable, Writable } from 'node:stream';
import type { ChardevSpec } from '../chardev';
import type { MonitorBackend } from './backend';
import { createHandlers, type VersionTriple } from './commands';
import { Dispatcher } from './dispatcher';
import { EventBus, type Clock } from './events';
import { NamedFdTable, type FdReceiverFactory } from './fd-table';
import { HmpServer } from './hmp';
import { HmpEngine, toCrlf } from './hmp/engine';
import type { JsonLimits } from './json/parser';
import { QmpServer } from './qmp-server';

/** The QEMU release whose QMP/HMP behaviour this monitor follows. */
export const QEMU_VERSION: VersionTriple = { major: 10, minor: 2, micro: 0 };

export interface MonitorOptions {
  backend: MonitorBackend;
  /**
   * An existing bus, when the backend was built before the monitor; create it with
   * `new EventBus({ config })` so MIGRATION events honour the 'events' capability.
   */
  events?: EventBus;
  version?: VersionTriple;
  package?: string;
  clock?: Clock;
  fdReceiverFactory?: FdReceiverFactory;
  jsonLimits?: Partial<JsonLimits>;
  /** HMP "migrate" poll interval; QEMU's is one second */
  hmpPollMs?: number;
  stdin?: Readable;
  stdout?: Writable;
  log?: (message: string) => void;
  /**
   * Clients are greeted (and their input read) only once this resolves. QEMU accepts monitor
   * clients in its main loop, which starts after `-incoming` listens: a client that has its
   * greeting may connect a migration at once. The endpoints listen (and wait=on waits for its
   * client) before it.
   */
  opened?: Promise<void>;
}

export class Monitor {
  readonly events: EventBus;
  readonly dispatcher: Dispatcher;
  readonly hmp: HmpEngine;
  private readonly qmpServers: QmpServer[] = [];
  private readonly hmpServers: HmpServer[] = [];
  private readonly version: VersionTriple;
  private readonly spareFds = new NamedFdTable();

  constructor(private readonly opts: MonitorOptions) {
    const backend = opts.backend;
    this.version = opts.version ?? QEMU_VERSION;
    // QEMU sends MIGRATION and MIGRATION_PASS only with the 'events' capability.
    this.events = opts.events ?? new EventBus({ clock: opts.clock, config: backend.migration.config });
    this.dispatcher = new Dispatcher(
      createHandlers(backend, {
        version: this.version,
        package: opts.package ?? '',
        commandNames: () => this.dispatcher.commandNames(),
        // human-monitor-command: already under the command lock, so run the line directly
        hmp: async (line, env) => toCrlf((await this.hmp.execute(line, env.ctx, false)).output),
      }),
    );
    this.hmp = new HmpEngine({
      dispatcher: this.dispatcher,
      globals: () => backend.migration.config.globals,
      pollMs: opts.hmpPollMs,
    });
  }

  /** Start a QMP endpoint (-qmp SPEC). Resolves when it listens; see `ready` for wait=on. */
  async addQmp(spec: ChardevSpec): Promise<QmpServer> {
    const s = new QmpServer(spec, {
      dispatcher: this.dispatcher,
      events: this.events,
      version: this.version,
      package: this.opts.package,
      fdReceiverFactory: this.opts.fdReceiverFactory,
      jsonLimits: this.opts.jsonLimits,
      opened: this.opts.opened,
      stdin: this.opts.stdin,
      stdout: this.opts.stdout,
      log: this.opts.log,
    });
    await s.start();
    this.qmpServers.push(s);
    return s;
  }

  /** Start an HMP endpoint (-monitor SPEC). */
  async addHmp(spec: ChardevSpec): Promise<HmpServer> {
    const s = new HmpServer(spec, {
      engine: this.hmp,
      dispatcher: this.dispatcher,
      version: this.version,
      opened: this.opts.opened,
      stdin: this.opts.stdin,
      stdout: this.opts.stdout,
      log: this.opts.log,
    });
    await s.start();
    this.hmpServers.push(s);
    return s;
  }

  /** Start every -qmp and -monitor endpoint of a command line. */
  async startFromConfig(cfg: { qmp: ChardevSpec[]; monitor: ChardevSpec[] }): Promise<void> {
    for (const spec of cfg.qmp) await this.addQmp(spec);
    for (const spec of cfg.monitor) await this.addHmp(spec);
  }

  /** Resolves when every endpoint is ready: with wait=on, once its first client connected. */
  get ready(): Promise<void> {
    return Promise.all([...this.qmpServers, ...this.hmpServers].map((s) => s.ready)).then(() => undefined);
  }

  /** Run an HMP command line as human-monitor-command would (for tests and tools). */
  async humanMonitorCommand(line: string): Promise<string> {
    const ctx = { monitor: 'hmp' as const, fds: this.qmpServers[0]?.fds ?? this.spareFds };
    return this.dispatcher.lock.run(async () => toCrlf((await this.hmp.execute(line, ctx, false)).output));
  }

  async close(): Promise<void> {
    await Promise.all([...this.qmpServers, ...this.hmpServers].map((s) => s.close()));
    this.qmpServers.length = 0;
    this.hmpServers.length = 0;
  }
}
