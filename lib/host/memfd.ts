/**
 * Guest RAM backing: a memfd mapped MAP_SHARED, with ArrayBuffer windows over the mapping.
 *
 * Lifetime is explicit. A window has no finalizer: the mapping stays until `unmap()`, which only
 * the owner calls, after every thread that wrapped it has stopped using its windows. A worker
 * builds its own windows from the mapping's address with `windowAt()` (postMessage would copy
 * an external ArrayBuffer, never share it). Unmapping twice is a HostError (EINVAL), not a
 * crash; a window or madvise outside a live mapping is EFAULT.
 */
import { native } from './addon';

/** One external ArrayBuffer is at most 4 GiB (Node's buffer.constants.MAX_LENGTH). */
export const MAX_WINDOW_SIZE = 2 ** 32;

export interface MemfdOptions {
  /** memfd name, shown in /proc/PID/maps as /memfd:NAME (QEMU uses the RAMBlock idstr). */
  name: string;
  /** Size in bytes; a multiple of the page size (of the huge page size with `hugetlb`). */
  size: number;
  /** MFD_HUGETLB: back with huge pages (needs pages reserved in vm.nr_hugepages). */
  hugetlb?: boolean;
}

export interface MapFdOptions {
  /** File offset of the mapping (page-aligned); default 0. */
  offset?: number;
  /** Bytes to map; default the file size less `offset`. */
  length?: number;
  /** Close the fd when this mapping is closed; default false (the caller keeps it). */
  ownsFd?: boolean;
}

export class MemfdMapping {
  private mapped = true;
  private fdOpen = true;

  private constructor(
    /** The memfd; pass it to another process (SCM_RIGHTS) or map it again. */
    readonly fd: number,
    /** Start address of this process's mapping (a number: hand it to workers). */
    readonly addr: number,
    /** Mapped length in bytes. */
    readonly size: number,
    /** File offset of the mapping. */
    readonly offset: number,
    private readonly ownsFd: boolean,
  ) {}

  /** A new memfd of `size` bytes, mapped whole. The mapping owns the fd. */
  static create(opts: MemfdOptions): MemfdMapping {
    const fd = native.memfdCreate(opts.name, opts.size, opts.hugetlb ?? false);
    try {
      return new MemfdMapping(fd, native.mapShared(fd, 0, opts.size), opts.size, 0, true);
    } catch (e) {
      native.close(fd);
      throw e;
    }
  }

  /** Maps an existing memfd, e.g. one received from another process or a second alias. */
  static fromFd(fd: number, opts: MapFdOptions = {}): MemfdMapping {
    const offset = opts.offset ?? 0;
    const length = opts.length ?? native.fdSize(fd) - offset;
    return new MemfdMapping(fd, native.mapShared(fd, offset, length), length, offset, opts.ownsFd ?? false);
  }

  /** Another mapping of the same pages at a different address (it does not own the fd):
   * the place to write pages before UFFDIO_CONTINUE resolves MINOR faults on this one. */
  alias(): MemfdMapping {
    return MemfdMapping.fromFd(this.fd, { offset: this.offset, length: this.size });
  }

  get isMapped(): boolean {
    return this.mapped;
  }

  /** An ArrayBuffer over [offset, offset+length) of this mapping. */
  window(offset = 0, length = this.size - offset): ArrayBuffer {
    return native.window(this.addr, offset, length);
  }

  /** Windows of `windowSize` bytes (the last may be shorter) covering the whole mapping. */
  windows(windowSize: number): ArrayBuffer[] {
    if (!(windowSize > 0 && windowSize <= MAX_WINDOW_SIZE)) {
      throw new RangeError(`window size must be in (0, ${MAX_WINDOW_SIZE}]`);
    }
    const out: ArrayBuffer[] = [];
    for (let off = 0; off < this.size; off += windowSize) {
      out.push(this.window(off, Math.min(windowSize, this.size - off)));
    }
    return out;
  }

  /** Frees [offset, +length) in the memfd itself (every mapping, every process, reads zeros
   * or faults MISSING afterwards). Offsets are relative to this mapping. */
  punchHole(offset: number, length: number): void {
    native.punchHole(this.fd, this.offset + offset, length);
  }

  /**
   * The data extents of [0, size): [start, end) pairs in bytes, relative to this mapping. What
   * lies between them is holes: never-written pages that read as zeros (SEEK_DATA/SEEK_HOLE).
   */
  dataExtents(): number[] {
    const out: number[] = [];
    const base = this.offset;
    const end = base + this.size;
    let at = base;
    while (at < end) {
      const data = native.seekData(this.fd, at);
      if (data < 0 || data >= end) break;
      let hole = native.seekData(this.fd, data, true);
      if (hole < 0 || hole > end) hole = end;
      out.push(data - base, hole - base);
      at = hole;
    }
    return out;
  }

  /** Drops this mapping's page-table entries; shmem data stays in the page cache. */
  dontNeed(offset: number, length: number): void {
    native.dontNeed(this.addr + offset, length);
  }

  /** Faults every page in writable now (QEMU's -mem-prealloc). */
  populate(offset = 0, length = this.size - offset): void {
    native.populateWrite(this.addr + offset, length);
  }

  /** Unmaps. Every window over it becomes invalid: touching one afterwards crashes. */
  unmap(): void {
    native.unmap(this.addr);
    this.mapped = false;
  }

  /** Unmaps if still mapped, and closes the fd if this mapping owns it. */
  close(): void {
    if (this.mapped) this.unmap();
    if (this.ownsFd && this.fdOpen) native.close(this.fd);
    this.fdOpen = false;
  }
}

/** A window over a live mapping known only by address: how a worker_thread wraps guest RAM. */
export function windowAt(addr: number, offset: number, length: number): ArrayBuffer {
  return native.window(addr, offset, length);
}

/** The live mapping that holds `addr` (from any thread), or undefined. */
export function findMapping(addr: number): { start: number; length: number } | undefined {
  return native.findMapping(addr) ?? undefined;
}
