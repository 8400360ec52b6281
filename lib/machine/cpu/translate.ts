/**
 * Translation: fetch and decode a basic block once, generate its JavaScript, compile it.
 *
 * Tier 1 — a block starts at some pc and runs until the first instruction that ends a block
 * (branch, jump, CSR or system instruction, illegal instruction), the end of the 4 KiB page, or
 * the length limit. Blocks never cross a page.
 *
 * Tier 2 — once blocks of a page are hot, the page's hot blocks are compiled together into one
 * region function (codegen.ts) so that jumps between them stay inside the function, with guest
 * registers in locals. Region code reuses the blocks' decoded instructions: nothing is fetched
 * or decoded twice.
 */
import { A_EXT, execAtomic } from './a';
import { BlockBuilder, finishBlock, finishRegion, RegUse, type FastPath, type RegionInfo } from './codegen';
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
  /** RAM region index and offsets of the first byte and one past the last byte of the code. */
  readonly ram: number;
  readonly start: number;
  readonly end: number;
  /** Instructions in one pass through the block. */
  readonly len: number;
  readonly insns: readonly Insn[];
  readonly fn: (p: number) => void;
  /** Generated source, for debugging and profiles. */
  readonly source: string;
}

export interface Region {
  readonly ram: number;
  /** Page number within the RAM region. */
  readonly page: number;
  readonly blocks: readonly Block[];
  /** Longest block: the run loop enters only with at least this much budget left. */
  readonly maxLen: number;
  readonly fn: (p: number) => void;
  readonly source: string;
}

const GENERATORS: Partial<Record<Mnemonic, Gen>> = { ...RV64I, ...M_EXT, ...A_EXT };

const FACTORY_PARAMS = ['h', 'M', 'I8', 'U8', 'I16', 'U16', 'I32', 'F64', 'SF', 'SI', 'D', 'C', 'IS', 'MR', 'AT', 'FB', 'WK', 'HID'];
const IS_PARAM = FACTORY_PARAMS.indexOf('IS');

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
    hart: Hart,
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
      atomic64: hart.env.lines.count > 1,
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
  translateBlock(pcLo: number, pcHi: number, maxLen: number): Block | undefined {
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
      if (word === undefined) break; // cannot happen inside a RAM page
      insns.push(decode(word));
      off += 4;
      this.emitInsn(b, insns, insns.length - 1, off >= pageEnd || insns.length >= maxLen);
    }
    const source = finishBlock(b);
    return {
      pcLo, pcHi, ram: where.region, start: where.off, end: off, len: insns.length, insns,
      fn: this.compile(source, insns), source,
    };
  }

  /** Compile the given blocks of one page (tier-1 blocks, decoded already) into one function. */
  translateRegion(ram: number, page: number, blocks: readonly Block[]): Region {
    const first = blocks[0];
    const pageBase = ((BigInt(first.pcHi >>> 0) << 32n) | BigInt(first.pcLo >>> 0)) - BigInt(first.start - page * 4096);
    const info: RegionInfo = { pageBase, entries: new Set(blocks.map((bl) => (bl.start - page * 4096) >> 2)) };
    const regs = new RegUse();
    const builders: BlockBuilder[] = [];
    const all: Insn[] = [];
    let maxLen = 1;
    for (const bl of blocks) {
      const b = new BlockBuilder(this.fast, pageBase + BigInt(bl.start - page * 4096), regs, info, all.length);
      all.push(...bl.insns);
      bl.insns.forEach((_, k) => this.emitInsn(b, bl.insns, k, k === bl.insns.length - 1));
      builders.push(b);
      maxLen = Math.max(maxLen, bl.len);
    }
    const source = finishRegion(builders, regs, info, maxLen);
    return { ram, page, blocks, maxLen, fn: this.compile(source, all), source };
  }

  /** Generate instruction k of a block; `last` ends the block by falling through. */
  private emitInsn(b: BlockBuilder, insns: readonly Insn[], k: number, last: boolean): void {
    const insn = insns[k];
    b.k = k;
    b.pc = b.start + BigInt(4 * k);
    this.generate(b, insn);
    if (!b.ended && last) {
      b.emit(b.fallThrough());
      b.ended = true;
    }
  }

  private compile(source: string, insns: readonly Insn[]): (p: number) => void {
    const factory = new Function(...FACTORY_PARAMS, source) as (...a: unknown[]) => (p: number) => void;
    const args = this.args.slice();
    args[IS_PARAM] = insns;
    return factory(...args);
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
