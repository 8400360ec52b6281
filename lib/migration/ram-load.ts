/**
 * Loading the `ram` section (QEMU migration/ram.c ram_load_precopy). Record layout: see
 * ram-save.ts. Every record is checked before it touches memory: the flag combination, the
 * block name, CONTINUE only after a named block, the offset inside the block, the zero-page fill
 * byte, and the block list's total. While whole records are buffered the loop runs without
 * awaiting.
 *
 * Runs of records in place: once a record has named the block, the records after it that
 * need no decision — PAGE or ZERO continuing that block, inside it — are placed by one native
 * call over the reader's current chunk (native.ramLoadRecords: page bytes copied straight
 * into guest RAM). It stops at the first record that is anything else, which this loop then
 * reads and checks itself, so every error is still reported here. Postcopy places pages
 * atomically through its placer and keeps to the per-record path.
 */
import { native } from '../host';
import { PAGE_SIZE, WINDOW_SIZE } from '../machine/bus';
import type { RamBlock } from '../machine/ram';
import type { QemuFileReader, QemuFileWriter } from '../stream';
import { MigrationError } from './errors';
import type { MigMode } from './options';
import type { LiveHandler } from './registry';
import { holeBitmap, isZeroPage, ramBlockIgnored } from './ram-pages';
import { RAM_SAVE_FLAG, RAM_SECTION_VERSION, QEMU_VM_SECTION_START } from './wire';

const PAGES_PER_WINDOW = WINDOW_SIZE / PAGE_SIZE;
const FLAG_MASK = PAGE_SIZE - 1;
/** Postcopy: records placed between two turns of the event loop (about a MiB). */
const POSTCOPY_RECORDS_PER_TURN = 256;

interface LoadBlock {
  readonly block: RamBlock;
  /** index in the loader's block list (postcopy keys pages by it) */
  readonly index: number;
  readonly bytes: Uint8Array[];
  readonly words32: Int32Array[];
  /** Pages that were holes (never written, so zero) when the block list arrived and have not
   * been written by the stream since: a ZERO record for one needs no work at all. Reading the
   * page to check it would allocate it. */
  holes: Uint32Array | null;
}

/**
 * Postcopy on the destination (postcopy/destination.ts): from ADVISE on, every page loaded
 * is recorded as received; from LISTEN on, pages are placed atomically through the placer
 * (UFFDIO_COPY / CONTINUE) instead of being copied into RAM, which faulting vCPUs share.
 */
export interface RamPostcopy {
  /** per block (loader order), the received bitmap */
  readonly received: Int32Array[];
  placer: {
    place(block: number, page: number, src: Uint8Array): boolean;
    zero(block: number, page: number): boolean;
    placeRecords(block: number, buf: Uint8Array, off: number, end: number, out: Float64Array, maxRecords: number): number;
  } | null;
}

export interface RamLoadCounters {
  normal: number;
  duplicate: number;
}

/** Pages whose dirty byte is clear, as a bitmap (see the `pristine` constructor option). */
function cleanPages(block: RamBlock): Uint32Array {
  const bits = new Uint32Array(new SharedArrayBuffer(4 * Math.ceil(block.pages / 32)));
  const d = block.dirty;
  for (let p = 0; p < block.pages; p++) if (d[p] === 0) bits[p >>> 5] |= 1 << (p & 31);
  return bits;
}

export interface RamLoaderOptions {
  /** RAM was only ever written by the host through RamBlock (which marks pages dirty), never
   * by a hart: a page with a clear dirty byte is known to be zero. */
  pristine?: boolean;
  /** Told where data pages land in its block, to fault RAM in just ahead (virt.ts). */
  populate?: { block: RamBlock; advance(offset: number): void } | null;
  /** x-ignore-shared on this side: the block list carries guest physical addresses, and the
   * blocks shared by a named file are not sent (ramBlockIgnored). */
  ignoreShared?: boolean;
  /** The incoming mode: cpr-transfer when a cpr channel brought the RAM (no block is sent). */
  mode?: MigMode;
}

/**
 * Which pages of `block` are known zero before anything arrives (one bit per page, in shared
 * memory): with `pristine`, those whose dirty byte is clear; else the holes of its backing
 * file; null when neither can tell. Bits are cleared, atomically, by whoever writes a page's
 * data — this loader, or a multifd channel thread, which shares the bitmap.
 */
export function knownZeroPages(block: RamBlock, pristine: boolean): Uint32Array | null {
  if (pristine) return cleanPages(block);
  const h = holeBitmap(block);
  if (!h) return null;
  const shared = new Uint32Array(new SharedArrayBuffer(h.byteLength));
  shared.set(h);
  return shared;
}

