/**
 * The outgoing half of QEMU's QEMUFile (migration/qemu-file.c): a buffered, rate-limited
 * writer with a sticky first error, over a ByteSink.
 *
 * Wire primitives (all multi-byte integers big-endian, QEMU's qemu_put_be16/32/64):
 *
 *   putU8       ┌────┐            putBe32   ┌────┬────┬────┬────┐
 *               │ v  │                      │ b3 │ b2 │ b1 │ b0 │   (most significant first)
 *               └────┘                      └────┴────┴────┴────┘
 *   putCounted  ┌─────┬──────────────┐      putBe64: 8 bytes, same order; bigint (any value,
 *               │ len │ len bytes    │      taken mod 2^64) or a safe-integer number
 *               └─────┴──────────────┘      (negative numbers are written two's complement)
 *               len ≤ 255, no NUL (qemu_put_counted_string)
 *
 * Buffering: small puts land in a staging buffer (256 KiB by default). putBufferRef(view)
 * queues a *view* of caller memory (guest RAM pages) without copying, like QEMU's
 * qemu_put_buffer_async / add_to_iovec. The writer keeps a vector of pending pieces —
 * staged segments and referenced views, in put order — and hands the vector to the sink in
 * one writev when it has grown large (bytes or entries) or on flush():
 *
 *   staging  [hdr|hdr|hdr|........ free ........]     iov: seg(hdr) page seg(hdr) page …
 *             ^ handed      ^segStart ^pos
 *
 * A staged region, once handed to the sink, is never written again: the sink may hold it
 * until it is on the wire. When the staging buffer is used up a new one is allocated (one
 * allocation per 256 KiB of *staged* bytes; page payloads never touch it). No put allocates.
 *
 * Sticky error (qemu_file_set_error): the first error is kept with its message and stream
 * offset; after it every put does nothing and `error` reports it. Callers check at section
 * boundaries. Writing after close() is an ESTREAM_CLOSED error.
 *
 * Direct writes (the RAM saver's native page path): with a sink that owns a descriptor
 * (FdChannel), directFd() hands everything pending to the sink and, if the sink has nothing
 * queued, returns the descriptor; the caller writes records to it itself and reports them
 * with accountDirect(), and queues whatever the kernel did not take with putBufferRef() in
 * the same call, so the stream stays in order. Multifd channels' bytes count in the rate
 * limit through `otherChannels`.
 */
import { isDirectSink, type ByteSink } from './channel';
import { StreamError } from './errors';
import { COUNTED_STRING_MAX } from './limits';
import type { RateLimiter } from './rate-limit';

export interface WriterOptions {
  /** Staging buffer size in bytes (default 256 KiB). */
  stagingSize?: number;
  /** Hand the pending vector to the sink once it holds this many bytes (default stagingSize). */
  flushBytes?: number;
  /** ... or this many pieces (default 256; QEMU uses MAX_IOV_SIZE 64). */
  maxIov?: number;
  /** putBufferRef views shorter than this are copied into staging instead (default 256):
   * a vector entry costs more than copying a few bytes. */
  copyThreshold?: number;
  /** QEMU's max-bandwidth limiter; absent = unlimited. */
  rateLimiter?: RateLimiter;
}

export const DEFAULT_STAGING_SIZE = 256 * 1024;
/** Smallest staging buffer: a counted string (256 bytes) must always fit in a fresh one. */
export const MIN_STAGING_SIZE = 4096;
/** The byte a descriptor rides on (QEMU's qemu_file_put_fd sends " "). */
export const FD_SERVICE_BYTE = 0x20;

export class QemuFileWriter {
  private staging: Uint8Array;
  private dv: DataView;
  private pos = 0;
  private segStart = 0;
  private iov: Uint8Array[] = [];
  private total = 0;
  private handed = 0;
  private stopped = false;
  private closed = false;
  private firstError: Error | null = null;
  private needDrain = false;
  private readonly stagingSize: number;
  private readonly flushBytes: number;
  private readonly maxIov: number;
  private readonly copyThreshold: number;
  rateLimiter: RateLimiter | undefined;
  /** Bytes transferred on the migration's other channels (multifd): they count against
   * max-bandwidth with this stream's own, as QEMU's rate limit counts every channel. */
  otherChannels: (() => number) | null = null;

