/**
 * The incoming side of tcp: and unix: — a listening descriptor watched for readability on
 * this thread's loop, accept4(2) until the backlog is empty, one channel per connection.
 *
 * Connections are accepted as they arrive, like Node's server and QEMU's listener: those that
 * come before accept() wait in a queue as descriptors, unread (nothing is read from a
 * connection before its channel's first read()), so the kernel backlog never overflows while
 * the destination is busy. close() stops listening, closes the queued descriptors nobody
 * accepted (qio_net_listener_disconnect) and removes the unix socket file it created.
 */
import { promises as fsp } from 'node:fs';
import { FdPoll, native, UV_READABLE } from '../host';
import type { ByteChannel } from '../stream';
import { TransportError } from './errors';
import type { IncomingListener, ListenAddress } from './types';

/** How long to stop accepting after EMFILE/ENFILE: the connection stays in the backlog and the
 * socket stays readable, so retrying at once would spin. */
const ACCEPT_BACKOFF_MS = 100;

interface AcceptWaiter {
  resolve: (ch: ByteChannel) => void;
  reject: (e: Error) => void;
}

export interface OwnPath {
  path: string;
  ino: number;
  dev: number;
}

export class SocketListener implements IncomingListener {
  readonly multiChannel = true;
  private readonly pending: number[] = [];
  private readonly waiters: AcceptWaiter[] = [];
  private readonly poll: FdPoll;
  private backoff: NodeJS.Timeout | null = null;
  private closed = false;
  private closing: Promise<void> | null = null;

  constructor(
    private readonly fd: number,
    readonly addresses: readonly ListenAddress[],
    private readonly ownPath: OwnPath | null,
    private readonly name: string,
    private readonly makeChannel: (fd: number) => ByteChannel,
  ) {
    try {
      this.poll = new FdPoll(fd, () => this.acceptAll());
    } catch (e) {
      native.close(fd);
      throw TransportError.fromSyscall(e, `${name}: listen`);
    }
    this.poll.set(UV_READABLE);
  }

  accept(): Promise<ByteChannel> {
    if (this.closed) return Promise.reject(this.closedError());
    const fd = this.pending.shift();
    if (fd === undefined) return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
    return new Promise((resolve, reject) => this.hand(fd, { resolve, reject }));
  }

  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closed = true;
    for (const w of this.waiters.splice(0)) w.reject(this.closedError());
    for (const fd of this.pending.splice(0)) native.close(fd);
    if (this.backoff) clearTimeout(this.backoff);
    this.poll.close();
    native.close(this.fd);
    this.closing = this.unlinkOwnPath();
    return this.closing;
  }

  private acceptAll(): void {
    while (!this.closed) {
      let fd: number;
      try {
        fd = native.accept(this.fd);
      } catch (e) {
        const err = TransportError.fromSyscall(e, `${this.name}: accept`);
        // A connection reset while it waited in the backlog: nothing to hand out, go on.
        if (err.code === 'ECONNABORTED') continue;
        // EMFILE, ENFILE: whoever waits hears of it; the listener stays open, like QEMU's
        // listener, which logs and keeps watching.
        for (const w of this.waiters.splice(0)) w.reject(err);
        this.poll.set(0);
        this.backoff = setTimeout(() => {
          this.backoff = null;
          if (!this.closed) this.poll.set(UV_READABLE);
        }, ACCEPT_BACKOFF_MS);
        return;
      }
      if (fd < 0) break;
      const w = this.waiters.shift();
      if (w) this.hand(fd, w);
      else this.pending.push(fd);
    }
    // An error on the listening socket stops libuv's handle: watch again.
    if (!this.closed && !this.backoff) this.poll.set(UV_READABLE);
  }

  private hand(fd: number, w: AcceptWaiter): void {
    let ch: ByteChannel;
    try {
      ch = this.makeChannel(fd);
    } catch (e) {
      native.close(fd);
      return w.reject(TransportError.fromSyscall(e, `${this.name}: accept`));
    }
    w.resolve(ch);
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
