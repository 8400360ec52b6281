/** The run loop's contract: exact budgets, single stepping, state written back on return. */
import { Asm, enc, REG, RAM_BASE, Rig } from './helpers';

const { a0, t0 } = REG;

function loopProgram(): Asm {
  const a = new Asm(RAM_BASE);
  a.li(t0, 1000).li(a0, 0).label('l').i(enc.addi(a0, a0, 1), enc.addi(a0, a0, 1), enc.addi(t0, t0, -1)).bne(t0, 0, 'l').i(enc.wfi());
  return a;
}

test('run(n) retires exactly n instructions while the program runs', () => {
  for (const budget of [1, 2, 3, 5, 7, 64, 100, 1001]) {
    const rig = new Rig().load(loopProgram());
    const exit = rig.run(budget);
    expect(exit).toEqual({ reason: 'budget', executed: budget });
    expect(rig.state.minstret).toBe(BigInt(budget));
  }
});

test('single-stepping gives the same result as one long run, one instruction at a time', () => {
  const long = new Rig().load(loopProgram());
  const total = long.run(1_000_000).executed;
  const step = new Rig().load(loopProgram());
  const pcs: bigint[] = [];
  let n = 0;
  for (;;) {
    pcs.push(step.state.pc);
    const e = step.run(1);
    n += e.executed;
    if (e.reason === 'wfi') break;
    expect(e.executed).toBe(1);
  }
  expect(n).toBe(total);
  expect(step.x(a0)).toBe(long.x(a0));
  expect(step.state.pc).toBe(long.state.pc);
  // pc walks through the loop body one instruction at a time
  expect(pcs[3] - pcs[2]).toBe(4n);
});

test('registers and pc are in the HartState whenever run() has returned', () => {
  const rig = new Rig().load(loopProgram());
  rig.run(2 + 4 * 10); // li t0, li a0, then 10 passes of 4
  expect(rig.x(a0)).toBe(20n);
  expect(rig.x(t0)).toBe(990n);
  expect(rig.state.pc).toBe(BigInt(RAM_BASE + 8));
  // Registers changed from outside between runs are used by the next run.
  rig.setX(t0, 1);
  const e = rig.run(1_000_000);
  expect(e.reason).toBe('wfi');
  expect(rig.x(a0)).toBe(22n);
});

test('run(0) does nothing', () => {
  const rig = new Rig().load(loopProgram());
  expect(rig.run(0)).toEqual({ reason: 'budget', executed: 0 });
  expect(rig.state.pc).toBe(BigInt(RAM_BASE));
});

test('reset(): registers zero, pc at the reset vector, M-mode, no reservation', () => {
  const rig = new Rig().load(loopProgram());
  rig.run(100);
  rig.hart.reset();
  expect(rig.state.pc).toBe(BigInt(RAM_BASE));
  expect(rig.x(a0)).toBe(0n);
  expect(rig.state.mstatus).toBe(0x1800n);
  expect(rig.state.minstret).toBe(0n);
  expect(rig.state.loadRes).toBe(0xffffffffffffffffn);
  expect(rig.state.halted).toBe(false);
  expect(rig.run(1_000_000).reason).toBe('wfi');
  expect(rig.x(a0)).toBe(2000n);
});
