/**
 * RV64I code generators: integer computation, control transfer, loads and stores.
 *
 * Values are (lo, hi) int32 pairs. Rules worth restating (unprivileged spec, RV32I/RV64I):
 * - "ADDIW ... produces the proper sign-extension of a 32-bit result in rd"; every *W
 *   instruction sign-extends its 32-bit result, and "shifts on RV64 ... SLLIW, SRLIW and SRAIW
 *   ... operate on 32-bit values" with a 5-bit shift amount.
 * - "SLL, SRL, and SRA perform ... shifts on the value in register rs1 by the shift amount held
 *   in the lower 6 bits of register rs2" (RV64).
 * - LUI "places the 32-bit U-immediate into register rd, filling in the lowest 12 bits with
 *   zeros. The 32-bit result is sign-extended to 64 bits." AUIPC adds the same sign-extended
 *   value to the pc.
 * - "The JAL and JALR instructions will generate an instruction-address-misaligned exception if
 *   the target address is not aligned to a four-byte boundary" (no C extension); for branches
 *   only when the branch is taken. The trap happens before rd is written; mtval = the target.
 * - JALR: "The target address is obtained by adding the sign-extended 12-bit I-immediate to the
 *   register rs1, then setting the least-significant bit of the result to zero."
 * - Loads: LB/LH/LW sign-extend, LBU/LHU/LWU zero-extend. Misaligned loads and stores to RAM are
 *   performed (as QEMU TCG does; "the EEI may guarantee misaligned loads and stores are fully
 *   supported").
 */
import type { BlockBuilder } from './codegen';
import type { Insn, Mnemonic } from './decode';
import { CAUSE } from './trap';

export type Gen = (b: BlockBuilder, i: Insn) => void;

const hiOf = (imm: number) => (imm < 0 ? -1 : 0);

/** 64-bit add/sub of two (lo, hi) expressions into tl/th. */
function add64(b: BlockBuilder, al: string, ah: string, bl: string, bh: string): void {
  b.emit(`tl = (${al} + ${bl}) | 0; th = (${ah} + ${bh} + ((tl >>> 0) < (${al} >>> 0) ? 1 : 0)) | 0;`);
}

/** Signed/unsigned 64-bit less-than of two (lo, hi) expression pairs. */
export function lt64(al: string, ah: string, bl: string, bh: string, unsigned: boolean): string {
  const hiLt = unsigned ? `(${ah} >>> 0) < (${bh} >>> 0)` : `${ah} < ${bh}`;
  return `(${hiLt} || (${ah} === ${bh} && (${al} >>> 0) < (${bl} >>> 0)))`;
}

/** Shift (lo, hi) left by a constant 0..63 into expressions. */
function sllConst(l: string, h: string, s: number): [string, string] {
  if (s === 0) return [l, h];
  if (s < 32) return [`${l} << ${s}`, `(${h} << ${s}) | (${l} >>> ${32 - s})`];
  return ['0', `${l} << ${s - 32}`];
}

function srlConst(l: string, h: string, s: number, arith: boolean): [string, string] {
  if (s === 0) return [l, h];
  if (s < 32) return [`(${l} >>> ${s}) | (${h} << ${32 - s})`, arith ? `${h} >> ${s}` : `(${h} >>> ${s}) | 0`];
  if (s === 32) return [h, arith ? `${h} >> 31` : '0'];
  return [arith ? `${h} >> ${s - 32}` : `(${h} >>> ${s - 32}) | 0`, arith ? `${h} >> 31` : '0'];
}

