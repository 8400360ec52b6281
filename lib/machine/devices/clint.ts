/**
 * CLINT (QEMU virt: an ACLINT MSWI at +0x0 and an MTIMER at +0x4000, after QEMU's
 * hw/intc/riscv_aclint.c), and the shared timebase the harts read.
 *
 *   0x0000 + 4·h   msip[h]      bit 0 drives hart h's MSIP (4-byte accesses only)
 *   0x4000 + 8·h   mtimecmp[h]  64-bit; 4-byte accesses reach either half
 *   0xbff8         mtime        64-bit; 4-byte accesses reach either half
 *
 * Time: mtime counts 10 MHz ticks from the host clock, and is state. It stands still while the
 * VM is stopped (QEMU's virtual clock does) and goes on from the same value at `cont`; saving
 * carries it (subsection `riscv_mtimer/time`) together with every mtimecmp, so an armed timer
 * still fires after a migration (QEMU 7.2 loses it). The shared time base is
 *
 *   running ? baseTicks + floor((now − baseNs) · freq / 1e9) : baseTicks
 *
 * kept under a sequence lock: harts read it with two Atomics loads and no lock, no thread hop;
 * the writers (pause, resume, a guest write to mtime, load) hold the device lock.
 *
 * Interrupts: MTIP is not a line here. Each hart compares mtime() with its own timecmp() and
 * sleeps in wfi until that deadline; a write to mtimecmp (or mtime) kicks the hart(s) so a
 * sleeping one recomputes it. MSIP lives in HartLines (raise kicks the hart).
 *
 * mtimecmp resets to 2^64−1 (never due). The ACLINT spec leaves it unknown; QEMU uses 0 but
 * raises MTIP only on a write, whereas our harts compare continuously.
 */
import { HartLines, MIP_MSIP, MmioDevice, Timebase } from '../bus';
import { AtomicLock } from './atomic-lock';
import { GuestLogger, hex, silentGuestLogger } from './guest-log';
import { HostClock, monotonicClock } from './host-clock';
import { StructView, defineStruct, viaState } from './shared-struct';
import type { VMStateDescription } from '../../vmstate/types';
import { F } from '../../vmstate/fields';

export const CLINT_BASE = 0x0200_0000;
export const CLINT_SIZE = 0x1_0000;
export const CLINT_TIMEBASE_FREQ = 10_000_000;
export const CLINT_MSIP_BASE = 0x0;
export const CLINT_MTIMECMP_BASE = 0x4000;
export const CLINT_MTIME = 0xbff8;

export const MTIMECMP_RESET = 0xffff_ffff_ffff_ffffn;
const TWO32 = 4294967296;

/** Machine-type compat properties (QEMU hw_compat): see docs/devices.md. */
export interface ClintCompat {
  /** Send mtime in `riscv_mtimer/time` (virt-2.0 and later; off on virt-1.0). */
  migrateTime: boolean;
}

export interface ClintConfig {
  harts: number;
  base?: number;
  size?: number;
  freq?: number;
  compat?: Partial<ClintCompat>;
}

export interface ClintShare {
  readonly base: number;
  readonly size: number;
  readonly harts: number;
  readonly freq: number;
  readonly compat: ClintCompat;
  readonly state: SharedArrayBuffer;
}

export interface ClintDeps {
  lines: HartLines;
  clock?: HostClock;
  log?: GuestLogger;
}

function clintStruct(harts: number) {
  return defineStruct({
    lock: 'i32',
    /** sequence lock over running/baseNs/baseTicks: odd while a writer is inside */
    seq: 'i32',
    running: 'i32',
    baseNs: 'f64',
    baseTicks: 'f64',
    timecmp: ['u64', harts],
    /** timecmp as doubles, for the harts' hot path */
    deadline: ['f64', harts],
  });
}
type ClintState = StructView<ReturnType<typeof clintStruct>['spec']>;

