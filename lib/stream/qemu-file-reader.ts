/**
 * The incoming half of QEMU's QEMUFile: a pull-based reader over a ByteSource with
 * synchronous getters for hot loops and an async fill for "need more".
 *
 *   chunks from the source:   [ cur ...........|off→      ] [ queued ] [ queued ] …
 *   position = stream offset of cur[0] + off  (absolute, for error messages)
 *   buffered = bytes left in cur + bytes in the queue
 *
 * Usage pattern — stay synchronous while the bytes are there, await only when they are not:
 *
 *   if (!f.has(8) && !(await f.ensure(8))) return;   // EOF/error: f.error says which
 *   const hdr = f.getBe64Number();
 *
 * Getters never throw. A getter called for more bytes than are buffered sets ESTREAM_UNDERRUN
 * (a caller bug: sync getters must follow has()/ensure()); ensure() that meets end of stream
 * sets ESTREAM_EOF; a failing source sets ESTREAM_CHANNEL.
 *
 * Sticky error (qemu_file_set_error / qemu_file_get_error): after the first error every getter
 * returns 0 (or an empty result), peeks report nothing, and `position` stays at the offset the
 * error happened at. The error keeps its message and offset.
 *
 * Strings are byte strings: each byte becomes one char code 0..255 (latin1), so a hostile
 * name compares exactly and never fails to decode.
 */
import type { ByteSource } from './channel';
import { StreamError } from './errors';
import { FD_SERVICE_BYTE } from './qemu-file-writer';

const EMPTY = new Uint8Array(0);
const EMPTY_DV = new DataView(EMPTY.buffer);

export class QemuFileReader {
  private cur: Uint8Array = EMPTY;
  private dv: DataView = EMPTY_DV;
  private off = 0;
  private base = 0;
  private queue: Uint8Array[] = [];
  private qhead = 0;
  private queued = 0;
  private eof = false;
  private firstError: Error | null = null;
  /** a view of `cur` was handed out (getBytes): it must not go back to the source */
  private pinned = false;

  constructor(private readonly source: ByteSource | null) {
    if (!source) this.eof = true;
  }

  /** A reader over bytes already in memory (e.g. a PACKAGED blob); EOF after them. `position`
   * is the offset of their first byte, so that errors point into the stream they came from. */
  static fromBytes(bytes: Uint8Array, position = 0): QemuFileReader {
    const r = new QemuFileReader(null);
    r.base = position;
    r.push(bytes);
    return r;
  }

  /** Absolute offset of the next byte to be read. */
  get position(): number {
    return this.base + this.off;
  }

  /** Bytes buffered and not yet consumed. */
  get buffered(): number {
    return this.cur.length - this.off + this.queued;
  }

  get error(): Error | null {
    return this.firstError;
  }

  /** True once the source reported end of stream (bytes may still be buffered). */
  get sourceEnded(): boolean {
    return this.eof;
  }

  /** Keep `err` unless an error is already set; drop buffered bytes so reads return 0. */
  setError(err: Error): void {
    if (this.firstError) return;
    this.firstError = err;
    this.base += this.off;
    this.cur = EMPTY;
    this.dv = EMPTY_DV;
    this.off = 0;
    this.queue = [];
    this.qhead = 0;
    this.queued = 0;
  }

  /** Whether `n` bytes can be read synchronously. */
  has(n: number): boolean {
    return this.cur.length - this.off >= n || this.cur.length - this.off + this.queued >= n;
  }

  /** Append bytes as if the source had produced them (for in-memory readers and tests). */
  push(chunk: Uint8Array): void {
    if (this.firstError || chunk.length === 0) return;
    if (this.off >= this.cur.length && this.queued === 0) {
      this.base += this.cur.length;
      this.retire();
      this.setCur(chunk);
    } else {
      this.queue.push(chunk);
      this.queued += chunk.length;
    }
  }

