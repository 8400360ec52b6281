/**
 * tcp:HOST:PORT and unix:PATH — QEMU's migration/socket.c over Node's net.
 *
 * Outgoing: connect, then the connection is the channel (full duplex: the migration stream
 * one way, the return path the other). Incoming: listen, report the actual address (for
 * port 0 the kernel's ephemeral port, as QEMU's migrate_add_address feeds query-migrate's
 * `socket-address`), and hand out one channel per accepted connection. The listener stays
 * open until close(): QEMU keeps accepting for multifd, the postcopy preempt channel and
 * postcopy recovery (socket_accept_incoming_migration), so accept() may be called again.
 *
 * Every socket is made with allowHalfOpen (end() is a half-close: shutdown(SHUT_WR)) and, for
 * TCP, TCP_NODELAY: the return path carries small, latency-bound messages (postcopy page
 * requests, PONG) that Nagle would hold back. The bulk direction loses nothing, since the
 * writer hands over 256 KiB batches. Node has no API for SO_SNDBUF/SO_RCVBUF on stream
 * sockets, so buffer sizes are the kernel's autotuned defaults.
 *
 * unix: follows QEMU's unix_listen_saddr: whatever is at PATH is unlinked before bind(2)
 * (ENOENT is fine, other errors fail the listen), and close() removes the socket file again
 * (socket_listen_cleanup). libuv already unlinks a listening pipe's path when it closes the
 * handle, as QEMU does, without looking at what is there; the fallback here removes PATH
 * only if it is still the socket this listener bound.
 */
import { promises as fsp } from 'node:fs';
import * as net from 'node:net';
import { native } from '../host';
import type { ByteChannel } from '../stream';
import { TransportError } from './errors';
import { socketFd, StreamChannel } from './stream-channel';
import type { ConnectOptions, IncomingListener, ListenAddress, ListenOptions } from './types';
import type { SocketAddress } from './uri';

export type StreamSocketAddress = Exclude<SocketAddress, { type: 'fd' }>;

function label(addr: StreamSocketAddress): string {
  return addr.type === 'inet' ? 'tcp' : 'unix';
}

function describe(addr: StreamSocketAddress): string {
  if (addr.type === 'unix') return `unix:${addr.path}`;
  return addr.host.includes(':') ? `tcp:[${addr.host}]:${addr.port}` : `tcp:${addr.host}:${addr.port}`;
}

function portNumber(addr: { port: string }): number {
  const port = Number(addr.port);
  if (!/^\d+$/.test(addr.port) || port > 65535) {
    throw new TransportError('EINVAL', `tcp: invalid port '${addr.port}'`);
  }
  return port;
}

/** Kernel socket buffers for a migration stream (bytes asked; the kernel caps them at
 * wmem_max/rmem_max). The default ~200 KiB makes the two ends wait on each other every few
 * dozen pages; a few MiB lets the sender run ahead while the receiver copies. */
export const SOCKET_BUFFER_BYTES = 4 * 1024 * 1024;

function growSocketBuffers(fd: number): void {
  try {
    native.setSocketBuffers(fd, SOCKET_BUFFER_BYTES, SOCKET_BUFFER_BYTES);
  } catch {
    /* not a socket we may size: keep the defaults */
  }
}

/** Wrap a connected socket as a channel. */
export function socketChannel(sock: net.Socket, name: string, opts: ConnectOptions | ListenOptions): ByteChannel {
  sock.setNoDelay(true);
  const fd = socketFd(sock);
  if (fd !== undefined) growSocketBuffers(fd);
  return new StreamChannel({
    input: sock,
    output: sock,
    label: name,
    fd,
    highWaterMark: opts.highWaterMark,
    readHighWaterMark: opts.readHighWaterMark,
  });
}

