/**
 * A tiny RV64IMA + Zicsr + Zifencei encoder and assembler: enough to build test programs,
 * benchmark loops and boot trampolines without an external toolchain.
 *
 * Encodings follow the unprivileged spec, chapter "RV32/64G Instruction Set Listings":
 *
 *   R  | funct7 | rs2 | rs1 | funct3 | rd          | opcode |
 *   I  | imm[11:0]    | rs1 | funct3 | rd          | opcode |
 *   S  | imm[11:5] | rs2 | rs1 | funct3 | imm[4:0] | opcode |
 *   B  | imm[12|10:5] | rs2 | rs1 | funct3 | imm[4:1|11] | opcode |
 *   U  | imm[31:12]                   | rd          | opcode |
 *   J  | imm[20|10:1|11|19:12]        | rd          | opcode |
 */

export const OPC = {
  LOAD: 0x03,
  MISC_MEM: 0x0f,
  OP_IMM: 0x13,
  AUIPC: 0x17,
  OP_IMM_32: 0x1b,
  STORE: 0x23,
  AMO: 0x2f,
  OP: 0x33,
  LUI: 0x37,
  OP_32: 0x3b,
  BRANCH: 0x63,
  JALR: 0x67,
  JAL: 0x6f,
  SYSTEM: 0x73,
} as const;

/** ABI register names → numbers. */
export const REG: Readonly<Record<string, number>> = Object.freeze({
  zero: 0, ra: 1, sp: 2, gp: 3, tp: 4, t0: 5, t1: 6, t2: 7, s0: 8, fp: 8, s1: 9,
  a0: 10, a1: 11, a2: 12, a3: 13, a4: 14, a5: 15, a6: 16, a7: 17,
  s2: 18, s3: 19, s4: 20, s5: 21, s6: 22, s7: 23, s8: 24, s9: 25, s10: 26, s11: 27,
  t3: 28, t4: 29, t5: 30, t6: 31,
});

function checkReg(r: number): number {
  if (!Number.isInteger(r) || r < 0 || r > 31) throw new RangeError(`bad register ${r}`);
  return r;
}

function checkImm(imm: number, bits: number, what: string): number {
  const lo = -(2 ** (bits - 1));
  const hi = 2 ** (bits - 1) - 1;
  if (!Number.isInteger(imm) || imm < lo || imm > hi) throw new RangeError(`${what} immediate ${imm} out of range`);
  return imm;
}

export function encR(opcode: number, funct3: number, funct7: number, rd: number, rs1: number, rs2: number): number {
  return ((funct7 << 25) | (checkReg(rs2) << 20) | (checkReg(rs1) << 15) | (funct3 << 12) | (checkReg(rd) << 7) | opcode) >>> 0;
}

export function encI(opcode: number, funct3: number, rd: number, rs1: number, imm: number): number {
  checkImm(imm, 12, 'I');
  return (((imm & 0xfff) << 20) | (checkReg(rs1) << 15) | (funct3 << 12) | (checkReg(rd) << 7) | opcode) >>> 0;
}

export function encS(opcode: number, funct3: number, rs1: number, rs2: number, imm: number): number {
  checkImm(imm, 12, 'S');
  return (
    ((((imm >> 5) & 0x7f) << 25) | (checkReg(rs2) << 20) | (checkReg(rs1) << 15) | (funct3 << 12) | ((imm & 0x1f) << 7) | opcode) >>> 0
  );
}

export function encB(funct3: number, rs1: number, rs2: number, off: number): number {
  checkImm(off, 13, 'B');
  if (off & 1) throw new RangeError(`branch offset ${off} is odd`);
  return (
    ((((off >> 12) & 1) << 31) |
      (((off >> 5) & 0x3f) << 25) |
      (checkReg(rs2) << 20) |
      (checkReg(rs1) << 15) |
      (funct3 << 12) |
      (((off >> 1) & 0xf) << 8) |
      (((off >> 11) & 1) << 7) |
      OPC.BRANCH) >>>
    0
  );
}

export function encU(opcode: number, rd: number, imm20: number): number {
  return (((imm20 & 0xfffff) << 12) | (checkReg(rd) << 7) | opcode) >>> 0;
}

export function encJ(rd: number, off: number): number {
  checkImm(off, 21, 'J');
  if (off & 1) throw new RangeError(`jump offset ${off} is odd`);
  return (
    ((((off >> 20) & 1) << 31) |
      (((off >> 1) & 0x3ff) << 21) |
      (((off >> 11) & 1) << 20) |
      (((off >> 12) & 0xff) << 12) |
      (checkReg(rd) << 7) |
      OPC.JAL) >>>
    0
  );
}

