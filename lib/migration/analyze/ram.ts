/**
 * The `ram` section (QEMU migration/ram.c, version 4), counted rather than loaded. Record
 * layout (see ram-save.ts):
 *
 *   be64 (offset | flags) [cstr8 block idstr unless CONTINUE] payload
 *     MEM_SIZE 0x04   offset = total bytes; then per block: cstr8 idstr, be64 length
 *                     [be64 mr address with x-ignore-shared]; until the total is used up
 *     ZERO     0x02   u8 fill (must be 0)
 *     PAGE     0x08   page-size bytes
 *     XBZRLE   0x40   u8 0x01, be16 len (≤ page size), len bytes
 *     EOS      0x10   end of this section's body
 *     MULTIFD_FLUSH 0x200   barrier, no payload
 *
 * Checked as QEMU's loader checks them — one known kind per record, CONTINUE only after a
 * named block, the page inside its block, the zero fill byte, the block list adding up to its
 * total — so a stream this accepts is one QEMU would. Counted per block: pages sent as PAGE
 * ("normal") and as ZERO ("duplicate" in query-migrate), and pages that arrive a second time
 * (dirtied after they were sent, and sent again), found with one bit per page.
 *
 * Speed: no object per page. While a whole record is buffered the loop is synchronous; page
 * bytes are skipped in the reader, or copied straight into the extractor's staging buffer.
 */
import { COUNTED_STRING_MAX, type QemuFileReader } from '../../stream';
import { RAM_SAVE_FLAG, RAM_SECTION_VERSION } from '../wire';
import { AnalyzeError, type AnalyzeErrorCode } from './errors';
import type { BlockExtractor } from './extract';

/** Pages (all blocks together) the analyzer keeps a bit for: 1 TiB of 4 KiB pages, 32 MiB of
 * bitmap. The block list is refused above it. */
export const RAM_PAGES_MAX = 2 ** 28;
/** Blocks in one block list (a machine has a few dozen at most). */
export const RAM_BLOCKS_MAX = 4096;

const ENCODING_FLAG_XBZRLE = 0x01;

export interface RamBlockStats {
  readonly idstr: string;
  /** used_length in bytes, from the block list. */
  readonly size: number;
  /** size / page size, rounded up. */
  readonly pages: number;
  /** Memory-region address (x-ignore-shared streams only). */
  mrAddr?: number;
  /** Records of each kind. */
  normal: number;
  zero: number;
  xbzrle: number;
  /** Records for a page that had been sent before. */
  resent: number;
  /** Distinct pages received at least once. */
  received: number;
  /** Stream bytes of this block's page records (headers, names, payloads). */
  bytes: number;
}

export interface RamStats {
  readonly sectionId: number;
  readonly version: number;
  readonly pageSize: number;
  /** The block list's total (MEM_SIZE record). */
  totalBytes: number;
  readonly blocks: RamBlockStats[];
  /** START / PART / END sections of `ram`. */
  starts: number;
  parts: number;
  ends: number;
  /** EOS and MULTIFD_FLUSH records. */
  eos: number;
  flushes: number;
  /** Stream bytes of all RAM section bodies. */
  bodyBytes: number;
}

export interface RamOptions {
  pageSize: number;
  ignoreShared: boolean;
  extractor?: BlockExtractor;
}

interface BlockState {
  readonly stats: RamBlockStats;
  readonly index: number;
  readonly seen: Uint8Array;
}

export class RamAnalyzer {
  readonly stats: RamStats;
  private readonly byName = new Map<string, BlockState>();
  private readonly list: BlockState[] = [];
  private last: BlockState | null = null;
  private readonly mask: number;
  private readonly maxRecord: number;

  constructor(
    sectionId: number,
    version: number,
    private readonly opts: RamOptions,
  ) {
    this.stats = { sectionId, version, pageSize: opts.pageSize, totalBytes: 0, blocks: [], starts: 0, parts: 0, ends: 0, eos: 0, flushes: 0, bodyBytes: 0 };
    this.mask = opts.pageSize - 1;
    this.maxRecord = 8 + 1 + COUNTED_STRING_MAX + opts.pageSize;
  }

  private fail(code: AnalyzeErrorCode, detail: string, position: number, field?: string): never {
    throw new AnalyzeError(code, detail, { section: 'ram', sectionId: this.stats.sectionId, field, position });
  }

  private async need(f: QemuFileReader, n: number, what: string, field?: string): Promise<void> {
    if (f.has(n)) return;
    await f.fill(n);
    if (f.has(n)) return;
    if (f.error) this.fail('EANALYZE_IO', `read failed: ${f.error.message}`, f.position, field);
    this.fail('EANALYZE_TRUNCATED', `stream ended while reading ${what}`, f.position, field);
  }

