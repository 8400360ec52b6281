/**
 * Where FdChannel's read(2)s land: large slabs, each filled front to back, every read handed
 * out as a view of exactly its bytes and never written again while handed out.
 *
 *   slab [ chunk │ chunk │ chunk │ free ……… ]   next read(2) → the free tail, or a new slab
 *                                                 once under MIN_READ bytes are left
 *
 * A reader that is done with a chunk gives it back (recycle()), saying whether it kept a view
 * of it; a slab all of whose chunks came back and none kept is kept (up to FREE_SLABS) and read
 * into again, since fresh memory costs a page fault per 4 KiB inside read(2). A slab with a
 * kept chunk is forgotten: the views keep its memory alive for as long as they need it. Small reads (return-path messages) are
 * copied into their own buffer instead, so one kept message does not pin a whole slab.
 */

/** Bytes per slab: up to a 1 MiB read(2) per wake-up when the sender is ahead. Measured on the
 * RAM stream (bench/precopy.ts, idle 1 GiB): 1 MiB reads cost the receiver 0.27 CPU-s per GB
 * against 0.47 for 256 KiB ones (fewer wake-ups, chunks and promises per byte); 4 MiB gained
 * nothing more. */
export const READ_SLAB_BYTES = 1024 * 1024;
const MIN_READ = 256 * 1024;
const COPY_BELOW = 4096;
const FREE_SLABS = 4;

export class ReadSlabs {
  private slab: Buffer | null = null;
  private used = 0;
  /** chunks handed out and not yet recycled, per slab (by its memory) */
  private readonly out = new Map<ArrayBufferLike, { slab: Buffer; out: number; kept: boolean }>();
  private readonly free: Buffer[] = [];

  /** The buffer and the range the next read(2) may fill. */
  room(): { buf: Buffer; at: number; len: number } {
    if (!this.slab || this.slab.length - this.used < MIN_READ) {
      const old = this.slab;
      this.slab = this.free.pop() ?? Buffer.allocUnsafeSlow(READ_SLAB_BYTES);
      this.used = 0;
      if (old && !this.out.has(old.buffer) && this.free.length < FREE_SLABS) this.free.push(old);
    }
    return { buf: this.slab, at: this.used, len: this.slab.length - this.used };
  }

  /** The `n` bytes the last read(2) put at room().at, as the caller's chunk. */
  take(at: number, n: number): Uint8Array {
    const slab = this.slab!;
    if (n < COPY_BELOW) return Buffer.from(slab.subarray(at, at + n));
    this.used = at + n;
    const e = this.out.get(slab.buffer);
    if (e) e.out++;
    else this.out.set(slab.buffer, { slab, out: 1, kept: false });
    return slab.subarray(at, at + n);
  }

  /** A chunk from take() comes back (see the module comment); other chunks are ignored. */
  recycle(chunk: Uint8Array, reusable = true): void {
    const e = this.out.get(chunk.buffer);
    if (e === undefined) return;
    if (!reusable) e.kept = true;
    if (--e.out > 0) return;
    this.out.delete(chunk.buffer);
    if (e.kept) {
      // Never read into it again, the current slab included.
      if (e.slab === this.slab) this.slab = null;
      return;
    }
    if (e.slab !== this.slab && this.free.length < FREE_SLABS) this.free.push(e.slab);
  }
}