const r = (f3: number, f7: number, opc: number = OPC.OP) => (rd: number, rs1: number, rs2: number) => encR(opc, f3, f7, rd, rs1, rs2);
const i = (f3: number, opc: number = OPC.OP_IMM) => (rd: number, rs1: number, imm: number) => encI(opc, f3, rd, rs1, imm);
const ld = (f3: number) => (rd: number, rs1: number, imm: number) => encI(OPC.LOAD, f3, rd, rs1, imm);
const st = (f3: number) => (rs2: number, rs1: number, imm: number) => encS(OPC.STORE, f3, rs1, rs2, imm);
const br = (f3: number) => (rs1: number, rs2: number, off: number) => encB(f3, rs1, rs2, off);
const sh = (f3: number, hi6: number, opc: number, max: number) => (rd: number, rs1: number, shamt: number) => {
  if (!Number.isInteger(shamt) || shamt < 0 || shamt > max) throw new RangeError(`shift amount ${shamt}`);
  return encI(opc, f3, rd, rs1, 0) | (((hi6 << 6) | shamt) << 20);
};
/** AMO: funct5 | aq | rl | rs2 | rs1 | funct3 | rd | 0101111 */
const amo = (f5: number, f3: number) => (rd: number, rs2: number, rs1: number, aq = 0, rl = 0) =>
  encR(OPC.AMO, f3, (f5 << 2) | (aq << 1) | rl, rd, rs1, rs2);
const csr = (f3: number) => (rd: number, csrNum: number, rs1OrUimm: number) => {
  if (csrNum < 0 || csrNum > 0xfff) throw new RangeError(`csr ${csrNum}`);
  return ((csrNum << 20) | ((rs1OrUimm & 31) << 15) | (f3 << 12) | (checkReg(rd) << 7) | OPC.SYSTEM) >>> 0;
};

/** One function per instruction; operand order follows assembly syntax (rd first, then sources). */
export const enc = {
  lui: (rd: number, imm20: number) => encU(OPC.LUI, rd, imm20),
  auipc: (rd: number, imm20: number) => encU(OPC.AUIPC, rd, imm20),
  jal: (rd: number, off: number) => encJ(rd, off),
  jalr: (rd: number, rs1: number, imm: number) => encI(OPC.JALR, 0, rd, rs1, imm),
  beq: br(0), bne: br(1), blt: br(4), bge: br(5), bltu: br(6), bgeu: br(7),
  lb: ld(0), lh: ld(1), lw: ld(2), ld: ld(3), lbu: ld(4), lhu: ld(5), lwu: ld(6),
  sb: st(0), sh: st(1), sw: st(2), sd: st(3),
  addi: i(0), slti: i(2), sltiu: i(3), xori: i(4), ori: i(6), andi: i(7),
  slli: sh(1, 0, OPC.OP_IMM, 63), srli: sh(5, 0, OPC.OP_IMM, 63), srai: sh(5, 0x10, OPC.OP_IMM, 63),
  addiw: i(0, OPC.OP_IMM_32),
  slliw: sh(1, 0, OPC.OP_IMM_32, 31), srliw: sh(5, 0, OPC.OP_IMM_32, 31), sraiw: sh(5, 0x10, OPC.OP_IMM_32, 31),
  add: r(0, 0), sub: r(0, 0x20), sll: r(1, 0), slt: r(2, 0), sltu: r(3, 0), xor: r(4, 0),
  srl: r(5, 0), sra: r(5, 0x20), or: r(6, 0), and: r(7, 0),
  addw: r(0, 0, OPC.OP_32), subw: r(0, 0x20, OPC.OP_32), sllw: r(1, 0, OPC.OP_32),
  srlw: r(5, 0, OPC.OP_32), sraw: r(5, 0x20, OPC.OP_32),
  mul: r(0, 1), mulh: r(1, 1), mulhsu: r(2, 1), mulhu: r(3, 1),
  div: r(4, 1), divu: r(5, 1), rem: r(6, 1), remu: r(7, 1),
  mulw: r(0, 1, OPC.OP_32), divw: r(4, 1, OPC.OP_32), divuw: r(5, 1, OPC.OP_32),
  remw: r(6, 1, OPC.OP_32), remuw: r(7, 1, OPC.OP_32),
  /** lr.w rd, (rs1) */
  lrW: (rd: number, rs1: number, aq = 0, rl = 0) => amo(0b00010, 2)(rd, 0, rs1, aq, rl),
  lrD: (rd: number, rs1: number, aq = 0, rl = 0) => amo(0b00010, 3)(rd, 0, rs1, aq, rl),
  /** sc.w rd, rs2, (rs1) — and every AMO below takes (rd, rs2, rs1) in assembly order */
  scW: amo(0b00011, 2), scD: amo(0b00011, 3),
  amoswapW: amo(0b00001, 2), amoaddW: amo(0b00000, 2), amoxorW: amo(0b00100, 2),
  amoandW: amo(0b01100, 2), amoorW: amo(0b01000, 2), amominW: amo(0b10000, 2),
  amomaxW: amo(0b10100, 2), amominuW: amo(0b11000, 2), amomaxuW: amo(0b11100, 2),
  amoswapD: amo(0b00001, 3), amoaddD: amo(0b00000, 3), amoxorD: amo(0b00100, 3),
  amoandD: amo(0b01100, 3), amoorD: amo(0b01000, 3), amominD: amo(0b10000, 3),
  amomaxD: amo(0b10100, 3), amominuD: amo(0b11000, 3), amomaxuD: amo(0b11100, 3),
  fence: (pred = 0xf, succ = 0xf) => ((((pred & 0xf) << 24) | ((succ & 0xf) << 20) | OPC.MISC_MEM) >>> 0),
  fenceI: () => encI(OPC.MISC_MEM, 1, 0, 0, 0),
  ecall: () => 0x00000073,
  ebreak: () => 0x00100073,
  mret: () => 0x30200073,
  wfi: () => 0x10500073,
  csrrw: csr(1), csrrs: csr(2), csrrc: csr(3), csrrwi: csr(5), csrrsi: csr(6), csrrci: csr(7),
};

