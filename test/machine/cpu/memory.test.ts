/** Loads, stores, dirty tracking, MMIO and access faults. */
import { CAUSE } from '../../../lib/machine/cpu';
import { Asm, enc, makeRam, REG, RAM_BASE, Rig, runTrap, TestDevice } from './helpers';

const { a0, a1, a2, a3, a4, a5, a6, s0, t0 } = REG;
const DATA = RAM_BASE + 0x10000;

// One hart uses two word accesses for LD/SD; with several, one 64-bit access: test both.
describe.each([1, 2])('loads extend like the spec says (%i harts)', (harts) => {
  test('LB/LH/LW sign-extend, LBU/LHU/LWU zero-extend, LD reads 64 bits', () => {
    const rig = new Rig({ harts });
    rig.setU64(DATA, 0x8182838485868788n);
    rig.load(
      new Asm(RAM_BASE).li(s0, DATA).i(
        enc.lb(a0, s0, 0), enc.lh(a1, s0, 0), enc.lw(a2, s0, 0), enc.ld(a3, s0, 0),
        enc.lbu(a4, s0, 0), enc.lhu(a5, s0, 0), enc.lwu(a6, s0, 0), enc.wfi(),
      ),
    );
    rig.run();
    expect(rig.x(a0)).toBe(0xffffffffffffff88n);
    expect(rig.x(a1)).toBe(0xffffffffffff8788n);
    expect(rig.x(a2)).toBe(0xffffffff85868788n);
    expect(rig.x(a3)).toBe(0x8182838485868788n);
    expect(rig.x(a4)).toBe(0x88n);
    expect(rig.x(a5)).toBe(0x8788n);
    expect(rig.x(a6)).toBe(0x85868788n);
  });

  test('positive values stay positive', () => {
    const rig = new Rig();
    rig.setU64(DATA, 0x0102030405067f7fn);
    rig.load(new Asm(RAM_BASE).li(s0, DATA).i(enc.lb(a0, s0, 0), enc.lh(a1, s0, 0), enc.lw(a2, s0, 0), enc.wfi()));
    rig.run();
    expect([rig.x(a0), rig.x(a1), rig.x(a2)]).toEqual([0x7fn, 0x7f7fn, 0x05067f7fn]);
  });

  test('a load into x0 still performs the access (and can fault)', () => {
    const { rig, trapped } = runTrap((a) => a.li(s0, 0x1000_0000).i(enc.lw(0, s0, 0)));
    expect(trapped).toBe(true);
    expect(rig.state.mcause).toBe(BigInt(CAUSE.LOAD_ACCESS_FAULT));
  });
});

describe.each([1, 2])('stores (%i harts)', (harts) => {
  test('SB/SH/SW/SD write the low bytes, little-endian, with negative offsets', () => {
    const rig = new Rig({ harts });
    rig.load(
      new Asm(RAM_BASE).li(s0, DATA + 64).li(a0, 0x1122334455667788n).i(
        enc.sd(a0, s0, -64), enc.sw(a0, s0, -56), enc.sh(a0, s0, -48), enc.sb(a0, s0, -40), enc.wfi(),
      ),
    );
    rig.run();
    expect(rig.u64(DATA)).toBe(0x1122334455667788n);
    expect(rig.u64(DATA + 8)).toBe(0x55667788n);
    expect(rig.u64(DATA + 16)).toBe(0x7788n);
    expect(rig.u64(DATA + 24)).toBe(0x88n);
  });

  test('every store sets the dirty byte of its page, and only of its page', () => {
    const rig = new Rig();
    const dirty = rig.ram[0].dirty;
    rig.load(
      new Asm(RAM_BASE).li(s0, DATA).i(
        enc.sb(0, s0, 0), enc.sh(0, s0, 0x7fe), // pages 16, 16
        enc.addi(s0, s0, 0x7ff), enc.addi(s0, s0, 0x7ff), enc.addi(s0, s0, 2), // DATA + 0x1000
        enc.sw(0, s0, 0), enc.addi(s0, s0, 0x7ff), enc.addi(s0, s0, 0x7ff), enc.addi(s0, s0, 2),
        enc.sd(0, s0, 0), enc.wfi(),
      ),
    );
    dirty.fill(0);
    rig.run();
    const page = (DATA - RAM_BASE) >> 12;
    const set = [...dirty.keys()].filter((p) => dirty[p]);
    expect(set).toEqual([page, page + 1, page + 2]);
  });

  test('a misaligned store is performed (QEMU TCG does) and dirties both pages it spans', () => {
    const rig = new Rig();
    const dirty = rig.ram[0].dirty;
    const at = DATA + 0x1000 - 3; // 8 bytes across a page boundary
    rig.load(new Asm(RAM_BASE).li(s0, at).li(a0, 0x0102030405060708n).i(enc.sd(a0, s0, 0), enc.ld(a1, s0, 0), enc.lw(a2, s0, 1), enc.lh(a3, s0, 2), enc.wfi()));
    dirty.fill(0);
    expect(rig.run().reason).toBe('wfi');
    expect(rig.view.getBigUint64(at - RAM_BASE, true)).toBe(0x0102030405060708n);
    expect(rig.x(a1)).toBe(0x0102030405060708n);
    expect(rig.x(a2)).toBe(0x04050607n);
    expect(rig.x(a3)).toBe(0x0506n);
    const page = (DATA - RAM_BASE) >> 12;
    expect(dirty[page]).toBe(1);
    expect(dirty[page + 1]).toBe(1);
  });

  test('a store to a read-only region is dropped without a trap, as on QEMU', () => {
    const rom = makeRam(0x1000, 0x1000, { readonly: true, name: 'riscv_virt_board.mrom' });
    new Uint32Array(rom.windows[0])[0] = 0xabcd;
    const rig = new Rig({ ram: [makeRam(RAM_BASE, 1 << 20), rom] });
    const trapped = runTrapOn(rig, (a) => a.li(s0, 0x1000).i(enc.lw(a0, s0, 0), enc.sw(a0, s0, 4)));
    expect(trapped).toBe(false);
    expect(rig.x(a0)).toBe(0xabcdn); // loads from ROM work
    expect(new Uint32Array(rom.windows[0])[1]).toBe(0);
    expect(rom.dirty[0]).toBe(0);
  });
});

