/**
 * Sending RAM (QEMU migration/ram.c), the `ram` live section, version 4.
 *
 *   START:  be64 total_bytes | MEM_SIZE, then per block: u8 len + idstr, be64 used_length,
 *           [be64 guest physical address with x-ignore-shared]; [MULTIFD_FLUSH]; EOS
 *   PART:   page records …, [MULTIFD_FLUSH at the end of a pass], be64 EOS
 *   END:    last page records …, [MULTIFD_FLUSH], be64 EOS
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
 * bit sends the page, so no page goes twice.
 *
 * Pages go in runs: up to RUN_PAGES dirty pages of one block, claimed a bitmap word at a time
 * (one Atomics.and per 32 pages), then handed whole to a sender: the main stream's records
 * (ram-send.ts, one native call per run) or, with multifd, a channel thread (multifd/send.ts).
 * With multifd, a pass ends with every channel's SYNC packet and MULTIFD_FLUSH on the main
 * stream, so a page sent again in the next pass can never overtake its older copy.
 */
import type { DirtyLog } from '../machine/dirty';
import { bitmapWords } from '../machine/dirty';
import type { RamBlock } from '../machine/ram';
import { PAGE_SIZE } from '../machine/bus';
import type { QemuFileReader, QemuFileWriter } from '../stream';
import { MigrationError } from './errors';
import type { MigMode } from './options';
import type { LiveHandler } from './registry';
import type { PageRing } from './postcopy/shared';
import { claimRun, holeBitmap, nextSetBit, popcount32, ramBlockIgnored } from './ram-pages';
import { RecordSender, RUN_PAGES, RUN_PAGES_MAIN, type RunChannels, type SendBlock, type ZeroPageDetection } from './ram-send';
import { RAM_SAVE_FLAG } from './wire';

/** QEMU ends an iteration after 50 ms (MAX_WAIT); checked after every run. */
const MAX_ITERATION_MS = 50;

export interface RamSaveCounters {
  /** Pages sent as PAGE (or as a multifd normal page). */
  normal: number;
  /** Pages sent as ZERO (QEMU's "duplicate"), on the main stream or in a multifd zero list. */
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

interface BlockState extends SendBlock {
  readonly bitmap: Uint32Array;
  readonly log: DirtyLog;
}

/** What the postcopy page server needs of the saver's state (postMessage-able). */
export interface RamSaverShare {
  blocks: Array<{ name: string; addr: number; size: number; bitmap: Uint32Array; fd: number }>;
  /** dirty pages per block (Atomics) */
  dirty: Int32Array;
}

export class RamSaver implements LiveHandler {
  private syncs = 0;
  private states: BlockState[] = [];
  /** dirty pages per block, shared with the page server */
  private dirtyCounts = new Int32Array(new SharedArrayBuffer(4));
  /** postcopy: pages requested by the destination, served before the scan (no preempt) */
  requests: PageRing | null = null;
  /** release-ram in postcopy: free each page once it is sent */
  releaseSent = false;
  /** multifd: pages go to the channels, the main stream carries only the framing */
  multifd: RunChannels | null = null;
  private cur = 0;
  private curPage = 0;
  private readonly run = new Int32Array(RUN_PAGES_MAIN);
  private readonly scan = { next: 0 };
  private readonly records = new RecordSender(RUN_PAGES_MAIN);
  /** zero-page-detection, read once per iteration (it may change between them), not per page. */
  private zeroMode: ZeroPageDetection = 'multifd';
  private readonly now: () => number;

  constructor(
    readonly blocks: readonly RamBlock[],
    private readonly opts: RamSaveOptions,
  ) {
    this.now = opts.now ?? (() => performance.now());
  }

