/** Synchronous traps: entry and exit, causes and tvals, trap-loop detection. */
import { CAUSE, TRAP_LOOP_LIMIT } from '../../../lib/machine/cpu';
import { Asm, CSRN, enc, REG, RAM_BASE, Rig, runTrap } from './helpers';

const { a0, a1, t0, t1 } = REG;
const csrr = (rd: number, csr: number) => enc.csrrs(rd, csr, 0);

describe('exceptions', () => {
  test('ECALL from M-mode: cause 11, mepc at the ECALL, mtval 0', () => {
    const { rig, asm, trapped } = runTrap((a) => a.li(t0, 0x55).i(enc.csrrw(0, CSRN.mtval, t0)).label('e').i(enc.ecall()));
    expect(trapped).toBe(true);
    expect(rig.state.mcause).toBe(11n);
    expect(rig.state.mepc).toBe(BigInt(asm.addr('e')));
    expect(rig.state.mtval).toBe(0n);
  });

  test('EBREAK: breakpoint, cause 3', () => {
    const { rig, asm, trapped } = runTrap((a) => a.label('e').i(enc.ebreak()));
    expect(trapped).toBe(true);
    expect(rig.state.mcause).toBe(BigInt(CAUSE.BREAKPOINT));
    expect(rig.state.mepc).toBe(BigInt(asm.addr('e')));
  });

  test.each([
    ['an F instruction (flw)', 0x00052007, 0x00052007],
    ['a D instruction (fadd.d)', 0x02b50553, 0x02b50553],
    ['SRET (no S-mode)', 0x10200073, 0x10200073],
    ['SFENCE.VMA', 0x12000073, 0x12000073],
    ['a compressed instruction (no C): mtval is its 16-bit parcel, as QEMU reports', 0x00004505, 0x4505],
    ['an all-zero word', 0, 0],
    ['an all-ones word', 0xffffffff, 0xffffffff],
    ['SLLIW with shamt[5] set (reserved)', 0x0205151b, 0x0205151b],
  ])('illegal instruction: %s', (_, word, tval) => {
    const { rig, asm, trapped } = runTrap((a) => a.label('x').i(word));
    expect(trapped).toBe(true);
    expect(rig.state.mcause).toBe(BigInt(CAUSE.ILLEGAL_INSN));
    expect(rig.state.mepc).toBe(BigInt(asm.addr('x')));
    expect(rig.state.mtval).toBe(BigInt(tval >>> 0));
  });

  test('trap entry: MPIE ← MIE, MIE ← 0, MPP = M; MRET: MIE ← MPIE, MPIE ← 1, pc ← mepc', () => {
    const a = new Asm(RAM_BASE);
    a.la(t0, 'trap').i(enc.csrrw(0, CSRN.mtvec, t0));
    a.i(enc.csrrsi(0, CSRN.mstatus, 8)); // MIE = 1 (mie = 0, so no interrupt can be taken)
    a.label('e').i(enc.ecall());
    a.i(csrr(a1, CSRN.mstatus), enc.wfi());
    a.label('trap').i(csrr(a0, CSRN.mstatus), csrr(t1, CSRN.mepc), enc.addi(t1, t1, 4), enc.csrrw(0, CSRN.mepc, t1), enc.mret());
    const rig = new Rig().load(a);
    expect(rig.run().reason).toBe('wfi');
    expect(rig.x(a0)).toBe(0x1880n); // in the handler: MPP = 3, MPIE = 1, MIE = 0
    expect(rig.x(a1)).toBe(0x1888n); // after mret: MIE = 1, MPIE = 1
  });

  test('any trap drops the load reservation, so an SC after the handler fails', () => {
    const a = new Asm(RAM_BASE);
    a.la(t0, 'trap').i(enc.csrrw(0, CSRN.mtvec, t0));
    a.li(REG.s0, RAM_BASE + 0x8000).i(enc.lrW(a0, REG.s0), enc.ecall(), enc.scW(a1, a0, REG.s0), enc.wfi());
    a.label('trap').i(csrr(t1, CSRN.mepc), enc.addi(t1, t1, 4), enc.csrrw(0, CSRN.mepc, t1), enc.mret());
    const rig = new Rig().load(a);
    rig.run();
    expect(rig.x(a1)).toBe(1n);
    expect(rig.state.loadRes).toBe(0xffffffffffffffffn);
  });

  test('vectored mtvec: exceptions still go to BASE', () => {
    const a = new Asm(RAM_BASE);
    a.la(t0, 'vec').i(enc.ori(t0, t0, 1), enc.csrrw(0, CSRN.mtvec, t0), enc.ecall(), enc.wfi());
    while ((a.pc & 0xff) !== 0) a.i(0);
    a.label('vec').i(enc.addi(a0, 0, 1), enc.wfi());
    const rig = new Rig().load(a);
    rig.run();
    expect(rig.x(a0)).toBe(1n);
  });
});

