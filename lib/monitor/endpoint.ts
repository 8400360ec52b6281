/**
 * Monitor endpoints from a -qmp/-monitor chardev spec (lib/chardev):
 *
 *   unix:PATH,server=on[,wait=off]     listen on a unix socket
 *   tcp:HOST:PORT,server=on[,wait=off] listen on TCP; port 0 picks a free one
 *   unix:PATH / tcp:HOST:PORT          server=off: connect out, one session
 *   stdio                              one session on the process's stdin/stdout
 *
 * The sockets are lib/chardev's ChardevSocket, the serial port's too. wait=on: QEMU does not
 * start the machine until a client has connected; `ready` resolves only then, so the CLI can
 * await it. Unlike QEMU's socket chardev, which serves one client at a time, a listener here
 * serves several at once.
 */

import type * as net from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { ChardevSocket, disconnectedFilename, type ChardevSpec } from '../chardev';

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
  /** the chardev id, naming its descriptors (default: monitor) */
  id?: string;
  /** streams for stdio (default: process.stdin/stdout) */
  stdin?: Readable;
  stdout?: Writable;
  /** informational messages, e.g. QEMU's "waiting for connection" */
  log?: (message: string) => void;
}

export class MonitorEndpoint {
  private socket?: ChardevSocket;
  private readonly conns = new Set<Connection>();
  private readyResolve!: () => void;
  private readyReject!: (e: Error) => void;
  /** resolves when the endpoint is usable: listening, and (wait=on) a client connected */
  readonly ready: Promise<void>;

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
    if (spec.kind === 'stdio') {
      this.accept(this.stdioConnection());
      this.readyResolve();
      return;
    }
    if (spec.kind !== 'unix' && spec.kind !== 'tcp') throw new Error(`a monitor cannot use chardev '${spec.kind}'`);
    const kind = spec.kind;
    this.socket = new ChardevSocket(spec, {
      id: this.opts.id ?? 'monitor',
      maxClients: Infinity,
      // A client's end of input must not end our replies (see qmp-session.ts).
      allowHalfOpen: true,
      onClient: (sock) => this.accept(socketConnection(sock, kind)),
    });
    await this.socket.open();
    if (spec.server && spec.wait) {
      this.opts.log?.(`QEMU waiting for connection on: ${disconnectedFilename(spec)}`);
      this.socket.connected.then(this.readyResolve, () => undefined);
    } else {
      this.readyResolve();
    }
  }

  /** The listening address (tcp: {address, port}; unix: the path). */
  address(): net.AddressInfo | string | null {
    return this.socket?.address() ?? null;
  }

  get connectionCount(): number {
    return this.conns.size;
  }

  async close(): Promise<void> {
    for (const c of [...this.conns]) c.end();
    await this.socket?.close();
    this.readyReject(new Error('monitor endpoint closed'));
  }

  private accept(c: Connection): void {
    this.conns.add(c);
    const drop = () => this.conns.delete(c);
    c.input.once('close', drop);
    c.input.once('end', drop);
    try {
      this.onConnection(c);
    } catch {
      c.end();
    }
  }

  private stdioConnection(): Connection {
    const input = this.opts.stdin ?? process.stdin;
    const output = this.opts.stdout ?? process.stdout;
    input.on('error', () => undefined);
    output.on('error', () => undefined);
    return { input, output, kind: 'stdio', end: () => input.pause() };
  }
}

function socketConnection(sock: net.Socket, kind: 'unix' | 'tcp'): Connection {
  sock.setNoDelay?.(true);
  return { input: sock, output: sock, socket: sock, kind, end: () => sock.end(() => sock.destroy()) };
}