export class RamLoader implements LiveHandler {
  readonly counters: RamLoadCounters = { normal: 0, duplicate: 0 };
  private readonly byName = new Map<string, LoadBlock>();
  private last: LoadBlock | null = null;
  /** Whether the block list (START) has been received. */
  blockListSeen = false;
  private postcopy: RamPostcopy | null = null;
  private sinceTurn = 0;
  /** multifd: pages arrive on the channels; MULTIFD_FLUSH waits for them (multifd/recv.ts) */
  multifd: { flush(): Promise<void> } | null = null;
  /** multifd: the known-zero bitmaps the channel threads share (knownZeroPages), by block */
  knownZero: ((block: RamBlock) => Uint32Array | null) | null = null;

  private readonly runOut = new Float64Array(3);
  private readonly placeOut = new Float64Array(4);
  private readonly pristine: boolean;
  private readonly populate: { block: RamBlock; advance(offset: number): void } | null;
  private readonly ignoreShared: boolean;
  private readonly mode: MigMode;

  constructor(
    readonly blocks: readonly RamBlock[],
    opts: RamLoaderOptions = {},
  ) {
    this.pristine = opts.pristine ?? false;
    this.populate = opts.populate ?? null;
    this.ignoreShared = opts.ignoreShared ?? false;
    this.mode = opts.mode ?? 'normal';
    for (const [index, block] of blocks.entries()) {
      this.byName.set(block.name, {
        block,
        index,
        bytes: block.windows.map((w) => new Uint8Array(w)),
        words32: block.windows.map((w) => new Int32Array(w)),
        holes: null,
      });
    }
  }

  /** POSTCOPY_ADVISE: all RAM was just discarded (every page a hole); record what arrives. */
  startPostcopy(p: RamPostcopy): void {
    this.postcopy = p;
    for (const b of this.byName.values()) b.holes = new Uint32Array(Math.ceil(b.block.pages / 32)).fill(0xffffffff);
  }

  /** POSTCOPY_RAM_DISCARD: these pages are holes again. */
  discarded(block: RamBlock, firstPage: number, pages: number): void {
    const b = this.byName.get(block.name);
    if (!b?.holes) return;
    for (let p = firstPage; p < firstPage + pages; p++) b.holes[p >>> 5] |= 1 << (p & 31);
  }

  /** The sender forgets its last block on a postcopy resume; so does the loader. */
  forgetLastBlock(): void {
    this.last = null;
  }

  async loadState(f: QemuFileReader, versionId: number, sectionType: number): Promise<void> {
    if (versionId !== RAM_SECTION_VERSION) {
      throw new MigrationError('EMIG_VERSION', `Unsupported RAM section version ${versionId} (need ${RAM_SECTION_VERSION})`, {
        section: 'ram',
        position: f.position,
      });
    }
    if (sectionType !== QEMU_VM_SECTION_START && !this.blockListSeen) {
      throw new MigrationError('EMIG_RAM', 'RAM pages before the block list', { section: 'ram', position: f.position });
    }
    for (;;) {
      if (this.last !== null) {
        if (this.postcopy === null) this.placeRun(f);
        else if (this.postcopy.placer && this.placePostcopyRun(f)) {
          // A run is at most POSTCOPY_RECORDS_PER_TURN records: turn after each.
          this.sinceTurn = 0;
          await new Promise<void>((r) => setImmediate(r));
        }
      }
      // Wait only for what the next record needs: in postcopy the sender may pause right after
      // a short section (it waits for the destination), so "a full record's worth" may never come.
      if (!f.has(8)) await f.fill(8);
      if (!f.has(8)) return this.truncated(f, 'a RAM record header');
      const at = f.position;
      const hi = f.getBe32();
      const lo = f.getBe32();
      const flags = lo & FLAG_MASK;
      const addr = hi * 2 ** 32 + (lo - flags);
      const kind = flags & ~RAM_SAVE_FLAG.CONTINUE;
      switch (kind) {
        case RAM_SAVE_FLAG.EOS:
          if (flags & RAM_SAVE_FLAG.CONTINUE) return this.badFlags(flags, at);
          return;
        case RAM_SAVE_FLAG.MEM_SIZE:
          if (flags & RAM_SAVE_FLAG.CONTINUE) return this.badFlags(flags, at);
          await this.loadBlockList(f, addr, at);
          break;
        case RAM_SAVE_FLAG.MULTIFD_FLUSH:
          // QEMU multifd_recv_sync_main: nothing further on this stream may act before every
          // channel has placed its pages. Without multifd QEMU ignores it, and so do we.
          if (flags & RAM_SAVE_FLAG.CONTINUE) return this.badFlags(flags, at);
          await this.multifd?.flush();
          break;
        case RAM_SAVE_FLAG.ZERO:
        case RAM_SAVE_FLAG.PAGE: {
          // Make the whole record available, then handle it synchronously: the common case
          // (a whole record already buffered) costs no promise at all.
          let need = kind === RAM_SAVE_FLAG.ZERO ? 1 : PAGE_SIZE;
          if (!(flags & RAM_SAVE_FLAG.CONTINUE)) {
            if (!f.has(1) && !(await f.ensure(1))) return this.truncated(f, 'a RAM block name');
            need += 1 + f.peekU8(0);
          }
          if (!f.has(need) && !(await f.ensure(need))) return this.truncated(f, `the record at 0x${addr.toString(16)}`);
          const b = this.recordBlock(f, flags, at);
          if (addr + PAGE_SIZE > b.block.size) {
            throw new MigrationError('EMIG_RAM', `Illegal RAM offset 0x${addr.toString(16)} in block '${b.block.name}' (size 0x${b.block.size.toString(16)})`, {
              section: 'ram',
              field: b.block.name,
              position: at,
            });
          }
          if (kind === RAM_SAVE_FLAG.ZERO) this.zeroPage(f, b, addr, at);
          else this.page(f, b, addr);
          // While the stream keeps data ready this loop never leaves the microtask queue. In
          // postcopy the guest runs here meanwhile: its monitor, its UART output and its device
          // effects are served by this thread, so let the event loop turn now and then (QEMU
          // loads postcopy RAM in a thread of its own, postcopy_ram_listen_thread, for this).
          if (this.postcopy?.placer && ++this.sinceTurn >= POSTCOPY_RECORDS_PER_TURN) {
            this.sinceTurn = 0;
            await new Promise<void>((r) => setImmediate(r));
          }
          break;
        }
        default:
          return this.badFlags(flags, at);
      }
    }
  }

