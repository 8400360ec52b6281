/**
 * Monitor endpoints from a -qmp/-monitor chardev spec (lib/cli/options.ts ChardevSpec):
 *
 *   unix:PATH,server=on[,wait=off]     listen on a unix socket (a stale socket file is
 *                                      removed first and on close, as QEMU does)
 *   tcp:HOST:PORT,server=on[,wait=off] listen on TCP; port 0 picks a free one
 *   unix:PATH / tcp:HOST:PORT          server=off: connect out, one session
 *   stdio                              one session on the process's stdin/stdout
 *
 * wait=on: QEMU does not start the machine until a client has connected; `ready` resolves
 * only then, so the CLI can await it. Unlike QEMU's socket chardev, which serves one client
 * at a time, a listener here serves several at once.
 */

import * as fs from 'node:fs';
import * as net from 'node:net';
import type { Readable, Writable } from 'node:stream';
import type { ChardevSpec } from '../cli/options';

export interface Connection {
  readonly input: Readable;
  readonly output: Writable;
  /** set for socket connections (unix ones can carry SCM_RIGHTS) */
  readonly socket?: net.Socket;
  readonly kind: 'unix' | 'tcp' | 'stdio';
  /** close the connection (for stdio: stop reading) */
  end(): void;
}

export interface EndpointOptions {
  /** streams for stdio (default: process.stdin/stdout) */
  stdin?: Readable;
  stdout?: Writable;
  /** informational messages, e.g. QEMU's "waiting for connection" */
  log?: (message: string) => void;
}

export class MonitorEndpoint {
  private server?: net.Server;
  private readonly conns = new Set<Connection>();
  private readyResolve!: () => void;
  private readyReject!: (e: Error) => void;
  /** resolves when the endpoint is usable: listening, and (wait=on) a client connected */
  readonly ready: Promise<void>;
  private unixPath?: string;

  constructor(
    readonly spec: ChardevSpec,
    private readonly onConnection: (c: Connection) => void,
    private readonly opts: EndpointOptions = {},
  ) {
    this.ready = new Promise((res, rej) => {
      this.readyResolve = res;
      this.readyReject = rej;
    });
    this.ready.catch(() => undefined);
  }

  /** Start listening/connecting. Resolves once listening (not waiting for a client). */
  async start(): Promise<void> {
    const spec = this.spec;
    switch (spec.kind) {
      case 'stdio':
        this.accept(this.stdioConnection());
        this.readyResolve();
        return;
      case 'unix':
      case 'tcp':
        if (!spec.server) return this.connectOut(spec);
        return this.listen(spec);
      default:
        throw new Error(`a monitor cannot use chardev '${spec.kind}'`);
    }
  }

  /** The listening address (tcp: {address, port}; unix: the path). */
  address(): net.AddressInfo | string | null {
    return this.server?.address() ?? null;
  }

  get connectionCount(): number {
    return this.conns.size;
  }

  async close(): Promise<void> {
    for (const c of [...this.conns]) c.end();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((res) => server.close(() => res()));
    if (this.unixPath) {
      try {
        fs.unlinkSync(this.unixPath);
      } catch {
        // already gone
      }
    }
    this.readyReject(new Error('monitor endpoint closed'));
  }

  private describe(): string {
    const s = this.spec;
    if (s.kind === 'unix') return `disconnected:unix:${s.path},server=on`;
    if (s.kind === 'tcp') return `disconnected:tcp:${s.host}:${s.port},server=on`;
    return s.kind;
  }

  private async listen(spec: Extract<ChardevSpec, { kind: 'unix' | 'tcp' }>): Promise<void> {
    // allowHalfOpen: a client's end of input must not end our replies (see qmp-session.ts).
    const server = net.createServer({ allowHalfOpen: true }, (sock) =>
      this.accept(this.socketConnection(sock, spec.kind)),
    );
    this.server = server;
    server.on('error', () => undefined);
    if (spec.kind === 'unix') {
      // QEMU unlinks a leftover socket file before bind (unix_listen_saddr).
      try {
        if (fs.statSync(spec.path).isSocket()) fs.unlinkSync(spec.path);
      } catch {
        // nothing there
      }
      this.unixPath = spec.path;
    }
    await new Promise<void>((res, rej) => {
      server.once('error', rej);
      const done = () => {
        server.off('error', rej);
        res();
      };
      if (spec.kind === 'unix') server.listen(spec.path, done);
      else server.listen(spec.port, spec.host === '' ? undefined : spec.host, done);
    });
    if (!spec.wait) this.readyResolve();
    else this.opts.log?.(`QEMU waiting for connection on: ${this.describe()}`);
  }

  private async connectOut(spec: Extract<ChardevSpec, { kind: 'unix' | 'tcp' }>): Promise<void> {
    const sock =
      spec.kind === 'unix'
        ? net.connect({ path: spec.path, allowHalfOpen: true })
        : net.connect({ port: spec.port, host: spec.host === '' ? 'localhost' : spec.host, allowHalfOpen: true });
    await new Promise<void>((res, rej) => {
      sock.once('connect', res);
      sock.once('error', rej);
    });
    this.accept(this.socketConnection(sock, spec.kind));
    this.readyResolve();
  }

  private accept(c: Connection): void {
    this.conns.add(c);
    const drop = () => this.conns.delete(c);
    c.input.once('close', drop);
    c.input.once('end', drop);
    const spec = this.spec;
    if ((spec.kind === 'unix' || spec.kind === 'tcp') && spec.server) this.readyResolve();
    try {
      this.onConnection(c);
    } catch {
      c.end();
    }
  }

  private socketConnection(sock: net.Socket, kind: 'unix' | 'tcp'): Connection {
    // A reset by the peer must never become an uncaught 'error' event.
    sock.on('error', () => sock.destroy());
    sock.setNoDelay?.(true);
    return { input: sock, output: sock, socket: sock, kind, end: () => sock.end(() => sock.destroy()) };
  }

  private stdioConnection(): Connection {
    const input = this.opts.stdin ?? process.stdin;
    const output = this.opts.stdout ?? process.stdout;
    input.on('error', () => undefined);
    output.on('error', () => undefined);
    return { input, output, kind: 'stdio', end: () => input.pause() };
  }
}