/**
 * A small assembler with labels, for programs built in tests and benchmarks:
 *
 *   const a = new Asm(0x8000_0000);
 *   a.li(T0, 10n).label('loop').i(enc.addi(T0, T0, -1)).bne(T0, ZERO, 'loop');
 *   const words = a.words();
 */
export class Asm {
  private readonly code: number[] = [];
  private readonly labels = new Map<string, number>();
  private readonly fixups: { at: number; label: string; make: (off: number) => number }[] = [];

  constructor(readonly base: number = 0x8000_0000) {}

  /** Address of the next instruction. */
  get pc(): number {
    return this.base + 4 * this.code.length;
  }

  /** Emit raw instruction words. */
  i(...words: number[]): this {
    for (const w of words) this.code.push(w >>> 0);
    return this;
  }

  label(name: string): this {
    if (this.labels.has(name)) throw new Error(`label ${name} defined twice`);
    this.labels.set(name, this.pc);
    return this;
  }

  addr(name: string): number {
    const a = this.labels.get(name);
    if (a === undefined) throw new Error(`unknown label ${name}`);
    return a;
  }

  private ref(label: string, make: (off: number) => number): this {
    this.fixups.push({ at: this.code.length, label, make });
    this.code.push(0);
    return this;
  }

  beq(a: number, b: number, l: string): this { return this.ref(l, (o) => enc.beq(a, b, o)); }
  bne(a: number, b: number, l: string): this { return this.ref(l, (o) => enc.bne(a, b, o)); }
  blt(a: number, b: number, l: string): this { return this.ref(l, (o) => enc.blt(a, b, o)); }
  bge(a: number, b: number, l: string): this { return this.ref(l, (o) => enc.bge(a, b, o)); }
  bltu(a: number, b: number, l: string): this { return this.ref(l, (o) => enc.bltu(a, b, o)); }
  bgeu(a: number, b: number, l: string): this { return this.ref(l, (o) => enc.bgeu(a, b, o)); }
  jal(rd: number, l: string): this { return this.ref(l, (o) => enc.jal(rd, o)); }
  j(l: string): this { return this.jal(0, l); }

  /** Load a 64-bit constant (lui/addiw, then slli/addi chunks; the usual expansion). */
  li(rd: number, value: bigint | number): this {
    this.code.push(...liWords(rd, BigInt.asIntN(64, BigInt(value))));
    return this;
  }

  /** rd = address of label (auipc + addi; label may be defined later). */
  la(rd: number, l: string): this {
    const at = this.code.length;
    this.code.push(0, 0);
    this.fixups.push({ at, label: l, make: (off) => enc.auipc(rd, (off + 0x800) >> 12) });
    this.fixups.push({ at: at + 1, label: l, make: (off) => enc.addi(rd, rd, ((off + 4) << 20) >> 20) });
    return this;
  }

  /** Resolve labels and return the instruction words. */
  words(): Uint32Array {
    for (const f of this.fixups) {
      const target = this.addr(f.label);
      this.code[f.at] = f.make(target - (this.base + 4 * f.at)) >>> 0;
    }
    return Uint32Array.from(this.code);
  }

  /** Little-endian bytes of the program. */
  bytes(): Uint8Array {
    const w = this.words();
    return new Uint8Array(w.buffer, w.byteOffset, w.byteLength);
  }
}

/** The standard `li` expansion for a sign-extended 64-bit value. */
export function liWords(rd: number, v: bigint): number[] {
  if (v >= -(1n << 31n) && v < 1n << 31n) {
    const n = Number(v);
    const lo12 = (n << 20) >> 20;
    const hi20 = ((n - lo12) >> 12) & 0xfffff;
    const out: number[] = [];
    if (hi20 !== 0) {
      out.push(enc.lui(rd, hi20));
      if (lo12 !== 0) out.push(enc.addiw(rd, rd, lo12));
    } else {
      out.push(enc.addi(rd, 0, lo12));
    }
    return out;
  }
  // Peel off the low 12 bits, load the rest shifted down, shift back up, add.
  const lo12 = Number(BigInt.asIntN(12, v));
  let rest = (v - BigInt(lo12)) >> 12n;
  let shift = 12;
  while ((rest & 1n) === 0n && rest !== 0n) {
    rest >>= 1n;
    shift++;
  }
  const out = liWords(rd, rest);
  out.push(enc.slli(rd, rd, shift));
  if (lo12 !== 0) out.push(enc.addi(rd, rd, lo12));
  return out;
}