export class Clint implements MmioDevice, Timebase {
  readonly name = 'riscv.aclint';
  readonly base: number;
  readonly size: number;
  readonly widths = 4 | 8;
  readonly harts: number;
  readonly freq: number;
  readonly compat: ClintCompat;
  readonly state: ClintState;
  private readonly i32: Int32Array;
  private readonly iSeq: number;
  private readonly iRunning: number;
  private readonly f64: Float64Array;
  private readonly deadline: Float64Array;
  private readonly lock: AtomicLock;
  private readonly lines: HartLines;
  private readonly clock: HostClock;
  private readonly log: GuestLogger;
  private readonly msipStage: Uint32Array;

  static createShare(cfg: ClintConfig): ClintShare {
    const struct = clintStruct(cfg.harts);
    const share: ClintShare = {
      base: cfg.base ?? CLINT_BASE,
      size: cfg.size ?? CLINT_SIZE,
      harts: cfg.harts,
      freq: cfg.freq ?? CLINT_TIMEBASE_FREQ,
      compat: { migrateTime: cfg.compat?.migrateTime ?? true },
      state: struct.create(),
    };
    const s = struct.view(share.state);
    s.timecmp.fill(MTIMECMP_RESET);
    s.deadline.fill(Number(MTIMECMP_RESET));
    return share;
  }

  constructor(share: ClintShare, deps: ClintDeps) {
    this.base = share.base;
    this.size = share.size;
    this.harts = share.harts;
    this.freq = share.freq;
    this.compat = { ...share.compat };
    const struct = clintStruct(share.harts);
    this.state = struct.view(share.state);
    this.i32 = this.state.$i32;
    this.iSeq = struct.wordIndex('seq');
    this.iRunning = struct.wordIndex('running');
    // baseNs and baseTicks side by side, read as one pair under the sequence lock.
    if (struct.offsetOf('baseTicks') !== struct.offsetOf('baseNs') + 8) throw new Error('clint: layout');
    this.f64 = new Float64Array(share.state, struct.offsetOf('baseNs'), 2);
    this.deadline = this.state.deadline;
    this.lock = new AtomicLock(this.i32, struct.wordIndex('lock'));
    this.lines = deps.lines;
    this.clock = deps.clock ?? monotonicClock;
    this.log = deps.log ?? silentGuestLogger;
    this.msipStage = new Uint32Array(this.harts);
  }

  // ---- Timebase: any thread, no lock --------------------------------------------------

  mtime(): number {
    const a = this.i32;
    let running: number;
    let baseNs: number;
    let baseTicks: number;
    for (;;) {
      const q = Atomics.load(a, this.iSeq);
      running = a[this.iRunning];
      baseNs = this.f64[0];
      baseTicks = this.f64[1];
      if ((q & 1) === 0 && Atomics.load(a, this.iSeq) === q) break;
    }
    if (running === 0) return baseTicks;
    const dt = this.clock.nowNs() - baseNs;
    // Another thread's clock calibration may trail by a fraction of a tick: never go back.
    return dt > 0 ? baseTicks + Math.floor((dt * this.freq) / 1e9) : baseTicks;
  }

  timecmp(hart: number): number {
    return this.deadline[hart];
  }

  // ---- main thread: the VM's run state -------------------------------------------------

  /** The VM stops: freeze mtime at its current value. */
  pauseTime(): void {
    this.lock.with(() => {
      if (Atomics.load(this.i32, this.iRunning) === 0) return;
      const t = this.mtime();
      this.writeBase(0, 0, t);
    });
  }

  /** The VM runs (again): mtime goes on from where it stood. Kicks every hart. */
  resumeTime(): void {
    this.lock.with(() => {
      if (Atomics.load(this.i32, this.iRunning) !== 0) return;
      this.writeBase(1, this.clock.nowNs(), this.f64[1]);
    });
    this.kickAll();
  }

  timeRunning(): boolean {
    return Atomics.load(this.i32, this.iRunning) !== 0;
  }

  /** Set mtime (a guest write, a load, reset); kicks every hart. */
  setMtime(ticks: number): void {
    this.lock.with(() => this.setMtimeLocked(ticks));
    this.kickAll();
  }

