/**
 * Translation: fetch and decode a basic block once, generate its JavaScript, compile it, and
 * keep it until the code it came from changes.
 *
 * A block starts at some pc and runs until the first instruction that ends a block (branch,
 * jump, CSR or system instruction, illegal instruction), the end of the 4 KiB page, or the
 * length limit. Blocks never cross a page, so invalidation works page by page: a store to a page
 * that holds translated code drops exactly the blocks whose bytes it overlaps (per-block byte
 * ranges, so data sharing a page with code does not thrash), and FENCE.I or a state load drops
 * everything.
 */
import { A_EXT, execAtomic } from './a';
import { BlockBuilder, type FastPath } from './codegen';
import { decode, endsBlock, type Insn, type Mnemonic } from './decode';
import type { Hart } from './hart';
import { toNumber } from './int64';
import { M_EXT, MR } from './m';
import type { Memory } from './memory';
import { RV64I, type Gen } from './rv64i';
import { CAUSE } from './trap';

export interface Block {
  readonly pcLo: number;
  readonly pcHi: number;
  readonly region: number;
  /** Region offsets of the first byte and one past the last byte of the block's code. */
  readonly start: number;
  readonly end: number;
  /** Instructions in one pass through the block. */
  readonly len: number;
  readonly fn: () => void;
  /** Generated source, kept for debugging and profiles. */
  readonly source: string;
}

const GENERATORS: Partial<Record<Mnemonic, Gen>> = { ...RV64I, ...M_EXT, ...A_EXT };

const FACTORY_PARAMS = ['h', 'M', 'I8', 'U8', 'I16', 'U16', 'I32', 'F64', 'SF', 'SI', 'D', 'C', 'IS', 'MR', 'AT', 'FB', 'WK', 'HID'];

/** The shared word FENCE does a locked operation on (any word works; it is only a barrier). */
const FENCE_WORD = new Int32Array(new SharedArrayBuffer(4));

/** Illegal-instruction mtval: the instruction bits as QEMU reports them — a 16-bit parcel when
 * the low bits say "compressed" (QEMU fetches 16 bits first), else the 32-bit word. */
export function illegalTval(bits: number): number {
  return (bits & 3) !== 3 ? bits & 0xffff : bits | 0;
}

export class Translator {
  private readonly args: unknown[];
  readonly fast: FastPath;

  constructor(
    private readonly hart: Hart,
    private readonly mem: Memory,
    orderedDirty: boolean,
  ) {
    const r0 = mem.regions[0];
    const win = r0 ? r0.region.windows[0] : new ArrayBuffer(8);
    const size = r0 ? Math.min(win.byteLength, r0.size) : 0;
    this.fast = {
      enabled: size > 0,
      low: r0 ? r0.base + size <= 2 ** 32 : true,
      base: r0 ? r0.base : 0,
      size,
      writable: r0 ? !r0.region.readonly : false,
      orderedDirty,
    };
    const scratch = new ArrayBuffer(8);
    const at = (insn: Insn, al: number, ah: number, vl: number, vh: number) => execAtomic(hart, mem, insn, al, ah, vl, vh);
    this.args = [
      hart, mem,
      new Int8Array(win), new Uint8Array(win), new Int16Array(win, 0, win.byteLength >>> 1),
      new Uint16Array(win, 0, win.byteLength >>> 1), new Int32Array(win, 0, win.byteLength >>> 2),
      new Float64Array(win, 0, win.byteLength >>> 3),
      new Float64Array(scratch), new Int32Array(scratch),
      r0 ? r0.region.dirty : new Uint8Array(1), r0 ? r0.code : new Uint8Array(1),
      null, MR, at, FENCE_WORD, hart.env.lines.wake, hart.hartId,
    ];
  }

  /**
   * Translate the block at pc = (lo, hi), at most `maxLen` instructions. Returns undefined when
   * the first instruction cannot be fetched (the caller raises an instruction access fault).
   */
  translate(pcLo: number, pcHi: number, maxLen: number): Block | undefined {
    if (pcHi >>> 0 >= 0x200000) return undefined;
    const paddr = toNumber(pcLo, pcHi);
    const where = this.mem.locate(paddr);
    if (!where) return undefined;
    const start = (BigInt(pcHi >>> 0) << 32n) | BigInt(pcLo >>> 0);
    const b = new BlockBuilder(this.fast, start);
    const insns: Insn[] = [];
    const pageEnd = (Math.floor(where.off / 4096) + 1) * 4096;
    let off = where.off;
    while (!b.ended) {
      const word = this.mem.fetch(paddr + (off - where.off));
      if (word === undefined) break; // cannot happen inside a RAM page; be safe
      const insn = decode(word);
      insns.push(insn);
      b.k = insns.length - 1;
      b.pc = start + BigInt(off - where.off);
      this.generate(b, insn);
      off += 4;
      if (!b.ended && (off >= pageEnd || insns.length >= maxLen)) {
        b.emit(b.exitNext());
        b.ended = true;
      }
    }
    const source = b.finish();
    const factory = new Function(...FACTORY_PARAMS, source) as (...a: unknown[]) => () => void;
    const args = this.args.slice();
    args[FACTORY_PARAMS.indexOf('IS')] = insns;
    return {
      pcLo,
      pcHi,
      region: where.region,
      start: where.off,
      end: off,
      len: insns.length,
      fn: factory(...args),
      source,
    };
  }

