/**
 * A unix socket that carries file descriptors (SCM_RIGHTS, unix(7)) beside its bytes: the
 * channel for handing memfds to another process (cpr-transfer) or a userfaultfd to a helper.
 * It is the addon's own non-blocking socket, not a net.Socket, whose reads would consume and
 * drop the passed fds. Readiness comes from a native FdWatcher on this thread's loop.
 *
 * Types: 'stream' (like QEMU's unix: channel; fds ride with the first byte of a send) or
 * 'seqpacket' (message boundaries kept: one recv is one send).
 */
import { native } from './addon';
import { SOCK_SEQPACKET, SOCK_STREAM, UV_READABLE, UV_WRITABLE } from './linux';
import type { NativeFdWatcher } from './native';

export type FdSocketType = 'stream' | 'seqpacket';

export interface FdMessage {
  /** Bytes received (a fresh copy). */
  payload: Uint8Array;
  /** Descriptors received; the receiver owns them and must close them. */
  fds: number[];
  /** MSG_TRUNC/MSG_CTRUNC: the message or its fds did not fit. */
  truncated: boolean;
}

function typeNumber(type: FdSocketType): number {
  return type === 'seqpacket' ? SOCK_SEQPACKET : SOCK_STREAM;
}

/** Promises for readable/writable on one fd, over a single native watcher. */
class Readiness {
  private watcher: NativeFdWatcher | undefined;
  private readonly waiting: { events: number; resolve: () => void }[] = [];

  constructor(private readonly fd: number) {}

  wait(events: number): Promise<void> {
    return new Promise((resolve) => {
      this.waiting.push({ events, resolve });
      this.arm();
    });
  }

  close(): void {
    this.watcher?.close();
    this.watcher = undefined;
  }

  private arm(): void {
    let events = 0;
    for (const w of this.waiting) events |= w.events;
    if (events === 0) return this.watcher?.stop();
    this.watcher ??= new native.FdWatcher(this.fd, (ready) => this.fire(ready));
    this.watcher.start(events);
  }

  private fire(ready: number): void {
    // Errors and hang-ups arrive as readable/writable with a negative status: wake everyone
    // and let the retried syscall report the error.
    const due = this.waiting.filter((w) => (w.events & ready) !== 0 || ready === 0);
    for (const w of due) this.waiting.splice(this.waiting.indexOf(w), 1);
    this.arm();
    for (const w of due) w.resolve();
  }
}

export class FdSocket {
  private readonly ready: Readiness;
  private closed = false;

  /** Wraps a connected AF_UNIX socket fd made by this addon (or inherited as one). */
  constructor(readonly fd: number) {
    this.ready = new Readiness(fd);
  }

  static pair(type: FdSocketType = 'stream'): [FdSocket, FdSocket] {
    const [a, b] = native.socketPair(typeNumber(type));
    return [new FdSocket(a), new FdSocket(b)];
  }

  static connect(path: string, type: FdSocketType = 'stream'): FdSocket {
    return new FdSocket(native.connect(path, typeNumber(type)));
  }

  /** Sends `payload` with `fds` attached (to its first byte), waiting while the socket is full.
   * The fds stay open here; close them when the peer no longer needs this process's copy. */
  async send(payload: Uint8Array, fds: readonly number[] = []): Promise<void> {
    let off = 0;
    let pass = [...fds];
    do {
      const n = native.sendMsg(this.fd, payload.subarray(off), pass);
      if (n < 0) {
        await this.ready.wait(UV_WRITABLE);
        continue;
      }
      off += n;
      pass = []; // attached to the bytes already sent
    } while (off < payload.length);
  }

  /** Receives one message (stream: what is available), or null at end of stream. */
  async recv(maxBytes = 65536): Promise<FdMessage | null> {
    const buf = new Uint8Array(maxBytes);
    for (;;) {
      const r = native.recvMsg(this.fd, buf);
      if (r === null) {
        await this.ready.wait(UV_READABLE);
        continue;
      }
      if (r.bytes === 0 && r.fds.length === 0) return null;
      return { payload: buf.slice(0, r.bytes), fds: r.fds, truncated: r.truncated };
    }
  }

  /** The peer reads end of stream after what was sent; this side can still receive. */
  shutdownWrite(): void {
    native.shutdownWrite(this.fd);
  }

  close(): void {
    if (this.closed) return;
    this.ready.close();
    native.close(this.fd);
    this.closed = true;
  }
}

/** A listening unix socket at a filesystem path; `accept()` yields FdSockets. */
export class FdListener {
  private readonly ready: Readiness;
  private closed = false;

  private constructor(readonly fd: number, readonly path: string, readonly type: FdSocketType) {
    this.ready = new Readiness(fd);
  }

  /** Binds and listens at `path` (which must not exist: remove a stale one first). */
  static listen(path: string, type: FdSocketType = 'stream', backlog = 16): FdListener {
    return new FdListener(native.listen(path, typeNumber(type), backlog), path, type);
  }

  /** Wraps a socket that already listens (e.g. inherited, as QEMU's `fd` socket address);
   * it has no path of its own here. */
  static fromFd(fd: number, type: FdSocketType = 'stream'): FdListener {
    return new FdListener(fd, '', type);
  }

  async accept(): Promise<FdSocket> {
    for (;;) {
      const fd = native.accept(this.fd);
      if (fd >= 0) return new FdSocket(fd);
      await this.ready.wait(UV_READABLE);
    }
  }

  /** Stops listening. The path stays in the filesystem; the caller unlinks it. */
  close(): void {
    if (this.closed) return;
    this.ready.close();
    native.close(this.fd);
    this.closed = true;
  }
}
