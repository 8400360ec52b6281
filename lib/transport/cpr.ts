/**
 * The cpr channel (QEMU migration/cpr-transfer.c): a unix stream socket whose bytes carry the
 * CPR state and whose SCM_RIGHTS ancillary data carries descriptors beside them. It is the
 * addon's own socket (FdSocket): a net.Socket would consume and drop passed descriptors.
 *
 *   old process (source)                          new process (destination)
 *   ────────────────────                          ─────────────────────────
 *                                                 listenCpr({unix path | fd}).accept()
 *   connectCpr({unix path}) ──────── connect ───▶ (the path is removed once accepted)
 *   write state; each fd rides on a ' ' byte ───▶ read state; takeFd() in arrival order
 *   end(): shutdown(SHUT_WR)                      ... builds the machine, listens on main ...
 *   hangup() resolves  ◀──────────── close ────── destroy()
 *
 * Only unix sockets can pass descriptors: any other address is refused with QEMU's texts
 * ("bad cpr channel address; must be unix", "bad cpr channel socket type; must be unix").
 * The listener may also be a socket that already listens, passed as `fd` (QEMU's qtest does
 * that to avoid racing the new process's start-up).
 */
import * as fs from 'node:fs';
import { closeQuietly, FdListener, FdSocket } from '../host';
import type { ByteChannel } from '../stream';
import { TransportError } from './errors';
import { resolveFd } from './fd';
import type { MigrationAddress } from './uri';

/** Descriptors received and not yet taken that a channel holds at most (SCM_MAX_FD is 253 per
 * message; a peer that keeps sending more is cut off). */
export const CPR_CHANNEL_MAX_FDS = 256;
const RECV_SIZE = 64 * 1024;
const HIGH_WATER = 1024 * 1024;

interface Pending {
  bytes: Uint8Array;
  fds: readonly number[];
}

export class CprChannel implements ByteChannel {
  private readonly queue: Pending[] = [];
  private queuedBytes = 0;
  private pumping = false;
  private drainers: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  private readonly received: number[] = [];
  private failed: Error | null = null;
  private closed = false;
  private ended = false;

  constructor(private readonly sock: FdSocket) {}

  get fd(): number {
    return this.sock.fd;
  }

  write(chunk: Uint8Array): boolean {
    return this.writeFds(chunk, []);
  }

  writev(chunks: readonly Uint8Array[]): boolean {
    let ok = true;
    for (const c of chunks) ok = this.writeFds(c, []);
    return ok;
  }

  writeFds(chunk: Uint8Array, fds: readonly number[]): boolean {
    if (this.failed) throw this.failed;
    if (this.ended) throw new TransportError('EWRITE_AFTER_END', 'cpr: write after end');
    if (chunk.length === 0 && fds.length === 0) return this.queuedBytes < HIGH_WATER;
    this.queue.push({ bytes: chunk, fds: [...fds] });
    this.queuedBytes += chunk.length;
    void this.pump();
    return this.queuedBytes < HIGH_WATER;
  }

  drain(): Promise<void> {
    if (this.failed) return Promise.reject(this.failed);
    if (this.queue.length === 0 && !this.pumping) return Promise.resolve();
    return new Promise((resolve, reject) => this.drainers.push({ resolve, reject }));
  }

  /** Everything queued is sent, then the write side is shut down (the peer reads EOF). */
  async end(): Promise<void> {
    if (this.ended) return;
    await this.drain();
    this.ended = true;
    try {
      this.sock.shutdownWrite();
    } catch (e) {
      throw this.fail(TransportError.from(e, 'cpr: shutdown'));
    }
  }

  async read(): Promise<Uint8Array | null> {
    if (this.failed) throw this.failed;
    if (this.closed) return null;
    let msg;
    try {
      msg = await this.sock.recv(RECV_SIZE);
    } catch (e) {
      throw this.fail(TransportError.from(e, 'cpr: recvmsg'));
    }
    if (msg === null) return null;
    this.received.push(...msg.fds);
    if (msg.truncated) throw this.fail(new TransportError('EFD_OVERFLOW', 'cpr: descriptors were dropped (MSG_CTRUNC)'));
    if (this.received.length > CPR_CHANNEL_MAX_FDS) {
      throw this.fail(new TransportError('EFD_OVERFLOW', `cpr: more than ${CPR_CHANNEL_MAX_FDS} descriptors received`));
    }
    return msg.payload;
  }