  private async loadBlockList(f: QemuFileReader, total: number, at: number): Promise<void> {
    let left = total;
    const seen = new Set<string>();
    while (left > 0) {
      const name = await f.readCounted();
      if (name === null) return this.truncated(f, 'a RAM block name');
      if (!(await f.ensure(8))) return this.truncated(f, `the length of RAM block '${name}'`);
      const len = f.getBe64Number();
      const b = this.byName.get(name);
      if (!b) {
        throw new MigrationError('EMIG_RAM', `Unknown ramblock "${name}", cannot accept migration`, { section: 'ram', field: name, position: at });
      }
      if (seen.has(name)) throw new MigrationError('EMIG_RAM', `RAM block '${name}' listed twice`, { section: 'ram', field: name, position: at });
      seen.add(name);
      if (len !== b.block.size) {
        throw new MigrationError('EMIG_RAM', `Length mismatch: ${name}: 0x${len.toString(16)} in != 0x${b.block.size.toString(16)}`, {
          section: 'ram',
          field: name,
          position: at,
        });
      }
      if (len > left) {
        throw new MigrationError('EMIG_RAM', `RAM block list overruns its total 0x${total.toString(16)}`, { section: 'ram', field: name, position: at });
      }
      if (this.ignoreShared) {
        if (!(await f.ensure(8))) return this.truncated(f, `the address of RAM block '${name}'`);
        const gpa = f.getBe64Number();
        if (ramBlockIgnored(b.block, true) && gpa !== b.block.base) {
          throw new MigrationError('EMIG_RAM', `Mismatched GPAs for block ${name}: 0x${gpa.toString(16)} != 0x${b.block.base.toString(16)}`, {
            section: 'ram',
            field: name,
            position: at,
          });
        }
      }
      left -= len;
    }
    for (const b of this.byName.values()) {
      // An ignored block gets no page: nothing to learn about it (and in cpr-transfer the
      // scan would cost the guest's pause time in proportion to its RAM).
      if (ramBlockIgnored(b.block, this.ignoreShared, this.mode)) continue;
      b.holes = this.knownZero?.(b.block) ?? knownZeroPages(b.block, this.pristine);
    }
    this.blockListSeen = true;
  }

  /** The record's block; the record is fully buffered. */
  private recordBlock(f: QemuFileReader, flags: number, at: number): LoadBlock {
    if (flags & RAM_SAVE_FLAG.CONTINUE) {
      if (!this.last) throw new MigrationError('EMIG_RAM', 'CONTINUE record without a previous block', { section: 'ram', field: 'flags', position: at });
      return this.last;
    }
    const name = f.getCounted();
    const b = this.byName.get(name);
    if (!b) throw new MigrationError('EMIG_RAM', `Unknown ramblock "${name}", cannot accept migration`, { section: 'ram', field: name, position: at });
    if (ramBlockIgnored(b.block, this.ignoreShared, this.mode)) {
      throw new MigrationError('EMIG_RAM', `block ${name} should not be migrated !`, { section: 'ram', field: name, position: at });
    }
    this.last = b;
    return b;
  }

