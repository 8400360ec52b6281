/** Zicsr and the machine-mode CSR file: access rules, WARL fields, counters. */
import { MIP_MEIP, MIP_MSIP } from '../../../lib/machine/bus';
import { CAUSE, MISA } from '../../../lib/machine/cpu';
import { Asm, CSRN, enc, REG, RAM_BASE, Rig, runProgram, runTrap } from './helpers';

const { a0, a1, a2, a3, a4, t0 } = REG;

/** csrr rd, csr  (csrrs rd, csr, x0) */
const csrr = (rd: number, csr: number) => enc.csrrs(rd, csr, 0);
/** csrw csr, rs  (csrrw x0, csr, rs) */
const csrw = (csr: number, rs: number) => enc.csrrw(0, csr, rs);

describe('identification CSRs', () => {
  test('misa is RV64 with A, I, M; vendor, arch and impl ids are 0; mhartid is the hart', () => {
    const rig = runProgram((a) => a.i(csrr(a0, CSRN.misa), csrr(a1, CSRN.mvendorid), csrr(a2, CSRN.marchid), csrr(a3, CSRN.mimpid), csrr(a4, CSRN.mhartid)), { hartId: 1 });
    expect(rig.x(a0)).toBe(MISA);
    expect(MISA).toBe(0x8000000000001101n);
    expect([rig.x(a1), rig.x(a2), rig.x(a3)]).toEqual([0n, 0n, 0n]);
    expect(rig.x(a4)).toBe(1n);
  });

  test('misa is WARL and keeps its value when written', () => {
    const rig = runProgram((a) => a.li(t0, 0).i(csrw(CSRN.misa, t0), csrr(a0, CSRN.misa)));
    expect(rig.x(a0)).toBe(MISA);
  });
});

describe('access rules', () => {
  const RO = [CSRN.mvendorid, CSRN.mhartid, CSRN.cycle, CSRN.time, CSRN.instret, 0xc03];
  test.each(RO)('writing read-only CSR %s with csrrw is illegal, mtval = the instruction', (csr) => {
    const insn = enc.csrrw(a0, csr, t0);
    const { rig, asm, trapped } = runTrap((a) => a.li(a0, 77).label('w').i(insn));
    expect(trapped).toBe(true);
    expect(rig.state.mcause).toBe(BigInt(CAUSE.ILLEGAL_INSN));
    expect(rig.state.mtval).toBe(BigInt(insn));
    expect(rig.state.mepc).toBe(BigInt(asm.addr('w')));
    expect(rig.x(a0)).toBe(77n); // rd untouched
  });

  test('csrrs/csrrc with rs1 = x0 and csrrsi/csrrci with uimm = 0 only read: legal on read-only CSRs', () => {
    const rig = runProgram((a) => a.i(enc.csrrs(a0, CSRN.mhartid, 0), enc.csrrc(a1, CSRN.mhartid, 0), enc.csrrsi(a2, CSRN.mvendorid, 0), enc.csrrci(a3, CSRN.mvendorid, 0)), { hartId: 1 });
    expect([rig.x(a0), rig.x(a1), rig.x(a2), rig.x(a3)]).toEqual([1n, 1n, 0n, 0n]);
  });

  test.each([
    ['csrrs with rs1 ≠ x0 holding 0', enc.csrrs(a0, CSRN.mhartid, t0)],
    ['csrrc with rs1 ≠ x0 holding 0', enc.csrrc(a0, CSRN.mhartid, t0)],
    ['csrrsi with uimm ≠ 0', enc.csrrsi(a0, CSRN.mhartid, 1)],
    ['csrrwi', enc.csrrwi(0, CSRN.mhartid, 0)],
  ])('%s on a read-only CSR attempts a write: illegal', (_, insn) => {
    const { rig, trapped } = runTrap((a) => a.li(t0, 0).i(insn));
    expect(trapped).toBe(true);
    expect(rig.state.mcause).toBe(BigInt(CAUSE.ILLEGAL_INSN));
    expect(rig.state.mtval).toBe(BigInt(insn));
  });

  test.each([
    ['sstatus (no S-mode)', 0x100],
    ['satp', 0x180],
    ['medeleg (does not exist with M-mode only)', 0x302],
    ['mideleg', 0x303],
    ['menvcfg (needs U-mode)', 0x30a],
    ['mstatush (RV32 only)', 0x310],
    ['pmpcfg1 (odd pmpcfg do not exist on RV64)', 0x3a1],
    ['tselect', 0x7a0],
    ['a custom CSR', 0x7c0],
    ['fcsr (no F)', 0x003],
  ])('%s is illegal, even to read', (_, csr) => {
    const insn = enc.csrrs(a0, csr, 0);
    const { rig, trapped } = runTrap((a) => a.i(insn));
    expect(trapped).toBe(true);
    expect(rig.state.mcause).toBe(BigInt(CAUSE.ILLEGAL_INSN));
    expect(rig.state.mtval).toBe(BigInt(insn));
  });

  test('PMP and hpm counters/events exist as read-only zero (writes accepted, ignored)', () => {
    const csrs = [0x3a0, 0x3b0, 0x3ef, 0xb03, 0xb1f, 0x323, 0x33f, 0xc1f, 0xf15];
    const rig = runProgram((a) => {
      a.li(t0, -1n).li(a0, 0);
      for (const c of csrs) {
        if (c < 0xc00) a.i(csrw(c, t0));
        a.i(csrr(a1, c), enc.or(a0, a0, a1));
      }
    });
    expect(rig.x(a0)).toBe(0n);
  });

  test('csrrw with rd = x0 does not read the CSR (no read side effects)', () => {
    // Reading mip samples the timer; count timebase reads with and without rd.
    const reads = (rd: number) => {
      const rig = runProgram((a) => a.i(enc.csrrw(rd, CSRN.mip, 0)));
      return rig.timebase.reads;
    };
    expect(reads(a0) - reads(0)).toBe(1);
  });
});

