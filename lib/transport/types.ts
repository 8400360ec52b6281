/**
 * The common shape of every transport (a transport only yields a byte channel):
 *
 *   outgoing   connect(addr, opts)  → ByteChannel            (QEMU: *_start_outgoing_migration)
 *   incoming   listen(addr, opts)   → IncomingListener       (QEMU: *_start_incoming_migration)
 *                 .addresses         where it listens (query-migrate `socket-address`)
 *                 .accept()          → ByteChannel, one per connection; call again for more
 *                 .close()           stop accepting; a unix listener unlinks its socket file
 */
import type { ByteChannel } from '../stream';
import type { SocketAddress } from './uri';

/** The actual listening address, as QEMU's SocketAddress in `query-migrate`. */
export type ListenAddress = Exclude<SocketAddress, { type: 'fd' }>;

export interface IncomingListener {
  /**
   * Where this listener accepts connections: for `tcp:HOST:0` the port the kernel chose, for
   * `unix:` the path. Empty for exec:, fd: and file:, which have no address (QEMU reports
   * `socket-address` only for socket listeners).
   */
  readonly addresses: readonly ListenAddress[];
  /**
   * Whether accept() can yield further channels (multifd, postcopy preempt, postcopy
   * recovery). True for tcp: and unix:; exec:, fd: and file: yield exactly one.
   */
  readonly multiChannel: boolean;
  /** The next incoming channel. Connections that arrive before the call wait in a queue. */
  accept(): Promise<ByteChannel>;
  /** Stop accepting. Channels already accepted stay open. Idempotent. */
  close(): Promise<void>;
}

export interface ChannelOptions {
  /**
   * Bytes a channel may hold unwritten before write() returns false (default 1 MiB). The
   * QemuFileWriter hands over ~256 KiB per writev, so this keeps a few batches in flight.
   */
  highWaterMark?: number;
  /**
   * Bytes received but not yet read() before the transport stops reading from the kernel,
   * which pushes back on the sender (default 1 MiB).
   */
  readHighWaterMark?: number;
}

export interface ConnectOptions extends ChannelOptions {
  /** Abort a connection attempt (migrate_cancel while connecting). */
  signal?: AbortSignal;
  /**
   * fd:NAME — take the descriptor the monitor stored under NAME (QMP `getfd`). The channel
   * then owns it and closes it. Numeric names are used as descriptor numbers directly.
   */
  lookupFd?: (name: string) => number | undefined;
}

export interface ListenOptions extends ChannelOptions {
  /** listen(2) backlog for socket listeners (QEMU passes the number of channels it expects). */
  backlog?: number;
  /** See ConnectOptions.lookupFd. */
  lookupFd?: (name: string) => number | undefined;
}

export const DEFAULT_HIGH_WATER_MARK = 1024 * 1024;
export const DEFAULT_READ_HIGH_WATER_MARK = 1024 * 1024;
