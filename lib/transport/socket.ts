/**
 * tcp:HOST:PORT and unix:PATH — QEMU's migration/socket.c over the addon's own sockets.
 *
 * Outgoing: connect, then the connection is the channel (full duplex: the migration stream
 * one way, the return path the other). Incoming: listen, report the actual address (for
 * port 0 the kernel's ephemeral port, as QEMU's migrate_add_address feeds query-migrate's
 * `socket-address`), and hand out one channel per accepted connection. The listener stays
 * open until close(): QEMU keeps accepting for multifd, the postcopy preempt channel and
 * postcopy recovery (socket_accept_incoming_migration), so accept() may be called again.
 *
 * Channels are FdChannels: the descriptor belongs to this process's code, not to libuv's
 * stream machinery, so it can be read and written by worker threads (postcopy's fault and
 * page-server workers, multifd) and by native page paths. Names are resolved here with
 * dns.lookup; the addon only ever sees numeric addresses. Every connection gets 4 MiB kernel
 * buffers and, for TCP, TCP_NODELAY: the return path carries small, latency-bound messages
 * (postcopy page requests, PONG) that Nagle would hold back, and the bulk direction loses
 * nothing since the writer hands over 256 KiB batches.
 *
 * unix: follows QEMU's unix_listen_saddr: whatever is at PATH is unlinked before bind(2)
 * (ENOENT is fine, other errors fail the listen), and close() removes the socket file again
 * (socket_listen_cleanup) if it is still the one this listener bound.
 */
import * as dns from 'node:dns';
import { promises as fsp } from 'node:fs';
import { isIP } from 'node:net';
import { closeQuietly, FdPoll, native, SOCK_STREAM, UV_WRITABLE } from '../host';
import type { ByteChannel } from '../stream';
import { isTransportError, TransportError } from './errors';
import { FdChannel } from './fd-channel';
import { SocketListener } from './socket-listener';
import type { ChannelOptions, ConnectOptions, IncomingListener, ListenOptions } from './types';
import type { SocketAddress } from './uri';

export type StreamSocketAddress = Exclude<SocketAddress, { type: 'fd' }>;

