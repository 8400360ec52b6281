/**
 * file:PATH[,offset=N] — QEMU's migration/file.c: the stream saved to, or loaded from, a
 * regular file, starting N bytes in (so a stream can follow a header someone else wrote).
 *
 *   outgoing  open(PATH, O_CREAT|O_WRONLY, 0600); ftruncate(N); write from N on
 *             (file_start_outgoing_migration: bytes before N are kept, anything after N is
 *             cut off first)
 *   incoming  open(PATH, O_RDONLY); read from N to end of file (file_start_incoming_migration)
 *
 * A file has no return path: the outgoing channel's read() resolves null at once, the
 * incoming channel's write() throws ENOT_WRITABLE. Nothing is fsync'd (QEMU does not either).
 *
 * I/O is positional (pwritev/pread through libuv's thread pool), so no seek is needed and the
 * descriptor's offset is never relied on. Writes are queued as handed over (no copy) and sent
 * in batches of up to IOV_MAX pieces per pwritev, one batch in flight, so a chunk is written
 * in order and exactly once; write() returns false above the high-water mark and drain()
 * waits for the disk. Reads keep two chunks in flight ahead of the reader.
 */
import * as fs from 'node:fs';
import type { ByteChannel } from '../stream';
import { TransportError } from './errors';
import { singleChannelListener } from './single-listener';
import { DEFAULT_HIGH_WATER_MARK, type ChannelOptions, type IncomingListener } from './types';

export interface FileOptions extends ChannelOptions {
  /** Bytes per read on the incoming side (default 1 MiB). */
  readChunkSize?: number;
}

const IOV_MAX = 1024;
const DEFAULT_READ_CHUNK = 1024 * 1024;
const READ_AHEAD = 2;

interface Waiter<T> {
  resolve: (v: T) => void;
  reject: (e: Error) => void;
}

function settle(list: Waiter<void>[], err: Error | null): void {
  for (const w of list.splice(0)) {
    if (err) w.reject(err);
    else w.resolve();
  }
}

function destroyedError(): TransportError {
  return new TransportError('EDESTROYED', 'file: channel destroyed');
}

function notWritable(): TransportError {
  return new TransportError('ENOT_WRITABLE', 'file: an incoming file channel has no write direction');
}

/* ------------------------------------------------------------------------------------------ */

class FileWriteChannel implements ByteChannel {
  private readonly queue: Uint8Array[] = [];
  private head = 0;
  private queued = 0;
  private inflight = false;
  private failure: Error | null = null;
  private destroyed = false;
  private ended = false;
  private endPromise: Promise<void> | null = null;
  private descriptor: number | null;
  private readonly drainers: Waiter<void>[] = [];
  private readonly idlers: Waiter<void>[] = [];
  private readonly hwm: number;

  constructor(
    fd: number,
    private position: number,
    private readonly path: string,
    opts: ChannelOptions,
  ) {
    this.descriptor = fd;
    this.hwm = opts.highWaterMark ?? DEFAULT_HIGH_WATER_MARK;
  }

  get fd(): number | undefined {
    return this.descriptor ?? undefined;
  }

  write(chunk: Uint8Array): boolean {
    if (!this.writable()) return false;
    this.enqueue(chunk);
    this.pump();
    return this.queued < this.hwm;
  }

  writev(chunks: readonly Uint8Array[]): boolean {
    if (!this.writable()) return false;
    for (let i = 0; i < chunks.length; i++) this.enqueue(chunks[i]);
    this.pump();
    return this.queued < this.hwm;
  }

