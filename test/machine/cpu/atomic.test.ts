/** A extension on one hart: LR/SC paths, every AMO, alignment and access rules, dirty marks. */
import { CAUSE } from '../../../lib/machine/cpu';
import { Asm, enc, makeRam, REG, RAM_BASE, Rig, runTrap, TestDevice } from './helpers';
import { s64, u64 } from './ref';

const { a0, a1, a2, a3, s0, t0 } = REG;
const CELL = RAM_BASE + 0x20000;

type AmoName = 'swap' | 'add' | 'xor' | 'and' | 'or' | 'min' | 'max' | 'minu' | 'maxu';
const OPS: Record<AmoName, (m: bigint, v: bigint, bits: number) => bigint> = {
  swap: (_m, v) => v,
  add: (m, v) => m + v,
  xor: (m, v) => m ^ v,
  and: (m, v) => m & v,
  or: (m, v) => m | v,
  min: (m, v, b) => (BigInt.asIntN(b, m) < BigInt.asIntN(b, v) ? m : v),
  max: (m, v, b) => (BigInt.asIntN(b, m) > BigInt.asIntN(b, v) ? m : v),
  minu: (m, v, b) => (BigInt.asUintN(b, m) < BigInt.asUintN(b, v) ? m : v),
  maxu: (m, v, b) => (BigInt.asUintN(b, m) > BigInt.asUintN(b, v) ? m : v),
};
const VALUES = [0n, 1n, u64(-1n), 0x7fffffffn, 0x80000000n, 0xffffffff80000000n, 0x7fffffffffffffffn, 0x8000000000000000n, 0x123456789n, u64(-5n)];

describe.each(['W', 'D'] as const)('AMO*.%s', (w) => {
  const bits = w === 'W' ? 32 : 64;
  test.each(Object.keys(OPS) as AmoName[])('amo%s: rd = old value (sign-extended), memory = op(old, rs2)', (name) => {
    const insn = (enc as any)[`amo${name}${w}`] as (rd: number, rs2: number, rs1: number) => number;
    const a = new Asm(RAM_BASE).li(s0, CELL).li(REG.s1, CELL + 0x1000);
    const pairs: [bigint, bigint][] = [];
    for (const m of VALUES) for (const v of VALUES) pairs.push([m, v]);
    pairs.forEach(([m, v], k) => {
      // memory cell k: preset by the test; rs2 = v; result rd → cell area + 8 KiB
      a.li(a1, v).i(insn(a0, a1, s0), enc.sd(a0, REG.s1, 0), enc.addi(s0, s0, 8), enc.addi(REG.s1, REG.s1, 8));
    });
    a.i(enc.wfi());
    const rig = new Rig();
    // .W cells: the word under test, and a marker in the upper half that must survive.
    pairs.forEach(([m], k) => rig.setU64(CELL + 8 * k, w === 'W' ? 0xa5a5a5a5_00000000n | (m & 0xffffffffn) : m));
    rig.load(a);
    expect(rig.run(1_000_000).reason).toBe('wfi');
    const bad: string[] = [];
    pairs.forEach(([m, v], k) => {
      const mem = w === 'W' ? BigInt(rig.u32(CELL + 8 * k)) : rig.u64(CELL + 8 * k);
      const rd = rig.u64(CELL + 8 * k + 0x1000);
      const oldIn = w === 'W' ? m & 0xffffffffn : m;
      const wantMem = BigInt.asUintN(bits, OPS[name](oldIn, v, bits));
      const wantRd = w === 'W' ? u64(BigInt.asIntN(32, oldIn)) : oldIn;
      if (mem !== wantMem || rd !== wantRd) bad.push(`m=${m.toString(16)} v=${v.toString(16)} mem=${mem.toString(16)} rd=${rd.toString(16)}`);
      if (w === 'W' && rig.u32(CELL + 8 * k + 4) !== 0xa5a5a5a5) bad.push(`upper half clobbered at ${k}`);
    });
    expect(bad).toEqual([]);
  });
});

