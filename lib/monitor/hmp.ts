/**
 * The human monitor on a chardev (-monitor stdio, -monitor unix:...,server=on): QEMU's
 * banner and "(qemu) " prompt, one command line at a time.
 *
 *   connect ─▶ "QEMU 10.2.0 monitor - type 'help' for more information\r\n(qemu) "
 *   line    ─▶ [command lock] execute ─▶ output ─▶ (migrate: wait, unlocked) ─▶ "(qemu) "
 *
 * While a line runs, reading pauses: QEMU suspends the monitor (monitor_suspend) and, for
 * "migrate" without -d, keeps it suspended until the migration leaves setup/active. This is
 * a line-oriented monitor, not QEMU's readline: no echo, no editing or history. Lines are
 * capped at 4095 bytes (READLINE_CMD_BUF_SIZE); the excess is dropped.
 */

import type { ChardevSpec } from '../chardev';
import type { CommandContext } from './backend';
import { MonitorEndpoint, type Connection, type EndpointOptions } from './endpoint';
import type { VersionTriple } from './commands';
import type { Dispatcher } from './dispatcher';
import { NamedFdTable } from './fd-table';
import { HmpEngine, toCrlf } from './hmp/engine';

export const HMP_PROMPT = '(qemu) ';
const MAX_LINE = 4095;

export class HmpSession {
  private buf = '';
  private readonly lines: string[] = [];
  private busy = false;
  private closed = false;
  private inputEnded = false;

  constructor(
    private readonly conn: Connection,
    private readonly engine: HmpEngine,
    private readonly dispatcher: Dispatcher,
    private readonly ctx: CommandContext,
    version: VersionTriple,
  ) {
    conn.input.setEncoding?.('utf8');
    conn.input.on('data', (d: string | Buffer) => this.onData(typeof d === 'string' ? d : d.toString('utf8')));
    // Lines sent before a half-close still run (echo 'info status' | socat - UNIX:...).
    conn.input.once('end', () => {
      this.inputEnded = true;
      if (!this.busy) this.finish();
    });
    conn.input.once('close', () => (this.closed = true));
    this.write(`QEMU ${version.major}.${version.minor}.${version.micro} monitor - type 'help' for more information\n`);
    this.write(HMP_PROMPT);
  }

  private write(text: string): void {
    const out = this.conn.output;
    if (out.destroyed || out.writableEnded) return;
    out.write(toCrlf(text));
  }

  private onData(text: string): void {
    for (const ch of text) {
      if (ch === '\n') {
        this.lines.push(this.buf.replace(/\r$/, ''));
        this.buf = '';
      } else if (this.buf.length < MAX_LINE) {
        this.buf += ch;
      }
    }
    if (this.lines.length) this.conn.input.pause();
    void this.run();
  }

  private async run(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      while (!this.closed && this.lines.length) {
        const line = this.lines.shift()!;
        const r = await this.dispatcher.lock.run(() => this.engine.execute(line, this.ctx, true));
        this.write(r.output);
        if (r.wait) this.write(await r.wait.catch(() => ''));
        this.write(HMP_PROMPT);
      }
    } finally {
      this.busy = false;
      if (!this.closed) this.conn.input.resume();
    }
    if (this.inputEnded) this.finish();
  }

  private finish(): void {
    if (this.closed || this.lines.length) return;
    this.closed = true;
    this.conn.end();
  }
}

export interface HmpServerOptions extends EndpointOptions {
  engine: HmpEngine;
  dispatcher: Dispatcher;
  version: VersionTriple;
  /** Sessions start once this resolves: see MonitorOptions.opened. */
  opened?: Promise<void>;
}

export class HmpServer {
  private readonly endpoint: MonitorEndpoint;
  readonly fds = new NamedFdTable();

  constructor(
    readonly spec: ChardevSpec,
    private readonly opts: HmpServerOptions,
  ) {
    this.endpoint = new MonitorEndpoint(spec, (c) => this.onConnection(c), opts);
  }

  start(): Promise<void> {
    return this.endpoint.start();
  }

  get ready(): Promise<void> {
    return this.endpoint.ready;
  }

  address(): ReturnType<MonitorEndpoint['address']> {
    return this.endpoint.address();
  }

  async close(): Promise<void> {
    await this.endpoint.close();
    this.fds.closeAll();
  }

  private onConnection(c: Connection): void {
    if (this.opts.opened) void this.opts.opened.then(() => !c.input.destroyed && this.startSession(c));
    else this.startSession(c);
  }

  private startSession(c: Connection): void {
    new HmpSession(c, this.opts.engine, this.opts.dispatcher, { monitor: 'hmp', fds: this.fds }, this.opts.version);
  }
}