  drain(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.destroyed) return Promise.reject(destroyedError());
    if (this.queued < this.hwm) return Promise.resolve();
    return new Promise((resolve, reject) => this.drainers.push({ resolve, reject }));
  }

  end(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.endPromise) return this.endPromise;
    if (this.destroyed) return Promise.reject(destroyedError());
    this.ended = true;
    const idle = this.queued === 0 && !this.inflight ? Promise.resolve() : new Promise<void>((resolve, reject) => this.idlers.push({ resolve, reject }));
    this.endPromise = idle.then(() => this.closeFd());
    return this.endPromise;
  }

  /** No return path on a file: the reverse direction is empty. */
  read(): Promise<Uint8Array | null> {
    return this.failure ? Promise.reject(this.failure) : Promise.resolve(null);
  }

  destroy(err?: Error): void {
    if (this.destroyed) return;
    if (err) this.fail(err);
    this.destroyed = true;
    this.dropQueue();
    settle(this.drainers, destroyedError());
    settle(this.idlers, destroyedError());
    // A pwritev still running in the thread pool must finish before the number is freed.
    if (!this.inflight) void this.closeFd().catch(() => undefined);
  }

  private writable(): boolean {
    if (this.failure || this.destroyed) return false;
    if (this.ended) throw new TransportError('EWRITE_AFTER_END', 'file: write after end()');
    return true;
  }

  private enqueue(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.queue.push(chunk);
    this.queued += chunk.length;
  }

  private pump(): void {
    if (this.inflight || this.failure || this.destroyed || this.descriptor === null) return;
    if (this.head >= this.queue.length) {
      this.queue.length = 0;
      this.head = 0;
      settle(this.idlers, null);
      return;
    }
    const batch = this.queue.slice(this.head, this.head + IOV_MAX);
    this.inflight = true;
    fs.writev(this.descriptor, batch, this.position, (err, written) => {
      this.inflight = false;
      if (this.destroyed) {
        void this.closeFd().catch(() => undefined);
        return;
      }
      if (err) return this.fail(TransportError.from(err, `file: write ${this.path}`));
      this.consume(written);
      if (this.queued < this.hwm) settle(this.drainers, null);
      this.pump();
    });
  }

  /** Drop `n` written bytes from the front of the queue (a short write leaves a tail). */
  private consume(n: number): void {
    this.position += n;
    this.queued -= n;
    while (n > 0) {
      const c = this.queue[this.head];
      if (c.length <= n) {
        n -= c.length;
        this.head++;
      } else {
        this.queue[this.head] = c.subarray(n);
        n = 0;
      }
    }
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
  }

  private fail(err: Error): void {
    if (this.failure || this.destroyed) return;
    this.failure = err;
    this.dropQueue();
    settle(this.drainers, err);
    settle(this.idlers, err);
    if (!this.inflight) void this.closeFd().catch(() => undefined);
  }

  private dropQueue(): void {
    this.queue.length = 0;
    this.head = 0;
    this.queued = 0;
  }

  private closeFd(): Promise<void> {
    const fd = this.descriptor;
    if (fd === null) return Promise.resolve();
    this.descriptor = null;
    return new Promise((resolve, reject) =>
      fs.close(fd, (e) => (e ? reject(TransportError.from(e, `file: close ${this.path}`)) : resolve())),
    );
  }
}

/* ------------------------------------------------------------------------------------------ */

class FileReadChannel implements ByteChannel {
  private readonly ahead: Promise<Buffer>[] = [];
  private inflight = 0;
  private eof = false;
  private busy = false;
  private failure: Error | null = null;
  private destroyed = false;
  private descriptor: number | null;

  constructor(
    fd: number,
    private position: number,
    private readonly path: string,
    private readonly chunkSize: number,
  ) {
    this.descriptor = fd;
  }

  get fd(): number | undefined {
    return this.descriptor ?? undefined;
  }

