/**
 * Code generation: turns decoded instructions into JavaScript source, compiled once with
 * `new Function` and then run many times (the QEMU TCG idea, with V8 as the backend).
 *
 * Two shapes, two tiers:
 *
 *   block (tier 1): one basic block                 region (tier 2): the hot blocks of one page
 *   ────────────────────────────────                ──────────────────────────────────────────
 *   function block() {                              function region(p) {     // p = entry index
 *     <prologue>                                      <prologue>
 *     run: for (;;) {     // loops only when the      run: for (;;) switch (p) {
 *       ...instructions   // block jumps to itself      case 4: ...block at +16...; p = 9; continue run;
 *       <exit: n, pc; break run>                        case 9: ...block at +36...
 *     }                                                 default: <pc = page + 4p; break run>
 *     <epilogue>                                      }
 *   }                                                 <epilogue>
 *                                                   }
 *
 *   prologue: const x = h.x; let n = h.n; const lim = h.limit; ...
 *             let r5l = x[10] | 0, r5h = x[11] | 0, ...   // guest registers as int32 locals
 *   epilogue: x[10] = r5l; x[11] = r5h; ...; h.n = n; then the pending trap or system
 *             instruction, if the exit left one (tc, sy)
 *
 * Guest registers live in JS locals (V8 keeps them in machine registers). Every exit sets the
 * retired count `n` and the pc (or leaves a trap in `tc`…, or a CSR/system instruction in `sy`,
 * for the runtime) and breaks to the one epilogue, which writes back every register written
 * anywhere in the function — always correct, because untouched locals still hold the values
 * they were loaded with. Exits in the middle of a block (a trap, a store that hit translated
 * code) count only the instructions that retired, so instret stays exact.
 *
 * Control stays inside a function only while the budget allows another full block
 * (`n <= lim - maxLen`); on backward jumps — every loop has one — also only while nobody kicked
 * the hart (its wake word, read with a plain load, so the worst case is bounded by `lim`) and no
 * device was touched (a device may have raised a line). Each of those jumps is a block boundary,
 * where the run loop would sample interrupt lines.
 */
import { hi32, lo32 } from './int64';

/** Facts about the inlined RAM fast path, fixed when the hart is built. */
export interface FastPath {
  /** False when there is no RAM (every access goes through the slow path). */
  readonly enabled: boolean;
  /** The first window lies below 4 GiB: address checks use int32 arithmetic. */
  readonly low: boolean;
  readonly base: number;
  /** Bytes covered by the fast path (the first window of the main RAM block). */
  readonly size: number;
  readonly writable: boolean;
  /** Mark dirty pages with Atomics.store (weakly ordered hosts). */
  readonly orderedDirty: boolean;
  /** Aligned LD/SD as one 64-bit access (other harts may race with them), not two words. */
  readonly atomic64: boolean;
}

/** Registers and memory use of everything in one generated function. */
export class RegUse {
  readonly used = new Set<number>();
  readonly written = new Set<number>();
  /** Some instruction may reach a device (loads, stores, atomics). */
  memOps = false;
}

/** The page a region function covers and its entry points (word index within the page). */
export interface RegionInfo {
  readonly pageBase: bigint;
  readonly entries: ReadonlySet<number>;
}

/** Replaced when the function is finished: the device-access guard. */
const GUARD = '\u0001G\u0001';

export class BlockBuilder {
  private readonly body: string[] = [];
  /** Index of the instruction being generated, within this block. */
  k = 0;
  /** Address of the instruction being generated, as a 64-bit value. */
  pc = 0n;
  /** Set once a terminator has been generated. */
  ended = false;
  /** In a region: the block jumps to its own start (its case body is a loop). */
  selfLoop = false;

  constructor(
    readonly fast: FastPath,
    readonly start: bigint,
    readonly regs: RegUse = new RegUse(),
    readonly region?: RegionInfo,
    /** Index of this block's first instruction in the function's `IS` array. */
    readonly isBase = 0,
  ) {}

  /** Low word of register r, as an expression. */
  l(r: number): string {
    if (r === 0) return '0';
    this.regs.used.add(r);
    return `r${r}l`;
  }

  h(r: number): string {
    if (r === 0) return '0';
    this.regs.used.add(r);
    return `r${r}h`;
  }

  /** rd = (lo, hi). Both expressions are evaluated before either half is assigned, so they may
   * read rd. Writes to x0 are dropped ("x0 is hardwired with all bits equal to 0"). */
  set(rd: number, lo: string, hi: string): void {
    if (rd === 0) return;
    this.mark(rd);
    if (lo === 'tl' && hi === 'th') this.emit(`r${rd}l = tl; r${rd}h = th;`);
    else this.emit(`tl = ${lo}; th = ${hi}; r${rd}l = tl; r${rd}h = th;`);
  }

