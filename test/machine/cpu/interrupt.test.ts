/** Interrupts: timer, software, external; priority, masking, vectoring, WFI, kicks. */
import { MIP_MEIP, MIP_MSIP, MIP_MTIP, type Timebase } from '../../../lib/machine/bus';
import { Asm, CSRN, enc, REG, RAM_BASE, Rig, TestDevice } from './helpers';

const { a0, a1, t0, s0 } = REG;
const IRQ_BIT = 0x8000000000000000n;
const csrr = (rd: number, csr: number) => enc.csrrs(rd, csr, 0);

/** Program: mtvec → handler that records mcause in a0 and mepc in a1 and halts; enable the given
 * mie bits and mstatus.MIE, then count in t0 forever. */
function irqProgram(mie: number, opts: { vectored?: boolean; globalEnable?: boolean } = {}): Asm {
  const a = new Asm(RAM_BASE);
  a.la(s0, 'handler');
  if (opts.vectored) a.i(enc.ori(s0, s0, 1));
  a.i(enc.csrrw(0, CSRN.mtvec, s0)).li(s0, mie).i(enc.csrrs(0, CSRN.mie, s0));
  if (opts.globalEnable !== false) a.i(enc.csrrsi(0, CSRN.mstatus, 8));
  a.label('spin').i(enc.addi(t0, t0, 1)).j('spin');
  a.i(0, 0, 0);
  while ((a.pc & 0xff) !== 0) a.i(0);
  // The handler clears mie before its WFI: with the interrupt still pending and enabled, WFI
  // would not halt ("WFI ... resumes when mip & mie ≠ 0, regardless of mstatus.MIE").
  a.label('handler').i(csrr(a0, CSRN.mcause), csrr(a1, CSRN.mepc)).j('halt');
  if (opts.vectored) {
    // Slot k is at BASE + 4k: each slot records its number and leaves.
    for (let k = 1; k < 16; k++) a.i(enc.addi(REG.a2, 0, k));
  }
  a.label('halt').i(enc.csrrw(0, CSRN.mie, 0), enc.wfi());
  return a;
}

describe('taking interrupts', () => {
  test('machine timer: mtime ≥ mtimecmp with MTIE and MIE set', () => {
    const rig = new Rig();
    rig.timebase.cmp[0] = 100;
    rig.timebase.now = 100;
    const a = irqProgram(MIP_MTIP);
    rig.load(a);
    expect(rig.run(100000).reason).toBe('wfi');
    expect(rig.x(a0)).toBe(IRQ_BIT | 7n);
    // mepc is the instruction that would have run next: inside the spin loop.
    expect([a.addr('spin'), a.addr('spin') + 4]).toContain(Number(rig.x(a1)));
    expect(rig.state.mtval).toBe(0n);
    // the handler ran with MIE clear and MPIE set
    expect(rig.state.mstatus & 0x88n).toBe(0x80n);
  });

  test('priority: MEI > MSI > MTI', () => {
    const cases: [number, bigint][] = [
      [MIP_MEIP | MIP_MSIP | MIP_MTIP, 11n],
      [MIP_MSIP | MIP_MTIP, 3n],
      [MIP_MTIP, 7n],
    ];
    for (const [enabled, cause] of cases) {
      const rig = new Rig();
      rig.lines.raise(0, MIP_MEIP | MIP_MSIP);
      rig.timebase.cmp[0] = 0;
      rig.load(irqProgram(enabled));
      rig.run(100000);
      expect(rig.x(a0)).toBe(IRQ_BIT | cause);
    }
  });

  test('masked by mie: a pending interrupt whose enable bit is clear is not taken', () => {
    const rig = new Rig();
    rig.lines.raise(0, MIP_MSIP);
    rig.load(irqProgram(MIP_MEIP));
    expect(rig.run(10000).reason).toBe('budget');
    expect(rig.x(a0)).toBe(0n);
    expect(rig.x(t0)).toBeGreaterThan(1000n);
  });

  test('masked by mstatus.MIE: nothing is taken until MIE is set', () => {
    const rig = new Rig();
    rig.lines.raise(0, MIP_MEIP);
    rig.load(irqProgram(MIP_MEIP, { globalEnable: false }));
    expect(rig.run(10000).reason).toBe('budget');
    expect(rig.x(a0)).toBe(0n);
  });

  test('a line raised while the hart runs is taken at a block boundary', () => {
    // The device raises MEIP on its 3rd write; the program keeps writing in a loop.
    const dev = new TestDevice(0x1000_0000, 4);
    const rig = new Rig({ devices: [dev] });
    let writes = 0;
    dev.write = () => { if (++writes === 3) rig.lines.raise(0, MIP_MEIP); };
    const a = new Asm(RAM_BASE);
    a.la(s0, 'h').i(enc.csrrw(0, CSRN.mtvec, s0)).li(s0, MIP_MEIP).i(enc.csrrs(0, CSRN.mie, s0), enc.csrrsi(0, CSRN.mstatus, 8));
    a.li(s0, 0x1000_0000).label('loop').i(enc.sw(0, s0, 0), enc.addi(t0, t0, 1)).j('loop');
    a.label('h').i(csrr(a0, CSRN.mcause), enc.csrrw(0, CSRN.mie, 0), enc.wfi());
    rig.load(a);
    // Raising a line kicks the hart, so run() first returns 'kick'; the worker calls it again.
    const exit = rig.run(1_000_000);
    expect(exit.reason).toBe('kick');
    expect(rig.run(1_000_000).reason).toBe('wfi');
    expect(rig.x(a0)).toBe(IRQ_BIT | 11n);
    expect(writes).toBeLessThan(10);
  });

  test('the timer is sampled while a tight loop runs', () => {
    // A timebase whose clock advances each time it is read.
    let reads = 0;
    const tb: Timebase = { mtime: () => ++reads * 100, timecmp: () => 1000 };
    const rig = new Rig({ timebase: tb as any });
    rig.load(irqProgram(MIP_MTIP));
    const exit = rig.run(10_000_000);
    expect(exit.reason).toBe('wfi');
    expect(rig.x(a0)).toBe(IRQ_BIT | 7n);
    expect(exit.executed).toBeLessThan(200_000);
  });

  test('vectored mode: interrupts go to BASE + 4 × cause', () => {
    const rig = new Rig();
    rig.lines.raise(0, MIP_MSIP);
    rig.load(irqProgram(MIP_MSIP, { vectored: true }));
    rig.run(100000);
    // BASE + 4 × 3 is slot 3; it falls through the later slots, so a2 ends at 15 and a0 was
    // never written (the exception entry at BASE did not run).
    expect(rig.x(REG.a2)).toBe(15n);
    expect(rig.x(a0)).toBe(0n);
    expect(rig.state.mcause).toBe(IRQ_BIT | 3n);
  });
});