  async read(): Promise<Uint8Array | null> {
    if (this.failure) throw this.failure;
    if (this.busy) throw new TransportError('EREAD_BUSY', 'file: concurrent read()');
    if (this.destroyed || (this.eof && this.ahead.length === 0)) return null;
    this.busy = true;
    try {
      this.fillAhead();
      const chunk = await this.ahead.shift()!;
      if (this.failure) throw this.failure;
      if (this.destroyed) return null;
      if (chunk.length < this.chunkSize) {
        // Short read: the end of the file. Reads queued behind it can only find nothing more.
        this.eof = true;
        this.ahead.length = 0;
        this.closeWhenIdle();
      }
      return chunk.length > 0 ? chunk : null;
    } finally {
      this.busy = false;
    }
  }

  write(): boolean {
    throw notWritable();
  }

  writev(): boolean {
    throw notWritable();
  }

  drain(): Promise<void> {
    return this.failure ? Promise.reject(this.failure) : Promise.resolve();
  }

  /** Nothing to flush: there is no write direction. */
  end(): Promise<void> {
    return this.failure ? Promise.reject(this.failure) : Promise.resolve();
  }

  destroy(err?: Error): void {
    if (this.destroyed) return;
    if (err && !this.failure) this.failure = err;
    this.destroyed = true;
    this.ahead.length = 0;
    this.closeWhenIdle();
  }

  private fillAhead(): void {
    while (!this.eof && this.ahead.length < READ_AHEAD && this.descriptor !== null) {
      const p = this.readAt(this.descriptor, this.position);
      p.catch(() => undefined); // observed by read(); a discarded read-ahead must not be unhandled
      this.ahead.push(p);
      this.position += this.chunkSize;
    }
  }

  private readAt(fd: number, position: number): Promise<Buffer> {
    this.inflight++;
    const buf = Buffer.allocUnsafe(this.chunkSize);
    return new Promise((resolve, reject) => {
      fs.read(fd, buf, 0, buf.length, position, (err, n) => {
        this.inflight--;
        if (err) {
          const e = TransportError.from(err, `file: read ${this.path}`);
          if (!this.failure) this.failure = e;
          reject(e);
        } else {
          resolve(n === buf.length ? buf : buf.subarray(0, n));
        }
        this.closeWhenIdle();
      });
    });
  }

  /** Close once done (EOF or destroyed) and no pread is still using the number. */
  private closeWhenIdle(): void {
    if (this.inflight > 0 || this.descriptor === null || !(this.eof || this.destroyed || this.failure)) return;
    const fd = this.descriptor;
    this.descriptor = null;
    fs.close(fd, () => undefined);
  }
}

/* ------------------------------------------------------------------------------------------ */

function openFile(path: string, flags: number, mode?: number): Promise<number> {
  return new Promise((resolve, reject) =>
    fs.open(path, flags, mode, (e, fd) => (e ? reject(TransportError.from(e, `file: open ${path}`)) : resolve(fd))),
  );
}

/** Outgoing file: (QEMU: file_start_outgoing_migration). */
export async function connectFile(addr: { filename: string; offset: number }, opts: FileOptions = {}): Promise<ByteChannel> {
  const { O_CREAT, O_WRONLY } = fs.constants;
  const fd = await openFile(addr.filename, O_CREAT | O_WRONLY, 0o600);
  try {
    await new Promise<void>((resolve, reject) => fs.ftruncate(fd, addr.offset, (e) => (e ? reject(e) : resolve())));
  } catch (e) {
    fs.close(fd, () => undefined);
    throw TransportError.from(e, `file: truncate ${addr.filename} to offset ${addr.offset}`);
  }
  return new FileWriteChannel(fd, addr.offset, addr.filename, opts);
}

/** Incoming file: (QEMU: file_start_incoming_migration): the file is opened at once. */
export async function listenFile(addr: { filename: string; offset: number }, opts: FileOptions = {}): Promise<IncomingListener> {
  const fd = await openFile(addr.filename, fs.constants.O_RDONLY);
  const chunk = Math.max(4096, opts.readChunkSize ?? DEFAULT_READ_CHUNK);
  return singleChannelListener('file', new FileReadChannel(fd, addr.offset, addr.filename, chunk));
}
