/**
 * BlockBuilder: turns one basic block of decoded instructions into the source of a JavaScript
 * function, compiled once with `new Function` and then run many times (the QEMU TCG idea, with
 * V8 as the backend).
 *
 * Shape of a generated block:
 *
 *   function block() {
 *     const x = h.x; let n = h.n; const lim = h.limit;     // x: registers as (lo, hi) int32
 *     let r5l = x[10] | 0, r5h = x[11] | 0, ...;            // guest registers the block touches
 *     for (;;) {                                            // loops only when the block branches
 *       ...one chunk per instruction...                     //   back to its own start
 *       <terminator: set pc, write back, return>
 *     }
 *   }
 *
 * Guest registers live in JS locals inside the block (V8 keeps them in machine registers) and
 * are written back to `h.x` at every exit; every exit writes back the same set (all registers the
 * block writes anywhere), which is always correct because untouched locals still hold the values
 * they were loaded with. Exits that leave mid-block (a trap, a store that hit translated code)
 * set `h.n` to the number of instructions that retired, so instret stays exact.
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
}

const WB_MARK = '\u0001WB\u0001';

export class BlockBuilder {
  private readonly body: string[] = [];
  private readonly used = new Set<number>();
  private readonly written = new Set<number>();
  /** Index of the instruction being generated. */
  k = 0;
  /** Address of the instruction being generated, as a 64-bit value. */
  pc = 0n;
  /** Set once a terminator has been generated. */
  ended = false;
  /** The block contains a branch back to its own start (a loop inside the function). */
  loops = false;
  /** The block has loads, stores or atomics (which may reach a device). */
  memOps = false;

  constructor(
    readonly fast: FastPath,
    readonly start: bigint,
  ) {}

  /** Low word of register r, as an expression. */
  l(r: number): string {
    if (r === 0) return '0';
    this.used.add(r);
    return `r${r}l`;
  }

  h(r: number): string {
    if (r === 0) return '0';
    this.used.add(r);
    return `r${r}h`;
  }

  /** rd = (lo, hi). Both expressions are evaluated before either half is assigned, so they may
   * read rd. Writes to x0 are dropped ("x0 is hardwired with all bits equal to 0"). */
  set(rd: number, lo: string, hi: string): void {
    if (rd === 0) return;
    this.used.add(rd);
    this.written.add(rd);
    if (lo === 'tl' && hi === 'th') this.emit(`r${rd}l = tl; r${rd}h = th;`);
    else this.emit(`tl = ${lo}; th = ${hi}; r${rd}l = tl; r${rd}h = th;`);
  }

  /** rd = lo sign-extended from 32 bits (the result of every *W instruction). */
  setW(rd: number, lo: string): void {
    if (rd === 0) return;
    this.used.add(rd);
    this.written.add(rd);
    this.emit(`r${rd}l = ${lo}; r${rd}h = r${rd}l >> 31;`);
  }

  /** rd = constant 64-bit value. */
  setConst(rd: number, v: bigint): void {
    if (rd === 0) return;
    this.used.add(rd);
    this.written.add(rd);
    this.emit(`r${rd}l = ${lo32(v)}; r${rd}h = ${hi32(v)};`);
  }

  emit(code: string): void {
    this.body.push(code);
  }

  /** pc of the current instruction as (lo, hi) literals. */
  pcLit(): [number, number] {
    return [lo32(this.pc), hi32(this.pc)];
  }

  nextPc(): bigint {
    return BigInt.asUintN(64, this.pc + 4n);
  }

  /** Code that leaves the block with pc = (lo, hi) after `retired` instructions of this pass. */
  exitCode(lo: string | number, hi: string | number, retired: number): string {
    return `${WB_MARK}h.n = n + ${retired}; h.pcLo = ${lo}; h.pcHi = ${hi}; return;`;
  }

  /** Leave after the current instruction completed, continuing at the next one. */
  exitNext(): string {
    const nx = this.nextPc();
    return this.exitCode(lo32(nx), hi32(nx), this.k + 1);
  }

  /** Code that raises a synchronous exception at the current instruction (it does not retire). */
  trapCode(cause: string | number, tvLo: string | number, tvHi: string | number): string {
    const [pl, ph] = this.pcLit();
    return `${WB_MARK}h.n = n + ${this.k}; h.trap(${cause}, ${tvLo}, ${tvHi}, ${pl}, ${ph}); return;`;
  }

  /** Terminate: control goes to the constant `target` (taken branch or JAL). */
  jumpCode(target: bigint): string {
    const count = this.k + 1;
    const tl = lo32(target);
    const th = hi32(target);
    if (target === this.start) {
      // A loop inside the block: keep going while another full pass fits under the limit and
      // nobody kicked the hart; a pass that touched a device goes back to the run loop, since
      // the device may have changed interrupt lines or the timer (each pass is a block
      // boundary, where lines are sampled).
      this.loops = true;
      const mmio = this.memOps ? ' && M.mmioSeq === ms' : '';
      return `n += ${count}; if (n + ${count} <= lim && WK[HID] === wk${mmio}) continue; ${WB_MARK}h.n = n; h.pcLo = ${tl}; h.pcHi = ${th}; return;`;
    }
    return this.exitCode(tl, th, count);
  }

  /** Terminate: hand the current instruction to the runtime (CSR and system instructions). */
  sysCode(): string {
    const [pl, ph] = this.pcLit();
    return `${WB_MARK}h.n = n + ${this.k}; h.pcLo = ${pl}; h.pcHi = ${ph}; h.sys(IS[${this.k}]); return;`;
  }

  /** Registers (lo, hi) of rs1 + sign-extended imm into (al, ah). */
  address(rs1: number, imm: number): void {
    this.memOps = true;
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

  /** The function source. */
  finish(): string {
    const regs = [...this.used].sort((a, b) => a - b);
    const decl = regs.map((r) => `r${r}l = x[${2 * r}] | 0, r${r}h = x[${2 * r + 1}] | 0`);
    const wb = [...this.written]
      .sort((a, b) => a - b)
      .map((r) => `x[${2 * r}] = r${r}l; x[${2 * r + 1}] = r${r}h; `)
      .join('');
    const body = this.body.join('\n').split(WB_MARK).join(wb);
    return [
      'return function block() {',
      'const x = h.x; let n = h.n; const lim = h.limit; const wk = h.wake0; const ms = M.mmioSeq;',
      'let tl = 0, th = 0, al = 0, ah = 0, o = 0, v = 0;',
      regs.length ? `let ${decl.join(', ')};` : '',
      'for (;;) {',
      body,
      '}',
      '};',
    ].join('\n');
  }
}
