/**
 * Transports: a MigrationAddress in, a ByteChannel out: a transport only yields a byte channel. Nothing here knows the
 * migration stream; see docs/transports.md for each URI's semantics.
 *
 *   connectAddress(addr)  outgoing (QEMU: migration_connect_outgoing → *_start_outgoing_migration)
 *   listenAddress(addr)   incoming (QEMU: qemu_start_incoming_migration → *_start_incoming_migration)
 */
import type { ByteChannel } from '../stream';
import { connectExec, listenExec } from './exec';
import { connectFd, listenFd } from './fd';
import { connectFile, listenFile, type FileOptions } from './file';
import { connectSocket, listenSocket } from './socket';
import type { ConnectOptions, IncomingListener, ListenOptions } from './types';
import type { MigrationAddress } from './uri';

export type { ChannelOptions, ConnectOptions, IncomingListener, ListenAddress, ListenOptions } from './types';
export { DEFAULT_HIGH_WATER_MARK, DEFAULT_READ_HIGH_WATER_MARK } from './types';
export { TransportError, isTransportError } from './errors';
export type { TransportErrorCode, TransportOwnCode } from './errors';
export type { MigrationAddress, MigrationChannel, ChannelType, SocketAddress } from './uri';
export { parseUri, formatAddress, resolveChannels, UriError } from './uri';
export { connectSocket, listenSocket, socketChannel, SOCKET_BUFFER_BYTES } from './socket';
export { FdChannel } from './fd-channel';
export { peekSocket } from './peek';
export type { FdChannelOptions } from './fd-channel';
export { StreamChannel, netSocketChannel } from './stream-channel';
export { connectFd, listenFd, fdChannel, resolveFd, fdKind } from './fd';
export type { FdDirection, FdKind } from './fd';
export { connectExec, listenExec, spawnExec, ExecChannel } from './exec';
export type { ExecRole, ExitStatus } from './exec';
export { connectFile, listenFile } from './file';
export { CprChannel, CprListener, connectCpr, CPR_CHANNEL_MAX_FDS } from './cpr';
export type { FileOptions } from './file';

/** Open the outgoing channel for `addr`. */
export function connectAddress(addr: MigrationAddress, opts: ConnectOptions & FileOptions = {}): Promise<ByteChannel> {
  switch (addr.transport) {
    case 'socket':
      return addr.type === 'fd' ? connectFd(addr, opts) : connectSocket(addr, opts);
    case 'exec':
      return connectExec(addr, opts);
    case 'file':
      return connectFile(addr, opts);
  }
}

/** Start incoming migration on `addr`: listen (sockets) or open at once (exec, fd, file). */
export function listenAddress(addr: MigrationAddress, opts: ListenOptions & FileOptions = {}): Promise<IncomingListener> {
  switch (addr.transport) {
    case 'socket':
      return addr.type === 'fd' ? listenFd(addr, opts) : listenSocket(addr, opts);
    case 'exec':
      return listenExec(addr, opts);
    case 'file':
      return listenFile(addr, opts);
  }
}

/**
 * Whether the address can carry more than one channel (QEMU's
 * transport_supports_multi_channels): multifd and postcopy-preempt need it. inet and unix
 * sockets can; so can file: with mapped-ram, which this build does not implement yet.
 */
export function supportsMultiChannel(addr: MigrationAddress): boolean {
  return addr.transport === 'socket' && addr.type !== 'fd';
}