  /** rd = lo sign-extended from 32 bits (the result of every *W instruction). */
  setW(rd: number, lo: string): void {
    if (rd === 0) return;
    this.mark(rd);
    this.emit(`r${rd}l = ${lo}; r${rd}h = r${rd}l >> 31;`);
  }

  /** rd = constant 64-bit value. */
  setConst(rd: number, v: bigint): void {
    if (rd === 0) return;
    this.mark(rd);
    this.emit(`r${rd}l = ${lo32(v)}; r${rd}h = ${hi32(v)};`);
  }

  private mark(rd: number): void {
    this.regs.used.add(rd);
    this.regs.written.add(rd);
  }

  emit(code: string): void {
    this.body.push(code);
  }

  /** The current instruction's record in the function's `IS` array. */
  insnRef(): string {
    return `IS[${this.isBase + this.k}]`;
  }

  /** pc of the current instruction as (lo, hi) literals. */
  pcLit(): [number, number] {
    return [lo32(this.pc), hi32(this.pc)];
  }

  nextPc(): bigint {
    return BigInt.asUintN(64, this.pc + 4n);
  }

  /** Code that leaves the function with pc = (lo, hi) after `retired` instructions of this block. */
  exitCode(lo: string | number, hi: string | number, retired: number): string {
    return `n += ${retired}; h.pcLo = ${lo}; h.pcHi = ${hi}; break run;`;
  }

  /** Leave after the current instruction completed, continuing at the next one (always returns
   * to the run loop: used after stores that hit translated code). */
  exitNext(): string {
    const nx = this.nextPc();
    return this.exitCode(lo32(nx), hi32(nx), this.k + 1);
  }

  /** Terminate by falling through to the next instruction (a block that ended at a branch not
   * taken, the page end or the length limit). */
  fallThrough(): string {
    return this.jumpCode(this.nextPc());
  }

  /** Code that raises a synchronous exception at the current instruction (it does not retire);
   * the epilogue enters the trap. */
  trapCode(cause: number, tvLo: string | number, tvHi: string | number): string {
    const [pl, ph] = this.pcLit();
    return `n += ${this.k}; tc = ${cause}; tvl = ${tvLo}; tvh = ${tvHi}; tpl = ${pl}; tph = ${ph}; break run;`;
  }

  /** The access just made through `M` faulted: trap with its cause and address. */
  memTrapCode(): string {
    const [pl, ph] = this.pcLit();
    return `n += ${this.k}; tc = -1; tpl = ${pl}; tph = ${ph}; break run;`;
  }

  /** Terminate: control goes to the constant `target` (branch, JAL, fall-through). */
  jumpCode(target: bigint): string {
    const count = this.k + 1;
    const tl = lo32(target);
    const th = hi32(target);
    const idx = this.entryIndex(target);
    if (idx !== undefined && target === this.start) {
      // A block that jumps to its own start loops in place, without going through the switch.
      this.selfLoop = true;
      return `n += ${count}; if (n <= lim2 && WK[HID] === wk${GUARD}) continue b${idx}; h.pcLo = ${tl}; h.pcHi = ${th}; break run;`;
    }
    if (idx !== undefined) {
      // Only a backward jump can start another lap of a loop: forward ones need no kick check.
      const guard = target <= this.start ? ` && WK[HID] === wk${GUARD}` : '';
      return `n += ${count}; if (n <= lim2${guard}) { p = ${idx}; continue run; } h.pcLo = ${tl}; h.pcHi = ${th}; break run;`;
    }
    if (!this.region && target === this.start) {
      // A block that jumps to its own start loops inside its function.
      return `n += ${count}; if (n + ${count} <= lim && WK[HID] === wk${GUARD}) continue run; h.pcLo = ${tl}; h.pcHi = ${th}; break run;`;
    }
    return this.exitCode(tl, th, count);
  }

  /** Terminate: control goes to (al, ah), computed at run time (JALR). */
  dynamicJumpCode(): string {
    const count = this.k + 1;
    const exit = this.exitCode('al', 'ah', count);
    if (!this.region) return exit;
    const base = this.region.pageBase;
    // Inside this page: let the switch find the entry (its default case leaves).
    return `if (ah === ${hi32(base)} && ((v = (al - ${lo32(base)}) | 0) >>> 0) < 4096) { n += ${count}; if (n <= lim2 && WK[HID] === wk${GUARD}) { p = v >> 2; continue run; } h.pcLo = al; h.pcHi = ah; break run; } ${exit}`;
  }

  private entryIndex(target: bigint): number | undefined {
    const r = this.region;
    if (!r) return undefined;
    const off = target - r.pageBase;
    if (off < 0n || off >= 4096n) return undefined;
    const idx = Number(off) >> 2;
    return r.entries.has(idx) ? idx : undefined;
  }