/** Variable 64-bit shift: amount in `s` (already masked to 0..63). */
function shiftVar(b: BlockBuilder, i: Insn, kind: 'sll' | 'srl' | 'sra'): void {
  const l = b.l(i.rs1);
  const h = b.h(i.rs1);
  b.emit(`v = ${b.l(i.rs2)} & 63;`);
  let code: string;
  if (kind === 'sll') {
    code = `if (v === 0) { tl = ${l}; th = ${h}; } else if (v < 32) { th = (${h} << v) | (${l} >>> (32 - v)); tl = ${l} << v; } else { th = ${l} << (v - 32); tl = 0; }`;
  } else {
    const top = kind === 'sra' ? `${h} >> v` : `(${h} >>> v) | 0`;
    const far = kind === 'sra' ? `${h} >> (v - 32)` : `(${h} >>> (v - 32)) | 0`;
    const fill = kind === 'sra' ? `${h} >> 31` : '0';
    code = `if (v === 0) { tl = ${l}; th = ${h}; } else if (v < 32) { tl = (${l} >>> v) | (${h} << (32 - v)); th = ${top}; } else { tl = ${far}; th = ${fill}; }`;
  }
  b.emit(code);
  b.set(i.rd, 'tl', 'th');
}

function alu(op: (al: string, ah: string, bl: string, bh: string) => [string, string]): Gen {
  return (b, i) => {
    const [lo, hi] = op(b.l(i.rs1), b.h(i.rs1), b.l(i.rs2), b.h(i.rs2));
    b.set(i.rd, lo, hi);
  };
}

function aluImm(op: (al: string, ah: string, imm: number, immHi: number) => [string, string]): Gen {
  return (b, i) => {
    const [lo, hi] = op(b.l(i.rs1), b.h(i.rs1), i.imm, hiOf(i.imm));
    b.set(i.rd, lo, hi);
  };
}

function branch(cond: (b: BlockBuilder, i: Insn) => string): Gen {
  return (b, i) => {
    const target = BigInt.asUintN(64, b.pc + BigInt(i.imm));
    const taken =
      (target & 3n) !== 0n
        ? b.trapCode(CAUSE.INSN_MISALIGNED, Number(BigInt.asIntN(32, target)), Number(BigInt.asIntN(32, target >> 32n)))
        : b.jumpCode(target);
    b.emit(`if (${cond(b, i)}) { ${taken} }`);
    b.emit(b.fallThrough());
    b.ended = true;
  };
}

function load(width: number, signed: boolean): Gen {
  return (b, i) => {
    b.address(i.rs1, i.imm);
    const slow = `tl = M.load(al, ah, ${width}, ${signed}); if (M.fault !== 0) { ${b.memTrapCode()} } th = M.vh;`;
    if (!b.fast.enabled) {
      b.emit(slow);
    } else {
      let fast: string;
      switch (width) {
        case 1: fast = signed ? 'tl = I8[o]; th = tl >> 31;' : 'tl = U8[o]; th = 0;'; break;
        case 2: fast = signed ? 'tl = I16[o >> 1]; th = tl >> 31;' : 'tl = U16[o >> 1]; th = 0;'; break;
        case 4: fast = signed ? 'tl = I32[o >> 2]; th = tl >> 31;' : 'tl = I32[o >> 2]; th = 0;'; break;
        // With other harts around, one 64-bit load, so an aligned LD is single-copy atomic
        // against their SDs ("aligned ... accesses are single-copy atomic", RVWMO); alone, two
        // word loads are cheaper and nobody can tell.
        default: fast = b.fast.atomic64 ? 'SF[0] = F64[o >> 3]; tl = SI[0]; th = SI[1];' : 'tl = I32[o >> 2]; th = I32[(o >> 2) + 1];';
      }
      b.emit(`if (${b.fastCheck(width)}) { ${fast} } else { ${slow} }`);
    }
    b.set(i.rd, 'tl', 'th');
  };
}

function store(width: number): Gen {
  return (b, i) => {
    b.address(i.rs1, i.imm);
    const vl = b.l(i.rs2);
    const vh = b.h(i.rs2);
    const slow = `v = M.store(al, ah, ${width}, ${vl}, ${vh}); if (v !== 0) { if (v === 2) { ${b.memTrapCode()} } ${b.exitNext()} }`;
    if (!b.fast.enabled || !b.fast.writable) {
      b.emit(slow);
      return;
    }
    let st: string;
    switch (width) {
      case 1: st = `U8[o] = ${vl};`; break;
      case 2: st = `U16[o >> 1] = ${vl};`; break;
      case 4: st = `I32[o >> 2] = ${vl};`; break;
      default: st = b.fast.atomic64 ? `SI[0] = ${vl}; SI[1] = ${vh}; F64[o >> 3] = SF[0];` : `I32[o >> 2] = ${vl}; I32[(o >> 2) + 1] = ${vh};`;
    }
    // Data first, then the dirty mark, then the check for translated code on the page.
    b.emit(
      `if (${b.fastCheck(width)}) { ${st} ${b.dirtyMark()} if (C[o >>> 12] !== 0 && h.smc(o, ${width})) { ${b.exitNext()} } } else { ${slow} }`,
    );
  };
}