  /** One START/PART/END body, up to and including its EOS. */
  async section(f: QemuFileReader): Promise<void> {
    const start = f.position;
    try {
      await this.records(f);
    } finally {
      this.stats.bodyBytes += f.position - start;
    }
  }

  private async records(f: QemuFileReader): Promise<void> {
    const ps = this.opts.pageSize;
    const ex = this.opts.extractor;
    for (;;) {
      if (!f.has(this.maxRecord)) await f.fill(this.maxRecord);
      if (!f.has(8)) await this.need(f, 8, 'a RAM record header');
      const at = f.position;
      const hi = f.getBe32();
      const lo = f.getBe32();
      const flags = lo & this.mask;
      const addr = hi * 4294967296 + (lo - flags);
      const kind = flags & ~RAM_SAVE_FLAG.CONTINUE;
      switch (kind) {
        case RAM_SAVE_FLAG.EOS:
          if (flags & RAM_SAVE_FLAG.CONTINUE) this.badFlags(flags, at);
          this.stats.eos++;
          return;
        case RAM_SAVE_FLAG.MULTIFD_FLUSH:
          if (flags & RAM_SAVE_FLAG.CONTINUE) this.badFlags(flags, at);
          this.stats.flushes++;
          break;
        case RAM_SAVE_FLAG.MEM_SIZE:
          if (flags & RAM_SAVE_FLAG.CONTINUE) this.badFlags(flags, at);
          await this.blockList(f, addr, at);
          break;
        case RAM_SAVE_FLAG.ZERO:
        case RAM_SAVE_FLAG.PAGE:
        case RAM_SAVE_FLAG.XBZRLE: {
          const b = this.recordBlock(f, flags, at) ?? (await this.recordBlockSlow(f, flags, at));
          const s = b.stats;
          if (addr + ps > s.size) {
            this.fail('EANALYZE_RAM', `page offset 0x${addr.toString(16)} is outside block '${s.idstr}' (size 0x${s.size.toString(16)})`, at, s.idstr);
          }
          const page = addr / ps;
          const bit = 1 << (page & 7);
          const was = (b.seen[page >>> 3] & bit) !== 0;
          if (was) s.resent++;
          else {
            b.seen[page >>> 3] |= bit;
            s.received++;
          }
          if (kind === RAM_SAVE_FLAG.PAGE) {
            if (!f.has(ps)) await this.need(f, ps, `page 0x${addr.toString(16)}`, s.idstr);
            if (ex) ex.page(b.index, addr, f, ps);
            else f.skip(ps);
            s.normal++;
          } else if (kind === RAM_SAVE_FLAG.ZERO) {
            if (!f.has(1)) await this.need(f, 1, 'a zero-page fill byte', s.idstr);
            const fill = f.getU8();
            if (fill !== 0) this.fail('EANALYZE_RAM', `zero page with fill byte ${fill} (must be 0)`, at, s.idstr);
            if (ex && was) ex.zero(b.index, addr, ps);
            s.zero++;
          } else {
            await this.xbzrle(f, s, at);
          }
          s.bytes += f.position - at;
          break;
        }
        default:
          this.badFlags(flags, at);
      }
    }
  }

  private badFlags(flags: number, at: number): never {
    const why = flags & RAM_SAVE_FLAG.HOOK ? ' (RAM hooks exist only on RDMA)' : flags & RAM_SAVE_FLAG.COMPRESS_PAGE ? ' (compressed pages were removed from QEMU)' : '';
    this.fail('EANALYZE_RAM', `unknown combination of RAM flags 0x${flags.toString(16)}${why}`, at);
  }

  private async xbzrle(f: QemuFileReader, s: RamBlockStats, at: number): Promise<void> {
    if (this.opts.extractor) this.fail('EANALYZE_RAM', 'XBZRLE pages cannot be extracted', at, s.idstr);
    await this.need(f, 3, 'an XBZRLE header', s.idstr);
    const enc = f.getU8();
    const len = f.getBe16();
    if (enc !== ENCODING_FLAG_XBZRLE) this.fail('EANALYZE_RAM', `XBZRLE page with encoding flag ${enc}`, at, s.idstr);
    if (len > this.opts.pageSize) this.fail('EANALYZE_LIMIT', `XBZRLE length ${len} over the page size`, at, s.idstr);
    await this.need(f, len, 'XBZRLE data', s.idstr);
    f.skip(len);
    s.xbzrle++;
  }

