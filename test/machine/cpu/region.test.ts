/**
 * Tier 2: hot pages compiled as one function. Every behaviour must be the same as tier 1 — the
 * tests run programs both ways (regionThreshold 0 = tier 1 only) and compare.
 */
import { MIP_MEIP } from '../../../lib/machine/bus';
import { Asm, CSRN, enc, REG, RAM_BASE, Rig, TestDevice } from './helpers';

const { a0, a1, a2, t0, t1, s0, ra } = REG;

/** A loop with a data-dependent branch and a call/return inside the page. */
function program(iterations: number): Asm {
  const a = new Asm(RAM_BASE);
  a.li(t0, iterations).li(a0, 0).li(a1, 0).li(s0, RAM_BASE + 0x8000);
  a.label('loop').i(enc.andi(t1, t0, 3)).beq(t1, 0, 'skip').i(enc.addi(a0, a0, 5));
  a.label('skip').jal(ra, 'f').i(enc.sd(a0, s0, 0), enc.addi(t0, t0, -1)).bne(t0, 0, 'loop');
  a.i(enc.wfi());
  a.label('f').i(enc.xor(a1, a1, a0), enc.slli(a2, a1, 1), enc.jalr(0, ra, 0));
  return a;
}

function run(threshold: number, iterations: number): Rig {
  const rig = new Rig({ hart: { regionThreshold: threshold } }).load(program(iterations));
  expect(rig.run(10_000_000).reason).toBe('wfi');
  return rig;
}

test('a hot page is compiled as a region and computes what tier 1 computes', () => {
  const t1 = run(0, 5000);
  const t2 = run(4, 5000);
  expect(t1.hart.cachedRegions).toBe(0);
  expect(t2.hart.cachedRegions).toBeGreaterThan(0);
  expect(t2.state.snapshot()).toEqual(t1.state.snapshot());
  expect(t2.u64(RAM_BASE + 0x8000)).toBe(t1.u64(RAM_BASE + 0x8000));
});

test('exact budgets inside regions', () => {
  const ref = new Rig({ hart: { regionThreshold: 0 } }).load(program(100000));
  const rig = new Rig({ hart: { regionThreshold: 2 } }).load(program(100000));
  for (const budget of [5000, 1, 2, 3, 17, 64, 65, 999, 4097]) {
    expect(rig.run(budget)).toEqual({ reason: 'budget', executed: budget });
    expect(ref.run(budget).executed).toBe(budget);
    expect(rig.state.snapshot()).toEqual(ref.state.snapshot());
  }
  expect(rig.hart.cachedRegions).toBeGreaterThan(0);
});

test('code patched inside a hot region takes effect', () => {
  // After 1000 passes the loop rewrites its own 'inc' instruction from +1 to +1000.
  const a = new Asm(RAM_BASE);
  a.la(s0, 'inc').li(t1, enc.addi(a0, a0, 1000)).li(t0, 2000).li(a0, 0);
  a.label('loop').li(a2, 1000).bne(t0, a2, 'keep').i(enc.sw(t1, s0, 0));
  a.label('keep');
  a.label('inc').i(enc.addi(a0, a0, 1), enc.addi(t0, t0, -1)).bne(t0, 0, 'loop').i(enc.wfi());
  const rig = new Rig({ hart: { regionThreshold: 4 } }).load(a);
  expect(rig.run(1_000_000).reason).toBe('wfi');
  expect(rig.x(a0)).toBe(1000n + 1000n * 1000n);
});

test('a line raised by a device inside a hot region is noticed at the next block boundary', () => {
  const dev = new TestDevice(0x1000_0000, 4);
  const rig = new Rig({ devices: [dev], hart: { regionThreshold: 2 } });
  let writes = 0;
  dev.write = () => { if (++writes === 500) rig.lines.raise(0, MIP_MEIP); };
  const a = new Asm(RAM_BASE);
  a.la(s0, 'h').i(enc.csrrw(0, CSRN.mtvec, s0)).li(s0, MIP_MEIP).i(enc.csrrs(0, CSRN.mie, s0), enc.csrrsi(0, CSRN.mstatus, 8));
  a.li(s0, 0x1000_0000).label('loop').i(enc.andi(t1, t0, 1)).beq(t1, 0, 'even').i(enc.addi(a1, a1, 1));
  a.label('even').i(enc.sw(0, s0, 0), enc.addi(t0, t0, 1)).j('loop');
  a.label('h').i(enc.csrrs(a0, CSRN.mcause, 0), enc.csrrw(0, CSRN.mie, 0), enc.wfi());
  rig.load(a);
  let exit = rig.run(1_000_000);
  if (exit.reason === 'kick') exit = rig.run(1_000_000);
  expect(exit.reason).toBe('wfi');
  expect(rig.x(a0)).toBe(0x8000000000000000n | 11n);
  expect(writes).toBeLessThan(503);
  expect(rig.hart.cachedRegions).toBeGreaterThan(0);
});

test('a jump into the page at an address the region does not know leaves through its default case', () => {
  // f2 is reached only by JALR from the hot loop after many iterations.
  const a = new Asm(RAM_BASE);
  a.li(t0, 3000).li(a0, 0).la(s0, 'f1');
  a.label('loop').i(enc.jalr(ra, s0, 0), enc.addi(t0, t0, -1));
  a.li(a2, 100).bne(t0, a2, 'next').la(s0, 'f2');
  a.label('next').bne(t0, 0, 'loop').i(enc.wfi());
  a.label('f1').i(enc.addi(a0, a0, 1), enc.jalr(0, ra, 0));
  a.label('f2').i(enc.addi(a0, a0, 10), enc.jalr(0, ra, 0));
  const rig = new Rig({ hart: { regionThreshold: 4 } }).load(a);
  expect(rig.run(1_000_000).reason).toBe('wfi');
  expect(rig.x(a0)).toBe(2900n + 100n * 10n);
});

test('nested loops: a self-looping block inside a region hands over to the next block', () => {
  // inner: one block that jumps to itself; its fall-through and the outer loop are other
  // blocks of the same region.
  const a = new Asm(RAM_BASE);
  a.li(t0, 300).li(a0, 0).li(a1, 0);
  a.label('outer').li(t1, 50);
  a.label('inner').i(enc.addi(a0, a0, 1), enc.addi(t1, t1, -1)).bne(t1, 0, 'inner');
  a.i(enc.addi(a1, a1, 1), enc.addi(t0, t0, -1)).bne(t0, 0, 'outer').i(enc.wfi());
  for (const threshold of [0, 2]) {
    const rig = new Rig({ hart: { regionThreshold: threshold } }).load(a);
    expect(rig.run(10_000_000).reason).toBe('wfi');
    expect([rig.x(a0), rig.x(a1)]).toEqual([15000n, 300n]);
    if (threshold) expect(rig.hart.cachedRegions).toBe(1);
  }
});
