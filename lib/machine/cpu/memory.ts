/**
 * The hart's view of the physical address space: RAM regions (typed-array windows over the
 * board's shared mappings) first, MMIO devices second, access fault otherwise. This file is the
 * slow path; translated blocks inline a fast path for the first window of the main RAM block
 * and call in here for everything else (other windows, misaligned accesses, ROM, devices).
 *
 * Ordering rule for migration: every store to RAM writes the data first and then sets
 * `dirty[page] = 1` (docs/ARCHITECTURE.md, "Dirty tracking"). On x86-64 two plain stores are
 * not reordered (TSO) and V8 keeps stores in program order, so plain byte stores suffice there;
 * on weakly ordered hosts the mark is an Atomics.store (a release), see `ORDERED_DIRTY`.
 *
 * Faults are values: a failing access returns a status and leaves the cause in `fault` and the
 * faulting address in `tvLo`/`tvHi`; nothing here throws for a guest error.
 */
import type { HartEnv, MmioDevice, RamRegion } from '../bus';
import { PAGE_SHIFT, WINDOW_SIZE } from '../bus';
import { CAUSE } from './trap';

const TWO32 = 4294967296;
/** Physical addresses at or above 2^53 cannot be RAM or MMIO here (and are not exact doubles). */
const HI_LIMIT = 0x200000;

/** Hosts whose plain stores may become visible out of order need an explicit release. */
export const ORDERED_DIRTY = process.arch !== 'x64' && process.arch !== 'ia32';

/** Result of a store-like access. */
export const ST_OK = 0;
/** The store hit translated code: the block must end after this instruction. */
export const ST_SMC = 1;
/** The access faulted: `fault`, `tvLo`, `tvHi` describe it. */
export const ST_FAULT = 2;

/** Per-window typed views of one RAM region. */
export interface RegionViews {
  readonly region: RamRegion;
  readonly index: number;
  readonly base: number;
  readonly size: number;
  readonly u8: Uint8Array[];
  readonly i32: Int32Array[];
  readonly i64: BigInt64Array[];
  /** One byte per page: non-zero when a translated block was fetched from the page (hart-local). */
  readonly code: Uint8Array;
}

/** Called when a store lands on a page holding translated code; returns true when a block
 * overlapping [off, off+width) was dropped (the running block must end). */
export type CodeWriteHook = (region: number, off: number, width: number) => boolean;

export class Memory {
  readonly regions: RegionViews[];
  /** Cause of the last failed access (0 when none). */
  fault = 0;
  /** Faulting address of the last failed access. */
  tvLo = 0;
  tvHi = 0;
  /** High word of the last load's value (and of an atomic's rd value). */
  vh = 0;
  /** Low word of an atomic's rd value. */
  rl = 0;
  /** Bumped on every device access: devices may have changed interrupt lines or timecmp. */
  mmioSeq = 0;
  onCodeWrite: CodeWriteHook = () => false;