  /** The figures as of now, every channel included. */
  get counters(): RamSaveCounters {
    const m = this.multifd;
    return {
      normal: this.records.normal + (m ? m.normalPages : 0),
      duplicate: this.records.duplicate + (m ? m.zeroPages : 0),
      dirtySyncCount: this.syncs,
    };
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

  /** The blocks whose pages are sent, in the order SendBlock.index counts them. */
  migratedBlocks(): RamBlock[] {
    return this.blocks.filter((b) => !this.ignored(b));
  }

  private ignored(b: RamBlock): boolean {
    return ramBlockIgnored(b, !!this.opts.ignoreShared, this.opts.mode);
  }

  async saveSetup(f: QemuFileWriter): Promise<void> {
    const sent = this.migratedBlocks();
    this.dirtyCounts = new Int32Array(new SharedArrayBuffer(4 * Math.max(1, sent.length)));
    this.states = sent.map((block, index) => {
      const bitmap = new Uint32Array(new SharedArrayBuffer(4 * bitmapWords(block.pages))).fill(0xffffffff);
      const tail = block.pages & 31;
      if (tail) bitmap[bitmap.length - 1] = (2 ** tail - 1) >>> 0;
      this.dirtyCounts[index] = block.pages;
      return { block, index, name: Buffer.from(block.name, 'latin1'), bitmap, log: this.opts.makeLog(block), holes: null as Uint32Array | null };
    });
    for (const s of this.states) {
      s.log.start();
      s.holes = holeBitmap(s.block);
    }
    this.cur = 0;
    this.curPage = 0;
    this.records.last = null;
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
    // QEMU ram_save_setup: the channels' first SYNC, and MULTIFD_FLUSH before EOS.
    if (this.multifd) await this.multifdFlush(f);
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
    this.syncs++;
    this.opts.onSync?.(this.syncs, added);
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
    this.zeroMode = this.opts.zeroPageDetection();
    let done = false;
    for (;;) {
      if (f.rateLimitExceeded()) break;
      if (!(await this.sendRun(f, this.runLimit(f)))) {
        done = true;
        break;
      }
      if (this.now() - t0 > MAX_ITERATION_MS) break;
    }
    // The end of a pass: multifd channels sync before the next bitmap sync can dirty a page
    // they may still be carrying (QEMU multifd_ram_flush_and_sync per round).
    if (done && this.multifd) await this.multifdFlush(f);
    f.putBe64Number(RAM_SAVE_FLAG.EOS);
    return done;
  }

  async saveComplete(f: QemuFileWriter): Promise<void> {
    this.sync();
    this.zeroMode = this.opts.zeroPageDetection();
    while (await this.sendRun(f, this.runPages())) {
      /* everything, rate limit lifted */
    }
    if (this.multifd) await this.multifdFlush(f);
    f.putBe64Number(RAM_SAVE_FLAG.EOS);
  }

  saveCleanup(): void {
    for (const s of this.states) s.log.stop();
  }

  loadState(_f: QemuFileReader): Promise<void> {
    return Promise.reject(new MigrationError('EMIG_STATE', 'RamSaver cannot load'));
  }

  /** Pages per run under the rate limit: what the window still allows, at least one. */
  private runLimit(f: QemuFileWriter): number {
    const left = f.rateLimitRemaining();
    const most = this.runPages();
    return left === Infinity ? most : Math.max(1, Math.min(most, Math.ceil(left / (PAGE_SIZE + 8))));
  }

  /** A multifd packet's pages with multifd; on the main stream, a longer run per sendmsg. */
  private runPages(): number {
    return this.multifd ? RUN_PAGES : RUN_PAGES_MAIN;
  }

  /** Every channel sends its SYNC packet, then MULTIFD_FLUSH goes on the main stream: the
   * destination loads nothing after it until every channel has placed its pages. */
  private async multifdFlush(f: QemuFileWriter): Promise<void> {
    await this.multifd!.flushAndSync();
    f.putBe64Number(RAM_SAVE_FLAG.MULTIFD_FLUSH);
  }

  /** Pages the destination asked for first (postcopy without preempt), then the next run of
   * dirty pages from the scan position, wrapping once; sends them. False when nothing is
   * dirty. */
  private async sendRun(f: QemuFileWriter, max: number): Promise<boolean> {
    if (this.records.mustWait(f)) await f.sinkIdle();
    else if (f.needsDrain) await f.drain();
    if (this.requests !== null && this.requests.pending && this.serveRequests(f)) return true;
    const n = this.states.length;
    if (n === 0) return false; // every block ignored (cpr-transfer)
    for (let tries = 0; tries <= n; tries++) {
      const s = this.states[this.cur];
      while (this.curPage < s.block.pages && Atomics.load(this.dirtyCounts, s.index) > 0) {
        const k = this.claimRun(s, max);
        if (k > 0) {
          await this.sendPages(f, s, this.run, k);
          return true;
        }
      }
      this.cur = (this.cur + 1) % n;
      this.curPage = 0;
    }
    return false;
  }

  /** Claims up to `max` dirty pages of `s` from the scan position into this.run and moves the
   * scan position past them (claimRun in ram-pages.ts). */
  private claimRun(s: BlockState, max: number): number {
    const n = claimRun(s.bitmap, this.curPage, s.block.pages, max, this.run, this.scan);
    if (n !== 0) Atomics.sub(this.dirtyCounts, s.index, n);
    this.curPage = this.scan.next;
    return n;
  }

  /** A claimed run to the main stream or, with multifd, to a channel. */
  private async sendPages(f: QemuFileWriter, s: BlockState, run: Int32Array, n: number): Promise<void> {
    if (this.multifd) await this.multifd.queue(f, s, run, n, this.zeroMode, this.records);
    else this.records.send(f, s, run, n, this.zeroMode !== 'none');
    if (this.releaseSent) for (let k = 0; k < n; k++) s.block.mapping.punchHole(run[k] * PAGE_SIZE, PAGE_SIZE);
  }

  /** Requested pages that are still dirty; the scan goes on right after the last one
   * (QEMU: locality — a fault is often followed by its neighbours). */
  private serveRequests(f: QemuFileWriter): boolean {
    let any = false;
    this.requests!.drain((key) => {
      const bi = Math.floor(key / 2 ** 40);
      const page = key - bi * 2 ** 40;
      const s = this.states[bi];
      if (!s || page >= s.block.pages) return;
      const m = 1 << (page & 31);
      if ((Atomics.and(s.bitmap, page >>> 5, ~m) & m) === 0) return;
      Atomics.sub(this.dirtyCounts, s.index, 1);
      this.run[0] = page;
      this.records.send(f, s, this.run, 1, this.zeroMode !== 'none');
      if (this.releaseSent) s.block.mapping.punchHole(page * PAGE_SIZE, PAGE_SIZE);
      this.cur = bi;
      this.curPage = page + 1;
      any = true;
    });
    return any;
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
      delta += popcount32(v) - popcount32(old);
    }
    Atomics.add(this.dirtyCounts, s.index, delta);
    this.resetScan();
  }

  /** Start the scan again from the first block and name the block in the next record. */
  resetScan(): void {
    this.cur = 0;
    this.curPage = 0;
    this.records.last = null;
  }

  /** Index of a block among the ones sent, or -1. */
  blockIndex(name: string): number {
    return this.states.findIndex((s) => s.block.name === name);
  }
}
