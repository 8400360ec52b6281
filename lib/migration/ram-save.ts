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
 * so a store after the sync is caught by the next one. The page path allocates nothing per page:
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
  readonly bitmap: Uint32Array;
  readonly words32: Int32Array[];
  readonly bytes: Uint8Array[];
  readonly log: DirtyLog;
  dirty: number;
  /** Pages that were holes in the backing file when the log started (never written, so
   * zero): sent as ZERO without being read, which would allocate them. A write after that
   * moment is in the dirty log and sends the page again. Cleared bit by bit as pages go. */
  holes: Uint32Array | null;
}

export class RamSaver implements LiveHandler {
  readonly counters: RamSaveCounters = { normal: 0, duplicate: 0, dirtySyncCount: 0 };
  private states: BlockState[] = [];
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
    for (const s of this.states) n += s.dirty;
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
    this.states = this.blocks.filter((b) => !this.ignored(b)).map((block) => {
      const bitmap = new Uint32Array(bitmapWords(block.pages)).fill(0xffffffff);
      const tail = block.pages & 31;
      if (tail) bitmap[bitmap.length - 1] = (2 ** tail - 1) >>> 0;
      return {
        block,
        bitmap,
        words32: block.windows.map((w) => new Int32Array(w)),
        bytes: block.windows.map((w) => new Uint8Array(w)),
        log: this.opts.makeLog(block),
        dirty: block.pages,
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
      s.dirty += n;
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

  /** Find the next dirty page from the scan position, wrapping once; send it. */
  private sendNext(f: QemuFileWriter): boolean {
    const n = this.states.length;
    if (n === 0) return false; // every block ignored (cpr-transfer)
    for (let tries = 0; tries <= n; tries++) {
      const s = this.states[this.cur];
      if (s.dirty > 0) {
        const page = nextSetBit(s.bitmap, this.curPage, s.block.pages);
        if (page >= 0) {
          this.curPage = page + 1;
          this.sendPage(f, s, page);
          return true;
        }
      }
      this.cur = (this.cur + 1) % n;
      this.curPage = 0;
    }
    return false;
  }

  private sendPage(f: QemuFileWriter, s: BlockState, page: number): void {
    s.bitmap[page >>> 5] &= ~(1 << (page & 31));
    s.dirty--;
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