  constructor(private readonly env: HartEnv) {
    if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
      throw new Error('livemig harts need a little-endian host (RISC-V memory is little-endian)');
    }
    this.regions = env.ram.map((region, index) => {
      const u8: Uint8Array[] = [];
      const i32: Int32Array[] = [];
      const i64: BigInt64Array[] = [];
      for (const w of region.windows) {
        u8.push(new Uint8Array(w));
        i32.push(new Int32Array(w, 0, w.byteLength >>> 2));
        i64.push(new BigInt64Array(w, 0, w.byteLength >>> 3));
      }
      const pages = Math.ceil(region.size / 2 ** PAGE_SHIFT);
      return { region, index, base: region.base, size: region.size, u8, i32, i64, code: new Uint8Array(pages) };
    });
  }

  /** Index of the RAM region holding [paddr, paddr + width), or -1. */
  findRam(paddr: number, width: number): number {
    const rs = this.regions;
    for (let i = 0; i < rs.length; i++) {
      const off = paddr - rs[i].base;
      if (off >= 0 && off + width <= rs[i].size) return i;
    }
    return -1;
  }

  private setFault(cause: number, lo: number, hi: number): number {
    this.fault = cause;
    this.tvLo = lo;
    this.tvHi = hi;
    return 0;
  }

  /**
   * Load `width` bytes at (lo, hi); returns the low word of the extended value, the high word in
   * `vh`. On a fault returns 0 with `fault` set (load access fault: "unmapped address,
   * disallowed device width"). Misaligned RAM loads are performed, as QEMU TCG does for
   * ordinary loads (no MO_ALIGN on LB..LD).
   */
  load(lo: number, hi: number, width: number, signed: boolean): number {
    this.fault = 0;
    if (hi >>> 0 >= HI_LIMIT) return this.setFault(CAUSE.LOAD_ACCESS_FAULT, lo, hi);
    const paddr = (hi >>> 0) * TWO32 + (lo >>> 0);
    const ri = this.findRam(paddr, width);
    let vlo: number;
    let vhi = 0;
    if (ri >= 0) {
      const r = this.regions[ri];
      const off = paddr - r.base;
      vlo = this.readRam(r, off, Math.min(width, 4));
      if (width === 8) vhi = this.readRam(r, off + 4, 4);
    } else {
      const dev = this.device(paddr, width);
      if (!dev) return this.setFault(CAUSE.LOAD_ACCESS_FAULT, lo, hi);
      this.mmioSeq++;
      const off = paddr - dev.base;
      if (width === 8) {
        if (dev.read64) {
          const v = dev.read64(off);
          vlo = Number(BigInt.asIntN(32, v));
          vhi = Number(BigInt.asIntN(32, v >> 32n));
        } else {
          vlo = dev.read(off, 4) | 0;
          vhi = dev.read(off + 4, 4) | 0;
        }
      } else {
        vlo = dev.read(off, width as 1 | 2 | 4) | 0;
      }
    }
    switch (width) {
      case 1:
        vlo = signed ? (vlo << 24) >> 24 : vlo & 0xff;
        this.vh = signed ? vlo >> 31 : 0;
        return vlo;
      case 2:
        vlo = signed ? (vlo << 16) >> 16 : vlo & 0xffff;
        this.vh = signed ? vlo >> 31 : 0;
        return vlo;
      case 4:
        this.vh = signed ? vlo >> 31 : 0;
        return vlo | 0;
      default:
        this.vh = vhi | 0;
        return vlo | 0;
    }
  }

  /** Store the low `width` bytes of (vlo, vhi) at (lo, hi). Returns ST_OK, ST_SMC or ST_FAULT. */
  store(lo: number, hi: number, width: number, vlo: number, vhi: number): number {
    this.fault = 0;
    if (hi >>> 0 >= HI_LIMIT) {
      this.setFault(CAUSE.STORE_ACCESS_FAULT, lo, hi);
      return ST_FAULT;
    }
    const paddr = (hi >>> 0) * TWO32 + (lo >>> 0);
    const ri = this.findRam(paddr, width);
    if (ri >= 0) {
      const r = this.regions[ri];
      // A store to a read-only region (the boot ROM) is dropped without a trap, as QEMU's
      // TCG does for ROM memory regions (guests/expected/trap.out: rom-store traps=0).
      if (r.region.readonly) return ST_OK;
      const off = paddr - r.base;
      this.writeRam(r, off, Math.min(width, 4), vlo);
      if (width === 8) this.writeRam(r, off + 4, 4, vhi);
      return this.markStored(r, off, width);
    }
    const dev = this.device(paddr, width);
    if (!dev) {
      this.setFault(CAUSE.STORE_ACCESS_FAULT, lo, hi);
      return ST_FAULT;
    }
    this.mmioSeq++;
    const off = paddr - dev.base;
    if (width === 8) {
      if (dev.write64) dev.write64(off, (BigInt(vhi >>> 0) << 32n) | BigInt(vlo >>> 0));
      else {
        dev.write(off, 4, vlo >>> 0);
        dev.write(off + 4, 4, vhi >>> 0);
      }
    } else {
      const mask = width === 4 ? 0xffffffff : (1 << (8 * width)) - 1;
      dev.write(off, width as 1 | 2 | 4, (vlo & mask) >>> 0);
    }
    return ST_OK;
  }

  /**
   * After a store of `width` bytes at region offset `off` has completed: mark the page(s) dirty
   * (after the data, see the file comment), then check for translated code on them.
   */
  markStored(r: RegionViews, off: number, width: number): number {
    const first = Math.floor(off / 4096);
    const last = Math.floor((off + width - 1) / 4096);
    const dirty = r.region.dirty;
    for (let p = first; p <= last; p++) {
      if (ORDERED_DIRTY) Atomics.store(dirty, p, 1);
      else dirty[p] = 1;
    }
    let smc = false;
    for (let p = first; p <= last; p++) {
      if (r.code[p] !== 0 && this.onCodeWrite(r.index, off, width)) smc = true;
    }
    return smc ? ST_SMC : ST_OK;
  }

  /** The device that accepts an access of `width` bytes at `paddr` (range, width mask and
   * natural alignment checked), else undefined: such an access is an access fault. */
  device(paddr: number, width: number): MmioDevice | undefined {
    const dev = this.env.mmio(paddr);
    if (!dev) return undefined;
    const off = paddr - dev.base;
    if (off < 0 || off + width > dev.size) return undefined;
    if ((dev.widths & width) === 0) return undefined;
    if (off % width !== 0) return undefined;
    return dev;
  }

  /** Read 1, 2 or 4 bytes (little-endian, any alignment) at a region offset. */
  private readRam(r: RegionViews, off: number, width: number): number {
    const w = Math.floor(off / WINDOW_SIZE);
    const o = off - w * WINDOW_SIZE;
    if (width === 4 && (o & 3) === 0) return r.i32[w][o >>> 2];
    let v = 0;
    for (let k = width - 1; k >= 0; k--) v = (v << 8) | this.byteAt(r, off + k);
    return v;
  }

  private writeRam(r: RegionViews, off: number, width: number, v: number): void {
    const w = Math.floor(off / WINDOW_SIZE);
    const o = off - w * WINDOW_SIZE;
    if (width === 4 && (o & 3) === 0) {
      r.i32[w][o >>> 2] = v;
      return;
    }
    for (let k = 0; k < width; k++) {
      const a = off + k;
      const wk = Math.floor(a / WINDOW_SIZE);
      r.u8[wk][a - wk * WINDOW_SIZE] = (v >>> (8 * k)) & 0xff;
    }
  }

  private byteAt(r: RegionViews, off: number): number {
    const w = Math.floor(off / WINDOW_SIZE);
    return r.u8[w][off - w * WINDOW_SIZE];
  }

  /**
   * Fetch the instruction word at `paddr` for translation. Fetches come only from RAM regions
   * (ROM included); anything else is an instruction access fault (returns undefined).
   */
  fetch(paddr: number): number | undefined {
    const ri = this.findRam(paddr, 4);
    if (ri < 0) return undefined;
    const r = this.regions[ri];
    return this.readRam(r, paddr - r.base, 4) >>> 0;
  }

  /** Which region and offset hold `paddr` (for translation bookkeeping). */
  locate(paddr: number): { region: number; off: number } | undefined {
    const ri = this.findRam(paddr, 4);
    return ri < 0 ? undefined : { region: ri, off: paddr - this.regions[ri].base };
  }
}