describe('WARL fields', () => {
  test('mstatus keeps only MIE and MPIE; MPP reads M always', () => {
    const rig = runProgram((a) => a.li(t0, -1n).i(csrw(CSRN.mstatus, t0), csrr(a0, CSRN.mstatus), csrw(CSRN.mstatus, 0), csrr(a1, CSRN.mstatus)));
    expect(rig.x(a0)).toBe(0x1888n);
    expect(rig.x(a1)).toBe(0x1800n);
  });

  test('mie keeps MSIE, MTIE, MEIE', () => {
    const rig = runProgram((a) => a.li(t0, -1n).i(csrw(CSRN.mie, t0), csrr(a0, CSRN.mie)));
    expect(rig.x(a0)).toBe(0x888n);
  });

  test('mtvec: direct and vectored are stored, reserved modes leave it unchanged', () => {
    const rig = runProgram((a) =>
      a.li(t0, 0x80001001n).i(csrw(CSRN.mtvec, t0), csrr(a0, CSRN.mtvec)).li(t0, 0x80002002n).i(csrw(CSRN.mtvec, t0), csrr(a1, CSRN.mtvec)),
    );
    expect(rig.x(a0)).toBe(0x80001001n);
    expect(rig.x(a1)).toBe(0x80001001n);
  });

  test('mepc[1:0] read as zero (IALIGN = 32); mscratch, mcause, mtval hold 64 bits', () => {
    const rig = runProgram((a) =>
      a.li(t0, 0x123456789abcdefn).i(
        csrw(CSRN.mepc, t0), csrr(a0, CSRN.mepc), csrw(CSRN.mscratch, t0), csrr(a1, CSRN.mscratch),
        csrw(CSRN.mcause, t0), csrr(a2, CSRN.mcause), csrw(CSRN.mtval, t0), csrr(a3, CSRN.mtval),
      ),
    );
    expect(rig.x(a0)).toBe(0x123456789abcdecn);
    expect([rig.x(a1), rig.x(a2), rig.x(a3)]).toEqual([0x123456789abcdefn, 0x123456789abcdefn, 0x123456789abcdefn]);
  });

  test('csrrs/csrrc set and clear bits and return the old value', () => {
    const rig = runProgram((a) =>
      a.li(t0, 0xf0).i(csrw(CSRN.mscratch, t0)).li(t0, 0x0f).i(enc.csrrs(a0, CSRN.mscratch, t0)).li(t0, 0x3c).i(enc.csrrc(a1, CSRN.mscratch, t0), csrr(a2, CSRN.mscratch), enc.csrrwi(a3, CSRN.mscratch, 31), enc.csrrsi(a4, CSRN.mscratch, 0)),
    );
    expect(rig.x(a0)).toBe(0xf0n);
    expect(rig.x(a1)).toBe(0xffn);
    expect(rig.x(a2)).toBe(0xc3n);
    expect(rig.x(a3)).toBe(0xc3n);
    expect(rig.x(a4)).toBe(31n);
  });

  test('mcountinhibit keeps CY and IR; mcounteren is 32 bits', () => {
    const rig = runProgram((a) => a.li(t0, -1n).i(csrw(CSRN.mcountinhibit, t0), csrr(a0, CSRN.mcountinhibit), csrw(CSRN.mcounteren, t0), csrr(a1, CSRN.mcounteren)));
    expect(rig.x(a0)).toBe(5n);
    expect(rig.x(a1)).toBe(0xffffffffn);
  });
});