function label(addr: StreamSocketAddress): 'tcp' | 'unix' {
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

/** Wrap a connected socket descriptor (taking ownership) as a migration channel. Socket
 * options are best effort: a connection already reset shows that at its first read or write. */
export function socketChannel(fd: number, kind: 'tcp' | 'unix', opts: ChannelOptions): FdChannel {
  growSocketBuffers(fd);
  if (kind === 'tcp') {
    try {
      native.setNoDelay(fd, true);
    } catch {
      /* see above */
    }
  }
  return new FdChannel(fd, { label: kind, highWaterMark: opts.highWaterMark, readHighWaterMark: opts.readHighWaterMark });
}


/** Outgoing: connect to HOST:PORT or PATH (QEMU: socket_start_outgoing_migration). */
export async function connectSocket(addr: StreamSocketAddress, opts: ConnectOptions = {}): Promise<ByteChannel> {
  const what = `${label(addr)}: connect to ${describe(addr)}`;
  if (opts.signal?.aborted) throw new TransportError('EABORTED', `${what}: aborted`);
  let fd: number;
  if (addr.type === 'unix') {
    // A unix connect completes at once or fails (EAGAIN when the listener's backlog is full).
    try {
      fd = native.connect(addr.path, SOCK_STREAM);
    } catch (e) {
      throw TransportError.fromSyscall(e, what);
    }
  } else {
    fd = await connectInet(addr, opts.signal, what);
  }
  try {
    return socketChannel(fd, label(addr), opts);
  } catch (e) {
    closeQuietly(fd);
    throw TransportError.fromSyscall(e, what);
  }
}

/** Every address HOST resolves to, tried in the resolver's order; the last failure is kept. */
async function connectInet(addr: { host: string; port: string }, signal: AbortSignal | undefined, what: string): Promise<number> {
  const port = portNumber(addr);
  const host = addr.host || 'localhost';
  let hosts: string[];
  if (isIP(host)) hosts = [host];
  else {
    try {
      hosts = (await dns.promises.lookup(host, { all: true })).map((a) => a.address);
    } catch (e) {
      throw TransportError.from(e, what);
    }
  }
  let last: unknown = new TransportError('ENOTFOUND', `${what}: no address`);
  for (const h of hosts) {
    if (signal?.aborted) throw new TransportError('EABORTED', `${what}: aborted`);
    try {
      return await connectOne(h, port, signal, what);
    } catch (e) {
      if (isTransportError(e, 'EABORTED')) throw e;
      last = e;
    }
  }
  throw last;
}

/** A non-blocking connect: done when the socket turns writable, and SO_ERROR says how. */
function connectOne(host: string, port: number, signal: AbortSignal | undefined, what: string): Promise<number> {
  let fd: number;
  try {
    fd = native.tcpConnect(host, port);
  } catch (e) {
    return Promise.reject(TransportError.fromSyscall(e, what));
  }
  return new Promise((resolve, reject) => {
    let done = false;
    let poll: FdPoll | null = null;
    const finish = (err: Error | null): void => {
      if (done) return;
      done = true;
      poll?.close();
      signal?.removeEventListener('abort', onAbort);
      if (!err) return resolve(fd);
      closeQuietly(fd);
      reject(err);
    };
    const onAbort = (): void => finish(new TransportError('EABORTED', `${what}: aborted`));
    const onWritable = (): void => {
      try {
        const errno = native.socketError(fd);
        finish(errno ? TransportError.fromErrno(errno, 'connect', what) : null);
      } catch (e) {
        finish(TransportError.fromSyscall(e, what));
      }
    };
    try {
      poll = new FdPoll(fd, onWritable);
      poll.set(UV_WRITABLE);
    } catch (e) {
      return finish(TransportError.fromSyscall(e, what));
    }
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Incoming: listen on HOST:PORT or PATH (QEMU: socket_start_incoming_migration). */
export async function listenSocket(addr: StreamSocketAddress, opts: ListenOptions = {}): Promise<IncomingListener> {
  const what = `${label(addr)}: listen on ${describe(addr)}`;
  const backlog = opts.backlog ?? 16;
  const accepted = (fd: number): ByteChannel => socketChannel(fd, label(addr), opts);
  if (addr.type === 'unix') {
    await removeStale(addr.path, what);
    let fd: number;
    try {
      fd = native.listen(addr.path, SOCK_STREAM, backlog);
    } catch (e) {
      throw TransportError.fromSyscall(e, what);
    }
    const st = await fsp.lstat(addr.path).catch(() => null);
    const ownPath = st ? { path: addr.path, ino: st.ino, dev: st.dev } : null;
    return new SocketListener(fd, [{ type: 'unix', path: addr.path }], ownPath, 'unix', accepted);
  }
  const port = portNumber(addr);
  let host = addr.host;
  if (host && !isIP(host)) {
    // A name listens on the first address it resolves to (QEMU listens on all of them).
    try {
      host = (await dns.promises.lookup(host)).address;
    } catch (e) {
      throw TransportError.from(e, what);
    }
  }
  let bound: { fd: number; host: string; port: number };
  try {
    bound = native.tcpListen(host, port, backlog);
  } catch (e) {
    throw TransportError.fromSyscall(e, what);
  }
  // Accepted TCP sockets inherit the listener's buffer sizes, and the window scale they
  // announce in the handshake is chosen from them.
  growSocketBuffers(bound.fd);
  return new SocketListener(bound.fd, [{ type: 'inet', host: bound.host, port: String(bound.port) }], null, 'tcp', accepted);
}

/** QEMU's unix_listen_saddr: "unlink(path) < 0 && errno != ENOENT" is an error. */
async function removeStale(path: string, what: string): Promise<void> {
  try {
    await fsp.unlink(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw TransportError.from(e, `${what}: removing the old ${path}`);
  }
}