export const RV64I: Partial<Record<Mnemonic, Gen>> = {
  lui: (b, i) => b.setConst(i.rd, BigInt(i.imm)),
  auipc: (b, i) => b.setConst(i.rd, BigInt.asUintN(64, b.pc + BigInt(i.imm))),

  jal: (b, i) => {
    const target = BigInt.asUintN(64, b.pc + BigInt(i.imm));
    if ((target & 3n) !== 0n) {
      b.emit(b.trapCode(CAUSE.INSN_MISALIGNED, Number(BigInt.asIntN(32, target)), Number(BigInt.asIntN(32, target >> 32n))));
    } else {
      b.setConst(i.rd, b.nextPc());
      b.emit(b.jumpCode(target));
    }
    b.ended = true;
  },
  jalr: (b, i) => {
    b.address(i.rs1, i.imm);
    b.emit('al &= -2;');
    b.emit(`if ((al & 2) !== 0) { ${b.trapCode(CAUSE.INSN_MISALIGNED, 'al', 'ah')} }`);
    b.setConst(i.rd, b.nextPc());
    b.emit(b.dynamicJumpCode());
    b.ended = true;
  },

  beq: branch((b, i) => (i.rs2 === 0 ? `(${b.l(i.rs1)} | ${b.h(i.rs1)}) === 0` : `${b.l(i.rs1)} === ${b.l(i.rs2)} && ${b.h(i.rs1)} === ${b.h(i.rs2)}`)),
  bne: branch((b, i) => (i.rs2 === 0 ? `(${b.l(i.rs1)} | ${b.h(i.rs1)}) !== 0` : `(${b.l(i.rs1)} !== ${b.l(i.rs2)} || ${b.h(i.rs1)} !== ${b.h(i.rs2)})`)),
  blt: branch((b, i) => (i.rs2 === 0 ? `${b.h(i.rs1)} < 0` : lt64(b.l(i.rs1), b.h(i.rs1), b.l(i.rs2), b.h(i.rs2), false))),
  bge: branch((b, i) => (i.rs2 === 0 ? `${b.h(i.rs1)} >= 0` : `!${lt64(b.l(i.rs1), b.h(i.rs1), b.l(i.rs2), b.h(i.rs2), false)}`)),
  bltu: branch((b, i) => lt64(b.l(i.rs1), b.h(i.rs1), b.l(i.rs2), b.h(i.rs2), true)),
  bgeu: branch((b, i) => `!${lt64(b.l(i.rs1), b.h(i.rs1), b.l(i.rs2), b.h(i.rs2), true)}`),

  lb: load(1, true), lh: load(2, true), lw: load(4, true), ld: load(8, true),
  lbu: load(1, false), lhu: load(2, false), lwu: load(4, false),
  sb: store(1), sh: store(2), sw: store(4), sd: store(8),

  addi: (b, i) => {
    if (i.rs1 === 0) b.setConst(i.rd, BigInt(i.imm));
    else if (i.imm === 0) b.set(i.rd, b.l(i.rs1), b.h(i.rs1));
    else {
      add64(b, b.l(i.rs1), b.h(i.rs1), String(i.imm), String(hiOf(i.imm)));
      b.set(i.rd, 'tl', 'th');
    }
  },
  slti: aluImm((al, ah, imm, ih) => [`${lt64(al, ah, String(imm), String(ih), false)} ? 1 : 0`, '0']),
  // "the immediate is first sign-extended to XLEN bits then treated as an unsigned number"
  sltiu: aluImm((al, ah, imm, ih) => [`${lt64(al, ah, String(imm), String(ih), true)} ? 1 : 0`, '0']),
  xori: aluImm((al, ah, imm, ih) => [`${al} ^ ${imm}`, `${ah} ^ ${ih}`]),
  ori: aluImm((al, ah, imm, ih) => [`${al} | ${imm}`, `${ah} | ${ih}`]),
  andi: aluImm((al, ah, imm, ih) => [`${al} & ${imm}`, `${ah} & ${ih}`]),
  slli: (b, i) => { const [lo, hi] = sllConst(b.l(i.rs1), b.h(i.rs1), i.imm); b.set(i.rd, lo, hi); },
  srli: (b, i) => { const [lo, hi] = srlConst(b.l(i.rs1), b.h(i.rs1), i.imm, false); b.set(i.rd, lo, hi); },
  srai: (b, i) => { const [lo, hi] = srlConst(b.l(i.rs1), b.h(i.rs1), i.imm, true); b.set(i.rd, lo, hi); },

  addiw: (b, i) => b.setW(i.rd, `(${b.l(i.rs1)} + ${i.imm}) | 0`),
  slliw: (b, i) => b.setW(i.rd, `${b.l(i.rs1)} << ${i.imm}`),
  srliw: (b, i) => b.setW(i.rd, `(${b.l(i.rs1)} >>> ${i.imm}) | 0`),
  sraiw: (b, i) => b.setW(i.rd, `${b.l(i.rs1)} >> ${i.imm}`),

  add: (b, i) => { add64(b, b.l(i.rs1), b.h(i.rs1), b.l(i.rs2), b.h(i.rs2)); b.set(i.rd, 'tl', 'th'); },
  sub: (b, i) => {
    const [al, ah, bl, bh] = [b.l(i.rs1), b.h(i.rs1), b.l(i.rs2), b.h(i.rs2)];
    b.emit(`tl = (${al} - ${bl}) | 0; th = (${ah} - ${bh} - ((${al} >>> 0) < (${bl} >>> 0) ? 1 : 0)) | 0;`);
    b.set(i.rd, 'tl', 'th');
  },
  slt: alu((al, ah, bl, bh) => [`${lt64(al, ah, bl, bh, false)} ? 1 : 0`, '0']),
  sltu: alu((al, ah, bl, bh) => [`${lt64(al, ah, bl, bh, true)} ? 1 : 0`, '0']),
  xor: alu((al, ah, bl, bh) => [`${al} ^ ${bl}`, `${ah} ^ ${bh}`]),
  or: alu((al, ah, bl, bh) => [`${al} | ${bl}`, `${ah} | ${bh}`]),
  and: alu((al, ah, bl, bh) => [`${al} & ${bl}`, `${ah} & ${bh}`]),
  sll: (b, i) => shiftVar(b, i, 'sll'),
  srl: (b, i) => shiftVar(b, i, 'srl'),
  sra: (b, i) => shiftVar(b, i, 'sra'),

  addw: (b, i) => b.setW(i.rd, `(${b.l(i.rs1)} + ${b.l(i.rs2)}) | 0`),
  subw: (b, i) => b.setW(i.rd, `(${b.l(i.rs1)} - ${b.l(i.rs2)}) | 0`),
  // JS masks 32-bit shift counts to 5 bits, exactly RV64's rule for SLLW/SRLW/SRAW.
  sllw: (b, i) => b.setW(i.rd, `${b.l(i.rs1)} << ${b.l(i.rs2)}`),
  srlw: (b, i) => b.setW(i.rd, `(${b.l(i.rs1)} >>> ${b.l(i.rs2)}) | 0`),
  sraw: (b, i) => b.setW(i.rd, `${b.l(i.rs1)} >> ${b.l(i.rs2)}`),

  // FENCE: plain accesses already follow x86-TSO; the store→load order TSO lacks comes from a
  // locked read-modify-write (a full barrier) on a private word.
  fence: (b) => b.emit('Atomics.add(FB, 0, 0);'),
};
