/**
 * Sending RAM (QEMU migration/ram.c), the `ram` live section, version 4.
 *
 *   START:  be64 total_bytes | MEM_SIZE, then per block: u8 len + idstr, be64 used_length,
 *           [be64 guest physical address with x-ignore-shared]; EOS
 *   PART:   page records …, be64 EOS
 *   END:    last page records …, be64 EOS
 *
 *   page record: be64 (block offset | flags) [u8 len + idstr unless CONTINUE] payload
 *     ZERO (0x02): payload u8 0            PAGE (0x08): payload 4096 bytes
 *     CONTINUE (0x20): same block as the previous record on this channel
 *
 * The migration bitmap (one bit per page, Uint32 words) starts all ones; each sync ORs in the
 * pages the dirty log saw written; each sent page has its bit cleared before its bytes are read,
 * so a store after the sync is caught by the next one. The bitmap and the per-block dirty
 * counts live in shared memory and bits are cleared with Atomics: in postcopy the page server
 * (outgoing/page-server.ts) sends requested pages from another thread, and whoever clears a
 * bit sends the page, so no page goes twice. The page path allocates nothing per page:
 * zero detection reads an Int32Array over the window, and the bytes are copied into the
 * writer's staging buffer with a native memcpy (QemuFileWriter.putRange).
 */
import type { DirtyLog } from '../machine/dirty';
import { bitmapWords } from '../machine/dirty';
import type { RamBlock } from '../machine/ram';
import { PAGE_SHIFT, PAGE_SIZE, WINDOW_SIZE } from '../machine/bus';
import type { QemuFileReader, QemuFileWriter } from '../stream';
import { MigrationError } from './errors';
import type { MigMode } from './options';
import type { LiveHandler } from './registry';
import type { PageRing } from './postcopy/shared';
import { RAM_SAVE_FLAG } from './wire';

const PAGES_PER_WINDOW = WINDOW_SIZE / PAGE_SIZE;
/** QEMU checks the clock every 64 pages and ends an iteration after 50 ms (MAX_WAIT). */
const PAGES_PER_CLOCK_CHECK = 64;
const MAX_ITERATION_MS = 50;

export type ZeroPageDetection = 'none' | 'legacy' | 'multifd';

export interface RamSaveCounters {
  /** Pages sent as PAGE. */
  normal: number;
  /** Pages sent as ZERO (QEMU's "duplicate"). */
  duplicate: number;
  /** Bitmap syncs so far (dirty-sync-count). */
  dirtySyncCount: number;
}

export interface RamSaveOptions {
  makeLog(block: RamBlock): DirtyLog;
  zeroPageDetection(): ZeroPageDetection;
  /** After every bitmap sync: the pass number and how many pages became dirty in it. */
  onSync?(pass: number, newlyDirty: number): void;
  now?(): number;
  /** x-ignore-shared: send each block's guest physical address and no pages of the blocks
   * another process shares by a named file (ramBlockIgnored). */
  ignoreShared?: boolean;
  /** The migration mode: cpr-transfer sends no page of any block (ramBlockIgnored). */
  mode?: MigMode;
}

/**
 * QEMU's migrate_ram_is_ignored(): the blocks whose pages are not sent, because the other
 * side maps the same memory. With x-ignore-shared, a block backed by a named file and mapped
 * shared; in cpr-transfer (and cpr-exec), every block: the new process maps them all.
 */
export function ramBlockIgnored(block: RamBlock, ignoreShared: boolean, mode: MigMode = 'normal'): boolean {
  if (mode === 'cpr-transfer' || mode === 'cpr-exec') return true;
  return ignoreShared && block.shared && block.memPath !== undefined;
}

interface BlockState {
  readonly block: RamBlock;
  /** index in `states`, and in the shared dirty counts */
  readonly index: number;
  readonly bitmap: Uint32Array;
  readonly words32: Int32Array[];
  readonly bytes: Uint8Array[];
  readonly log: DirtyLog;
  /** Pages that were holes in the backing file when the log started (never written, so
   * zero): sent as ZERO without being read, which would allocate them. A write after that
   * moment is in the dirty log and sends the page again. Cleared bit by bit as pages go. */
  holes: Uint32Array | null;
}

/** What the postcopy page server needs of the saver's state (postMessage-able). */
export interface RamSaverShare {
  blocks: Array<{ name: string; addr: number; size: number; bitmap: Uint32Array; fd: number }>;
  /** dirty pages per block (Atomics) */
  dirty: Int32Array;
}

