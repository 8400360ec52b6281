/**
 * Kernel-assisted dirty tracking over one RAM mapping: userfaultfd write-protect in async mode
 * (UFFD_FEATURE_WP_ASYNC, Linux 6.7) plus PAGEMAP_SCAN.
 *
 * Arming registers the range for WP and write-protects it. In async mode the first write to a
 * protected page does not send a fault message: the kernel clears the protection itself and
 * lets the write go on (~1 µs). A scan reports the pages whose protection is gone
 * (PAGE_IS_WRITTEN) and, in the same page-table walk, protects them again
 * (PM_SCAN_WP_MATCHING), so a write racing with the scan lands either before (reported now) or
 * after (reported next time): nothing is lost. PM_SCAN_CHECK_WPASYNC makes the scan fail rather
 * than skip a range that is not armed. It sees writes from JS, workers, other processes sharing
 * the memfd through this mapping, and the kernel.
 */
import { native } from './addon';
import { HOST_PAGE_SIZE, PAGE_IS, PM_SCAN_CHECK_WPASYNC, PM_SCAN_WP_MATCHING } from './linux';
import { Userfaultfd, type UffdFeature } from './userfaultfd';

/** Regions per PAGEMAP_SCAN call; a scan of more continues from walk_end. */
const REGIONS_PER_CALL = 4096;

export interface TrackedRange {
  /** Start address of a live mapping (or a page-aligned part of one). */
  readonly addr: number;
  /** Length in bytes, a multiple of the page size. */
  readonly size: number;
}

export class WpDirtyTracker {
  private readonly regions = new Float64Array(3 * REGIONS_PER_CALL);
  private pairs = new Uint32Array(2 * REGIONS_PER_CALL);
  private closed = false;

  private constructor(
    readonly range: TrackedRange,
    private readonly uffd: Userfaultfd,
    private readonly pagemapFd: number,
  ) {}

  /** True when this kernel offers what the tracker needs. */
  static supported(): boolean {
    return Userfaultfd.probe().features.has('WP_ASYNC');
  }

  /** Registers `range` for async write-protect and protects every page: from now on, writes
   * are logged. WP_UNPOPULATED (when offered) also protects pages never touched yet. */
  static arm(range: TrackedRange): WpDirtyTracker {
    const offered = Userfaultfd.probe().features;
    const wanted: UffdFeature[] = ['WP_ASYNC', 'WP_UNPOPULATED', 'WP_HUGETLBFS_SHMEM'];
    const uffd = Userfaultfd.open(wanted.filter((f) => f === 'WP_ASYNC' || offered.has(f)));
    let pagemapFd = -1;
    try {
      uffd.register(range.addr, range.size, ['wp']);
      uffd.writeProtect(range.addr, range.size, true);
      pagemapFd = native.pagemapOpen();
      return new WpDirtyTracker(range, uffd, pagemapFd);
    } catch (e) {
      if (pagemapFd >= 0) native.close(pagemapFd);
      uffd.close();
      throw e;
    }
  }

  /**
   * The pages written since arming or the previous scan, re-protected atomically, as
   * [firstPage, pageCount] pairs (page indices relative to `range.addr`, ascending).
   */
  scan(): Uint32Array {
    const { addr, size } = this.range;
    const end = addr + size;
    let n = 0;
    for (let start = addr; start < end; ) {
      const r = native.pagemapScan(
        this.pagemapFd, start, end,
        PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
        PAGE_IS.WRITTEN, 0, 0, PAGE_IS.WRITTEN, 0,
        this.regions,
      );
      n = this.append(n, r.count);
      // walk_end < end only when the output vector filled up: continue from there.
      if (r.walkEnd <= start) break;
      start = r.walkEnd;
    }
    return this.pairs.slice(0, 2 * n);
  }

  /** Total pages in a scan result. */
  static pageCount(pairs: Uint32Array): number {
    let total = 0;
    for (let i = 1; i < pairs.length; i += 2) total += pairs[i];
    return total;
  }

  /** Stops tracking: unregisters (clearing protection) and closes the fds. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.uffd.unregister(this.range.addr, this.range.size);
    } finally {
      this.uffd.close();
      native.close(this.pagemapFd);
    }
  }

  // Converts `count` regions from this.regions to page pairs after the first `n`, merging a
  // region that continues the previous one (the walk splits runs at VMA and table edges).
  private append(n: number, count: number): number {
    const base = this.range.addr;
    for (let i = 0; i < count; i++) {
      const first = (this.regions[3 * i] - base) / HOST_PAGE_SIZE;
      const pages = (this.regions[3 * i + 1] - this.regions[3 * i]) / HOST_PAGE_SIZE;
      if (n > 0 && this.pairs[2 * n - 2] + this.pairs[2 * n - 1] === first) {
        this.pairs[2 * n - 1] += pages;
        continue;
      }
      if (2 * n + 2 > this.pairs.length) {
        const grown = new Uint32Array(this.pairs.length * 2);
        grown.set(this.pairs);
        this.pairs = grown;
      }
      this.pairs[2 * n] = first;
      this.pairs[2 * n + 1] = pages;
      n++;
    }
    return n;
  }
}
