/**
 * Test helpers for the hart: a RAM region over an ordinary or shared buffer, a settable
 * timebase, simple MMIO devices, and a rig that loads a program built with the encoder in
 * lib/machine/cpu/encode.ts and runs it.
 */
import { HartLines, PAGE_SIZE, type HartEnv, type MmioDevice, type RamRegion, type Timebase } from '../../../lib/machine/bus';
import { Asm, enc, REG } from '../../../lib/machine/cpu/encode';
import { Hart, HartState, type HartOptions, type RunExit } from '../../../lib/machine/cpu';

export { Asm, enc, REG };
export const RAM_BASE = 0x8000_0000;

export function makeRam(base: number, size: number, opts: { shared?: boolean; readonly?: boolean; name?: string } = {}): RamRegion {
  const buf = opts.shared ? (new SharedArrayBuffer(size) as unknown as ArrayBuffer) : new ArrayBuffer(size);
  return {
    name: opts.name ?? 'riscv_virt_board.ram',
    base,
    size,
    windows: [buf],
    dirty: new Uint8Array(new SharedArrayBuffer(Math.ceil(size / PAGE_SIZE))),
    readonly: opts.readonly ?? false,
  };
}

/** A timebase the test moves by hand. */
export class FakeTimebase implements Timebase {
  now = 0;
  cmp: number[] = [Number.MAX_VALUE, Number.MAX_VALUE];
  reads = 0;
  mtime(): number {
    this.reads++;
    return this.now;
  }
  timecmp(hart: number): number {
    return this.cmp[hart];
  }
}

/** A 4 KiB scratch device that records accesses; accepts the widths in `widths`. */
export class TestDevice implements MmioDevice {
  readonly name = 'test-dev';
  readonly size = 0x1000;
  readonly regs = new Uint32Array(0x400);
  readonly log: string[] = [];
  read64?: (offset: number) => bigint;
  write64?: (offset: number, value: bigint) => void;
  constructor(readonly base: number, readonly widths: number = 1 | 2 | 4) {}
  read(offset: number, width: 1 | 2 | 4): number {
    this.log.push(`r${width}@${offset.toString(16)}`);
    const v = this.regs[offset >>> 2] >>> (8 * (offset & 3));
    return width === 4 ? v >>> 0 : v & ((1 << (8 * width)) - 1);
  }
  write(offset: number, width: 1 | 2 | 4, value: number): void {
    this.log.push(`w${width}@${offset.toString(16)}=${value.toString(16)}`);
    if (width === 4) this.regs[offset >>> 2] = value;
    else {
      const sh = 8 * (offset & 3);
      const mask = ((1 << (8 * width)) - 1) << sh;
      this.regs[offset >>> 2] = (this.regs[offset >>> 2] & ~mask) | ((value << sh) & mask);
    }
  }
}

export interface RigOptions {
  ramSize?: number;
  ram?: RamRegion[];
  devices?: MmioDevice[];
  harts?: number;
  hartId?: number;
  hart?: HartOptions;
  lines?: HartLines;
  timebase?: FakeTimebase;
}

export class Rig {
  readonly ram: RamRegion[];
  readonly bytes: Uint8Array;
  readonly view: DataView;
  readonly lines: HartLines;
  readonly timebase: FakeTimebase;
  readonly env: HartEnv;
  readonly state: HartState;
  readonly hart: Hart;
  readonly devices: MmioDevice[];

  constructor(opts: RigOptions = {}) {
    this.ram = opts.ram ?? [makeRam(RAM_BASE, opts.ramSize ?? 1 << 20)];
    this.bytes = new Uint8Array(this.ram[0].windows[0]);
    this.view = new DataView(this.ram[0].windows[0]);
    this.lines = opts.lines ?? new HartLines(opts.harts ?? 2);
    this.timebase = opts.timebase ?? new FakeTimebase();
    this.devices = opts.devices ?? [];
    const devices = this.devices;
    const hartId = opts.hartId ?? 0;
    this.env = {
      hartId,
      ram: this.ram,
      mmio: (paddr) => devices.find((d) => paddr >= d.base && paddr < d.base + d.size),
      lines: this.lines,
      timebase: this.timebase,
    };
    this.state = HartState.create(hartId, { resetVector: BigInt(this.ram[0].base), lines: this.lines });
    this.hart = new Hart(this.env, this.state, opts.hart);
  }

