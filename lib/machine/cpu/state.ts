/**
 * HartState: one hart's architectural state in a SharedArrayBuffer, so the vCPU worker that runs
 * the hart and the main thread that saves/loads it share one copy. The hart caches registers
 * while it runs and writes everything back before `run` returns; the main thread only touches
 * the state while the hart is parked.
 *
 * Layout (Int32Array words; every 64-bit value is a little-endian (lo, hi) pair):
 *
 *   word  0..63   x0..x31            (x0 always reads 0)
 *   word 64       pc
 *   word 66       mstatus            (MIE, MPIE; MPP reads 3)
 *   word 68       mie                (MSIE, MTIE, MEIE)
 *   word 70       mip                pending bits as last seen by the hart (for migration)
 *   word 72       mtvec
 *   word 74       mscratch
 *   word 76       mepc
 *   word 78       mcause
 *   word 80       mtval
 *   word 82       mcounteren
 *   word 84       mcountinhibit
 *   word 86       mcycle
 *   word 88       minstret
 *   word 90       load_res           reservation address, all ones = none (QEMU's -1)
 *   word 92       load_val           value the LR saw
 *   word 94       mhartid
 *   word 96       resetvec
 *   word 98       halted             (int32) 1 while in WFI
 *   word 99       generation         (int32) bumped whenever the state is replaced from outside;
 *                                    the hart drops its decode cache when it sees a new value
 *   word 100..127 reserved (zero)
 */
import type { HartLines } from '../bus';
import { MIP_MSIP } from '../bus';
import { hi32, lo32, toU64 } from './int64';

export const HART_STATE_BYTES = 512;

/** Word offsets of each field (see the layout above). */
export const S = {
  X: 0,
  PC: 64,
  MSTATUS: 66,
  MIE: 68,
  MIP: 70,
  MTVEC: 72,
  MSCRATCH: 74,
  MEPC: 76,
  MCAUSE: 78,
  MTVAL: 80,
  MCOUNTEREN: 82,
  MCOUNTINHIBIT: 84,
  MCYCLE: 86,
  MINSTRET: 88,
  LOAD_RES: 90,
  LOAD_VAL: 92,
  MHARTID: 94,
  RESETVEC: 96,
  HALTED: 98,
  GENERATION: 99,
} as const;

/** mstatus bits that exist on an M-mode-only RV64 hart (privileged spec §3.1.6). */
export const MSTATUS_MIE = 1 << 3;
export const MSTATUS_MPIE = 1 << 7;
/** "xPP fields ... can hold only privilege mode x and any implemented privilege mode lower than
 * x": with M-mode alone, MPP always holds M (3). */
export const MSTATUS_MPP_M = 3 << 11;
/** Interrupt-enable bits that exist without S-mode: MSIE, MTIE, MEIE. */
export const MIE_MASK = (1 << 3) | (1 << 7) | (1 << 11);
/** mcountinhibit bits that exist: CY and IR (TM is read-only 0; hpm counters are hardwired 0). */
export const MCOUNTINHIBIT_MASK = (1 << 0) | (1 << 2);

/** QEMU's reset vector for virt (the boot ROM at 0x1000). */
export const DEFAULT_RESET_VECTOR = 0x1000n;

export interface HartStateOptions {
  /** The board's interrupt lines: when set, loading `env.mip` restores MSIP on this hart's line
   * (QEMU's ACLINT SWI keeps MSIP only in the hart's mip, so it travels with `cpu`). */
  lines?: HartLines;
}

export class HartState {
  readonly buffer: SharedArrayBuffer;
  /** The raw words; offsets in `S`. */
  readonly words: Int32Array;
  lines?: HartLines;

  /** Wrap an existing buffer (worker side) or allocate a fresh, zeroed one. */
  constructor(buffer: SharedArrayBuffer = new SharedArrayBuffer(HART_STATE_BYTES), opts: HartStateOptions = {}) {
    if (buffer.byteLength < HART_STATE_BYTES) throw new RangeError(`HartState needs ${HART_STATE_BYTES} bytes`);
    this.buffer = buffer;
    this.words = new Int32Array(buffer, 0, HART_STATE_BYTES / 4);
    this.lines = opts.lines;
  }

  /** A fresh state in its reset condition. */
  static create(hartId: number, opts: HartStateOptions & { resetVector?: bigint } = {}): HartState {
    const s = new HartState(undefined, opts);
    s.reset(hartId, opts.resetVector);
    return s;
  }

  get64(word: number): bigint {
    return toU64(this.words[word], this.words[word + 1]);
  }

  set64(word: number, v: bigint): void {
    this.words[word] = lo32(v);
    this.words[word + 1] = hi32(v);
  }

  /** x[i] as an unsigned 64-bit value. */
  getX(i: number): bigint {
    return i === 0 ? 0n : this.get64(S.X + 2 * i);
  }

  setX(i: number, v: bigint): void {
    if (i !== 0) this.set64(S.X + 2 * i, v);
  }