export class RamSaver implements LiveHandler {
  readonly counters: RamSaveCounters = { normal: 0, duplicate: 0, dirtySyncCount: 0 };
  private states: BlockState[] = [];
  /** dirty pages per block, shared with the page server */
  private dirtyCounts = new Int32Array(new SharedArrayBuffer(4));
  /** postcopy: pages requested by the destination, served before the scan (no preempt) */
  requests: PageRing | null = null;
  /** release-ram in postcopy: free each page once it is sent */
  releaseSent = false;
  private cur = 0;
  private curPage = 0;
  private lastBlock: BlockState | null = null;
  /** zero-page-detection, read once per iteration (it may change between them), not per page. */
  private detectZero = true;
  private readonly now: () => number;

  constructor(
    readonly blocks: readonly RamBlock[],
    private readonly opts: RamSaveOptions,
  ) {
    this.now = opts.now ?? (() => performance.now());
  }

  /** Dirty pages left to send. */
  get dirtyPages(): number {
    let n = 0;
    for (let i = 0; i < this.states.length; i++) n += Atomics.load(this.dirtyCounts, i);
    return n;
  }

  /** Bytes of the blocks that are sent (QEMU's ram_bytes_total: ignored blocks excluded). */
  get totalBytes(): number {
    let n = 0;
    for (const b of this.blocks) if (!this.ignored(b)) n += b.size;
    return n;
  }

  private ignored(b: RamBlock): boolean {
    return ramBlockIgnored(b, !!this.opts.ignoreShared, this.opts.mode);
  }

  saveSetup(f: QemuFileWriter): void {
    const sent = this.blocks.filter((b) => !this.ignored(b));
    this.dirtyCounts = new Int32Array(new SharedArrayBuffer(4 * Math.max(1, sent.length)));
    this.states = sent.map((block, index) => {
      const bitmap = new Uint32Array(new SharedArrayBuffer(4 * bitmapWords(block.pages))).fill(0xffffffff);
      const tail = block.pages & 31;
      if (tail) bitmap[bitmap.length - 1] = (2 ** tail - 1) >>> 0;
      this.dirtyCounts[index] = block.pages;
      return {
        block,
        index,
        bitmap,
        words32: block.windows.map((w) => new Int32Array(w)),
        bytes: block.windows.map((w) => new Uint8Array(w)),
        log: this.opts.makeLog(block),
        holes: null as Uint32Array | null,
      };
    });
    for (const s of this.states) {
      s.log.start();
      s.holes = holeBitmap(s.block);
    }
    this.cur = 0;
    this.curPage = 0;
    this.lastBlock = null;
    // QEMU syncs once at setup (ram_init_bitmaps): pass 1.
    this.sync();

    // MEM_SIZE counts every block, ignored ones too (ram_bytes_total_with_ignored).
    let listed = 0;
    for (const b of this.blocks) listed += b.size;
    f.putBe64Number(listed + RAM_SAVE_FLAG.MEM_SIZE);
    for (const b of this.blocks) {
      f.putCounted(b.name);
      f.putBe64Number(b.size);
      if (this.opts.ignoreShared) f.putBe64Number(b.base);
    }
    f.putBe64Number(RAM_SAVE_FLAG.EOS);
  }

  /** Move the dirty log into the migration bitmap (migration_bitmap_sync). */
  sync(): number {
    let added = 0;
    for (const s of this.states) {
      const n = s.log.sync(s.bitmap);
      Atomics.add(this.dirtyCounts, s.index, n);
      added += n;
    }
    this.counters.dirtySyncCount++;
    this.opts.onSync?.(this.counters.dirtySyncCount, added);
    return added;
  }

  /** Pages the guest has written since the last sync, over every block; -1 if a log cannot
   * tell without syncing. */
  peekDirtied(): number {
    let n = 0;
    for (const s of this.states) {
      const k = s.log.peek();
      if (k < 0) return -1;
      n += k;
    }
    return n;
  }

  pending(exact: boolean): number {
    if (exact) this.sync();
    return this.dirtyPages * PAGE_SIZE;
  }

  async saveIterate(f: QemuFileWriter): Promise<boolean> {
    const t0 = this.now();
    this.detectZero = this.opts.zeroPageDetection() !== 'none';
    let done = false;
    let sent = 0;
    for (;;) {
      if (f.rateLimitExceeded()) break;
      if (!this.sendNext(f)) {
        done = true;
        break;
      }
      if (++sent % PAGES_PER_CLOCK_CHECK === 0) {
        if (this.now() - t0 > MAX_ITERATION_MS) break;
        if (f.needsDrain) await f.drain();
      }
    }
    f.putBe64Number(RAM_SAVE_FLAG.EOS);
    return done;
  }