describe('LR/SC', () => {
  function lrsc(body: (a: Asm) => void): Rig {
    const rig = new Rig();
    rig.setU64(CELL, 42n);
    const a = new Asm(RAM_BASE).li(s0, CELL).li(a1, 7);
    body(a);
    a.i(enc.wfi());
    rig.load(a);
    expect(rig.run().reason).toBe('wfi');
    return rig;
  }

  test('LR then SC to the same address succeeds (rd = 0) and stores', () => {
    const rig = lrsc((a) => a.i(enc.lrD(a0, s0), enc.scD(a2, a1, s0)));
    expect(rig.x(a0)).toBe(42n);
    expect(rig.x(a2)).toBe(0n);
    expect(rig.u64(CELL)).toBe(7n);
    expect(rig.state.loadRes).toBe(u64(-1n)); // an SC always clears the reservation
  });

  test('LR.W sign-extends and SC.W stores a word', () => {
    const rig = new Rig();
    rig.setU64(CELL, 0x11111111_80000000n);
    rig.load(new Asm(RAM_BASE).li(s0, CELL).li(a1, -1n).i(enc.lrW(a0, s0), enc.scW(a2, a1, s0), enc.wfi()));
    rig.run();
    expect(rig.x(a0)).toBe(0xffffffff80000000n);
    expect(rig.x(a2)).toBe(0n);
    expect(rig.u64(CELL)).toBe(0x11111111_ffffffffn);
  });

  test('SC without a reservation fails (rd = 1) and does not store', () => {
    const rig = lrsc((a) => a.i(enc.scD(a2, a1, s0)));
    expect(rig.x(a2)).toBe(1n);
    expect(rig.u64(CELL)).toBe(42n);
  });

  test('a second SC after a successful one fails', () => {
    const rig = lrsc((a) => a.i(enc.lrD(a0, s0), enc.scD(a2, a1, s0), enc.scD(a3, a1, s0)));
    expect([rig.x(a2), rig.x(a3)]).toEqual([0n, 1n]);
  });

  test('SC to a different address than the LR fails', () => {
    const rig = lrsc((a) => a.i(enc.lrD(a0, s0), enc.addi(t0, s0, 8), enc.scD(a2, a1, t0)));
    expect(rig.x(a2)).toBe(1n);
    expect(rig.u64(CELL + 8)).toBe(0n);
  });

  test('SC fails when memory no longer holds the value the LR saw (another store in between)', () => {
    const rig = lrsc((a) => a.li(t0, 43).i(enc.lrD(a0, s0), enc.sd(t0, s0, 0), enc.scD(a2, a1, s0)));
    expect(rig.x(a2)).toBe(1n);
    expect(rig.u64(CELL)).toBe(43n);
  });

  test('SC succeeds when memory was rewritten with the same value (compare-exchange, as QEMU)', () => {
    const rig = lrsc((a) => a.li(t0, 42).i(enc.lrD(a0, s0), enc.sd(t0, s0, 0), enc.scD(a2, a1, s0)));
    expect(rig.x(a2)).toBe(0n);
    expect(rig.u64(CELL)).toBe(7n);
  });

  test('SC.W after LR.D of a value that is not a sign-extended word fails', () => {
    const rig = new Rig();
    rig.setU64(CELL, 0x1_0000_0005n);
    rig.load(new Asm(RAM_BASE).li(s0, CELL).li(a1, 9).i(enc.lrD(a0, s0), enc.scW(a2, a1, s0), enc.wfi()));
    rig.run();
    expect(rig.x(a2)).toBe(1n);
    expect(rig.u64(CELL)).toBe(0x1_0000_0005n);
  });
});

