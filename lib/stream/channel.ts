/**
 * The byte channel: the one contract every transport implements (tcp, unix, exec, fd, file,
 * cpr). A transport only yields a ByteChannel; buffering, rate limiting, error stickiness and
 * the wire format live above it, in QemuFileWriter / QemuFileReader.
 *
 * Write side — push with backpressure (the shape of a Node Writable, minus events):
 *   write(chunk)    queue bytes; returns false once the channel holds more than it wants
 *                   (its high-water mark): the producer should `await drain()` before more.
 *   writev(chunks)  optional: the same for a vector (one writev(2) for a header + page).
 *   drain()         resolves when the channel is below its high-water mark again
 *                   (at once if it already is); rejects if the channel failed.
 *   end()           flush everything queued, then half-close (FIN / close the fd);
 *                   resolves when done. Writing after end() is an error.
 *
 *   Ownership: a chunk handed to write/writev belongs to the channel until it has been
 *   written; the channel never modifies it, and the producer never modifies it afterwards
 *   (QemuFileWriter never reuses a staged region it has handed over). The one documented
 *   exception is guest RAM queued zero-copy: its bytes may change before they hit the wire,
 *   which precopy's dirty tracking already covers (the page is dirty again and is resent).
 *
 * Read side — pull:
 *   read()          resolves with the next chunk (owned by the caller from then on), or null
 *                   at end of stream; rejects on a channel error. One read at a time.
 *   recycle(chunk, reusable?)  optional: the reader is done with a consumed chunk; reusable
 *                   (the default) when it kept no view of it, so its memory may be read into
 *                   again. Every chunk is handed back once, kept or not.
 *
 * Descriptors (optional; a unix socket channel that passes SCM_RIGHTS, the cpr channel):
 *   writeFds(chunk, fds)  like write(), with `fds` riding on the chunk's first byte; the
 *                         channel duplicates nothing: the caller keeps its own descriptors.
 *   takeFd()              the oldest descriptor received and not yet taken (the caller owns
 *                         it), or undefined. A descriptor arrives with the bytes it was sent
 *                         on, so once those bytes have been read it is here.
 *
 *   destroy(err?)   abort both directions now; pending and later reads/drains reject with
 *                   `err` (reads resolve null when no error is given).
 *   fd              optional file descriptor, for native fast paths (bulk page I/O, SCM_RIGHTS).
 *
 * Pull on the read side because the parser decides how much it needs (`ensure(n)`); push with
 * backpressure on the write side because the producer (the RAM loop) runs ahead of the socket.
 */

export interface ByteSource {
  read(): Promise<Uint8Array | null>;
  takeFd?(): number | undefined;
  /** Optional: the caller is done with a chunk read() gave it (at most once per chunk). With
   * `reusable` (the default) it kept no view of it, so the source may reuse its memory
   * (FdChannel's read slabs); without, the source only forgets the chunk. */
  recycle?(chunk: Uint8Array, reusable?: boolean): void;
}

export interface ByteSink {
  write(chunk: Uint8Array): boolean;
  writev?(chunks: readonly Uint8Array[]): boolean;
  drain(): Promise<void>;
  end(): Promise<void>;
  writeFds?(chunk: Uint8Array, fds: readonly number[]): boolean;
}

export interface ByteChannel extends ByteSource, ByteSink {
  destroy(err?: Error): void;
  readonly fd?: number;
}

/**
 * A sink whose descriptor the producer may also write to itself (FdChannel): the RAM saver's
 * native page path sends runs of pages straight from guest RAM. Only while nothing is queued
 * in the channel (queuedBytes 0), so bytes stay in order; flushed() waits for that.
 */
export interface DirectSink extends ByteSink {
  readonly fd: number | undefined;
  readonly queuedBytes: number;
  flushed(): Promise<void>;
}

export function isDirectSink(s: ByteSink): s is DirectSink {
  const d = s as Partial<DirectSink>;
  return typeof d.queuedBytes === 'number' && typeof d.flushed === 'function';
}