  constructor(
    readonly sink: ByteSink,
    opts: WriterOptions = {},
  ) {
    this.stagingSize = Math.max(MIN_STAGING_SIZE, opts.stagingSize ?? DEFAULT_STAGING_SIZE);
    this.flushBytes = opts.flushBytes ?? this.stagingSize;
    this.maxIov = Math.max(2, opts.maxIov ?? 256);
    this.copyThreshold = opts.copyThreshold ?? 256;
    this.rateLimiter = opts.rateLimiter;
    // Not zero-filled: every byte handed on is written first (allocUnsafeSlow is unpooled, so a
    // chunk the sink still holds is never reused).
    this.staging = Buffer.allocUnsafeSlow(this.stagingSize);
    this.dv = new DataView(this.staging.buffer);
  }

  /** Bytes put so far, staged or handed to the sink (QEMU's qemu_file_transferred). */
  get position(): number {
    return this.total;
  }

  /** Bytes handed to the sink so far. */
  get flushedBytes(): number {
    return this.handed;
  }

  /** The first error, or null. */
  get error(): Error | null {
    return this.firstError;
  }

  /** True when the sink asked for backpressure: `await drain()` before writing much more. */
  get needsDrain(): boolean {
    return this.needDrain;
  }

  /** Keep `err` unless an error is already set (qemu_file_set_error). */
  setError(err: Error): void {
    if (this.firstError) return;
    this.firstError = err;
    this.stopped = true;
    this.iov = [];
  }

  /* ---------------------------------------------------------------------------------------- */

  putU8(v: number): void {
    if (this.stopped) return this.deadPut();
    if (this.pos >= this.staging.length) this.rollStaging();
    this.staging[this.pos++] = v;
    this.total += 1;
  }

  putBe16(v: number): void {
    if (this.stopped) return this.deadPut();
    if (this.staging.length - this.pos < 2) this.rollStaging();
    this.dv.setUint16(this.pos, v & 0xffff);
    this.pos += 2;
    this.total += 2;
  }

  putBe32(v: number): void {
    if (this.stopped) return this.deadPut();
    if (this.staging.length - this.pos < 4) this.rollStaging();
    this.dv.setUint32(this.pos, v >>> 0);
    this.pos += 4;
    this.total += 4;
  }

  /** be64 from a bigint; any value, taken modulo 2^64 (so -1n writes all-ones). */
  putBe64(v: bigint): void {
    if (this.stopped) return this.deadPut();
    if (this.staging.length - this.pos < 8) this.rollStaging();
    this.dv.setBigUint64(this.pos, v);
    this.pos += 8;
    this.total += 8;
  }

  /** be64 from a safe integer (|v| < 2^53); negative values are written two's complement. */
  putBe64Number(v: number): void {
    if (this.stopped) return this.deadPut();
    if (this.staging.length - this.pos < 8) this.rollStaging();
    const hi = Math.floor(v / 4294967296);
    const lo = v - hi * 4294967296;
    this.dv.setUint32(this.pos, hi >>> 0);
    this.dv.setUint32(this.pos + 4, lo >>> 0);
    this.pos += 8;
    this.total += 8;
  }

  /** Copy `src` into the stream (qemu_put_buffer). */
  putBuffer(src: Uint8Array): void {
    if (this.stopped) return this.deadPut();
    const n = src.length;
    if (n <= this.staging.length - this.pos) {
      this.staging.set(src, this.pos);
      this.pos += n;
      this.total += n;
      return;
    }
    let off = 0;
    while (off < n) {
      if (this.pos >= this.staging.length) this.rollStaging();
      const k = Math.min(n - off, this.staging.length - this.pos);
      this.staging.set(src.subarray(off, off + k), this.pos);
      this.pos += k;
      off += k;
      this.total += k;
    }
  }

  /**
   * Copy `length` bytes of `src` from `start` (qemu_put_buffer over part of a larger region)
   * without creating a view object: the RAM page path calls this once per page, so it must not
   * allocate. The copy is a native memcpy (Buffer#copy), not a JS loop.
   */
  putRange(src: Uint8Array, start: number, length: number): void {
    if (this.stopped) return this.deadPut();
    let off = start;
    let left = length;
    while (left > 0) {
      if (this.pos >= this.staging.length) this.rollStaging();
      const k = Math.min(left, this.staging.length - this.pos);
      copyBytes(src, this.staging, this.pos, off, off + k);
      this.pos += k;
      off += k;
      left -= k;
      this.total += k;
    }
  }