describe('counters', () => {
  test('instret and cycle count retired instructions; a read sees the count before itself', () => {
    const rig = runProgram((a) => a.i(csrr(a0, CSRN.instret), enc.addi(0, 0, 0), enc.addi(0, 0, 0), csrr(a1, CSRN.instret), csrr(a2, CSRN.minstret), csrr(a3, CSRN.cycle)));
    expect(rig.x(a1) - rig.x(a0)).toBe(3n);
    expect(rig.x(a2) - rig.x(a1)).toBe(1n);
    expect(rig.x(a3)).toBe(rig.x(a2) + 1n); // cycle = one per instruction here
  });

  test('a value written to minstret/mcycle is what the next instruction reads', () => {
    const rig = runProgram((a) => a.li(t0, 1000).i(csrw(CSRN.minstret, t0), csrr(a0, CSRN.minstret), csrw(CSRN.mcycle, t0), csrr(a1, CSRN.mcycle)));
    expect(rig.x(a0)).toBe(1000n);
    expect(rig.x(a1)).toBe(1000n);
  });

  test('counters wrap at 2^64', () => {
    const rig = runProgram((a) => a.li(t0, -2n).i(csrw(CSRN.minstret, t0), enc.addi(0, 0, 0), enc.addi(0, 0, 0), csrr(a0, CSRN.minstret)));
    expect(rig.x(a0)).toBe(0n);
  });

  test('mcountinhibit.IR stops instret, CY stops cycle', () => {
    const rig = runProgram((a) =>
      a.li(t0, 4).i(csrw(CSRN.mcountinhibit, t0), csrr(a0, CSRN.instret), csrr(a1, CSRN.cycle), enc.addi(0, 0, 0), csrr(a2, CSRN.instret), csrr(a3, CSRN.cycle)),
    );
    expect(rig.x(a2)).toBe(rig.x(a0));
    expect(rig.x(a3) - rig.x(a1)).toBe(3n);
  });

  test('minstret in the state equals the instructions run, across several run() calls', () => {
    const rig = new Rig();
    const a = new Asm(RAM_BASE).li(t0, 5000).label('l').i(enc.addi(t0, t0, -1)).bne(t0, 0, 'l').i(enc.wfi());
    rig.load(a);
    let total = 0;
    for (;;) {
      const e = rig.run(777);
      total += e.executed;
      if (e.reason === 'wfi') break;
      expect(e.executed).toBe(777);
    }
    expect(total).toBe(2 + 10000 + 1);
    expect(rig.state.minstret).toBe(BigInt(total));
    expect(rig.state.mcycle).toBe(BigInt(total));
  });

  test('time reads the timebase', () => {
    const rig = new Rig();
    rig.timebase.now = 123456789;
    rig.load(new Asm(RAM_BASE).i(csrr(a0, CSRN.time), enc.wfi()));
    rig.run();
    expect(rig.x(a0)).toBe(123456789n);
  });
});

describe('mip', () => {
  test('reads the live pending bits: lines for MSIP/MEIP, the timer for MTIP; writes are ignored', () => {
    const rig = new Rig();
    rig.lines.raise(0, MIP_MSIP | MIP_MEIP);
    rig.timebase.cmp[0] = 10;
    rig.timebase.now = 10;
    rig.load(new Asm(RAM_BASE).li(t0, -1n).i(csrw(CSRN.mip, t0), csrr(a0, CSRN.mip), enc.wfi()));
    rig.run();
    expect(rig.x(a0)).toBe(0x888n);
    rig.lines.lower(0, MIP_MSIP | MIP_MEIP);
    rig.timebase.now = 9;
    rig.load(new Asm(RAM_BASE).i(csrr(a0, CSRN.mip), enc.wfi()));
    rig.state.halted = false;
    rig.run();
    expect(rig.x(a0)).toBe(0n);
  });
});
