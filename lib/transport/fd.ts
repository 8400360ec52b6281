/**
 * fd:N and fd:NAME — QEMU's migration/fd.c: a descriptor already open in this process.
 *
 * Resolving (QEMU's monitor_fd_param): a name that starts with a digit is a descriptor
 * number (the whole name must be decimal); any other name is looked up through `lookupFd`,
 * which the monitor provides for descriptors passed with QMP `getfd`.
 *
 * Checking (QEMU 11, migration_fd_valid): the descriptor must be a socket or a pipe; a plain
 * file is refused ("fd: migration to a file is not supported. Use file: instead."), since a
 * file is positioned storage and belongs to file:. Nothing is closed when the check fails.
 *
 * Channel: once made, the channel owns the descriptor and closes it on end()/destroy(), as
 * QEMU's channel closes the fd it took from the monitor.
 *   - socket: an FdChannel, like tcp:/unix: — full duplex, return path supported, end()
 *     half-closes (shutdown(SHUT_WR)), and the descriptor can go to a worker thread. It must
 *     be a stream socket (SO_TYPE); a datagram or seqpacket socket cannot carry a byte stream.
 *   - pipe: a StreamChannel over a libuv pipe handle, one direction only, chosen by the side: outgoing writes it (read() resolves null
 *     at once: no return path), incoming reads it (write() throws ENOT_WRITABLE). A pipe
 *     cannot tell us which end it is without fcntl, so giving the wrong end fails at the
 *     first write (EBADF) or read.
 * Listening on fd: yields exactly that one channel (QEMU watches the fd for G_IO_IN and
 * processes it once).
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import { native, SOCK_STREAM } from '../host';
import type { ByteChannel } from '../stream';
import { TransportError } from './errors';
import { FdChannel } from './fd-channel';
import { StreamChannel } from './stream-channel';
import type { ChannelOptions, ConnectOptions, IncomingListener } from './types';
import { singleChannelListener } from './single-listener';

export type FdDirection = 'outgoing' | 'incoming';

/** The descriptor named by `str` (QEMU's monitor_fd_param). */
export function resolveFd(str: string, lookupFd?: (name: string) => number | undefined): number {
  if (/^[0-9]/.test(str)) {
    if (!/^[0-9]+$/.test(str) || Number(str) > 0x7fffffff) {
      throw new TransportError('EFD_INVALID', `fd: invalid file descriptor number '${str}'`);
    }
    return Number(str);
  }
  const fd = lookupFd?.(str);
  if (fd === undefined) throw new TransportError('EFD_NOT_FOUND', `fd: file descriptor named '${str}' has not been found`);
  return fd;
}

export type FdKind = 'socket' | 'pipe';

/** fstat the descriptor: a socket or a pipe, or a typed error. */
export function fdKind(fd: number): FdKind {
  let st: fs.Stats;
  try {
    st = fs.fstatSync(fd);
  } catch (e) {
    throw TransportError.from(e, `fd: descriptor ${fd}`);
  }
  if (st.isSocket()) return 'socket';
  if (st.isFIFO()) return 'pipe';
  throw new TransportError(
    'EFD_NOT_SOCKET',
    `fd: descriptor ${fd} is not a socket or a pipe: migration to a file is not supported, use file: instead`,
  );
}

/** Make the channel over an open descriptor (taking ownership of it). */
export function fdChannel(fd: number, direction: FdDirection, opts: ChannelOptions = {}): ByteChannel {
  const kind = fdKind(fd);
  if (kind === 'socket') return socketFdChannel(fd, opts);
  const reads = direction === 'incoming';
  const writes = direction === 'outgoing';
  let sock: net.Socket;
  try {
    // readable/writable false keep Node from starting a read on a write end (and the reverse);
    // a pipe is a libuv pipe handle.
    sock = new net.Socket({ fd, readable: reads, writable: writes, allowHalfOpen: true });
  } catch (e) {
    throw new TransportError('EFD_NOT_SOCKET', `fd: descriptor ${fd} cannot carry a byte stream`, { cause: e });
  }
  return new StreamChannel({
    input: reads ? sock : null,
    output: writes ? sock : null,
    label: 'fd',
    fd,
    highWaterMark: opts.highWaterMark,
    readHighWaterMark: opts.readHighWaterMark,
  });
}

function socketFdChannel(fd: number, opts: ChannelOptions): ByteChannel {
  let type: number;
  try {
    type = native.socketType(fd);
  } catch (e) {
    throw TransportError.fromSyscall(e, `fd: descriptor ${fd}`);
  }
  if (type !== SOCK_STREAM) {
    throw new TransportError('EFD_NOT_SOCKET', `fd: descriptor ${fd} cannot carry a byte stream (socket type ${type})`);
  }
  try {
    native.setNoDelay(fd, true);
  } catch {
    /* a unix socket: no Nagle to turn off */
  }
  return new FdChannel(fd, { label: 'fd', highWaterMark: opts.highWaterMark, readHighWaterMark: opts.readHighWaterMark });
}

/** Outgoing fd: (QEMU: fd_start_outgoing_migration). */
export async function connectFd(addr: { str: string }, opts: ConnectOptions = {}): Promise<ByteChannel> {
  return fdChannel(resolveFd(addr.str, opts.lookupFd), 'outgoing', opts);
}

/** Incoming fd: (QEMU: fd_start_incoming_migration). */
export async function listenFd(addr: { str: string }, opts: ConnectOptions = {}): Promise<IncomingListener> {
  return singleChannelListener('fd', fdChannel(resolveFd(addr.str, opts.lookupFd), 'incoming', opts));
}