  /** The record's block: the previous one (CONTINUE) or the one it names; null when the name
   * is not buffered yet (then recordBlockSlow). */
  private recordBlock(f: QemuFileReader, flags: number, at: number): BlockState | null {
    if (flags & RAM_SAVE_FLAG.CONTINUE) {
      if (!this.last) this.fail('EANALYZE_RAM', 'CONTINUE record before any block was named', at);
      return this.last;
    }
    if (!f.has(1) || !f.has(1 + f.peekU8(0))) return null;
    const name = f.getCounted();
    const b = this.byName.get(name);
    if (!b) this.fail('EANALYZE_RAM', `unknown RAM block '${name}'`, at, name);
    this.last = b;
    return b;
  }

  private async recordBlockSlow(f: QemuFileReader, flags: number, at: number): Promise<BlockState> {
    await this.need(f, 1, 'a RAM block name');
    await this.need(f, 1 + f.peekU8(0), 'a RAM block name');
    return this.recordBlock(f, flags, at)!;
  }

  private async blockList(f: QemuFileReader, total: number, at: number): Promise<void> {
    const ps = this.opts.pageSize;
    const again = this.list.length > 0;
    if (again && total !== this.stats.totalBytes) this.fail('EANALYZE_RAM', `second block list totals 0x${total.toString(16)}, the first 0x${this.stats.totalBytes.toString(16)}`, at);
    if (Math.ceil(total / ps) > RAM_PAGES_MAX) this.fail('EANALYZE_LIMIT', `RAM total 0x${total.toString(16)} over ${RAM_PAGES_MAX} pages`, at);
    this.stats.totalBytes = total;
    let left = total;
    const seen = new Set<string>();
    const fresh: { idstr: string; size: number; mrAddr?: number }[] = [];
    while (left > 0) {
      const pos = f.position;
      await this.need(f, 1, 'a RAM block name');
      await this.need(f, 1 + f.peekU8(0) + 8, 'a RAM block list entry');
      const idstr = f.getCounted();
      const size = f.getBe64Number();
      if (f.error) this.fail('EANALYZE_LIMIT', `RAM block '${idstr}' length is not a safe integer`, pos, idstr);
      if (idstr.length === 0) this.fail('EANALYZE_RAM', 'RAM block with an empty name', pos);
      if (seen.has(idstr)) this.fail('EANALYZE_RAM', `RAM block '${idstr}' listed twice`, pos, idstr);
      if (size > left) this.fail('EANALYZE_RAM', `RAM block '${idstr}' (0x${size.toString(16)}) overruns the list total 0x${total.toString(16)}`, pos, idstr);
      if (seen.size >= RAM_BLOCKS_MAX) this.fail('EANALYZE_LIMIT', `more than ${RAM_BLOCKS_MAX} RAM blocks`, pos);
      seen.add(idstr);
      let mrAddr: number | undefined;
      if (this.opts.ignoreShared) {
        await this.need(f, 8, 'a block address', idstr);
        mrAddr = f.getBe64Number();
        if (f.error) this.fail('EANALYZE_LIMIT', `RAM block '${idstr}' address is not a safe integer`, pos, idstr);
      }
      left -= size;
      fresh.push({ idstr, size, mrAddr });
    }
    if (again) {
      // A later list (e.g. after postcopy recovery) must describe the same blocks.
      const same = fresh.length === this.list.length && fresh.every((b, i) => b.idstr === this.list[i].stats.idstr && b.size === this.list[i].stats.size);
      if (!same) this.fail('EANALYZE_RAM', 'a second block list differs from the first', at);
      return;
    }
    for (const b of fresh) {
      const pages = Math.ceil(b.size / ps);
      const stats: RamBlockStats = { idstr: b.idstr, size: b.size, pages, normal: 0, zero: 0, xbzrle: 0, resent: 0, received: 0, bytes: 0 };
      if (b.mrAddr !== undefined) stats.mrAddr = b.mrAddr;
      const st: BlockState = { stats, index: this.list.length, seen: new Uint8Array(Math.ceil(pages / 8)) };
      this.list.push(st);
      this.byName.set(b.idstr, st);
      this.stats.blocks.push(stats);
    }
    this.opts.extractor?.open(fresh);
  }
}

export function checkRamVersion(version: number, sectionId: number, position: number): void {
  if (version !== RAM_SECTION_VERSION) {
    throw new AnalyzeError('EANALYZE_RAM', `unknown RAM version ${version} (QEMU writes ${RAM_SECTION_VERSION})`, { section: 'ram', sectionId, position });
  }
}
