/**
 * A ByteChannel over a non-blocking socket descriptor driven by the addon rather than libuv's
 * stream machinery: readiness from one FdPoll (uv_poll on this thread's loop), bytes moved by
 * read(2)/writev(2). Unlike a net.Socket's, the descriptor can be handed to a worker thread
 * (detach()) or shared through a dup: libuv never reads it behind anyone's back, and nothing
 * else queues writes on it. docs/transports.md has the whole contract.
 *
 * Read side — pull: nothing is read before the first read(), so an unread return path pushes
 * back on its sender; after that the channel reads whenever the socket is readable, until
 * `readHighWaterMark` bytes wait unread, and resumes below the mark.
 *
 *   kernel ─read(2)─▶ slab [ handed out │ handed out │ free ……… ] ─read()─▶ caller owns chunk
 *
 *   Buffer ownership (read-slabs.ts): read() returns a view of exactly what one read(2) put in
 *   a 1 MiB slab; a region once handed out is never written again, so the caller owns the
 *   chunk for as long as it keeps it, and may modify it. A caller that is done with a chunk and
 *   kept no view of it may give it back (recycle()) for its memory to be read into again.
 *
 * Write side — writev(2) at once when nothing is queued; the rest is queued as it is (views,
 * never copied) and written on writability. write() is false at `highWaterMark` queued bytes;
 * end() flushes, then shutdown(SHUT_WR), and the return path keeps flowing the other way.
 *
 * Errors: the first is kept and named after the failing call ("unix: read ECONNRESET"); pending
 * and later read()/drain()/end() reject with it, queues are dropped, the descriptor is closed.
 * It is also closed once both directions have finished, as Node does with a socket.
 */
import { FdPoll, native, UV_READABLE, UV_WRITABLE } from '../host';
import type { ByteChannel } from '../stream';
import { TransportError } from './errors';
import { ReadSlabs } from './read-slabs';
import { DEFAULT_HIGH_WATER_MARK, DEFAULT_READ_HIGH_WATER_MARK, type ChannelOptions } from './types';

const MAX_IOV = 1024;
const EMPTY = new Uint8Array(0);

export interface FdChannelOptions extends ChannelOptions {
  /** Names the transport in messages ('tcp', 'unix', 'fd'). */
  label?: string;
  /** False: no read direction (read() resolves null at once). */
  readable?: boolean;
  /** False: no write direction (write() throws ENOT_WRITABLE). */
  writable?: boolean;
}

interface Waiter<T> {
  resolve: (v: T) => void;
  reject: (e: Error) => void;
}

export class FdChannel implements ByteChannel {
  readonly label: string;
  private fdNumber: number | undefined;
  private readonly poll: FdPoll;
  private failure: Error | null = null;
  private destroyed = false;
  private detached = false;

  private readonly readQueue: Uint8Array[] = [];
  private readHead = 0;
  private readQueued = 0;
  private eof: boolean;
  private flowing = false;
  private reader: Waiter<Uint8Array | null> | null = null;
  private readonly slabs = new ReadSlabs();
  private readonly readHwm: number;

  private readonly canWrite: boolean;
  private writeQueue: Uint8Array[] = [];
  private writeHead = 0;
  private writeOffset = 0;
  private writeQueued = 0;
  private ended = false;
  private shutDown: boolean;
  private endPromise: Promise<void> | null = null;
  private readonly drainers: Waiter<void>[] = [];
  private readonly flushers: Waiter<void>[] = [];
  private readonly hwm: number;

  /** Takes ownership of `fd`, a connected stream socket; it is made non-blocking. */
  constructor(fd: number, opts: FdChannelOptions = {}) {
    this.label = opts.label ?? 'fd';
    try {
      this.poll = new FdPoll(fd, (events, failed) => this.onReady(events, failed));
    } catch (e) {
      throw TransportError.fromSyscall(e, this.label);
    }
    this.fdNumber = fd;
    this.eof = opts.readable === false;
    this.canWrite = opts.writable !== false;
    this.shutDown = !this.canWrite;
    this.hwm = Math.max(1, opts.highWaterMark ?? DEFAULT_HIGH_WATER_MARK);
    this.readHwm = Math.max(1, opts.readHighWaterMark ?? DEFAULT_READ_HIGH_WATER_MARK);
  }

  /** The descriptor while this channel owns it (undefined once closed or detached). */
  get fd(): number | undefined {
    return this.fdNumber;
  }

  /** Bytes handed to write()/writev() and not yet taken by the kernel. Someone writing to
   * the descriptor directly (the native page path) does so only while this is 0. */
  get queuedBytes(): number {
    return this.writeQueued;
  }

  // ── Read side ─────────────────────────────────────────────────────────────────────────────