  get pc(): bigint { return this.get64(S.PC); }
  set pc(v: bigint) { this.set64(S.PC, v); }
  get mstatus(): bigint { return this.get64(S.MSTATUS); }
  set mstatus(v: bigint) { this.set64(S.MSTATUS, v); }
  get mie(): bigint { return this.get64(S.MIE); }
  set mie(v: bigint) { this.set64(S.MIE, v); }
  get mip(): bigint { return this.get64(S.MIP); }
  set mip(v: bigint) { this.set64(S.MIP, v); }
  get mtvec(): bigint { return this.get64(S.MTVEC); }
  set mtvec(v: bigint) { this.set64(S.MTVEC, v); }
  get mscratch(): bigint { return this.get64(S.MSCRATCH); }
  set mscratch(v: bigint) { this.set64(S.MSCRATCH, v); }
  get mepc(): bigint { return this.get64(S.MEPC); }
  set mepc(v: bigint) { this.set64(S.MEPC, v); }
  get mcause(): bigint { return this.get64(S.MCAUSE); }
  set mcause(v: bigint) { this.set64(S.MCAUSE, v); }
  get mtval(): bigint { return this.get64(S.MTVAL); }
  set mtval(v: bigint) { this.set64(S.MTVAL, v); }
  get mcounteren(): bigint { return this.get64(S.MCOUNTEREN); }
  set mcounteren(v: bigint) { this.set64(S.MCOUNTEREN, v); }
  get mcountinhibit(): bigint { return this.get64(S.MCOUNTINHIBIT); }
  set mcountinhibit(v: bigint) { this.set64(S.MCOUNTINHIBIT, v); }
  get mcycle(): bigint { return this.get64(S.MCYCLE); }
  set mcycle(v: bigint) { this.set64(S.MCYCLE, v); }
  get minstret(): bigint { return this.get64(S.MINSTRET); }
  set minstret(v: bigint) { this.set64(S.MINSTRET, v); }
  get loadRes(): bigint { return this.get64(S.LOAD_RES); }
  set loadRes(v: bigint) { this.set64(S.LOAD_RES, v); }
  get loadVal(): bigint { return this.get64(S.LOAD_VAL); }
  set loadVal(v: bigint) { this.set64(S.LOAD_VAL, v); }
  get mhartid(): bigint { return this.get64(S.MHARTID); }
  set mhartid(v: bigint) { this.set64(S.MHARTID, v); }
  get resetVector(): bigint { return this.get64(S.RESETVEC); }
  set resetVector(v: bigint) { this.set64(S.RESETVEC, v); }

  get halted(): boolean { return this.words[S.HALTED] !== 0; }
  set halted(v: boolean) { this.words[S.HALTED] = v ? 1 : 0; }

  /** Changes whenever the state was replaced from outside the hart (load, reset). */
  get generation(): number { return Atomics.load(this.words, S.GENERATION); }

  /** Tell the hart its cached view (decoded blocks, registers) is stale. */
  invalidate(): void {
    Atomics.add(this.words, S.GENERATION, 1);
  }

  /**
   * The reset state (privileged spec §3.4): "Upon reset, a hart's privilege mode is set to M. The
   * mstatus fields MIE and MPRV are reset to 0 ... The pc is set to an implementation-defined
   * reset vector. The mcause register is set to a value indicating the cause of the reset."
   * Everything else is unspecified; we zero it, and drop any reservation.
   */
  reset(hartId: number, resetVector: bigint = DEFAULT_RESET_VECTOR): void {
    const gen = this.words[S.GENERATION];
    this.words.fill(0);
    this.words[S.GENERATION] = gen;
    this.mhartid = BigInt(hartId);
    this.resetVector = resetVector;
    this.pc = resetVector;
    this.mstatus = BigInt(MSTATUS_MPP_M);
    this.loadRes = -1n;
    this.invalidate();
  }

  /**
   * Force every field into a value the hardware could hold (WARL rules), after a load from an
   * untrusted stream: x0 = 0, pc 4-byte aligned, only the implemented mstatus/mie bits, mtvec
   * mode 0 or 1, mepc IALIGN-aligned.
   */
  legalize(): void {
    this.setX0();
    this.pc &= ~3n;
    this.mstatus = (this.mstatus & BigInt(MSTATUS_MIE | MSTATUS_MPIE)) | BigInt(MSTATUS_MPP_M);
    this.mie &= BigInt(MIE_MASK);
    if ((this.mtvec & 3n) >= 2n) this.mtvec &= ~3n;
    this.mepc &= ~3n;
    this.mcounteren &= 0xffff_ffffn;
    this.mcountinhibit &= BigInt(MCOUNTINHIBIT_MASK);
    this.words[S.HALTED] = this.words[S.HALTED] !== 0 ? 1 : 0;
  }

  private setX0(): void {
    this.words[S.X] = 0;
    this.words[S.X + 1] = 0;
  }

  /** After the state was loaded from a migration stream: legalize, restore MSIP on the line,
   * and make the hart drop its decode cache. */
  afterLoad(): void {
    this.legalize();
    const lines = this.lines;
    if (lines) {
      const hart = Number(this.mhartid);
      if (this.mip & BigInt(MIP_MSIP)) lines.raise(hart, MIP_MSIP);
      else lines.lower(hart, MIP_MSIP);
    }
    this.invalidate();
  }

  /** A plain-data copy, for logs and tests. */
  snapshot(): Record<string, bigint | boolean | bigint[]> {
    const x: bigint[] = [];
    for (let i = 0; i < 32; i++) x.push(this.getX(i));
    return {
      x, pc: this.pc, mstatus: this.mstatus, mie: this.mie, mip: this.mip, mtvec: this.mtvec,
      mscratch: this.mscratch, mepc: this.mepc, mcause: this.mcause, mtval: this.mtval,
      mcounteren: this.mcounteren, mcountinhibit: this.mcountinhibit, mcycle: this.mcycle,
      minstret: this.minstret, loadRes: this.loadRes, loadVal: this.loadVal, mhartid: this.mhartid,
      halted: this.halted,
    };
  }
}
