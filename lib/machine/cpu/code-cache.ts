/**
 * The code cache: translated code by pc, with the bookkeeping to drop it when the guest
 * changes it.
 *
 *   pc ──► direct-mapped table ──► Map by physical address ──► Entry { fn, p, len }
 *                                                               ├─ tier 1: one Block
 *                                                               └─ tier 2: a Region entry point
 *   page ──► PageCode { blocks (tier 1, by entry index), region (tier 2) }
 *
 * Invalidation is by byte range: a store to a page holding translated code drops the blocks
 * whose bytes it overlaps and the page's region if any of its blocks overlap — so data sharing a
 * page with code does not thrash. The per-region `code` byte map (memory.ts) lets the store fast
 * path skip all of this for pages without code.
 */
import type { Block, Region } from './translate';
import { toNumber } from './int64';
import type { Memory } from './memory';

/** What the run loop calls: `fn(p)`. */
export interface Entry {
  readonly pcLo: number;
  readonly pcHi: number;
  readonly fn: (p: number) => void;
  readonly p: number;
  /** Longest block the call may run before it checks the budget. */
  readonly len: number;
  /** Tier 1 only: the block, and how often it ran (for promotion to a region). */
  readonly block?: Block;
  hits: number;
}

export class PageCode {
  /** Tier-1 blocks by entry index (offset / 4 within the page). */
  readonly blocks = new Map<number, Block>();
  region: Region | undefined;
  /** Region compilations so far (bounded: pages whose hot set keeps changing stay tier 1). */
  builds = 0;
  constructor(
    readonly ram: number,
    readonly page: number,
  ) {}
}

const TABLE_BITS = 13;
const TABLE_MASK = (1 << TABLE_BITS) - 1;

export class CodeCache {
  private readonly table: (Entry | undefined)[] = new Array(1 << TABLE_BITS).fill(undefined);
  private readonly byPc = new Map<number, Entry>();
  private readonly steps = new Map<number, Entry>();
  private readonly pages = new Map<number, PageCode>();

  constructor(private readonly mem: Memory) {}

  lookup(pcLo: number, pcHi: number): Entry | undefined {
    const slot = (pcLo >>> 2) & TABLE_MASK;
    const e = this.table[slot];
    if (e !== undefined && e.pcLo === pcLo && e.pcHi === pcHi) return e;
    const m = this.byPc.get(toNumber(pcLo, pcHi));
    if (m !== undefined) this.table[slot] = m;
    return m;
  }

  /** Single-instruction entries, used when less budget is left than a whole block. */
  lookupStep(pcLo: number, pcHi: number): Entry | undefined {
    return this.steps.get(toNumber(pcLo, pcHi));
  }

  addBlock(b: Block, step = false): Entry {
    const e: Entry = { pcLo: b.pcLo, pcHi: b.pcHi, fn: b.fn, p: 0, len: b.len, block: b, hits: 0 };
    const key = toNumber(b.pcLo, b.pcHi);
    const page = this.pageCode(b.ram, Math.floor(b.start / 4096));
    if (step) {
      this.steps.set(key, e);
    } else {
      page.blocks.set((b.start & 4095) >> 2, b);
      this.setEntry(key, e);
    }
    this.mem.regions[b.ram].code[page.page] = 1;
    return e;
  }

  /** The page record of a block (created on first use). */
  pageOf(b: Block): PageCode {
    return this.pageCode(b.ram, Math.floor(b.start / 4096));
  }

  /** Make `region` the code for its blocks' entry points. */
  installRegion(page: PageCode, region: Region): void {
    if (page.region) this.dropRegionEntries(page.region);
    page.region = region;
    page.builds++;
    for (const b of region.blocks) {
      const idx = (b.start & 4095) >> 2;
      this.setEntry(toNumber(b.pcLo, b.pcHi), { pcLo: b.pcLo, pcHi: b.pcHi, fn: region.fn, p: idx, len: region.maxLen, hits: 0 });
    }
  }

  /** Drop code overlapping [off, off+width) of RAM region `ram`; true if anything was dropped. */
  invalidate(ram: number, off: number, width: number): boolean {
    let hit = false;
    const first = Math.floor(off / 4096);
    const last = Math.floor((off + width - 1) / 4096);
    for (let pg = first; pg <= last; pg++) {
      const page = this.pages.get(ram * 2 ** 24 + pg);
      if (!page) continue;
      const overlaps = (b: Block) => off < b.end && off + width > b.start;
      if (page.region && page.region.blocks.some(overlaps)) {
        this.dropRegionEntries(page.region);
        page.region = undefined;
        hit = true;
      }
      for (const [idx, b] of page.blocks) {
        if (!overlaps(b)) continue;
        page.blocks.delete(idx);
        this.dropEntry(toNumber(b.pcLo, b.pcHi), (e) => e.block === b);
        hit = true;
      }
      for (const [key, e] of this.steps) {
        if (e.block && e.block.ram === ram && overlaps(e.block)) {
          this.steps.delete(key);
          hit = true;
        }
      }
      if (!page.region && page.blocks.size === 0 && !this.hasSteps(ram, pg)) this.mem.regions[ram].code[pg] = 0;
    }
    return hit;
  }

  flush(): void {
    this.table.fill(undefined);
    this.byPc.clear();
    this.steps.clear();
    for (const page of this.pages.values()) this.mem.regions[page.ram].code[page.page] = 0;
    this.pages.clear();
  }

  /** Tier-1 blocks currently cached. */
  get blockCount(): number {
    let n = 0;
    for (const p of this.pages.values()) n += p.blocks.size;
    return n;
  }

  /** Region functions currently cached. */
  get regionCount(): number {
    let n = 0;
    for (const p of this.pages.values()) if (p.region) n++;
    return n;
  }

  private pageCode(ram: number, page: number): PageCode {
    const key = ram * 2 ** 24 + page;
    let pc = this.pages.get(key);
    if (!pc) this.pages.set(key, (pc = new PageCode(ram, page)));
    return pc;
  }

  private setEntry(key: number, e: Entry): void {
    this.byPc.set(key, e);
    const slot = (e.pcLo >>> 2) & TABLE_MASK;
    const old = this.table[slot];
    if (old === undefined || (old.pcLo === e.pcLo && old.pcHi === e.pcHi)) this.table[slot] = e;
  }

  private dropEntry(key: number, match: (e: Entry) => boolean): void {
    const e = this.byPc.get(key);
    if (!e || !match(e)) return;
    this.byPc.delete(key);
    const slot = (e.pcLo >>> 2) & TABLE_MASK;
    if (this.table[slot] === e) this.table[slot] = undefined;
  }

  /** Remove a region's entry points; where a tier-1 block still exists, it takes over again. */
  private dropRegionEntries(region: Region): void {
    const page = this.pageCode(region.ram, region.page);
    for (const b of region.blocks) {
      const key = toNumber(b.pcLo, b.pcHi);
      this.dropEntry(key, (e) => e.fn === region.fn);
      const idx = (b.start & 4095) >> 2;
      const still = page.blocks.get(idx);
      if (still) this.setEntry(key, { pcLo: still.pcLo, pcHi: still.pcHi, fn: still.fn, p: 0, len: still.len, block: still, hits: 0 });
    }
  }

  private hasSteps(ram: number, pg: number): boolean {
    for (const e of this.steps.values()) if (e.block && e.block.ram === ram && Math.floor(e.block.start / 4096) === pg) return true;
    return false;
  }
}