  read(): Promise<Uint8Array | null> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.detached) return Promise.reject(this.detachedError());
    if (this.readHead < this.readQueue.length) {
      const c = this.readQueue[this.readHead];
      this.readQueue[this.readHead++] = EMPTY;
      if (this.readHead === this.readQueue.length) {
        this.readQueue.length = 0;
        this.readHead = 0;
      }
      this.readQueued -= c.length;
      this.updatePoll();
      return Promise.resolve(c);
    }
    if (this.eof) return Promise.resolve(null);
    if (this.reader) return Promise.reject(new TransportError('EREAD_BUSY', `${this.label}: concurrent read()`));
    this.flowing = true;
    return new Promise((resolve, reject) => {
      this.reader = { resolve, reject };
      this.pull();
    });
  }

  /** read(2) until the socket is empty (a short read says so), it ends, or the mark is hit. */
  private pull(): void {
    const fd = this.fdNumber;
    while (fd !== undefined && !this.eof && !this.failure && (this.reader || this.readQueued < this.readHwm)) {
      const { buf, at, len: room } = this.slabs.room();
      let n: number;
      try {
        n = native.read(fd, buf, at, room);
      } catch (e) {
        return this.fail(TransportError.fromSyscall(e, this.label));
      }
      if (n < 0) break;
      if (n === 0) {
        this.finishRead();
        break;
      }
      const chunk = this.slabs.take(at, n);
      const r = this.reader;
      if (r) {
        this.reader = null;
        r.resolve(chunk);
      } else {
        this.readQueue.push(chunk);
        this.readQueued += n;
      }
      if (n < room) break;
    }
    this.updatePoll();
  }

  /** The reader is done with `chunk` (from read()) and holds no view of it: its bytes may be
   * read into again. Other chunks are ignored. Call at most once per chunk. */
  recycle(chunk: Uint8Array, reusable = true): void {
    this.slabs.recycle(chunk, reusable);
  }

  private finishRead(): void {
    this.eof = true;
    const r = this.reader;
    this.reader = null;
    r?.resolve(null);
    this.closeIfFinished();
  }

  // ── Write side ────────────────────────────────────────────────────────────────────────────

  write(chunk: Uint8Array): boolean {
    return this.writev([chunk]);
  }

  writev(chunks: readonly Uint8Array[]): boolean {
    if (!this.writeAllowed()) return false;
    const wasEmpty = this.writeQueued === 0;
    for (let i = 0; i < chunks.length; i++) {
      const c = chunks[i];
      if (c.length === 0) continue;
      this.writeQueue.push(c);
      this.writeQueued += c.length;
    }
    if (wasEmpty && this.writeQueued > 0) this.writeOut();
    return !this.failure && this.writeQueued < this.hwm;
  }

  drain(): Promise<void> {
    const bad = this.unusable();
    if (bad) return Promise.reject(bad);
    if (this.writeQueued < this.hwm) return Promise.resolve();
    return new Promise((resolve, reject) => this.drainers.push({ resolve, reject }));
  }

  /** Resolves once every queued byte has been taken by the kernel (before detach()). */
  flushed(): Promise<void> {
    const bad = this.unusable();
    if (bad) return Promise.reject(bad);
    if (this.writeQueued === 0) return Promise.resolve();
    return new Promise((resolve, reject) => this.flushers.push({ resolve, reject }));
  }

  end(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.endPromise) return this.endPromise;
    const bad = this.unusable();
    if (bad) return Promise.reject(bad);
    this.ended = true;
    this.endPromise = this.canWrite ? this.flushed().then(() => this.shutdownWrite()) : Promise.resolve();
    return this.endPromise;
  }

  private writeAllowed(): boolean {
    if (this.failure || this.destroyed) return false;
    if (this.detached) throw this.detachedError();
    if (this.ended) throw new TransportError('EWRITE_AFTER_END', `${this.label}: write after end()`);
    if (!this.canWrite) throw new TransportError('ENOT_WRITABLE', `${this.label}: this channel has no write direction`);
    return true;
  }

  /** writev(2) from the queue head until it is empty or the kernel takes less than offered. */
  private writeOut(): void {
    const fd = this.fdNumber;
    while (fd !== undefined && this.writeQueued > 0) {
      const offered = Math.min(MAX_IOV, this.writeQueue.length - this.writeHead);
      let n: number;
      try {
        n = native.writev(fd, this.writeQueue, this.writeHead, this.writeOffset);
      } catch (e) {
        return this.fail(TransportError.fromSyscall(e, this.label));
      }
      if (n < 0) break;
      const head = this.writeHead;
      this.advance(n);
      if (this.writeOffset > 0 || this.writeHead - head < offered) break;
    }
    if (this.writeQueued < this.hwm) settle(this.drainers, null);
    if (this.writeQueued === 0) settle(this.flushers, null);
    this.updatePoll();
  }

  private advance(n: number): void {
    this.writeQueued -= n;
    const q = this.writeQueue;
    while (n > 0) {
      const rest = q[this.writeHead].length - this.writeOffset;
      if (n < rest) {
        this.writeOffset += n;
        break;
      }
      n -= rest;
      q[this.writeHead++] = EMPTY; // written: let the GC have the page view or staging block
      this.writeOffset = 0;
    }
    if (this.writeHead === q.length) {
      q.length = 0;
      this.writeHead = 0;
    } else if (this.writeHead >= MAX_IOV && this.writeHead * 2 >= q.length) {
      q.splice(0, this.writeHead);
      this.writeHead = 0;
    }
  }

  private shutdownWrite(): void {
    const bad = this.unusable();
    if (bad) throw bad;
    if (this.shutDown) return;
    try {
      native.shutdownWrite(this.fdNumber!);
    } catch (e) {
      const err = TransportError.fromSyscall(e, this.label);
      this.fail(err);
      throw err;
    }
    this.shutDown = true;
    this.closeIfFinished();
  }

  // ── Both ──────────────────────────────────────────────────────────────────────────────────

  destroy(err?: Error): void {
    if (this.destroyed) return;
    if (err) this.fail(err);
    this.destroyed = true;
    this.dropQueues();
    this.eof = true;
    const r = this.reader;
    this.reader = null;
    r?.resolve(null); // only reached without an error: fail() already rejected it otherwise
    settle(this.drainers, this.destroyedError());
    settle(this.flushers, this.destroyedError());
    this.release();
  }

  /** Hand the open descriptor over (to a worker thread, say); this channel is unusable after.
   * Refused (EDETACH_PENDING) while bytes are queued either way or a read() is pending: await
   * flushed() first, and do not read from a channel that is to be handed over. */
  detach(): number {
    const bad = this.unusable() ?? (this.fdNumber === undefined ? this.destroyedError() : null);
    if (bad) throw bad;
    const busy = [
      this.writeQueued > 0 && `${this.writeQueued} bytes not yet written`,
      this.readQueued > 0 && `${this.readQueued} bytes read ahead`,
      this.reader && 'a read() pending',
    ].find(Boolean);
    if (busy) throw new TransportError('EDETACH_PENDING', `${this.label}: cannot detach with ${busy}`);
    const fd = this.fdNumber!;
    this.poll.close();
    this.fdNumber = undefined;
    this.detached = true;
    this.eof = true;
    return fd;
  }

  private onReady(events: number, failed: boolean): void {
    if (events & UV_READABLE) this.pull();
    if (events & UV_WRITABLE && this.writeQueued > 0) this.writeOut();
    if (!failed || this.failure || this.fdNumber === undefined) return;
    // POLLERR that neither call reported (reading was paused at the mark, say): take it here
    // rather than let the level-triggered error wake us again and again.
    try {
      const errno = native.socketError(this.fdNumber);
      if (errno) this.fail(TransportError.fromErrno(errno, events & UV_WRITABLE ? 'writev' : 'read', this.label));
    } catch (e) {
      this.fail(TransportError.fromSyscall(e, this.label));
    }
  }

  private updatePoll(): void {
    if (this.fdNumber === undefined) return;
    let events = 0;
    if (this.flowing && !this.eof && !this.failure && this.readQueued < this.readHwm) events |= UV_READABLE;
    if (this.writeQueued > 0) events |= UV_WRITABLE;
    this.poll.set(events);
  }

  /** Keep the first error; reject everything pending; close the descriptor. */
  private fail(err: Error): void {
    if (this.failure || this.destroyed) return;
    this.failure = err;
    this.dropQueues();
    const r = this.reader;
    this.reader = null;
    r?.reject(err);
    settle(this.drainers, err);
    settle(this.flushers, err);
    this.release();
  }

  private closeIfFinished(): void {
    if (this.eof && this.shutDown && this.writeQueued === 0) this.release();
  }

  private release(): void {
    this.poll.close();
    const fd = this.fdNumber;
    this.fdNumber = undefined;
    if (fd === undefined || this.detached) return;
    try {
      native.close(fd);
    } catch {
      /* already closed: nothing left to release */
    }
  }

  private dropQueues(): void {
    this.readQueue.length = 0;
    this.readHead = 0;
    this.readQueued = 0;
    this.writeQueue = [];
    this.writeHead = 0;
    this.writeOffset = 0;
    this.writeQueued = 0;
  }

  /** Why nothing more can be done with this channel, or null. */
  private unusable(): Error | null {
    if (this.failure) return this.failure;
    if (this.destroyed) return this.destroyedError();
    return this.detached ? this.detachedError() : null;
  }

  private destroyedError(): TransportError {
    return new TransportError('EDESTROYED', `${this.label}: channel destroyed`);
  }

  private detachedError(): TransportError {
    return new TransportError('EDETACHED', `${this.label}: the descriptor was handed over (detach())`);
  }
}

function settle(list: Waiter<void>[], err: Error | null): void {
  const ws = list.splice(0);
  for (const w of ws) {
    if (err) w.reject(err);
    else w.resolve();
  }
}