  /** Terminate: hand the current instruction to the runtime (CSR and system instructions). */
  sysCode(): string {
    const [pl, ph] = this.pcLit();
    return `n += ${this.k}; h.pcLo = ${pl}; h.pcHi = ${ph}; sy = ${this.insnRef()}; break run;`;
  }

  /** Registers (lo, hi) of rs1 + sign-extended imm into (al, ah). */
  address(rs1: number, imm: number): void {
    this.regs.memOps = true;
    const immHi = imm < 0 ? -1 : 0;
    if (rs1 === 0) {
      this.emit(`al = ${imm | 0}; ah = ${immHi};`);
    } else if (imm === 0) {
      this.emit(`al = ${this.l(rs1)}; ah = ${this.h(rs1)};`);
    } else {
      const a = this.l(rs1);
      // Unsigned carry out of the low word: the sum wrapped below the original value.
      this.emit(`al = (${a} + ${imm}) | 0; ah = (${this.h(rs1)} + ${immHi} + ((al >>> 0) < (${a} >>> 0) ? 1 : 0)) | 0;`);
    }
  }

  /** Condition under which (al, ah) is a naturally aligned access of `width` bytes inside the
   * fast window; on success `o` holds the byte offset in that window. */
  fastCheck(width: number): string {
    const f = this.fast;
    const align = width > 1 ? ` && (al & ${width - 1}) === 0` : '';
    if (f.low) {
      this.emit(`o = (al - ${f.base | 0}) | 0;`);
      return `ah === 0 && (o >>> 0) < ${f.size}${align}`;
    }
    this.emit(`o = ah * 4294967296 + (al >>> 0) - ${f.base};`);
    return `o >= 0 && o < ${f.size}${align}`;
  }

  /** Mark the page at window offset `o` dirty, after the store (see memory.ts). */
  dirtyMark(): string {
    return this.fast.orderedDirty ? 'Atomics.store(D, o >>> 12, 1);' : 'D[o >>> 12] = 1;';
  }

  /** The generated statements, markers not yet resolved. */
  code(): string {
    return this.body.join('\n');
  }
}

function prologue(regs: RegUse, extra: string): string {
  const list = [...regs.used].sort((a, b) => a - b);
  const decl = list.map((r) => `r${r}l = x[${2 * r}] | 0, r${r}h = x[${2 * r + 1}] | 0`);
  return [
    `const x = h.x; let n = h.n; const lim = h.limit; const wk = h.wake0; const ms = M.mmioSeq;${extra}`,
    'let tl = 0, th = 0, al = 0, ah = 0, o = 0, v = 0, sy = null, tc = -2, tvl = 0, tvh = 0, tpl = 0, tph = 0;',
    list.length ? `let ${decl.join(', ')};` : '',
  ].join('\n');
}

/**
 * Every exit leaves the `run:` loop with `n` and the pc already set (a trap has been entered,
 * a system instruction is left in `sy`); the one epilogue writes the registers back.
 */
function epilogue(regs: RegUse): string {
  const wb = [...regs.written]
    .sort((a, b) => a - b)
    .map((r) => `x[${2 * r}] = r${r}l; x[${2 * r + 1}] = r${r}h;`)
    .join(' ');
  return [
    wb,
    'h.n = n;',
    'if (sy !== null) h.sys(sy);',
    'else if (tc === -1) h.trap(M.fault, M.tvLo, M.tvHi, tpl, tph);',
    'else if (tc !== -2) h.trap(tc, tvl, tvh, tpl, tph);',
  ].join('\n');
}

function resolve(code: string, regs: RegUse): string {
  return code.split(GUARD).join(regs.memOps ? ' && M.mmioSeq === ms' : '');
}

/** Source of a tier-1 function: `return function block() {...}`. */
export function finishBlock(b: BlockBuilder): string {
  return resolve(['return function block() {', prologue(b.regs, ''), 'run: for (;;) {', b.code(), '}', epilogue(b.regs), '};'].join('\n'), b.regs);
}

/** Source of a tier-2 function over the blocks of one page: `return function region(p) {...}`. */
export function finishRegion(blocks: readonly BlockBuilder[], regs: RegUse, region: RegionInfo, maxLen: number): string {
  const base = region.pageBase;
  const cases = blocks.map((b) => {
    const idx = Number(b.start - base) >> 2;
    return b.selfLoop ? `case ${idx}: b${idx}: for (;;) {\n${b.code()}\n}` : `case ${idx}: {\n${b.code()}\n}`;
  });
  const leave = `default: h.pcLo = (${lo32(base)} + (p << 2)) | 0; h.pcHi = ${hi32(base)}; break run;`;
  return resolve(
    [
      'return function region(p) {',
      prologue(regs, ` const lim2 = lim - ${maxLen};`),
      'run: for (;;) {',
      'switch (p) {',
      ...cases,
      leave,
      '}',
      '}',
      epilogue(regs),
      '};',
    ].join('\n'),
    regs,
  );
}
