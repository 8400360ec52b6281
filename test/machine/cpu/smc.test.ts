/** Decode cache invalidation: self-modifying code, FENCE.I, state loads. */
import { Asm, enc, REG, RAM_BASE, Rig } from './helpers';

const { a0, a1, t0, t1, s0 } = REG;

describe('self-modifying code', () => {
  test('a store that rewrites a later instruction of the running block takes effect', () => {
    const a = new Asm(RAM_BASE);
    a.la(s0, 'target').li(t0, enc.addi(a0, 0, 2));
    a.i(enc.sw(t0, s0, 0));
    a.label('target').i(enc.addi(a0, 0, 1), enc.wfi());
    const rig = new Rig().load(a);
    rig.run();
    expect(rig.x(a0)).toBe(2n);
  });

  test('rewriting code that already ran: the next execution sees the new instruction', () => {
    const a = new Asm(RAM_BASE);
    a.la(s0, 'f').li(t1, enc.addi(a0, a0, 100)).li(a0, 0);
    a.jal(REG.ra, 'f'); // a0 += 1
    a.i(enc.sw(t1, s0, 0));
    a.jal(REG.ra, 'f'); // a0 += 100
    a.i(enc.wfi());
    a.label('f').i(enc.addi(a0, a0, 1), enc.jalr(0, REG.ra, 0));
    const rig = new Rig().load(a);
    rig.run();
    expect(rig.x(a0)).toBe(101n);
  });

  test('a loop that patches its own body', () => {
    // Each pass rewrites the immediate of 'inc' to the pass number: a0 = 0+1+2+3+4.
    const a = new Asm(RAM_BASE);
    a.la(s0, 'inc').li(a0, 0).li(t0, 0).li(a1, 5);
    a.label('loop');
    a.i(enc.slli(t1, t0, 20)).li(REG.t2, enc.addi(a0, a0, 0)).i(enc.or(t1, t1, REG.t2), enc.sw(t1, s0, 0));
    a.label('inc').i(enc.addi(a0, a0, 0), enc.addi(t0, t0, 1)).blt(t0, a1, 'loop');
    a.i(enc.wfi());
    const rig = new Rig().load(a);
    rig.run();
    expect(rig.x(a0)).toBe(10n);
  });

  test('data stores to a page that also holds code do not throw away its blocks', () => {
    const a = new Asm(RAM_BASE);
    a.la(s0, 'data').li(t0, 20000).label('loop').i(enc.sd(t0, s0, 0), enc.addi(t0, t0, -1)).bne(t0, 0, 'loop').i(enc.wfi());
    a.label('data').i(0, 0);
    const rig = new Rig().load(a);
    expect(rig.run(1_000_000).reason).toBe('wfi');
    // One block for the prologue, one for the loop, one for the wfi: no retranslation churn.
    expect(rig.hart.cachedBlocks).toBeLessThanOrEqual(3);
  });

  test('a misaligned store spanning into a code page invalidates it', () => {
    // 'page2' starts a new page; a doubleword store 4 bytes before it covers its first instruction.
    const a = new Asm(RAM_BASE);
    a.la(s0, 'page2').j('go');
    while (((a.pc + 4) & 0xfff) !== 0) a.i(0);
    a.label('slot').i(0);
    a.label('page2').i(enc.addi(a1, 0, 1), enc.jalr(0, REG.ra, 0));
    a.label('go').jal(REG.ra, 'page2'); // translate page2's block
    a.li(t0, BigInt(enc.addi(a1, 0, 7)) << 32n).i(enc.sd(t0, s0, -4));
    a.jal(REG.ra, 'page2').i(enc.wfi());
    const rig = new Rig().load(a);
    rig.run();
    expect(rig.x(a1)).toBe(7n);
  });
});

describe('FENCE.I and state loads', () => {
  test('code written from outside the hart is picked up after FENCE.I', () => {
    // The hart runs f, then waits in WFI; "another hart" (the test) rewrites f; FENCE.I; run f.
    const a = new Asm(RAM_BASE);
    a.li(a0, 0).jal(REG.ra, 'f').i(enc.wfi(), enc.fenceI()).jal(REG.ra, 'f').i(enc.wfi());
    a.label('f').i(enc.addi(a0, a0, 1), enc.jalr(0, REG.ra, 0));
    const rig = new Rig().load(a);
    expect(rig.run().reason).toBe('wfi');
    rig.setU32(a.addr('f'), enc.addi(a0, a0, 40));
    rig.state.halted = false;
    expect(rig.run().reason).toBe('wfi');
    expect(rig.x(a0)).toBe(41n);
  });

  test('without FENCE.I or a state change, a remote code write is not required to be seen', () => {
    // Documented behaviour, not a requirement of the spec: translated code stays until invalidated.
    const a = new Asm(RAM_BASE);
    a.li(a0, 0).label('top').jal(REG.ra, 'f').i(enc.wfi()).j('top');
    a.label('f').i(enc.addi(a0, a0, 1), enc.jalr(0, REG.ra, 0));
    const rig = new Rig().load(a);
    rig.run();
    rig.setU32(a.addr('f'), enc.addi(a0, a0, 40));
    rig.state.halted = false;
    rig.run();
    expect(rig.x(a0)).toBe(2n);
    // After the state is replaced (what a migration load does), the hart drops its cache.
    rig.state.invalidate();
    rig.state.halted = false;
    rig.run();
    expect(rig.x(a0)).toBe(42n);
  });

  test('flushDecodeCache drops every block', () => {
    const rig = new Rig().load(new Asm(RAM_BASE).i(enc.addi(a0, 0, 1)).j('x').label('x').i(enc.wfi()));
    rig.run();
    expect(rig.hart.cachedBlocks).toBeGreaterThan(0);
    rig.hart.flushDecodeCache();
    expect(rig.hart.cachedBlocks).toBe(0);
  });
});