  /** Pull from the source until `n` bytes are buffered, the source ends, or it fails.
   * Resolves with the number of bytes buffered; sets no error on a short count. */
  async fill(n: number): Promise<number> {
    while (this.buffered < n && !this.eof && !this.firstError) {
      let chunk: Uint8Array | null;
      try {
        chunk = await this.source!.read();
      } catch (e) {
        const msg = e instanceof Error ? e.message : String(e);
        this.setError(new StreamError('ESTREAM_CHANNEL', `read failed: ${msg}`, this.position, { cause: e }));
        break;
      }
      if (chunk === null) this.eof = true;
      else this.push(chunk);
    }
    return this.buffered;
  }

  /** Make `n` bytes readable synchronously; false (with ESTREAM_EOF set) if the stream ends
   * first, or false if it already failed. For large payloads use readInto(). */
  async ensure(n: number): Promise<boolean> {
    if (this.has(n)) return true;
    await this.fill(n);
    if (this.has(n)) return true;
    if (!this.firstError) {
      this.setError(
        new StreamError('ESTREAM_EOF', `stream ended: needed ${n} bytes, ${this.buffered} left`, this.position),
      );
    }
    return false;
  }

  /** True when nothing is buffered and the source has ended (or the stream failed). */
  async atEnd(): Promise<boolean> {
    return (await this.fill(1)) === 0;
  }

  /**
   * The descriptor at this point of the stream (qemu_file_get_fd): consumes the service byte
   * (which must be buffered) and takes the oldest descriptor received. -1 with ESTREAM_FD set
   * when the byte is not ' ', no descriptor came, or the source cannot pass descriptors. The
   * caller owns what it gets.
   */
  getFd(): number {
    if (this.firstError) return -1;
    const at = this.position;
    if (!this.source?.takeFd) {
      this.setError(new StreamError('ESTREAM_FD', 'this channel does not support fd passing', at));
      return -1;
    }
    const b = this.getU8();
    if (this.firstError) return -1;
    if (b !== FD_SERVICE_BYTE) {
      this.setError(new StreamError('ESTREAM_FD', `unexpected service byte 0x${b.toString(16)} where a descriptor was due`, at));
      return -1;
    }
    const fd = this.source.takeFd();
    if (fd === undefined) {
      this.setError(new StreamError('ESTREAM_FD', 'no descriptor came with the service byte', at));
      return -1;
    }
    return fd;
  }

  /* ---------------------------------------------------------------------------------------- */
  /* Synchronous getters                                                                        */
  /* ---------------------------------------------------------------------------------------- */

  getU8(): number {
    if (this.off < this.cur.length) return this.cur[this.off++];
    if (!this.advance(1)) return 0;
    return this.cur[this.off++];
  }

  getBe16(): number {
    const o = this.off;
    if (this.cur.length - o >= 2) {
      this.off = o + 2;
      return this.dv.getUint16(o);
    }
    return this.slowUint(2);
  }

  getBe32(): number {
    const o = this.off;
    if (this.cur.length - o >= 4) {
      this.off = o + 4;
      return this.dv.getUint32(o);
    }
    return this.slowUint(4);
  }

  /** be64 as an unsigned bigint. */
  getBe64(): bigint {
    const o = this.off;
    if (this.cur.length - o >= 8) {
      this.off = o + 8;
      return this.dv.getBigUint64(o);
    }
    if (!this.has(8)) return this.underrun(8), 0n;
    const hi = this.slowUint(4);
    const lo = this.slowUint(4);
    return (BigInt(hi) << 32n) | BigInt(lo);
  }

  /** be64 as a number; a value of 2^53 or more sets ESTREAM_RANGE and returns 0. */
  getBe64Number(): number {
    let hi: number;
    let lo: number;
    const o = this.off;
    if (this.cur.length - o >= 8) {
      this.off = o + 8;
      hi = this.dv.getUint32(o);
      lo = this.dv.getUint32(o + 4);
    } else {
      if (!this.has(8)) return this.underrun(8), 0;
      hi = this.slowUint(4);
      lo = this.slowUint(4);
    }
    if (hi > 0x1fffff) {
      this.setError(new StreamError('ESTREAM_RANGE', `be64 value 0x${hi.toString(16)}${lo.toString(16).padStart(8, '0')} is not a safe integer`, this.position - 8));
      return 0;
    }
    return hi * 4294967296 + lo;
  }