  /** Set hart h's mtimecmp; kicks the hart. */
  setTimecmp(hart: number, value: bigint): void {
    this.state.timecmp[hart] = BigInt.asUintN(64, value);
    this.deadline[hart] = Number(this.state.timecmp[hart]);
    this.lines.kick(hart);
  }

  /** ACLINT reset: mtime 0, mtimecmp never due, MSIP low. Keeps the run state. */
  reset(): void {
    this.lock.with(() => {
      for (let h = 0; h < this.harts; h++) {
        this.state.timecmp[h] = MTIMECMP_RESET;
        this.deadline[h] = Number(MTIMECMP_RESET);
        this.lines.lower(h, MIP_MSIP);
      }
      this.setMtimeLocked(0);
    });
    this.kickAll();
  }

  // ---- MMIO ----------------------------------------------------------------------------

  read(offset: number, width: 1 | 2 | 4): number {
    if (width !== 4 || (offset & 3) !== 0) return this.bad('read', offset, width);
    if (offset < CLINT_MTIMECMP_BASE) {
      const h = this.msipHart(offset);
      if (h < 0) return this.bad('read', offset, width);
      return this.lines.get(h) & MIP_MSIP ? 1 : 0;
    }
    const h = this.timecmpHart(offset);
    if (h >= 0) {
      const v = this.state.timecmp[h];
      return Number(offset & 4 ? v >> 32n : v & 0xffff_ffffn);
    }
    if (offset === CLINT_MTIME || offset === CLINT_MTIME + 4) {
      const t = this.mtime();
      return offset === CLINT_MTIME ? t % TWO32 : Math.floor(t / TWO32) % TWO32;
    }
    return this.bad('read', offset, width);
  }

  write(offset: number, width: 1 | 2 | 4, value: number): void {
    if (width !== 4 || (offset & 3) !== 0) {
      this.bad('write', offset, width);
      return;
    }
    value >>>= 0;
    if (offset < CLINT_MTIMECMP_BASE) {
      const h = this.msipHart(offset);
      if (h < 0) this.bad('write', offset, width);
      else if (value & 1) this.lines.raise(h, MIP_MSIP);
      else this.lines.lower(h, MIP_MSIP);
      return;
    }
    const h = this.timecmpHart(offset);
    if (h >= 0) {
      // Two halves may come from different harts: merge under the lock.
      this.lock.with(() => {
        const old = this.state.timecmp[h];
        const v = BigInt(value);
        this.setTimecmp(h, offset & 4 ? (v << 32n) | (old & 0xffff_ffffn) : (old & ~0xffff_ffffn) | v);
      });
      return;
    }
    if (offset === CLINT_MTIME || offset === CLINT_MTIME + 4) {
      this.lock.with(() => {
        const t = this.mtime();
        const lo = t % TWO32;
        const hi = Math.floor(t / TWO32) % TWO32;
        this.setMtimeLocked(offset === CLINT_MTIME ? hi * TWO32 + value : value * TWO32 + lo);
      });
      this.kickAll();
      return;
    }
    this.bad('write', offset, width);
  }

  read64(offset: number): bigint {
    const h = this.timecmpHart(offset);
    if (h >= 0 && (offset & 7) === 0) return this.state.timecmp[h];
    if (offset === CLINT_MTIME) return BigInt(this.mtime());
    this.bad('read', offset, 8);
    return 0n;
  }

  write64(offset: number, value: bigint): void {
    const h = this.timecmpHart(offset);
    if (h >= 0 && (offset & 7) === 0) {
      this.lock.with(() => this.setTimecmp(h, value));
    } else if (offset === CLINT_MTIME) {
      this.setMtime(Number(BigInt.asUintN(64, value)));
    } else {
      this.bad('write', offset, 8);
    }
  }

  // ---- VMState (main thread, vCPUs parked) ---------------------------------------------

  /**
   * msip bits as `riscv_mtimer/msip` carries them: read from HartLines on save; on load they
   * land here (through set, or in place) and postLoad drives HartLines. preLoad zeroes it, as
   * an absent subsection means no MSIP was set.
   */
  get msip(): Uint32Array {
    for (let h = 0; h < this.harts; h++) this.msipStage[h] = this.lines.get(h) & MIP_MSIP ? 1 : 0;
    return this.msipStage;
  }