  /** Copy a program to RAM at `at` (default: start of RAM) and point pc at it. */
  load(program: Asm | Uint32Array | number[], at: number = this.ram[0].base): this {
    const words = program instanceof Asm ? program.words() : Uint32Array.from(program);
    const off = at - this.ram[0].base;
    for (let i = 0; i < words.length; i++) this.view.setUint32(off + 4 * i, words[i], true);
    this.state.pc = BigInt(at);
    // RAM changed behind the hart's back: tell it to drop translated code.
    this.state.invalidate();
    return this;
  }

  run(budget = 1_000_000): RunExit {
    return this.hart.run(budget);
  }

  x(i: number): bigint {
    return this.state.getX(i);
  }

  /** x[i] as a signed value. */
  sx(i: number): bigint {
    return BigInt.asIntN(64, this.state.getX(i));
  }

  setX(i: number, v: bigint | number): void {
    this.state.setX(i, BigInt.asUintN(64, BigInt(v)));
  }

  u64(paddr: number): bigint {
    return this.view.getBigUint64(paddr - this.ram[0].base, true);
  }

  u32(paddr: number): number {
    return this.view.getUint32(paddr - this.ram[0].base, true);
  }

  setU64(paddr: number, v: bigint): void {
    this.view.setBigUint64(paddr - this.ram[0].base, BigInt.asUintN(64, v), true);
  }

  setU32(paddr: number, v: number): void {
    this.view.setUint32(paddr - this.ram[0].base, v >>> 0, true);
  }
}

/** Build a program: `body(a)` then an `ebreak`-free stop: a self-loop `j .` would spin, so
 * tests end programs with `wfi` (mie = 0 → the hart halts and run() returns 'wfi'). */
export function program(body: (a: Asm) => void, base = RAM_BASE): Asm {
  const a = new Asm(base);
  body(a);
  a.i(enc.wfi());
  return a;
}

/** Run a program to its final wfi and return the rig. */
export function runProgram(body: (a: Asm) => void, opts: RigOptions = {}): Rig {
  const rig = new Rig(opts);
  rig.load(program(body));
  const exit = rig.run(1_000_000);
  if (exit.reason !== 'wfi') throw new Error(`program did not reach wfi: ${JSON.stringify(exit, (_, v) => (typeof v === 'bigint' ? v.toString(16) : v))} pc=${rig.state.pc.toString(16)} mcause=${rig.state.mcause}`);
  return rig;
}

/** CSR numbers used by tests. */
export const CSRN = {
  mstatus: 0x300, misa: 0x301, mie: 0x304, mtvec: 0x305, mcounteren: 0x306, mcountinhibit: 0x320,
  mscratch: 0x340, mepc: 0x341, mcause: 0x342, mtval: 0x343, mip: 0x344,
  mcycle: 0xb00, minstret: 0xb02, cycle: 0xc00, time: 0xc01, instret: 0xc02,
  mvendorid: 0xf11, marchid: 0xf12, mimpid: 0xf13, mhartid: 0xf14,
};

/**
 * A program with a trap handler: mtvec → 'trap', where the hart executes `wfi` (mie is 0, so
 * it halts). `trapped(rig)` tells whether the run ended in the handler.
 */
export function trapProgram(body: (a: Asm) => void, base = RAM_BASE): Asm {
  const a = new Asm(base);
  a.la(REG.t6, 'trap').i(enc.csrrw(0, CSRN.mtvec, REG.t6));
  body(a);
  a.i(enc.wfi());
  a.label('trap').i(enc.wfi());
  return a;
}

export function runTrap(body: (a: Asm) => void, opts: RigOptions = {}): { rig: Rig; asm: Asm; trapped: boolean } {
  const rig = new Rig(opts);
  const asm = trapProgram(body);
  rig.load(asm);
  const exit = rig.run(1_000_000);
  if (exit.reason !== 'wfi') throw new Error(`expected to stop in wfi, got ${exit.reason}`);
  const trapped = rig.state.pc === BigInt(asm.addr('trap') + 4);
  return { rig, asm, trapped };
}