/** A real copy (Buffer#slice would return a view). */
function copyBytes(c: Uint8Array): Uint8Array {
  const out = new Uint8Array(c.length);
  out.set(c);
  return out;
}

/* ------------------------------------------------------------------------------------------ */
/* In-memory pipe pair                                                                          */
/* ------------------------------------------------------------------------------------------ */

export interface MemoryPipeOptions {
  /** Bytes the peer may hold unread before write() returns false (default 1 MiB). */
  highWaterMark?: number;
  /** Copy chunks on write, so the reader sees the bytes as they were when written
   * (default true, like a socket that has taken the data). */
  copy?: boolean;
}

interface Waiter<T> {
  resolve: (v: T) => void;
  reject: (e: Error) => void;
}

/** One direction of the pipe: a queue of chunks with a single pending reader. */
class PipeQueue {
  readonly chunks: Uint8Array[] = [];
  head = 0;
  bytes = 0;
  ended = false;
  failed: Error | null = null;
  /** destroyed (with or without an error): nothing written arrives any more, as on a socket
   * whose peer is gone */
  closed = false;
  reader: Waiter<Uint8Array | null> | null = null;
  drainers: Waiter<void>[] = [];

  constructor(readonly hwm: number) {}

  push(chunk: Uint8Array): boolean {
    if (this.closed) return false;
    if (chunk.length === 0) return this.bytes < this.hwm;
    if (this.reader) {
      const r = this.reader;
      this.reader = null;
      r.resolve(chunk);
    } else {
      this.chunks.push(chunk);
      this.bytes += chunk.length;
    }
    return this.bytes < this.hwm;
  }

  read(): Promise<Uint8Array | null> {
    if (this.failed) return Promise.reject(this.failed);
    if (this.head < this.chunks.length) {
      const c = this.chunks[this.head++];
      if (this.head > 64 && this.head * 2 > this.chunks.length) {
        this.chunks.splice(0, this.head);
        this.head = 0;
      }
      this.bytes -= c.length;
      if (this.bytes < this.hwm) this.wakeDrainers();
      return Promise.resolve(c);
    }
    if (this.ended) return Promise.resolve(null);
    if (this.reader) return Promise.reject(new Error('memory pipe: concurrent read()'));
    return new Promise((resolve, reject) => {
      this.reader = { resolve, reject };
    });
  }

  drain(): Promise<void> {
    if (this.failed) return Promise.reject(this.failed);
    if (this.closed) return Promise.reject(new Error('memory pipe destroyed'));
    if (this.bytes < this.hwm) return Promise.resolve();
    return new Promise((resolve, reject) => this.drainers.push({ resolve, reject }));
  }

  end(): void {
    this.ended = true;
    if (this.reader && this.head >= this.chunks.length) {
      const r = this.reader;
      this.reader = null;
      r.resolve(null);
    }
  }

  fail(err: Error | undefined): void {
    if (err) this.failed = err;
    this.closed = true;
    this.ended = true;
    this.chunks.length = 0;
    this.head = 0;
    this.bytes = 0;
    const r = this.reader;
    this.reader = null;
    if (r) {
      if (err) r.reject(err);
      else r.resolve(null);
    }
    const ds = this.drainers.splice(0);
    for (const d of ds) d.reject(err ?? new Error('memory pipe destroyed'));
  }

  private wakeDrainers(): void {
    const ds = this.drainers.splice(0);
    for (const d of ds) d.resolve();
  }
}

class MemoryEndpoint implements ByteChannel {
  private writeEnded = false;

  constructor(
    private readonly inbox: PipeQueue,
    private readonly outbox: PipeQueue,
    private readonly copy: boolean,
  ) {}

  write(chunk: Uint8Array): boolean {
    if (this.outbox.failed) return false;
    if (this.writeEnded) throw new Error('memory pipe: write after end()');
    return this.outbox.push(this.copy ? copyBytes(chunk) : chunk);
  }

  writev(chunks: readonly Uint8Array[]): boolean {
    let ok = true;
    for (const c of chunks) ok = this.write(c);
    return ok;
  }

