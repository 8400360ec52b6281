/**
 * A QMP monitor on one chardev (-qmp SPEC): the endpoint, its sessions, and the monitor's
 * named-fd table, which in QEMU belongs to the monitor and outlives a client's connection.
 *
 *   const qmp = new QmpServer(spec, { dispatcher, events, version });
 *   await qmp.start();          // listening (or connected, or on stdio)
 *   await qmp.ready;            // wait=on: a client has connected
 *   ...
 *   await qmp.close();
 */

import type { ChardevSpec } from '../chardev';
import { MonitorEndpoint, type Connection, type EndpointOptions } from './endpoint';
import type { VersionTriple } from './commands';
import type { Dispatcher } from './dispatcher';
import type { EventBus } from './events';
import { NamedFdTable, type FdReceiverFactory } from './fd-table';
import type { JsonLimits } from './json/parser';
import { QmpSession } from './qmp-session';

export interface QmpServerOptions extends EndpointOptions {
  dispatcher: Dispatcher;
  events: EventBus;
  version: VersionTriple;
  package?: string;
  /** SCM_RIGHTS receiver for unix-socket clients (native addon); see fd-table.ts */
  fdReceiverFactory?: FdReceiverFactory;
  jsonLimits?: Partial<JsonLimits>;
  outputHighWater?: number;
  /** Sessions start (greeting sent, input read) once this resolves: see MonitorOptions.opened. */
  opened?: Promise<void>;
}

export class QmpServer {
  private readonly endpoint: MonitorEndpoint;
  private readonly sessions = new Set<QmpSession>();
  readonly fds = new NamedFdTable();

  constructor(
    readonly spec: ChardevSpec,
    private readonly opts: QmpServerOptions,
  ) {
    this.endpoint = new MonitorEndpoint(spec, (c) => this.onConnection(c), opts);
  }

  start(): Promise<void> {
    return this.endpoint.start();
  }

  /** Resolves when the machine may start: listening, and with wait=on, a client is here. */
  get ready(): Promise<void> {
    return this.endpoint.ready;
  }

  address(): ReturnType<MonitorEndpoint['address']> {
    return this.endpoint.address();
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  /** QEMU's greeting: {"QMP": {"version": {...}, "capabilities": ["oob"]}} */
  greeting(): Record<string, unknown> {
    const v = this.opts.version;
    return {
      QMP: {
        version: { qemu: { micro: v.micro, minor: v.minor, major: v.major }, package: this.opts.package ?? '' },
        capabilities: ['oob'],
      },
    };
  }

  async close(): Promise<void> {
    for (const s of this.sessions) s.close();
    this.sessions.clear();
    await this.endpoint.close();
    this.fds.closeAll();
  }

  private onConnection(c: Connection): void {
    if (this.opts.opened) void this.opts.opened.then(() => this.startSession(c));
    else this.startSession(c);
  }

  private startSession(c: Connection): void {
    // Gone before the monitor opened: nothing to greet. (Input waits unread meanwhile: a
    // stream without a 'data' listener does not flow.)
    if (c.input.destroyed) return;
    const fdReceiver = c.kind === 'unix' && c.socket ? this.opts.fdReceiverFactory?.(c.socket) : undefined;
    const s = new QmpSession(c, this.opts.dispatcher, this.opts.events, {
      greeting: this.greeting(),
      fds: this.fds,
      fdReceiver,
      jsonLimits: this.opts.jsonLimits,
      outputHighWater: this.opts.outputHighWater,
    });
    this.sessions.add(s);
    void s.closedPromise.then(() => this.sessions.delete(s));
  }
}