describe('WFI', () => {
  function wfiProgram(): Asm {
    const a = new Asm(RAM_BASE);
    a.la(s0, 'h').i(enc.csrrw(0, CSRN.mtvec, s0)).li(s0, MIP_MSIP | MIP_MTIP).i(enc.csrrs(0, CSRN.mie, s0));
    a.label('w').i(enc.wfi(), enc.addi(a1, 0, 1), enc.csrrw(0, CSRN.mie, 0), enc.wfi());
    a.label('h').i(csrr(a0, CSRN.mcause), csrr(REG.a2, CSRN.mepc), enc.csrrw(0, CSRN.mie, 0), enc.wfi());
    return a;
  }

  test('with nothing pending, run() returns "wfi" and the hart stays halted until an interrupt', () => {
    const rig = new Rig();
    const a = wfiProgram();
    rig.load(a);
    const e1 = rig.run(1000);
    expect(e1.reason).toBe('wfi');
    expect(rig.state.halted).toBe(true);
    expect(rig.state.pc).toBe(BigInt(a.addr('w') + 4)); // WFI retired
    const e2 = rig.run(1000);
    expect(e2).toEqual({ reason: 'wfi', executed: 0 });
    // An enabled interrupt wakes it; with mstatus.MIE clear it is not taken, execution resumes.
    rig.lines.raise(0, MIP_MSIP);
    const e3 = rig.run(1000);
    expect(rig.x(a1)).toBe(1n);
    expect(rig.x(a0)).toBe(0n);
    expect(e3.reason).toBe('wfi');
  });

  test('with MIE set, the wake-up interrupt is taken and mepc is the instruction after WFI', () => {
    const rig = new Rig();
    const a = wfiProgram();
    rig.load(a);
    rig.state.mstatus |= 8n;
    expect(rig.run(1000).reason).toBe('wfi');
    rig.timebase.cmp[0] = 5;
    rig.timebase.now = 5;
    expect(rig.run(1000).reason).toBe('wfi');
    expect(rig.x(a0)).toBe(IRQ_BIT | 7n);
    expect(rig.x(REG.a2)).toBe(BigInt(a.addr('w') + 4));
    expect(rig.x(a1)).toBe(0n);
  });

  test('a pending enabled interrupt makes WFI a no-op, even with MIE clear', () => {
    const rig = new Rig();
    rig.lines.raise(0, MIP_MSIP);
    rig.load(wfiProgram());
    rig.run(1000);
    expect(rig.x(a1)).toBe(1n);
  });

  test('an interrupt that is pending but not enabled in mie does not wake the hart', () => {
    const rig = new Rig();
    rig.load(wfiProgram());
    rig.run(1000);
    rig.lines.raise(0, MIP_MEIP);
    expect(rig.run(1000)).toEqual({ reason: 'wfi', executed: 0 });
    expect(rig.state.halted).toBe(true);
  });

  test('nextTimerDeadline: timecmp while MTIE is set, else Infinity', () => {
    const rig = new Rig();
    rig.timebase.cmp[0] = 4242;
    rig.load(wfiProgram());
    expect(rig.hart.nextTimerDeadline()).toBe(Infinity);
    rig.run(1000);
    expect(rig.hart.nextTimerDeadline()).toBe(4242);
  });
});

describe('kicks', () => {
  test('bumping the wake word makes run() return "kick" at the next block boundary', () => {
    const dev = new TestDevice(0x1000_0000, 4);
    const rig = new Rig({ devices: [dev] });
    dev.write = () => rig.lines.kick(0);
    const a = new Asm(RAM_BASE).li(s0, 0x1000_0000).i(enc.addi(t0, 0, 1), enc.sw(0, s0, 0), enc.addi(t0, t0, 1)).label('l').j('l');
    rig.load(a);
    const exit = rig.run(1_000_000);
    expect(exit.reason).toBe('kick');
    expect(exit.executed).toBeLessThan(10);
    expect(rig.x(t0)).toBe(2n);
    // The next run carries on.
    expect(rig.run(100).reason).toBe('budget');
  });
});
