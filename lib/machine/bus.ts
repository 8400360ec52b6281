/**
 * The physical address space as one hart sees it, and the contracts between harts, devices
 * and the board. Everything here is usable from any thread: RAM is a shared mapping, device
 * state lives in SharedArrayBuffers, and interrupt lines are shared words.
 *
 * Threads (see docs/ARCHITECTURE.md):
 *
 *   main thread                         vCPU worker k (one per hart)
 *   ───────────                         ────────────────────────────
 *   builds RAM blocks + device shares   wraps the same RAM mapping (address from main)
 *   drains device effect queues         runs the hart; calls device read/write itself
 *   saves/loads state while parked      parks at block boundaries when asked
 */

/** Interrupt-pending bits as they sit in mip (RISC-V privileged spec §3.1.9). */
export const MIP_MSIP = 1 << 3;
export const MIP_MTIP = 1 << 7;
export const MIP_MEIP = 1 << 11;

/** Page size for dirty tracking and migration (QEMU's TARGET_PAGE_SIZE on riscv). */
export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 1 << PAGE_SHIFT;

/** Guest RAM windows are at most this large (one external ArrayBuffer each). */
export const WINDOW_SHIFT = 30;
export const WINDOW_SIZE = 2 ** WINDOW_SHIFT;

/**
 * A RAM region in the physical address space, as a hart uses it: typed-array windows over the
 * block's single shared mapping plus its dirty map.
 */
export interface RamRegion {
  /** RAM block idstr, e.g. "riscv_virt_board.ram". */
  readonly name: string;
  /** Guest physical base address. */
  readonly base: number;
  /** Size in bytes, a multiple of PAGE_SIZE. */
  readonly size: number;
  /** WINDOW_SIZE windows (the last may be shorter), covering [base, base+size). */
  readonly windows: readonly ArrayBuffer[];
  /** One byte per PAGE_SIZE page; set to 1 after every store to the page (SharedArrayBuffer). */
  readonly dirty: Uint8Array;
  /** Stores fault (a ROM such as the boot trampoline). */
  readonly readonly: boolean;
}

/** Access widths a device accepts, as a bit mask of byte counts (1|2|4|8). */
export type WidthMask = number;

/**
 * A memory-mapped device (TinyEMU iomem, QEMU MemoryRegionOps). `read`/`write` may run on any
 * vCPU thread at any time; devices keep their state in shared memory and serialise internally.
 * Offsets are relative to `base`; widths outside `widths` never reach the device (the bus
 * raises an access fault). Values are unsigned 32-bit numbers; 8-byte accesses use
 * read64/write64 when present, else two 4-byte accesses (low half first).
 */
export interface MmioDevice {
  readonly name: string;
  readonly base: number;
  readonly size: number;
  readonly widths: WidthMask;
  read(offset: number, width: 1 | 2 | 4): number;
  write(offset: number, width: 1 | 2 | 4, value: number): void;
  read64?(offset: number): bigint;
  write64?(offset: number, value: bigint): void;
}

/**
 * The shared words through which harts are interrupted and woken. `lines[h]` holds the mip bits
 * that devices drive for hart h (MSIP from the CLINT, MEIP from the PLIC); `wake[h]` is the
 * futex word a parked or wfi-waiting hart sleeps on. Anyone changing something a sleeping hart
 * may care about bumps and notifies its wake word.
 */
export class HartLines {
  readonly lines: Int32Array;
  readonly wake: Int32Array;

  constructor(
    readonly count: number,
    readonly buffer: SharedArrayBuffer = new SharedArrayBuffer(8 * count),
  ) {
    this.lines = new Int32Array(buffer, 0, count);
    this.wake = new Int32Array(buffer, 4 * count, count);
  }

  raise(hart: number, bits: number): void {
    const old = Atomics.or(this.lines, hart, bits);
    if ((old & bits) !== bits) this.kick(hart);
  }

  lower(hart: number, bits: number): void {
    Atomics.and(this.lines, hart, ~bits);
  }

  get(hart: number): number {
    return Atomics.load(this.lines, hart);
  }

  /** Wake hart h if it sleeps in wfi or parked, so it re-reads its lines and run flag. */
  kick(hart: number): void {
    Atomics.add(this.wake, hart, 1);
    Atomics.notify(this.wake, hart);
  }
}

/** The CLINT's timebase as harts read it: 10 MHz ticks, shared by every thread. */
export interface Timebase {
  /** Current mtime in ticks (a double: exact below 2^53 ticks, ~28 years). */
  mtime(): number;
  /** Hart h's mtimecmp in ticks (2^64-1 reads as 1.8e19: never due). */
  timecmp(hart: number): number;
}

/** What a hart needs from the board, handed to it in its worker thread. */
export interface HartEnv {
  readonly hartId: number;
  /** RAM regions; the main RAM block first (the hot path checks it before anything else). */
  readonly ram: readonly RamRegion[];
  /** The device whose range holds `paddr`, if any. */
  mmio(paddr: number): MmioDevice | undefined;
  readonly lines: HartLines;
  readonly timebase: Timebase;
}