  getS8(): number {
    return (this.getU8() << 24) >> 24;
  }

  getSbe16(): number {
    return (this.getBe16() << 16) >> 16;
  }

  getSbe32(): number {
    return this.getBe32() | 0;
  }

  /** be64 as a signed bigint. */
  getSbe64(): bigint {
    return BigInt.asIntN(64, this.getBe64());
  }

  /** Copy the next `n` (default dst.length) bytes into `dst` (qemu_get_buffer). */
  getBufferInto(dst: Uint8Array, n = dst.length): void {
    if (!this.has(n)) {
      this.underrun(n);
      return;
    }
    let done = 0;
    while (done < n) {
      if (this.off >= this.cur.length) this.advance(1);
      const k = Math.min(n - done, this.cur.length - this.off);
      dst.set(this.cur.subarray(this.off, this.off + k), done);
      this.off += k;
      done += k;
    }
  }

  /** Copy the next `n` bytes into `dst` at `dstStart` without creating view objects (the RAM
   * page path: one call per page). Native memcpy via Buffer#copy. */
  getRangeInto(dst: Uint8Array, dstStart: number, n: number): void {
    if (!this.has(n)) {
      this.underrun(n);
      return;
    }
    let done = 0;
    while (done < n) {
      if (this.off >= this.cur.length) this.advance(1);
      const k = Math.min(n - done, this.cur.length - this.off);
      bufferCopy.call(this.cur, dst, dstStart + done, this.off, this.off + k);
      this.off += k;
      done += k;
    }
  }

  /** The next `n` bytes: a view into the reader's chunk when contiguous (chunks are never
   * reused, so the view stays valid), else a copy. Empty on error/underrun. */
  getBytes(n: number): Uint8Array {
    const o = this.off;
    if (this.cur.length - o >= n) {
      this.off = o + n;
      this.pinned = true;
      return this.cur.subarray(o, o + n);
    }
    if (!this.has(n)) return this.underrun(n), EMPTY;
    const out = new Uint8Array(n);
    this.getBufferInto(out, n);
    return out;
  }

  /** Discard `n` buffered bytes (qemu_file_skip). */
  skip(n: number): void {
    if (!this.has(n)) return this.underrun(n);
    let left = n;
    while (left > 0) {
      if (this.off >= this.cur.length) this.advance(1);
      const k = Math.min(left, this.cur.length - this.off);
      this.off += k;
      left -= k;
    }
  }

  /** Counted string (u8 length + bytes) from buffered bytes; '' on underrun/error. */
  getCounted(): string {
    if (!this.has(1)) return this.underrun(1), '';
    const len = this.peekU8(0);
    if (!this.has(1 + len)) return this.underrun(1 + len), '';
    this.getU8();
    return latin1(this.getBytes(len));
  }

  /** In-place bulk parsing (the RAM loader's native run): the chunk holding the next unread
   * byte, at chunkOffset; empty when nothing is buffered. Bytes of it before chunkOffset are
   * consumed, and consumeInChunk(n) consumes n more (n ≤ what is left in this chunk). */
  currentChunk(): Uint8Array {
    if (this.off >= this.cur.length && this.queued > 0) this.advance(1);
    return this.cur;
  }

  get chunkOffset(): number {
    return this.off;
  }

  consumeInChunk(n: number): void {
    if (this.firstError) return;
    if (n > this.cur.length - this.off) return this.underrun(n);
    this.off += n;
  }

  /* ---------------------------------------------------------------------------------------- */
  /* Peeks (qemu_peek_byte / qemu_peek_buffer): look ahead without consuming                   */
  /* ---------------------------------------------------------------------------------------- */

  /** Byte at position+offset if buffered, else -1. */
  peekU8(offset = 0): number {
    const i = this.off + offset;
    if (i < this.cur.length) return this.cur[i];
    if (!this.has(offset + 1)) return -1;
    let k = i - this.cur.length;
    for (let q = this.qhead; q < this.queue.length; q++) {
      const c = this.queue[q];
      if (k < c.length) return c[k];
      k -= c.length;
    }
    return -1;
  }