  /** `n` zero bytes (VMSTATE_UNUSED holes). */
  putZeros(n: number): void {
    if (this.stopped) return this.deadPut();
    let left = n;
    while (left > 0) {
      if (this.pos >= this.staging.length) this.rollStaging();
      const k = Math.min(left, this.staging.length - this.pos);
      this.staging.fill(0, this.pos, this.pos + k);
      this.pos += k;
      left -= k;
      this.total += k;
    }
  }

  /**
   * Queue a view of caller memory without copying (QEMU's qemu_put_buffer_async). The caller
   * keeps the memory alive until the data has been flushed and the sink has drained; its
   * bytes go out in order with everything put before and after it.
   */
  putBufferRef(view: Uint8Array): void {
    if (this.stopped) return this.deadPut();
    const n = view.length;
    if (n < this.copyThreshold) {
      this.putBuffer(view);
      return;
    }
    if (this.pos > this.segStart) {
      this.iov.push(this.staging.subarray(this.segStart, this.pos));
      this.segStart = this.pos;
    }
    this.iov.push(view);
    this.total += n;
    if (this.iov.length >= this.maxIov || this.total - this.handed >= this.flushBytes) this.flush();
  }

  /** Counted string: u8 length then the bytes (qemu_put_counted_string). Strings are byte
   * strings (each char code 0..255; QEMU's names are ASCII). Over 255 bytes → ESTREAM_LIMIT. */
  putCounted(s: string | Uint8Array): void {
    if (this.stopped) return this.deadPut();
    const n = s.length;
    if (n > COUNTED_STRING_MAX) {
      this.setError(new StreamError('ESTREAM_LIMIT', `counted string of ${n} bytes (max ${COUNTED_STRING_MAX})`, this.total));
      return;
    }
    if (typeof s !== 'string') {
      this.putU8(n);
      this.putBuffer(s);
      return;
    }
    for (let i = 0; i < n; i++) {
      if (s.charCodeAt(i) > 0xff) {
        this.setError(new StreamError('ESTREAM_RANGE', `counted string has a non-byte character`, this.total));
        return;
      }
    }
    if (this.staging.length - this.pos < n + 1) this.rollStaging();
    this.staging[this.pos++] = n;
    for (let i = 0; i < n; i++) this.staging[this.pos++] = s.charCodeAt(i);
    this.total += n + 1;
  }

  /**
   * A descriptor beside the bytes (qemu_file_put_fd): what is pending goes first, then one
   * ' ' byte with `fd` attached, so the receiver meets the descriptor exactly at that byte.
   * The caller keeps `fd` open until the channel has sent it (drain or close).
   */
  putFd(fd: number): void {
    if (this.stopped) return this.deadPut();
    if (!this.sink.writeFds) {
      this.setError(new StreamError('ESTREAM_FD', 'this channel does not support fd passing', this.total));
      return;
    }
    this.flush();
    if (this.firstError) return;
    try {
      if (!this.sink.writeFds(Uint8Array.of(FD_SERVICE_BYTE), [fd])) this.needDrain = true;
    } catch (e) {
      this.setError(new StreamError('ESTREAM_CHANNEL', `write failed: ${errText(e)}`, this.total, { cause: e }));
      return;
    }
    this.total += 1;
    this.handed = this.total;
  }

  /* ---------------------------------------------------------------------------------------- */

  /** Hand everything pending to the sink now (synchronous; see drain() for backpressure). */
  flush(): void {
    if (this.firstError) return;
    if (this.pos > this.segStart) {
      this.iov.push(this.staging.subarray(this.segStart, this.pos));
      this.segStart = this.pos;
    }
    const v = this.iov;
    if (v.length === 0) return;
    this.iov = [];
    this.handed = this.total;
    try {
      let ok: boolean;
      if (this.sink.writev) ok = this.sink.writev(v);
      else {
        ok = true;
        for (let i = 0; i < v.length; i++) ok = this.sink.write(v[i]);
      }
      if (!ok) this.needDrain = true;
    } catch (e) {
      this.setError(new StreamError('ESTREAM_CHANNEL', `write failed: ${errText(e)}`, this.handed, { cause: e }));
    }
  }