describe('alignment and access', () => {
  test.each([
    ['LR.W', enc.lrW(a0, s0), CAUSE.LOAD_MISALIGNED],
    ['LR.D', enc.lrD(a0, s0), CAUSE.LOAD_MISALIGNED],
    ['AMOADD.W', enc.amoaddW(a0, a1, s0), CAUSE.STORE_MISALIGNED],
    ['AMOSWAP.D', enc.amoswapD(a0, a1, s0), CAUSE.STORE_MISALIGNED],
  ])('misaligned %s: address-misaligned exception, mtval = address', (_, insn, cause) => {
    const { rig, trapped } = runTrap((a) => a.li(s0, CELL + 2).i(insn));
    expect(trapped).toBe(true);
    expect(rig.state.mcause).toBe(BigInt(cause));
    expect(rig.state.mtval).toBe(BigInt(CELL + 2));
  });

  test('SC.D at a 4-byte aligned reservation is a store misaligned exception', () => {
    const { rig, trapped } = runTrap((a) => a.li(s0, CELL + 4).i(enc.lrW(a0, s0), enc.scD(a2, a1, s0)));
    expect(trapped).toBe(true);
    expect(rig.state.mcause).toBe(BigInt(CAUSE.STORE_MISALIGNED));
  });

  test('atomics on a device: LR is a load access fault, AMOs a store/AMO access fault', () => {
    const dev = new TestDevice(0x1000_0000, 4 | 8);
    const lr = runTrap((a) => a.li(s0, 0x1000_0000).i(enc.lrW(a0, s0)), { devices: [dev] });
    expect(lr.rig.state.mcause).toBe(BigInt(CAUSE.LOAD_ACCESS_FAULT));
    const amo = runTrap((a) => a.li(s0, 0x1000_0000).i(enc.amoorW(a0, a1, s0)), { devices: [dev] });
    expect(amo.rig.state.mcause).toBe(BigInt(CAUSE.STORE_ACCESS_FAULT));
    expect(dev.log).toEqual([]);
  });

  test('an AMO on read-only memory is a store/AMO access fault; LR from it works', () => {
    const rom = makeRam(0x1000, 0x1000, { readonly: true });
    new Int32Array(rom.windows[0])[0] = -3;
    const { rig, trapped } = runTrap((a) => a.li(s0, 0x1000).i(enc.lrW(a2, s0), enc.amoaddW(a0, a1, s0)), { ram: [makeRam(RAM_BASE, 1 << 20), rom] });
    expect(trapped).toBe(true);
    expect(rig.x(a2)).toBe(u64(-3n));
    expect(rig.state.mcause).toBe(BigInt(CAUSE.STORE_ACCESS_FAULT));
    expect(new Int32Array(rom.windows[0])[0]).toBe(-3);
  });

  test('AMOs and successful SCs set the dirty byte; failed SCs and LRs do not', () => {
    const rig = new Rig();
    const page = (CELL - RAM_BASE) >> 12;
    const dirty = rig.ram[0].dirty;
    rig.load(new Asm(RAM_BASE).li(s0, CELL).i(enc.lrD(a0, s0), enc.addi(t0, s0, 0x7f8), enc.scD(a2, a1, t0), enc.wfi()));
    dirty.fill(0);
    rig.run();
    expect(rig.x(a2)).toBe(1n);
    expect(dirty[page]).toBe(0);
    rig.load(new Asm(RAM_BASE).li(s0, CELL).i(enc.amoorD(a0, 0, s0), enc.wfi()));
    rig.state.halted = false;
    rig.run();
    expect(dirty[page]).toBe(1);
    dirty.fill(0);
    rig.load(new Asm(RAM_BASE).li(s0, CELL).i(enc.lrD(a0, s0), enc.scD(a2, a1, s0), enc.wfi()));
    rig.state.halted = false;
    rig.run();
    expect(rig.x(a2)).toBe(0n);
    expect(dirty[page]).toBe(1);
  });
});

test('s64 helper sanity', () => expect(s64(u64(-1n))).toBe(-1n));