  async saveComplete(f: QemuFileWriter): Promise<void> {
    this.sync();
    this.detectZero = this.opts.zeroPageDetection() !== 'none';
    let sent = 0;
    while (this.sendNext(f)) {
      if (++sent % PAGES_PER_CLOCK_CHECK === 0 && f.needsDrain) await f.drain();
    }
    f.putBe64Number(RAM_SAVE_FLAG.EOS);
  }

  saveCleanup(): void {
    for (const s of this.states) s.log.stop();
  }

  loadState(_f: QemuFileReader): Promise<void> {
    return Promise.reject(new MigrationError('EMIG_STATE', 'RamSaver cannot load'));
  }

  /** Pages the destination asked for first (postcopy without preempt), then the next dirty page
   * from the scan position, wrapping once; send it. */
  private sendNext(f: QemuFileWriter): boolean {
    if (this.requests !== null && this.requests.pending && this.serveRequests(f)) return true;
    const n = this.states.length;
    if (n === 0) return false; // every block ignored (cpr-transfer)
    for (let tries = 0; tries <= n; tries++) {
      const s = this.states[this.cur];
      if (Atomics.load(this.dirtyCounts, s.index) > 0) {
        const page = nextSetBit(s.bitmap, this.curPage, s.block.pages);
        if (page >= 0) {
          this.curPage = page + 1;
          if (this.claim(s, page)) this.sendPage(f, s, page);
          return true;
        }
      }
      this.cur = (this.cur + 1) % n;
      this.curPage = 0;
    }
    return false;
  }

  /** Clear a page's dirty bit; true if it was set (the clearer sends the page). */
  private claim(s: BlockState, page: number): boolean {
    const m = 1 << (page & 31);
    if ((Atomics.and(s.bitmap, page >>> 5, ~m) & m) === 0) return false;
    Atomics.sub(this.dirtyCounts, s.index, 1);
    return true;
  }

  /** Requested pages that are still dirty; the scan goes on right after the last one
   * (QEMU: locality — a fault is often followed by its neighbours). */
  private serveRequests(f: QemuFileWriter): boolean {
    let any = false;
    this.requests!.drain((key) => {
      const bi = Math.floor(key / 2 ** 40);
      const page = key - bi * 2 ** 40;
      const s = this.states[bi];
      if (!s || page >= s.block.pages || !this.claim(s, page)) return;
      this.sendPage(f, s, page);
      this.cur = bi;
      this.curPage = page + 1;
      any = true;
    });
    return any;
  }

  private sendPage(f: QemuFileWriter, s: BlockState, page: number): void {
    const w = Math.floor(page / PAGES_PER_WINDOW);
    const inWin = page - w * PAGES_PER_WINDOW;
    const cont = this.lastBlock === s ? RAM_SAVE_FLAG.CONTINUE : 0;
    const offset = page * PAGE_SIZE;
    const hole = s.holes !== null && (s.holes[page >>> 5] & (1 << (page & 31))) !== 0;
    if (hole) s.holes![page >>> 5] &= ~(1 << (page & 31));
    if (this.detectZero && (hole || isZeroPage(s.words32[w], inWin << (PAGE_SHIFT - 2)))) {
      f.putBe64Number(offset + (RAM_SAVE_FLAG.ZERO | cont));
      if (!cont) f.putCounted(s.block.name);
      f.putU8(0);
      this.counters.duplicate++;
    } else {
      f.putBe64Number(offset + (RAM_SAVE_FLAG.PAGE | cont));
      if (!cont) f.putCounted(s.block.name);
      f.putRange(s.bytes[w], inWin << PAGE_SHIFT, PAGE_SIZE);
      this.counters.normal++;
    }
    this.lastBlock = s;
    // The bytes are in the writer's staging buffer now (putRange copies): the page may go.
    if (this.releaseSent) s.block.mapping.punchHole(offset, PAGE_SIZE);
  }

  /* ---- postcopy ---- */

  /** The shared state the page server works on. */
  share(): RamSaverShare {
    return {
      blocks: this.states.map((s) => ({ name: s.block.name, addr: s.block.mapping.addr, size: s.block.size, bitmap: s.bitmap, fd: s.block.fd })),
      dirty: this.dirtyCounts,
    };
  }