  private generate(b: BlockBuilder, insn: Insn): void {
    const gen = GENERATORS[insn.op];
    if (gen) {
      gen(b, insn);
      return;
    }
    if (insn.op === 'illegal') {
      b.emit(b.trapCode(CAUSE.ILLEGAL_INSN, illegalTval(insn.bits), 0));
      b.ended = true;
      return;
    }
    if (endsBlock(insn.op)) {
      // CSR and system instructions run in the runtime (system.ts, zicsr.ts).
      b.emit(b.sysCode());
      b.ended = true;
      return;
    }
    // Every mnemonic has a generator or ends the block; reaching here is a bug in this file.
    throw new Error(`no generator for ${insn.op}`);
  }
}

/** Direct-mapped lookup in front of a map from pc to block, plus the per-page index used to
 * invalidate. Page keys are region × 2^24 + page number (16 GiB regions have 2^22 pages). */
export class BlockCache {
  private static readonly BITS = 13;
  private readonly table: (Block | undefined)[] = new Array(1 << BlockCache.BITS).fill(undefined);
  private readonly byPc = new Map<number, Block>();
  private readonly steps = new Map<number, Block>();
  private readonly byPage = new Map<number, Block[]>();

  constructor(private readonly mem: Memory) {}

  lookup(pcLo: number, pcHi: number): Block | undefined {
    const b = this.table[(pcLo >>> 2) & ((1 << BlockCache.BITS) - 1)];
    if (b !== undefined && b.pcLo === pcLo && b.pcHi === pcHi) return b;
    const m = this.byPc.get(toNumber(pcLo, pcHi));
    if (m !== undefined) this.table[(pcLo >>> 2) & ((1 << BlockCache.BITS) - 1)] = m;
    return m;
  }

  lookupStep(pcLo: number, pcHi: number): Block | undefined {
    return this.steps.get(toNumber(pcLo, pcHi));
  }

  insert(b: Block, step = false): void {
    const key = toNumber(b.pcLo, b.pcHi);
    if (step) this.steps.set(key, b);
    else {
      this.byPc.set(key, b);
      this.table[(b.pcLo >>> 2) & ((1 << BlockCache.BITS) - 1)] = b;
    }
    const page = Math.floor(b.start / 4096);
    const pk = b.region * 2 ** 24 + page;
    let list = this.byPage.get(pk);
    if (!list) this.byPage.set(pk, (list = []));
    list.push(b);
    this.mem.regions[b.region].code[page] = 1;
  }

  /** Drop blocks overlapping [off, off+width) of a region; true if any was dropped. */
  invalidate(region: number, off: number, width: number): boolean {
    let hit = false;
    const first = Math.floor(off / 4096);
    const last = Math.floor((off + width - 1) / 4096);
    for (let page = first; page <= last; page++) {
      const pk = region * 2 ** 24 + page;
      const list = this.byPage.get(pk);
      if (!list) continue;
      const keep: Block[] = [];
      for (const b of list) {
        if (off < b.end && off + width > b.start) {
          this.drop(b);
          hit = true;
        } else keep.push(b);
      }
      if (keep.length) this.byPage.set(pk, keep);
      else {
        this.byPage.delete(pk);
        this.mem.regions[region].code[page] = 0;
      }
    }
    return hit;
  }

  private drop(b: Block): void {
    const key = toNumber(b.pcLo, b.pcHi);
    if (this.byPc.get(key) === b) this.byPc.delete(key);
    if (this.steps.get(key) === b) this.steps.delete(key);
    const slot = (b.pcLo >>> 2) & ((1 << BlockCache.BITS) - 1);
    if (this.table[slot] === b) this.table[slot] = undefined;
  }

  flush(): void {
    this.table.fill(undefined);
    this.byPc.clear();
    this.steps.clear();
    for (const pk of this.byPage.keys()) {
      const region = Math.floor(pk / 2 ** 24);
      this.mem.regions[region].code[pk - region * 2 ** 24] = 0;
    }
    this.byPage.clear();
  }

  get size(): number {
    return this.byPc.size;
  }
}