  drain(): Promise<void> {
    return this.outbox.drain();
  }

  end(): Promise<void> {
    if (this.outbox.failed) return Promise.reject(this.outbox.failed);
    this.writeEnded = true;
    this.outbox.end();
    return Promise.resolve();
  }

  read(): Promise<Uint8Array | null> {
    return this.inbox.read();
  }

  destroy(err?: Error): void {
    this.inbox.fail(err);
    this.outbox.fail(err);
  }
}

/** Two connected in-memory channels: what one writes, the other reads. For tests. */
export function memoryChannelPair(opts: MemoryPipeOptions = {}): [ByteChannel, ByteChannel] {
  const hwm = opts.highWaterMark ?? 1024 * 1024;
  const copy = opts.copy ?? true;
  const ab = new PipeQueue(hwm);
  const ba = new PipeQueue(hwm);
  return [new MemoryEndpoint(ba, ab, copy), new MemoryEndpoint(ab, ba, copy)];
}

/* ------------------------------------------------------------------------------------------ */
/* Sinks and sources for tests and tools                                                        */
/* ------------------------------------------------------------------------------------------ */

/** A sink that keeps everything written (copied on write by default). */
export class CollectingSink implements ByteSink {
  readonly chunks: Uint8Array[] = [];
  length = 0;
  ended = false;

  constructor(private readonly copy = true) {}

  write(chunk: Uint8Array): boolean {
    if (this.ended) throw new Error('collecting sink: write after end()');
    if (chunk.length === 0) return true;
    this.chunks.push(this.copy ? copyBytes(chunk) : chunk);
    this.length += chunk.length;
    return true;
  }

  writev(chunks: readonly Uint8Array[]): boolean {
    for (const c of chunks) this.write(c);
    return true;
  }

  drain(): Promise<void> {
    return Promise.resolve();
  }

  end(): Promise<void> {
    this.ended = true;
    return Promise.resolve();
  }

  /** Everything written so far, as one Buffer. */
  bytes(): Buffer {
    return Buffer.concat(this.chunks, this.length);
  }
}

export function collectingSink(opts: { copy?: boolean } = {}): CollectingSink {
  return new CollectingSink(opts.copy ?? true);
}

/** A sink that only counts: the ceiling for writer benchmarks. */
export class NullSink implements ByteSink {
  bytes = 0;
  writes = 0;
  write(chunk: Uint8Array): boolean {
    this.bytes += chunk.length;
    this.writes++;
    return true;
  }
  writev(chunks: readonly Uint8Array[]): boolean {
    for (let i = 0; i < chunks.length; i++) this.bytes += chunks[i].length;
    this.writes++;
    return true;
  }
  drain(): Promise<void> {
    return Promise.resolve();
  }
  end(): Promise<void> {
    return Promise.resolve();
  }
}

/** A source that yields the given chunks in order, then EOF. Chunks are not copied. */
export function chunkSource(chunks: readonly Uint8Array[]): ByteSource {
  let i = 0;
  return {
    read(): Promise<Uint8Array | null> {
      return Promise.resolve(i < chunks.length ? chunks[i++] : null);
    },
  };
}

/** A source over one buffer, cut into pieces of `chunkSize` bytes (default: one piece), or at
 * the given ascending split offsets. For tests that feed input split at every boundary. */
export function bytesSource(data: Uint8Array, split: number | readonly number[] = data.length || 1): ByteSource {
  const chunks: Uint8Array[] = [];
  if (typeof split === 'number') {
    const step = Math.max(1, split);
    for (let o = 0; o < data.length; o += step) chunks.push(data.subarray(o, Math.min(data.length, o + step)));
  } else {
    let prev = 0;
    for (const s of split) {
      if (s > prev && s < data.length) {
        chunks.push(data.subarray(prev, s));
        prev = s;
      }
    }
    if (prev < data.length) chunks.push(data.subarray(prev));
  }
  return chunkSource(chunks);
}
