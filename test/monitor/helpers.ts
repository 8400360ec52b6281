/** Test helpers: a scriptable fake backend and a raw-socket QMP client. */

import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as fs from 'node:fs';
import type {
  IncomingRequest, MigrateRequest, MigrationBackend, MigrationInfo, MonitorBackend, RunStateName, StatusInfo,
} from '../../lib/monitor/backend';
import { QmpError, genericError } from '../../lib/monitor/errors';
import type { EventBus } from '../../lib/monitor/events';
import { MigrationOptions, isRunning as isMigrationRunning, type MigrationStatus as MigrationStatusName } from '../../lib/migration';

export class FakeMigration implements MigrationBackend {
  readonly config = new MigrationOptions();
  status: MigrationStatusName = 'none';
  /** what the capability rules see: an incoming migration has started, the run state */
  incomingStarted = false;
  runStateName = 'running';

  constructor() {
    this.config.bind({
      migrationRunning: () => isMigrationRunning(this.status),
      incomingStarted: () => this.incomingStarted,
      runState: () => this.runStateName,
    });
  }
  lastMigrate?: MigrateRequest;
  lastIncoming?: IncomingRequest;
  errorDesc?: string;
  /** what a running migration does next: set by tests */
  onMigrate?: (m: FakeMigration) => void;
  events?: EventBus;
  calls: string[] = [];

  setStatus(s: MigrationStatusName): void {
    this.status = s;
    this.events?.emit('MIGRATION', { status: s });
  }

  migrate(req: MigrateRequest): void {
    if (isMigrationRunning(this.status)) throw genericError(
      "There's a migration process in progress");
    this.lastMigrate = req;
    this.calls.push('migrate');
    this.setStatus('setup');
    this.onMigrate?.(this);
  }

  incoming(req: IncomingRequest): void {
    this.lastIncoming = req;
    this.calls.push('incoming');
  }

  cancel(): void {
    this.calls.push('cancel');
    if (isMigrationRunning(this.status)) this.setStatus('cancelled');
  }

  continue(state: MigrationStatusName): void {
    if (state !== this.status) {
      throw genericError(`Migration not in expected state: ${this.status}`);
    }
    this.calls.push(`continue ${state}`);
  }

  info(): MigrationInfo {
    if (this.status === 'none') return {};
    const info: MigrationInfo = { status: this.status };
    if (this.errorDesc) info['error-desc'] = this.errorDesc;
    if (this.status === 'active' || this.status === 'completed') {
      info['total-time'] = 1234;
      info['setup-time'] = 12;
      if (this.status === 'completed') info.downtime = 42;
      else info['expected-downtime'] = 300;
      info.ram = {
        transferred: 1536,
        remaining: 0,
        total: 134217728,
        duplicate: 10,
        normal: 3,
        'normal-bytes': 12288,
        'dirty-pages-rate': 0,
        mbps: 811.5,
        'dirty-sync-count': 2,
        'postcopy-requests': 0,
        'page-size': 4096,
        'multifd-bytes': 0,
        'pages-per-second': 7,
        'precopy-bytes': 1536,
        'downtime-bytes': 0,
        'postcopy-bytes': 0,
        'dirty-sync-missed-zero-copy': 0,
      };
    }
    return info;
  }

  startPostcopy(): void {
    this.calls.push('postcopy');
  }

  recover(uri: string): void {
    this.calls.push(`recover ${uri}`);
  }

  pause(): void {
    if (this.status !== 'postcopy-active') {
      throw new QmpError('GenericError', 'migrate-pause is currently only supported during postcopy-active or postcopy-recover state');
    }
  }
}

export class FakeBackend implements MonitorBackend {
  state: RunStateName = 'running';
  calls: string[] = [];
  stopDelayMs = 0;
  events?: EventBus;
  readonly migration = new FakeMigration();

  attach(events: EventBus): void {
    this.events = events;
    this.migration.events = events;
  }

  runState(): StatusInfo {
    return { running: this.state === 'running', status: this.state };
  }

  async stop(): Promise<void> {
    this.calls.push('stop');
    if (this.stopDelayMs) await new Promise((r) => setTimeout(r, this.stopDelayMs));
    if (this.state === 'running') {
      this.state = 'paused';
      this.events?.emit('STOP');
    }
  }

  cont(): void {
    this.calls.push('cont');
    this.state = 'running';
    this.events?.emit('RESUME');
  }

  quit(): void {
    this.calls.push('quit');
    this.events?.emit('SHUTDOWN', { guest: false, reason: 'host-qmp-quit' });
  }

  systemReset(): void {
    this.calls.push('system_reset');
    this.events?.emit('RESET', { guest: false, reason: 'host-qmp-system-reset' });
  }

  pmemsave(addr: number, size: number, filename: string): void {
    // "class:NAME" lets tests provoke every QMP error class through a backend.
    const m = /^class:(\w+)$/.exec(filename);
    if (m) throw new QmpError(m[1] as never, `provoked ${m[1]}`);
    this.calls.push(`pmemsave ${addr} ${size} ${filename}`);
  }

  cpuCount(): number {
    return 2;
  }
}

export function tmpSocketPath(name: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'livemig-mon-'));
  return path.join(dir, name);
}

/** A QMP client that sees the raw lines, for checking framing and exact replies. */
export class RawClient {
  readonly sock: net.Socket;
  private buf = '';
  private readonly lines: string[] = [];
  private waiters: Array<() => void> = [];
  closed = false;

  private constructor(sock: net.Socket) {
    this.sock = sock;
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => {
      this.buf += d;
      let i: number;
      while ((i = this.buf.indexOf('\n')) >= 0) {
        this.lines.push(this.buf.slice(0, i + 1));
        this.buf = this.buf.slice(i + 1);
      }
      this.wake();
    });
    sock.on('close', () => {
      this.closed = true;
      this.wake();
    });
    sock.on('error', () => undefined);
  }

  static connect(target: string | { port: number; host?: string }): Promise<RawClient> {
    return new Promise((res, rej) => {
      const s = typeof target === 'string' ? net.connect(target) : net.connect(target.port, target.host ?? '127.0.0.1');
      s.once('connect', () => res(new RawClient(s)));
      s.once('error', rej);
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Next raw line, CRLF included. */
  async line(timeoutMs = 5000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (!this.lines.length) {
      if (this.closed) throw new Error('connection closed');
      if (Date.now() > deadline) throw new Error(`timeout; partial: ${JSON.stringify(this.buf)}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 50);
      });
    }
    return this.lines.shift()!;
  }

  async msg(timeoutMs?: number): Promise<any> {
    const l = await this.line(timeoutMs);
    expect(l.endsWith('\r\n')).toBe(true);
    return JSON.parse(l);
  }

  /** Next message that is not an event. */
  async reply(): Promise<any> {
    for (;;) {
      const m = await this.msg();
      if (!('event' in m)) return m;
    }
  }

  pending(): number {
    return this.lines.length;
  }

  send(data: string | Uint8Array): void {
    this.sock.write(data);
  }

  async cmd(execute: string, args?: unknown, id?: unknown): Promise<any> {
    const req: Record<string, unknown> = { execute };
    if (args !== undefined) req.arguments = args;
    if (id !== undefined) req.id = id;
    this.send(JSON.stringify(req));
    return this.reply();
  }

  /** greeting + qmp_capabilities */
  async negotiate(enable?: string[]): Promise<any> {
    const greeting = await this.msg();
    const r = await this.cmd('qmp_capabilities', enable ? { enable } : undefined);
    expect(r).toEqual({ return: {} });
    return greeting;
  }

  close(): void {
    this.sock.destroy();
  }
}