function runTrapOn(rig: Rig, body: (a: Asm) => void): boolean {
  const a = new Asm(RAM_BASE);
  a.la(REG.t6, 'trap').i(enc.csrrw(0, 0x305, REG.t6));
  body(a);
  a.i(enc.wfi()).label('trap').i(enc.wfi());
  rig.load(a);
  expect(rig.run().reason).toBe('wfi');
  return rig.state.pc === BigInt(a.addr('trap') + 4);
}

describe('access faults', () => {
  test.each([
    ['load from an unmapped address', (a: Asm) => a.li(s0, 0x4000_0000).i(enc.ld(a0, s0, 8)), CAUSE.LOAD_ACCESS_FAULT, 0x4000_0008n],
    ['store to an unmapped address', (a: Asm) => a.li(s0, 0x4000_0000).i(enc.sb(a0, s0, -1)), CAUSE.STORE_ACCESS_FAULT, 0x3fff_ffffn],
    ['load past the end of RAM', (a: Asm) => a.li(s0, RAM_BASE + (1 << 20) - 4).i(enc.lw(a0, s0, 2)), CAUSE.LOAD_ACCESS_FAULT, BigInt(RAM_BASE + (1 << 20) - 2)],
    ['load from a 64-bit address far above RAM', (a: Asm) => a.li(s0, -8n).i(enc.ld(a0, s0, 0)), CAUSE.LOAD_ACCESS_FAULT, 0xfffffffffffffff8n],
  ])('%s', (_, body, cause, tval) => {
    const { rig, trapped } = runTrap(body as (a: Asm) => void);
    expect(trapped).toBe(true);
    expect(rig.state.mcause).toBe(BigInt(cause));
    expect(rig.state.mtval).toBe(tval);
  });

  test('the faulting instruction does not retire; earlier ones did', () => {
    const { rig, trapped } = runTrap((a) => a.li(s0, 0x4000_0000).i(enc.addi(a1, 0, 1), enc.sd(a1, s0, 0), enc.addi(a2, 0, 1)));
    expect(trapped).toBe(true);
    expect(rig.x(a1)).toBe(1n);
    expect(rig.x(a2)).toBe(0n);
  });
});