/** Outgoing: connect to HOST:PORT or PATH (QEMU: socket_start_outgoing_migration). */
export function connectSocket(addr: StreamSocketAddress, opts: ConnectOptions = {}): Promise<ByteChannel> {
  const what = `${label(addr)}: connect to ${describe(addr)}`;
  return new Promise((resolve, reject) => {
    if (opts.signal?.aborted) return reject(new TransportError('EABORTED', `${what}: aborted`));
    const common = { allowHalfOpen: true, highWaterMark: opts.highWaterMark };
    let sock: net.Socket;
    try {
      sock =
        addr.type === 'inet'
          ? net.connect({ ...common, host: addr.host, port: portNumber(addr), noDelay: true })
          : net.connect({ ...common, path: addr.path });
    } catch (e) {
      return reject(TransportError.from(e, what));
    }
    const onAbort = (): void => {
      cleanup();
      sock.destroy();
      reject(new TransportError('EABORTED', `${what}: aborted`));
    };
    const onError = (e: Error): void => {
      cleanup();
      sock.destroy();
      reject(TransportError.from(e, what));
    };
    const onConnect = (): void => {
      cleanup();
      resolve(socketChannel(sock, label(addr), opts));
    };
    const cleanup = (): void => {
      sock.off('error', onError);
      sock.off('connect', onConnect);
      opts.signal?.removeEventListener('abort', onAbort);
    };
    sock.once('error', onError);
    sock.once('connect', onConnect);
    opts.signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Incoming: listen on HOST:PORT or PATH (QEMU: socket_start_incoming_migration). */
export async function listenSocket(addr: StreamSocketAddress, opts: ListenOptions = {}): Promise<IncomingListener> {
  const what = `${label(addr)}: listen on ${describe(addr)}`;
  if (addr.type === 'unix') await removeStale(addr.path, what);
  const server = net.createServer({
    allowHalfOpen: true,
    // Nothing is read from a connection before its channel's first read().
    pauseOnConnect: true,
    noDelay: addr.type === 'inet',
    highWaterMark: opts.highWaterMark,
  });
  const backlog = opts.backlog ?? 16;
  await new Promise<void>((resolve, reject) => {
    const onError = (e: Error): void => reject(TransportError.from(e, what));
    server.once('error', onError);
    const done = (): void => {
      server.off('error', onError);
      resolve();
    };
    try {
      if (addr.type === 'inet') server.listen({ host: addr.host || undefined, port: portNumber(addr), backlog }, done);
      else server.listen({ path: addr.path, backlog }, done);
    } catch (e) {
      server.off('error', onError);
      reject(TransportError.from(e, what));
    }
  });
  const bound = server.address();
  let addresses: ListenAddress[];
  let ownPath: { path: string; ino: number; dev: number } | null = null;
  if (typeof bound === 'string' || bound === null) {
    const path = typeof bound === 'string' ? bound : (addr as { path: string }).path;
    addresses = [{ type: 'unix', path }];
    const st = await fsp.lstat(path).catch(() => null);
    if (st) ownPath = { path, ino: st.ino, dev: st.dev };
  } else {
    addresses = [{ type: 'inet', host: bound.address, port: String(bound.port) }];
  }
  return new SocketListener(server, addresses, ownPath, label(addr), opts);
}

/** QEMU's unix_listen_saddr: "unlink(path) < 0 && errno != ENOENT" is an error. */
async function removeStale(path: string, what: string): Promise<void> {
  try {
    await fsp.unlink(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw TransportError.from(e, `${what}: removing the old ${path}`);
  }
}

function ignore(): void {}

interface AcceptWaiter {
  resolve: (ch: ByteChannel) => void;
  reject: (e: Error) => void;
}

class SocketListener implements IncomingListener {
  readonly multiChannel = true;
  private readonly pending: net.Socket[] = [];
  private readonly waiters: AcceptWaiter[] = [];
  private closed = false;
  private closing: Promise<void> | null = null;

  constructor(
    private readonly server: net.Server,
    readonly addresses: readonly ListenAddress[],
    private readonly ownPath: { path: string; ino: number; dev: number } | null,
    private readonly name: string,
    private readonly opts: ListenOptions,
  ) {
    server.on('connection', (s: net.Socket) => this.onConnection(s));
    // accept(2) failures (EMFILE, ENFILE) reach whoever waits; the listener stays open, like
    // QEMU's listener which logs and keeps watching.
    server.on('error', (e: Error) => {
      const err = TransportError.from(e, `${name}: accept`);
      for (const w of this.waiters.splice(0)) w.reject(err);
    });
  }

  accept(): Promise<ByteChannel> {
    if (this.closed) return Promise.reject(this.closedError());
    const s = this.pending.shift();
    if (s) return Promise.resolve(this.wrap(s));
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closed = true;
    for (const w of this.waiters.splice(0)) w.reject(this.closedError());
    // Connections nobody accepted are dropped, like QEMU's qio_net_listener_disconnect.
    for (const s of this.pending.splice(0)) s.destroy();
    // server.close() stops listening at once; its callback would wait for every accepted
    // connection to end as well, which is not what closing a listener means here.
    this.server.close();
    this.closing = this.unlinkOwnPath();
    return this.closing;
  }

  private onConnection(s: net.Socket): void {
    if (this.closed) {
      s.destroy();
      return;
    }
    const w = this.waiters.shift();
    if (w) {
      w.resolve(socketChannel(s, this.name, this.opts));
      return;
    }
    // Until accepted, an error on the waiting connection must not go unhandled; the channel
    // made at accept() sees the socket's state (closed, reset) through its own reads.
    s.on('error', ignore);
    this.pending.push(s);
  }

  private wrap(s: net.Socket): ByteChannel {
    s.off('error', ignore);
    return socketChannel(s, this.name, this.opts);
  }

  private async unlinkOwnPath(): Promise<void> {
    const own = this.ownPath;
    if (!own) return;
    const st = await fsp.lstat(own.path).catch(() => null);
    if (st && st.isSocket() && st.ino === own.ino && st.dev === own.dev) {
      await fsp.unlink(own.path).catch(() => undefined);
    }
  }

  private closedError(): TransportError {
    return new TransportError('ELISTENER_CLOSED', `${this.name}: listener closed`);
  }
}