  /** Dirty runs of each block as byte ranges (ram_postcopy_send_discard_bitmap). */
  discardRanges(): Array<{ block: string; ranges: Array<{ start: number; length: number }> }> {
    return this.states.map((s) => {
      const ranges: Array<{ start: number; length: number }> = [];
      for (let p = nextSetBit(s.bitmap, 0, s.block.pages); p >= 0; ) {
        let end = p + 1;
        while (end < s.block.pages && (s.bitmap[end >>> 5] & (1 << (end & 31))) !== 0) end++;
        ranges.push({ start: p * PAGE_SIZE, length: (end - p) * PAGE_SIZE });
        p = nextSetBit(s.bitmap, end, s.block.pages);
      }
      return { block: s.block.name, ranges };
    });
  }

  /** release-ram at the postcopy switchover (ram_postcopy_migrated_memory_release): every page
   * already sent and clean is the destination's now. */
  releaseClean(): void {
    for (const s of this.states) {
      let p = 0;
      while (p < s.block.pages) {
        while (p < s.block.pages && (s.bitmap[p >>> 5] & (1 << (p & 31))) !== 0) p++;
        const start = p;
        while (p < s.block.pages && (s.bitmap[p >>> 5] & (1 << (p & 31))) === 0) p++;
        if (p > start) s.block.mapping.punchHole(start * PAGE_SIZE, (p - start) * PAGE_SIZE);
      }
    }
  }

  /** Recovery: what the destination has not received is dirty (QEMU inverts the received
   * bitmap it gets with RECV_BITMAP); the scan and the last block start over. `received` is in
   * the wire's order: page i = byte i/8, bit i%8. */
  applyReceived(block: string, received: Uint8Array): void {
    const s = this.states.find((x) => x.block.name === block);
    if (!s) throw new MigrationError('EMIG_RETURN_PATH', `RECV_BITMAP for unknown block '${block}'`, { section: 'return-path', field: 'RECV_BITMAP' });
    // The page server may claim pages meanwhile (clear a bit, then take one off the count):
    // each word is exchanged and the count moved by what the exchange changed, so that the
    // count keeps matching the bitmap. Storing a recount instead could lose a claim's
    // decrement, and the migration would wait forever for a page that is not dirty.
    const tail = s.block.pages & 31;
    let delta = 0;
    for (let w = 0; w < s.bitmap.length; w++) {
      let v = 0;
      for (let b = 0; b < 4; b++) v |= (~received[w * 4 + b] & 0xff) << (8 * b);
      if (tail && w === s.bitmap.length - 1) v &= 2 ** tail - 1;
      const old = Atomics.exchange(s.bitmap, w, v >>> 0);
      delta += popcount(v) - popcount(old);
    }
    Atomics.add(this.dirtyCounts, s.index, delta);
    this.resetScan();
  }

  /** Start the scan again from the first block and name the block in the next record. */
  resetScan(): void {
    this.cur = 0;
    this.curPage = 0;
    this.lastBlock = null;
  }

  /** Index of a block among the ones sent, or -1. */
  blockIndex(name: string): number {
    return this.states.findIndex((s) => s.block.name === name);
  }
}

/** One bit per page that is a hole in the block's backing file right now, or null when the
 * backing cannot tell (then every page is read). */
export function holeBitmap(block: RamBlock): Uint32Array | null {
  let extents: number[];
  try {
    extents = block.mapping.dataExtents();
  } catch {
    return null;
  }
  const bits = new Uint32Array(bitmapWords(block.pages)).fill(0xffffffff);
  for (let i = 0; i < extents.length; i += 2) {
    const first = Math.floor(extents[i] / PAGE_SIZE);
    const end = Math.ceil(extents[i + 1] / PAGE_SIZE);
    for (let p = first; p < end; p++) bits[p >>> 5] &= ~(1 << (p & 31));
  }
  return bits;
}

function popcount(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (((x + (x >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}

/** First set bit at or after `from` (below `limit`), or -1. */
export function nextSetBit(bitmap: Uint32Array, from: number, limit: number): number {
  let w = from >>> 5;
  if (w >= bitmap.length) return -1;
  let word = bitmap[w] & (0xffffffff << (from & 31));
  for (;;) {
    if (word !== 0) {
      const bit = 31 - Math.clz32(word & -word);
      const page = (w << 5) + bit;
      return page < limit ? page : -1;
    }
    if (++w >= bitmap.length) return -1;
    word = bitmap[w];
  }
}

/** All 1024 words of the page zero? Eight at a time, ORed, so random data exits at once. */
export function isZeroPage(words: Int32Array, first: number): boolean {
  const end = first + PAGE_SIZE / 4;
  for (let i = first; i < end; i += 8) {
    if ((words[i] | words[i + 1] | words[i + 2] | words[i + 3] | words[i + 4] | words[i + 5] | words[i + 6] | words[i + 7]) !== 0) {
      return false;
    }
  }
  return true;
}