  set msip(v: ArrayLike<number>) {
    for (let h = 0; h < this.harts; h++) this.msipStage[h] = v[h];
  }

  vmPreLoad(): void {
    this.msipStage.fill(0);
  }

  /** After a load: drive MSIP, refresh the harts' deadlines, wake them. */
  vmPostLoad(): void {
    for (let h = 0; h < this.harts; h++) {
      this.deadline[h] = Number(this.state.timecmp[h]);
      if (this.msipStage[h] & 1) this.lines.raise(h, MIP_MSIP);
      else this.lines.lower(h, MIP_MSIP);
    }
    this.kickAll();
  }

  // ---- internals -----------------------------------------------------------------------

  private writeBase(running: number, baseNs: number, baseTicks: number): void {
    const a = this.i32;
    Atomics.add(a, this.iSeq, 1);
    Atomics.store(a, this.iRunning, running);
    this.f64[0] = baseNs;
    this.f64[1] = baseTicks;
    Atomics.add(a, this.iSeq, 1);
  }

  private setMtimeLocked(ticks: number): void {
    const running = Atomics.load(this.i32, this.iRunning);
    this.writeBase(running, running ? this.clock.nowNs() : 0, ticks);
  }

  private kickAll(): void {
    for (let h = 0; h < this.harts; h++) this.lines.kick(h);
  }

  private msipHart(offset: number): number {
    const h = (offset - CLINT_MSIP_BASE) >> 2;
    return h < this.harts ? h : -1;
  }

  private timecmpHart(offset: number): number {
    if (offset < CLINT_MTIMECMP_BASE) return -1;
    const h = (offset - CLINT_MTIMECMP_BASE) >> 3;
    return h < this.harts ? h : -1;
  }

  private bad(what: string, offset: number, width: number): number {
    this.log(this.name, `invalid ${width}-byte ${what} at ${hex(offset)}`);
    return 0;
  }
}

/**
 * `riscv_mtimer/time` v1: mtime (ticks) at the moment of the save. Sent when the machine type
 * migrates time (virt-2.0 on). A receiver that gets it continues from that mtime; one that
 * does not (a virt-1.0 stream) keeps its own mtime: time jumps, as on QEMU 7.2.
 */
const VMSTATE_MTIMER_TIME: VMStateDescription<Clint> = {
  name: 'riscv_mtimer/time',
  versionId: 1,
  minimumVersionId: 1,
  needed: (c) => c.compat.migrateTime,
  fields: [
    F.uint64('mtime', {
      get: (c) => BigInt(Math.floor((c as Clint).mtime())),
      set: (c, v) => (c as Clint).setMtime(Number(v as bigint)),
    }),
  ],
};

/**
 * `riscv_mtimer/msip` v1: msip[h] for every hart, sent when any is set. QEMU keeps MSIP in the
 * hart's mip; our harts leave MSIP/MEIP to HartLines, so the CLINT carries it (MEIP is rebuilt
 * from the PLIC's state).
 */
const VMSTATE_MTIMER_MSIP: VMStateDescription<Clint> = {
  name: 'riscv_mtimer/msip',
  versionId: 1,
  minimumVersionId: 1,
  needed: (c) => c.msip.some((x) => x !== 0),
  fields: [F.varray('msip', 'uint32', (c: Clint) => c.harts)],
};

/** QEMU 7.2's `riscv_mtimer` v1: timecmp u64 × harts (VARRAY_UINT32 counted by num_harts). */
export const VMSTATE_CLINT: VMStateDescription<Clint> = {
  name: 'riscv_mtimer',
  versionId: 1,
  minimumVersionId: 1,
  fields: [F.varray('timecmp', 'uint64', (c: Clint) => c.harts, viaState('timecmp'))],
  subsections: [VMSTATE_MTIMER_TIME, VMSTATE_MTIMER_MSIP],
  preLoad: (c) => c.vmPreLoad(),
  postLoad: (c) => c.vmPostLoad(),
};