  /** Flush, then wait until the sink is below its high-water mark. Never rejects: a channel
   * failure becomes the sticky error. */
  async drain(): Promise<void> {
    this.flush();
    if (this.firstError || !this.needDrain) return;
    try {
      await this.sink.drain();
      this.needDrain = false;
    } catch (e) {
      this.setError(new StreamError('ESTREAM_CHANNEL', `drain failed: ${errText(e)}`, this.handed, { cause: e }));
    }
  }

  /** Flush, then end the sink (half-close). Later puts are ESTREAM_CLOSED errors. Never
   * rejects; check `error` afterwards (qemu_fclose returns the first error). */
  async close(): Promise<Error | null> {
    if (this.closed) return this.firstError;
    this.flush();
    this.closed = true;
    this.stopped = true;
    if (this.firstError) return this.firstError;
    try {
      await this.sink.end();
    } catch (e) {
      this.setError(new StreamError('ESTREAM_CHANNEL', `end failed: ${errText(e)}`, this.handed, { cause: e }));
    }
    return this.firstError;
  }

  /* ---------------------------------------------------------------------------------------- */

  /** The sink's descriptor if the caller may write to it directly now, else -1: everything put
   * so far is handed to the sink first, and the sink must have nothing queued (see the module
   * comment). -1 for sinks without a descriptor and after an error. */
  directFd(): number {
    if (this.stopped || !isDirectSink(this.sink)) return -1;
    this.flush();
    const fd = this.sink.fd;
    return !this.firstError && fd !== undefined && this.sink.queuedBytes === 0 ? fd : -1;
  }

  /** Whether the sink could be written directly once its queue is empty. */
  get directCapable(): boolean {
    return !this.stopped && isDirectSink(this.sink) && this.sink.fd !== undefined;
  }

  /** Wait until the sink has written everything queued (for the next direct write). Never
   * rejects: a channel failure becomes the sticky error. */
  async sinkIdle(): Promise<void> {
    this.flush();
    if (this.firstError || !isDirectSink(this.sink)) return;
    try {
      await this.sink.flushed();
      this.needDrain = false;
    } catch (e) {
      this.setError(new StreamError('ESTREAM_CHANNEL', `write failed: ${errText(e)}`, this.handed, { cause: e }));
    }
  }

  /** `n` bytes the caller wrote to directFd() itself: they are part of the stream. */
  accountDirect(n: number): void {
    this.total += n;
    this.handed = this.total;
  }

  /** A write to directFd() failed: the stream has failed. */
  directFailed(e: unknown): void {
    this.setError(new StreamError('ESTREAM_CHANNEL', `write failed: ${errText(e)}`, this.total, { cause: e }));
  }

  /** Bytes this stream and the migration's other channels have transferred. */
  private transferred(): number {
    return this.otherChannels ? this.total + this.otherChannels() : this.total;
  }

  /** QEMU's migration_rate_exceeded: true if over this window's budget, or if the stream has
   * failed (so a send loop stops). */
  rateLimitExceeded(): boolean {
    if (this.firstError) return true;
    return this.rateLimiter ? this.rateLimiter.exceeded(this.transferred()) : false;
  }

  /** Bytes the current rate-limit window still allows (Infinity without a limit). */
  rateLimitRemaining(): number {
    if (this.firstError) return 0;
    return this.rateLimiter ? this.rateLimiter.remaining(this.transferred()) : Infinity;
  }

  /** Flush, then sleep until the current rate-limit window ends (QEMU's migration_rate_limit). */
  async waitRateLimit(): Promise<void> {
    this.flush();
    if (!this.rateLimiter) return;
    await this.rateLimiter.waitForWindow(() => this.transferred());
  }

  /* ---------------------------------------------------------------------------------------- */

  private rollStaging(): void {
    this.flush();
    // Not zero-filled: every byte handed on is written first (allocUnsafeSlow is unpooled, so a
    // chunk the sink still holds is never reused).
    this.staging = Buffer.allocUnsafeSlow(this.stagingSize);
    this.dv = new DataView(this.staging.buffer);
    this.pos = 0;
    this.segStart = 0;
  }

  private deadPut(): void {
    if (!this.firstError) {
      this.setError(new StreamError('ESTREAM_CLOSED', 'write after close', this.total));
    }
  }
}

const bufferCopy = Buffer.prototype.copy;
function copyBytes(src: Uint8Array, dst: Uint8Array, dstStart: number, srcStart: number, srcEnd: number): void {
  bufferCopy.call(src, dst, dstStart, srcStart, srcEnd);
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
