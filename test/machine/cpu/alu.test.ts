/**
 * Integer computation (RV64I register-register and immediate forms, M extension): every
 * operation against the BigInt reference on edge values and pseudo-random values.
 */
import { Asm, enc, REG, Rig, RAM_BASE } from './helpers';
import { EDGES, randoms, REF, u64 } from './ref';

const { a0, a1, a2, s0 } = REG;
const OUT = RAM_BASE + 0x80000;

/** Run `op a2, a0, a1` for every pair; results come back from memory. */
function evalPairs(op: (rd: number, rs1: number, rs2: number) => number, pairs: [bigint, bigint][]): bigint[] {
  const a = new Asm(RAM_BASE);
  a.li(s0, OUT);
  pairs.forEach(([x, y], k) => {
    a.li(a0, x).li(a1, y).i(op(a2, a0, a1), enc.sd(a2, s0, 0), enc.addi(s0, s0, 8));
  });
  a.i(enc.wfi());
  const rig = new Rig().load(a);
  expect(rig.run(10_000_000).reason).toBe('wfi');
  return pairs.map((_, k) => rig.u64(OUT + 8 * k));
}

function pairsFor(): [bigint, bigint][] {
  const p: [bigint, bigint][] = [];
  for (const x of EDGES) for (const y of EDGES) p.push([x, y]);
  const r = [...randoms(400)];
  for (let i = 0; i + 1 < r.length; i += 2) p.push([r[i], r[i + 1]]);
  return p;
}

const PAIRS = pairsFor();
const R_OPS = Object.keys(REF);

describe.each(R_OPS)('%s', (name) => {
  test('matches the reference on edges and random values', () => {
    const got = evalPairs((enc as any)[name], PAIRS);
    const bad = PAIRS.map(([x, y], k) => ({ x, y, got: got[k], want: REF[name](x, y) })).filter((r) => r.got !== r.want);
    expect(bad.slice(0, 5)).toEqual([]);
  });
});

describe('division edge cases (spec table "division by zero and division overflow")', () => {
  const MIN64 = 0x8000000000000000n;
  const MIN32 = 0xffffffff80000000n;
  const ONES = 0xffffffffffffffffn;
  test.each([
    ['div', 7n, 0n, ONES],
    ['divu', 7n, 0n, ONES],
    ['rem', 7n, 0n, 7n],
    ['remu', 7n, 0n, 7n],
    ['div', MIN64, ONES, MIN64],
    ['rem', MIN64, ONES, 0n],
    ['divw', 7n, 0n, ONES],
    ['divuw', 7n, 0n, ONES],
    ['remw', 0xffffffff_fffffff9n, 0n, 0xffffffff_fffffff9n],
    ['remuw', 0x1_8000_0000n, 0n, MIN32], // the dividend's low word, sign-extended
    ['divw', MIN32, ONES, MIN32],
    ['remw', MIN32, ONES, 0n],
    ['divw', 0x1_0000_0007n, 0xffff_ffff_0000_0002n, 3n], // upper halves are ignored
    ['divuw', 0xffff_fffen, 1n, 0xffff_ffff_ffff_fffen], // 32-bit result sign-extended
    ['div', u64(-7n), 2n, u64(-3n)], // rounds toward zero
    ['rem', u64(-7n), 2n, u64(-1n)], // sign of the dividend
  ])('%s %s, %s = %s', (name, x, y, want) => {
    expect(evalPairs((enc as any)[name], [[x as bigint, y as bigint]])[0]).toBe(want);
  });
});

describe('multiply high halves', () => {
  test.each([
    ['mulh', u64(-1n), u64(-1n), 0n],
    ['mulhu', u64(-1n), u64(-1n), u64(-2n)],
    ['mulhsu', u64(-1n), u64(-1n), u64(-1n)],
    ['mulh', 0x8000000000000000n, 0x8000000000000000n, 0x4000000000000000n],
    ['mulhsu', 0x8000000000000000n, u64(-1n), 0x8000000000000000n],
    ['mulhu', 0x1_0000_0000n, 0x1_0000_0000n, 1n],
    ['mulw', 0x7fffffffn, 2n, u64(-2n)],
  ])('%s %s × %s', (name, x, y, want) => {
    expect(evalPairs((enc as any)[name], [[x as bigint, y as bigint]])[0]).toBe(want);
  });
});