  private zeroPage(f: QemuFileReader, b: LoadBlock, addr: number, at: number): void {
    const fill = f.getU8();
    if (fill !== 0) throw new MigrationError('EMIG_RAM', `Found a zero page with value ${fill}`, { section: 'ram', field: b.block.name, position: at });
    const page = addr / PAGE_SIZE;
    this.counters.duplicate++;
    const pc = this.postcopy;
    if (pc) {
      if (pc.placer) return void pc.placer.zero(b.index, page);
      pc.received[b.index][page >>> 5] |= 1 << (page & 31);
    }
    if (b.holes !== null && (b.holes[page >>> 5] & (1 << (page & 31))) !== 0) return;
    const w = Math.floor(page / PAGES_PER_WINDOW);
    const inWin = page - w * PAGES_PER_WINDOW;
    // Only write when needed: a fresh destination page is already zero, and writing would
    // allocate it (QEMU's ram_handle_zero checks buffer_is_zero first).
    if (!isZeroPage(b.words32[w], inWin * (PAGE_SIZE / 4))) b.bytes[w].fill(0, inWin * PAGE_SIZE, (inWin + 1) * PAGE_SIZE);
  }

  private page(f: QemuFileReader, b: LoadBlock, addr: number): void {
    const page = addr / PAGE_SIZE;
    const pc = this.postcopy;
    if (pc) {
      if (pc.placer) {
        pc.placer.place(b.index, page, f.getBytes(PAGE_SIZE));
        this.counters.normal++;
        return;
      }
      pc.received[b.index][page >>> 5] |= 1 << (page & 31);
    }
    // Atomic: multifd channel threads clear bits of the same words.
    if (b.holes !== null) Atomics.and(b.holes, page >>> 5, ~(1 << (page & 31)));
    if (this.populate !== null && b.block === this.populate.block) this.populate.advance(addr);
    const w = Math.floor(page / PAGES_PER_WINDOW);
    f.getRangeInto(b.bytes[w], (page - w * PAGES_PER_WINDOW) * PAGE_SIZE, PAGE_SIZE);
    this.counters.normal++;
  }

  /** The run of records at the front of the reader's chunk that continue the current block
   * (see the module comment). */
  private placeRun(f: QemuFileReader): void {
    const buf = f.currentChunk();
    const off = f.chunkOffset;
    if (buf.length - off < 2 * (8 + PAGE_SIZE)) return;
    const b = this.last!;
    const out = this.runOut;
    const end = native.ramLoadRecords(buf, off, buf.length, b.block.mapping.addr, b.block.size, b.holes, out);
    if (end === off) return;
    f.consumeInChunk(end - off);
    this.counters.normal += out[0];
    this.counters.duplicate += out[1];
    if (out[2] >= 0 && this.populate !== null && b.block === this.populate.block) this.populate.advance(out[2]);
  }

  /** placeRun in postcopy, once the guest runs here: the run's pages placed through
   * userfaultfd (PagePlacer.placeRecords). True when it placed any. */
  private placePostcopyRun(f: QemuFileReader): boolean {
    const buf = f.currentChunk();
    const off = f.chunkOffset;
    if (buf.length - off < 2 * 9) return false;
    const b = this.last!;
    const out = this.placeOut;
    const end = this.postcopy!.placer!.placeRecords(b.index, buf, off, buf.length, out, POSTCOPY_RECORDS_PER_TURN);
    if (end === off) return false;
    f.consumeInChunk(end - off);
    this.counters.normal += out[0];
    this.counters.duplicate += out[1];
    return true;
  }

  private badFlags(flags: number, at: number): never {
    throw new MigrationError('EMIG_RAM', `Unknown combination of migration flags: 0x${flags.toString(16)}`, { section: 'ram', position: at });
  }

  private truncated(f: QemuFileReader, what: string): never {
    throw new MigrationError('EMIG_TRUNCATED', `stream ended while reading ${what}`, { section: 'ram', position: f.position });
  }

  saveSetup(): void {
    throw new MigrationError('EMIG_STATE', 'RamLoader cannot save');
  }
  saveIterate(_f: QemuFileWriter): Promise<boolean> {
    return Promise.reject(new MigrationError('EMIG_STATE', 'RamLoader cannot save'));
  }
  saveComplete(_f: QemuFileWriter): Promise<void> {
    return Promise.reject(new MigrationError('EMIG_STATE', 'RamLoader cannot save'));
  }
  pending(): number {
    return 0;
  }
}