  takeFd(): number | undefined {
    return this.received.shift();
  }

  /**
   * Resolves once the peer has closed its end (QEMU's G_IO_HUP watch): EOF, or an error such as
   * ECONNRESET when it died. Whatever it sends meanwhile is read and dropped, descriptors
   * closed. The source waits here before connecting the main channel.
   */
  async hangup(): Promise<void> {
    for (;;) {
      let chunk: Uint8Array | null;
      try {
        chunk = await this.read();
      } catch {
        return;
      }
      this.closeReceived();
      if (chunk === null) return;
    }
  }

  /** Closes the socket and every received descriptor nobody took. Idempotent. */
  destroy(err?: Error): void {
    if (err && !this.failed) this.failed = err;
    if (this.closed) return;
    this.closed = true;
    this.sock.close();
    this.closeReceived();
    const e = this.failed ?? new TransportError('EDESTROYED', 'cpr: channel destroyed');
    for (const d of this.drainers.splice(0)) d.reject(e);
    this.queue.length = 0;
  }

  private closeReceived(): void {
    for (const fd of this.received.splice(0)) closeQuietly(fd);
  }

  private fail(e: Error): Error {
    if (!this.failed) this.failed = e;
    this.destroy(e);
    return this.failed;
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.queue.length && !this.closed) {
        const p = this.queue[0];
        await this.sock.send(p.bytes.length ? p.bytes : SERVICE_PAD, p.fds);
        this.queue.shift();
        this.queuedBytes -= p.bytes.length;
      }
    } catch (e) {
      this.fail(TransportError.from(e, 'cpr: sendmsg'));
    } finally {
      this.pumping = false;
    }
    if (this.failed) return;
    if (this.queue.length === 0) for (const d of this.drainers.splice(0)) d.resolve();
  }
}

/** sendmsg needs at least one byte to carry descriptors; writeFds always gives one. */
const SERVICE_PAD = Uint8Array.of(0x20);


/** The old process's end: connect to the new process's cpr socket. */
export function connectCpr(addr: MigrationAddress): CprChannel {
  if (addr.transport !== 'socket' || addr.type !== 'unix') {
    throw new TransportError('EUNSUPPORTED', 'bad cpr channel address; must be unix');
  }
  try {
    return new CprChannel(FdSocket.connect(addr.path));
  } catch (e) {
    throw TransportError.from(e, `cpr: connect to '${addr.path}'`);
  }
}

/** The new process's end: one connection on a unix path, or on a socket that listens already. */
export class CprListener {
  private constructor(
    private readonly listener: FdListener,
    private readonly path: string | null,
  ) {}

  static listen(addr: MigrationAddress): CprListener {
    if (addr.transport !== 'socket' || (addr.type !== 'unix' && addr.type !== 'fd')) {
      throw new TransportError('EUNSUPPORTED', 'bad cpr channel socket type; must be unix');
    }
    if (addr.type === 'fd') return new CprListener(FdListener.fromFd(resolveFd(addr.str)), null);
    removeStaleSocket(addr.path);
    try {
      return new CprListener(FdListener.listen(addr.path, 'stream', 1), addr.path);
    } catch (e) {
      throw TransportError.from(e, `cpr: listen on '${addr.path}'`);
    }
  }

  /** The first connection; the listener closes (and its path goes) once it has arrived. */
  async accept(): Promise<CprChannel> {
    try {
      return new CprChannel(await this.listener.accept());
    } finally {
      this.close();
    }
  }

  close(): void {
    this.listener.close();
    if (this.path !== null) removeStaleSocket(this.path);
  }
}

/** As QEMU's unix_listen_saddr, an old socket at the path goes; anything else is refused by
 * bind (EADDRINUSE), since it is somebody's data. */
function removeStaleSocket(path: string): void {
  try {
    if (fs.lstatSync(path).isSocket()) fs.unlinkSync(path);
  } catch {
    /* not there */
  }
}