/** Immediate forms: `op a2, a0, imm` for immediates on the 12-bit edges. */
function evalImm(op: (rd: number, rs1: number, imm: number) => number, xs: bigint[], imms: number[]): bigint[] {
  const a = new Asm(RAM_BASE);
  a.li(s0, OUT);
  for (const x of xs) for (const imm of imms) a.li(a0, x).i(op(a2, a0, imm), enc.sd(a2, s0, 0), enc.addi(s0, s0, 8));
  a.i(enc.wfi());
  const rig = new Rig().load(a);
  expect(rig.run(10_000_000).reason).toBe('wfi');
  return xs.flatMap((_, i) => imms.map((__, j) => rig.u64(OUT + 8 * (i * imms.length + j))));
}

describe('immediate forms sign-extend the 12-bit immediate', () => {
  const IMMS = [0, 1, -1, 2047, -2048, 0x7ff, -0x555, 0x123];
  const XS = EDGES.slice(0, 24);
  const cases: [string, string][] = [
    ['addi', 'add'], ['slti', 'slt'], ['sltiu', 'sltu'], ['xori', 'xor'], ['ori', 'or'], ['andi', 'and'], ['addiw', 'addw'],
  ];
  test.each(cases)('%s', (imm, reg) => {
    const got = evalImm((enc as any)[imm], XS, IMMS);
    const want = XS.flatMap((x) => IMMS.map((i) => REF[reg](x, u64(BigInt(i)))));
    expect(got).toEqual(want);
  });

  const shifts: [string, string, number[]][] = [
    ['slli', 'sll', [0, 1, 31, 32, 33, 63]],
    ['srli', 'srl', [0, 1, 31, 32, 33, 63]],
    ['srai', 'sra', [0, 1, 31, 32, 33, 63]],
    ['slliw', 'sllw', [0, 1, 15, 31]],
    ['srliw', 'srlw', [0, 1, 15, 31]],
    ['sraiw', 'sraw', [0, 1, 15, 31]],
  ];
  test.each(shifts)('%s by 0, 31 and the maximum', (imm, reg, amounts) => {
    const got = evalImm((enc as any)[imm], XS, amounts);
    const want = XS.flatMap((x) => amounts.map((s) => REF[reg](x, BigInt(s))));
    expect(got).toEqual(want);
  });

  test('SRAIW by 31 and SRLIW by 31 of 0x80000000', () => {
    expect(evalImm(enc.sraiw, [0x80000000n], [31])).toEqual([u64(-1n)]);
    expect(evalImm(enc.srliw, [0x80000000n], [31])).toEqual([1n]);
    expect(evalImm(enc.srai, [0x8000000000000000n], [63])).toEqual([u64(-1n)]);
    expect(evalImm(enc.srli, [0x8000000000000000n], [63])).toEqual([1n]);
  });
});

describe('LUI and AUIPC', () => {
  test('LUI sign-extends the 32-bit result', () => {
    const a = new Asm(RAM_BASE).i(enc.lui(a0, 0x80000), enc.lui(a1, 0x7ffff), enc.lui(a2, 0xfffff), enc.wfi());
    const rig = new Rig().load(a);
    rig.run();
    expect(rig.x(a0)).toBe(0xffffffff80000000n);
    expect(rig.x(a1)).toBe(0x7ffff000n);
    expect(rig.x(a2)).toBe(0xfffffffffffff000n);
  });

  test('AUIPC adds the sign-extended immediate to its own pc', () => {
    const a = new Asm(RAM_BASE).i(enc.addi(0, 0, 0), enc.auipc(a0, 0x80000), enc.auipc(a1, 1), enc.auipc(a2, 0), enc.wfi());
    const rig = new Rig().load(a);
    rig.run();
    expect(rig.x(a0)).toBe(u64(BigInt(RAM_BASE + 4) - 0x80000000n));
    expect(rig.x(a1)).toBe(BigInt(RAM_BASE + 8 + 0x1000));
    expect(rig.x(a2)).toBe(BigInt(RAM_BASE + 12));
  });

  test('writes to x0 are discarded', () => {
    const a = new Asm(RAM_BASE).i(enc.addi(0, 0, 5), enc.lui(0, 1), enc.add(a0, 0, 0), enc.wfi());
    const rig = new Rig().load(a);
    rig.setX(a0, 99);
    rig.run();
    expect(rig.x(0)).toBe(0n);
    expect(rig.x(a0)).toBe(0n);
  });
});
