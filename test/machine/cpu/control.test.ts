/** Control transfer: branches, JAL, JALR, their link values and misaligned targets. */
import { Asm, CAUSE } from '../../../lib/machine/cpu';
import { enc, REG, RAM_BASE, Rig, runTrap } from './helpers';
import { EDGES, s64, u64 } from './ref';

const { a0, a1, a2, ra, t0 } = REG;

describe('conditional branches', () => {
  const conds: [string, (x: bigint, y: bigint) => boolean][] = [
    ['beq', (x, y) => x === y],
    ['bne', (x, y) => x !== y],
    ['blt', (x, y) => s64(x) < s64(y)],
    ['bge', (x, y) => s64(x) >= s64(y)],
    ['bltu', (x, y) => x < y],
    ['bgeu', (x, y) => x >= y],
  ];
  const vals = EDGES.slice(0, 30);
  test.each(conds)('%s decides like the spec for every pair of edge values', (name, ref) => {
    // For each pair: a2 = 1 if taken, stored to memory.
    const a = new Asm(RAM_BASE);
    a.li(REG.s0, RAM_BASE + 0x40000);
    let k = 0;
    for (const x of vals) for (const y of [...vals, 0n]) {
      const rs2 = y === 0n && k % 2 === 0 ? 0 : a1; // exercise the rs2 = x0 shortcut too
      a.li(a0, x).li(a1, y).i(enc.addi(a2, 0, 1));
      (a as any)[name](a0, rs2, `t${k}`);
      a.i(enc.addi(a2, 0, 0));
      a.label(`t${k}`).i(enc.sd(a2, REG.s0, 0), enc.addi(REG.s0, REG.s0, 8));
      k++;
    }
    a.i(enc.wfi());
    const rig = new Rig().load(a);
    expect(rig.run(10_000_000).reason).toBe('wfi');
    k = 0;
    const bad: string[] = [];
    for (const x of vals) for (const y of [...vals, 0n]) {
      const want = ref(x, y) ? 1n : 0n;
      if (rig.u64(RAM_BASE + 0x40000 + 8 * k) !== want) bad.push(`${x.toString(16)},${y.toString(16)}`);
      k++;
    }
    expect(bad).toEqual([]);
  });
});

describe('JAL and JALR', () => {
  test('JAL links pc+4 and jumps pc-relative, also backwards', () => {
    const a = new Asm(RAM_BASE);
    a.j('fwd').label('back').i(enc.addi(a1, 0, 7), enc.wfi());
    a.label('fwd').jal(ra, 'back');
    const rig = new Rig().load(a);
    rig.run();
    expect(rig.x(ra)).toBe(BigInt(a.addr('fwd') + 4));
    expect(rig.x(a1)).toBe(7n);
  });

  test('JALR clears bit 0 of the target and may use rd = rs1', () => {
    const a = new Asm(RAM_BASE);
    a.la(t0, 'dest').i(enc.addi(t0, t0, 1), enc.jalr(t0, t0, 0), enc.addi(a1, 0, 1), enc.wfi());
    a.label('dest').i(enc.addi(a2, 0, 2), enc.wfi());
    const rig = new Rig().load(a);
    rig.run();
    expect(rig.x(a1)).toBe(0n);
    expect(rig.x(a2)).toBe(2n);
    expect(rig.x(t0)).toBe(BigInt(a.addr('dest') - 8)); // link = address after the JALR
  });

  test('JALR with a negative offset', () => {
    const a = new Asm(RAM_BASE);
    a.la(t0, 'dest').i(enc.addi(t0, t0, 100), enc.jalr(ra, t0, -100), enc.wfi());
    a.label('dest').i(enc.addi(a2, 0, 3), enc.wfi());
    const rig = new Rig().load(a);
    rig.run();
    expect(rig.x(a2)).toBe(3n);
  });
});

describe('instruction-address-misaligned (no C: targets must be 4-byte aligned)', () => {
  test('JALR to pc+2: trap on the JALR, mtval = target, rd not written', () => {
    const { rig, asm, trapped } = runTrap((a) => {
      a.la(t0, 'x').i(enc.addi(ra, 0, 5));
      a.label('j').i(enc.jalr(ra, t0, 2));
      a.label('x').i(enc.wfi());
    });
    expect(trapped).toBe(true);
    expect(rig.state.mcause).toBe(BigInt(CAUSE.INSN_MISALIGNED));
    expect(rig.state.mepc).toBe(BigInt(asm.addr('j')));
    expect(rig.state.mtval).toBe(BigInt(asm.addr('x') + 2));
    expect(rig.x(ra)).toBe(5n);
  });

  test('taken branch to a misaligned target traps; not taken does not', () => {
    // Offsets of 2 mod 4 cannot come from the assembler's labels: encode by hand.
    const { rig, asm, trapped } = runTrap((a) => {
      a.i(enc.addi(a0, 0, 1));
      a.i(enc.beq(a0, 0, 6)); // not taken: falls through
      a.i(enc.addi(a1, 0, 1));
      a.label('b').i(enc.bne(a0, 0, 6)); // taken: target b+6
    });
    expect(trapped).toBe(true);
    expect(rig.x(a1)).toBe(1n);
    expect(rig.state.mcause).toBe(BigInt(CAUSE.INSN_MISALIGNED));
    expect(rig.state.mepc).toBe(BigInt(asm.addr('b')));
    expect(rig.state.mtval).toBe(BigInt(asm.addr('b') + 6));
  });

  test('JAL to a misaligned target traps and does not link', () => {
    const { rig, asm, trapped } = runTrap((a) => {
      a.i(enc.addi(ra, 0, 9));
      a.label('j').i(enc.jal(ra, 10));
    });
    expect(trapped).toBe(true);
    expect(rig.state.mcause).toBe(0n);
    expect(rig.state.mepc).toBe(BigInt(asm.addr('j')));
    expect(rig.state.mtval).toBe(BigInt(asm.addr('j') + 10));
    expect(rig.x(ra)).toBe(9n);
  });
});

describe('a loop inside one block', () => {
  test('a backward branch to the block start runs the body the right number of times', () => {
    const a = new Asm(RAM_BASE);
    a.li(t0, 100000).li(a0, 0).label('loop').i(enc.addi(a0, a0, 3), enc.addi(t0, t0, -1)).bne(t0, 0, 'loop').i(enc.wfi());
    const rig = new Rig().load(a);
    const exit = rig.run(10_000_000);
    expect(exit.reason).toBe('wfi');
    expect(rig.x(a0)).toBe(300000n);
    // li (2 + 1) + 3 × 100000 + wfi
    expect(exit.executed).toBe(2 + 1 + 300000 + 1);
    expect(u64(rig.state.minstret)).toBe(BigInt(exit.executed));
  });
});