  /** Copy of `n` bytes at position+offset if buffered, else null. */
  peekBytes(offset: number, n: number): Uint8Array | null {
    if (!this.has(offset + n)) return null;
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.peekU8(offset + i);
    return out;
  }

  /* ---------------------------------------------------------------------------------------- */
  /* Async bulk reads                                                                            */
  /* ---------------------------------------------------------------------------------------- */

  /** Read dst.length bytes, pulling from the source as needed without buffering them all
   * first. False (ESTREAM_EOF or an earlier error) if the stream ends or fails. */
  async readInto(dst: Uint8Array): Promise<boolean> {
    let done = 0;
    while (done < dst.length) {
      if (this.buffered === 0 && !(await this.ensure(1))) return false;
      const k = Math.min(dst.length - done, this.buffered);
      this.getBufferInto(dst.subarray(done, done + k), k);
      done += k;
      if (this.firstError) return false;
    }
    return !this.firstError;
  }

  /** Discard `n` bytes, pulling as needed. */
  async skipAsync(n: number): Promise<boolean> {
    let left = n;
    while (left > 0) {
      if (this.buffered === 0 && !(await this.ensure(1))) return false;
      const k = Math.min(left, this.buffered);
      this.skip(k);
      left -= k;
    }
    return !this.firstError;
  }

  /** Counted string, pulling as needed; null on EOF/error. */
  async readCounted(): Promise<string | null> {
    if (!this.has(1) && !(await this.ensure(1))) return null;
    const len = this.peekU8(0);
    if (!this.has(1 + len) && !(await this.ensure(1 + len))) return null;
    const s = this.getCounted();
    return this.firstError ? null : s;
  }

  /* ---------------------------------------------------------------------------------------- */

  /** `cur` is used up: give it back to the source unless a view of it is out there. */
  private retire(): void {
    // A pinned chunk is handed back too, as not reusable: its slab is forgotten, not kept.
    if (this.cur.length > 0) this.source?.recycle?.(this.cur, !this.pinned);
    this.pinned = false;
  }

  private setCur(chunk: Uint8Array): void {
    this.cur = chunk;
    this.dv = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    this.off = 0;
  }

  /** Move to the next queued chunk when the current one is used up; false (underrun) if fewer
   * than `need` bytes are buffered in all. */
  private advance(need: number): boolean {
    if (this.cur.length - this.off + this.queued < need) {
      this.underrun(need);
      return false;
    }
    while (this.off >= this.cur.length) {
      const next = this.queue[this.qhead];
      this.queue[this.qhead++] = EMPTY;
      if (this.qhead > 32 && this.qhead * 2 >= this.queue.length) {
        this.queue.splice(0, this.qhead);
        this.qhead = 0;
      }
      this.queued -= next.length;
      this.base += this.cur.length;
      this.retire();
      this.setCur(next);
    }
    return true;
  }

  /** Unsigned big-endian value of 2 or 4 bytes that straddles chunks. */
  private slowUint(n: number): number {
    if (!this.has(n)) return this.underrun(n), 0;
    let v = 0;
    for (let i = 0; i < n; i++) v = v * 256 + this.getU8();
    return v;
  }

  private underrun(n: number): void {
    if (this.firstError) return;
    const code = this.eof ? 'ESTREAM_EOF' : 'ESTREAM_UNDERRUN';
    const why = this.eof ? 'stream ended' : 'read past buffered data';
    this.setError(new StreamError(code, `${why}: needed ${n} bytes, ${this.buffered} buffered`, this.position));
  }
}

const bufferCopy = Buffer.prototype.copy;

/** Bytes → byte string (one char per byte). */
export function latin1(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 4096) {
    s += String.fromCharCode.apply(null, bytes.subarray(i, Math.min(bytes.length, i + 4096)) as unknown as number[]);
  }
  return s;
}