describe('a trap loop is reported, not spun on', () => {
  test('mtvec pointing at unmapped memory: every trap traps again', () => {
    const rig = new Rig();
    rig.load(new Asm(RAM_BASE).li(t0, 0x4000_0000).i(enc.csrrw(0, CSRN.mtvec, t0), enc.ecall()));
    const exit = rig.run(1_000_000);
    expect(exit.reason).toBe('trap-loop');
    expect(exit.trapLoop).toBeDefined();
    expect(exit.trapLoop!.mtvec).toBe(0x4000_0000n);
    expect(exit.trapLoop!.mcause).toBe(BigInt(CAUSE.INSN_ACCESS_FAULT));
    expect(exit.trapLoop!.mtval).toBe(0x4000_0000n);
    expect(exit.trapLoop!.mepc).toBe(0x4000_0000n);
    expect(exit.trapLoop!.traps).toBe(TRAP_LOOP_LIMIT);
    expect(exit.executed).toBe(2); // lui + csrrw; the ECALL and every trap after it retire nothing
    // Calling again reports the loop again straight away instead of spinning.
    const again = rig.run(1_000_000);
    expect(again.reason).toBe('trap-loop');
    expect(again.executed).toBe(0);
  });

  test('a handler whose first instruction is ECALL', () => {
    const a = new Asm(RAM_BASE);
    a.la(t0, 'h').i(enc.csrrw(0, CSRN.mtvec, t0), enc.ebreak());
    a.label('h').i(enc.ecall());
    const rig = new Rig().load(a);
    const exit = rig.run(1_000_000);
    expect(exit.reason).toBe('trap-loop');
    expect(exit.trapLoop!.mcause).toBe(11n);
  });

  test('a handler that retires instructions between traps is not a loop', () => {
    // ecall → handler skips it (mepc += 4) → next ecall ... 50 times, then wfi.
    const a = new Asm(RAM_BASE);
    a.la(t0, 'h').i(enc.csrrw(0, CSRN.mtvec, t0));
    for (let i = 0; i < 50; i++) a.i(enc.ecall());
    a.i(enc.wfi());
    a.label('h').i(csrr(t1, CSRN.mepc), enc.addi(t1, t1, 4), enc.csrrw(0, CSRN.mepc, t1), enc.addi(a0, a0, 1), enc.mret());
    const rig = new Rig().load(a);
    expect(rig.run().reason).toBe('wfi');
    expect(rig.x(a0)).toBe(50n);
  });
});

describe('fetch faults', () => {
  test('running off the end of RAM is an instruction access fault at the first address outside', () => {
    const rig = new Rig({ ramSize: 0x2000 });
    // The last word of RAM is a nop; the fetch after it is outside RAM.
    const last = RAM_BASE + 0x2000 - 4;
    const a = new Asm(RAM_BASE);
    a.la(t0, 'trap').i(enc.csrrw(0, CSRN.mtvec, t0)).li(t0, last).i(enc.jalr(0, t0, 0));
    a.label('trap').i(enc.wfi());
    rig.load(a);
    rig.setU32(last, enc.addi(0, 0, 0));
    expect(rig.run().reason).toBe('wfi');
    expect(rig.state.mcause).toBe(BigInt(CAUSE.INSN_ACCESS_FAULT));
    expect(rig.state.mepc).toBe(BigInt(RAM_BASE + 0x2000));
    expect(rig.state.mtval).toBe(BigInt(RAM_BASE + 0x2000));
  });
});