describe('MMIO', () => {
  const BASE = 0x1000_0000;

  test('byte, half and word accesses reach the device with the right offsets and values', () => {
    const dev = new TestDevice(BASE, 1 | 2 | 4);
    const rig = new Rig({ devices: [dev] });
    rig.load(new Asm(RAM_BASE).li(s0, BASE).li(a0, -1n).i(
      enc.sb(a0, s0, 1), enc.sh(a0, s0, 4), enc.sw(a0, s0, 8), enc.lb(a1, s0, 1), enc.lhu(a2, s0, 4), enc.lw(a3, s0, 8), enc.wfi(),
    ));
    rig.run();
    expect(dev.log).toEqual(['w1@1=ff', 'w2@4=ffff', 'w4@8=ffffffff', 'r1@1', 'r2@4', 'r4@8']);
    expect(rig.x(a1)).toBe(0xffffffffffffffffn);
    expect(rig.x(a2)).toBe(0xffffn);
    expect(rig.x(a3)).toBe(0xffffffffffffffffn);
  });

  test('an 8-byte access without read64/write64 is two 4-byte accesses, low half first', () => {
    const dev = new TestDevice(BASE, 4 | 8);
    const rig = new Rig({ devices: [dev] });
    rig.load(new Asm(RAM_BASE).li(s0, BASE).li(a0, 0x1122334455667788n).i(enc.sd(a0, s0, 16), enc.ld(a1, s0, 16), enc.wfi()));
    rig.run();
    expect(dev.log).toEqual(['w4@10=55667788', 'w4@14=11223344', 'r4@10', 'r4@14']);
    expect(rig.x(a1)).toBe(0x1122334455667788n);
  });

  test('an 8-byte access uses read64/write64 when the device has them', () => {
    const dev = new TestDevice(BASE, 8);
    let stored = 0n;
    dev.write64 = (off, v) => { stored = v; dev.log.push(`w8@${off}`); };
    dev.read64 = () => 0x8000000000000001n;
    const rig = new Rig({ devices: [dev] });
    rig.load(new Asm(RAM_BASE).li(s0, BASE).li(a0, -2n).i(enc.sd(a0, s0, 8), enc.ld(a1, s0, 0), enc.wfi()));
    rig.run();
    expect(stored).toBe(0xfffffffffffffffen);
    expect(rig.x(a1)).toBe(0x8000000000000001n);
  });

  test.each([
    ['a byte load from a word-only device', (a: Asm) => a.i(enc.lb(a0, s0, 0)), CAUSE.LOAD_ACCESS_FAULT, BASE],
    ['an 8-byte store to a device without width 8', (a: Asm) => a.i(enc.sd(a0, s0, 8)), CAUSE.STORE_ACCESS_FAULT, BASE + 8],
    ['a misaligned word load from a device', (a: Asm) => a.i(enc.lw(a0, s0, 2)), CAUSE.LOAD_ACCESS_FAULT, BASE + 2],
    ['an access straddling the end of a device', (a: Asm) => a.li(s0, BASE + 0xffe).i(enc.lw(a0, s0, 0)), CAUSE.LOAD_ACCESS_FAULT, BASE + 0xffe],
  ])('%s is an access fault that never reaches the device', (_, body, cause, tval) => {
    const dev = new TestDevice(BASE, 4);
    const { rig, trapped } = runTrap((a) => { a.li(s0, BASE); (body as (a: Asm) => void)(a); }, { devices: [dev] });
    expect(trapped).toBe(true);
    expect(rig.state.mcause).toBe(BigInt(cause));
    expect(rig.state.mtval).toBe(BigInt(tval));
    expect(dev.log).toEqual([]);
  });

  test('instruction fetch from a device is an instruction access fault', () => {
    const dev = new TestDevice(BASE, 4);
    const { rig, trapped } = runTrap((a) => a.li(s0, BASE).i(enc.jalr(0, s0, 0)), { devices: [dev] });
    expect(trapped).toBe(true);
    expect(rig.state.mcause).toBe(BigInt(CAUSE.INSN_ACCESS_FAULT));
    expect(rig.state.mepc).toBe(BigInt(BASE));
    expect(rig.state.mtval).toBe(BigInt(BASE));
    expect(dev.log).toEqual([]);
  });
});

describe('RAM layouts beyond the fast window', () => {
  test('a region above 4 GiB (physical addresses need more than 32 bits)', () => {
    const hi = makeRam(0x1_2000_0000, 1 << 16);
    const rig = new Rig({ ram: [hi] });
    const a = new Asm(0x1_2000_0000);
    a.li(s0, 0x1_2000_8000).li(a0, 0x1234567890n).i(enc.sd(a0, s0, 0), enc.ld(a1, s0, 0), enc.lw(a2, s0, 4));
    a.li(a3, 0x2000_8000).i(enc.wfi());
    rig.load(a, 0x1_2000_0000);
    expect(rig.run().reason).toBe('wfi');
    expect(rig.x(a1)).toBe(0x1234567890n);
    expect(rig.x(a2)).toBe(0x12n);
    expect(hi.dirty[8]).toBe(1);
  });

  test('a region with two windows: accesses in and across the second window', () => {
    // 1 GiB + 64 KiB, as two windows; the buffers are sparse until touched.
    const w0 = new ArrayBuffer(2 ** 30);
    const w1 = new ArrayBuffer(1 << 16);
    const size = 2 ** 30 + (1 << 16);
    const region = { name: 'ram', base: RAM_BASE, size, windows: [w0, w1], dirty: new Uint8Array(size / 4096), readonly: false };
    const rig = new Rig({ ram: [region] });
    const edge = RAM_BASE + 2 ** 30;
    rig.load(
      new Asm(RAM_BASE).li(s0, edge).li(a0, 0x0807060504030201n).i(
        enc.sd(a0, s0, 8), enc.ld(a1, s0, 8), // inside window 1
        enc.sd(a0, s0, -4), enc.ld(a2, s0, -4), // straddles windows 0 and 1
        enc.lw(a3, s0, -4), enc.lw(a4, s0, 0), enc.wfi(),
      ),
    );
    expect(rig.run().reason).toBe('wfi');
    expect(rig.x(a1)).toBe(0x0807060504030201n);
    expect(rig.x(a2)).toBe(0x0807060504030201n);
    expect(rig.x(a3)).toBe(0x04030201n);
    expect(rig.x(a4)).toBe(0x08070605n);
    expect(new Uint8Array(w1)[8]).toBe(1);
    expect(new Uint8Array(w0)[2 ** 30 - 4]).toBe(1);
    expect(region.dirty[2 ** 18]).toBe(1);
    expect(region.dirty[2 ** 18 - 1]).toBe(1);
  });
});
