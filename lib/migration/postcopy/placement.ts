/**
 * Placing a page on a postcopy destination: atomically, so a vCPU never sees half a page, and
 * waking whoever faulted on it. Two ways, chosen by `postcopy-placement` (a benchmarked choice):
 *
 *   copy    UFFDIO_COPY from the received bytes: the kernel allocates the page, copies, maps it
 *           and wakes the waiters in one ioctl (ZERO pages: UFFDIO_ZEROPAGE when the range
 *           offers it). The one QEMU uses.
 *   minor   write the bytes through a second mapping of the same memfd (not registered), then
 *           UFFDIO_CONTINUE maps the page-cache page into the guest's mapping and wakes: the
 *           copy is a plain memcpy, and the page may already be allocated. A page is written
 *           through the alias once only (the `claimed` bit): a second write could undo what the
 *           guest stored after the first placement.
 *
 * Either way the page's `received` bit is set after it is placed; the loader (main thread)
 * then tells the fault worker about requested pages through the placement ring (see
 * shared.ts). A page already in place (EEXIST: the preempt channel and the background stream
 * both carried it, or a duplicate request) is not an error.
 */
import { isHostError, native, Userfaultfd, windowAt } from '../../host';
import { MigrationError } from '../errors';
import { monotonicMs, pageKey, testAndSet, testBit, type PageRing, type SharedBlock } from './shared';

export type PlacementMode = 'copy' | 'minor';

const PAGE_SIZE = 4096;
const ZERO_PAGE = new Uint8Array(PAGE_SIZE);

export class PagePlacer {
  private readonly alias: (Uint8Array | null)[];
  /** placeRecords: the requested pages one native call placed */
  private readonly req = new Int32Array(256);

  constructor(
    private readonly uffd: Userfaultfd,
    readonly blocks: readonly SharedBlock[],
    readonly mode: PlacementMode,
    /** the loader's ring to the fault worker; null in the worker itself */
    private readonly ring: PageRing | null,
    /** the ranges offer UFFDIO_ZEROPAGE */
    private readonly zeropage: boolean,
  ) {
    this.alias = blocks.map((b) => (mode === 'minor' && b.aliasAddr !== undefined ? new Uint8Array(windowAt(b.aliasAddr, 0, b.size)) : null));
  }

  /** Place `src` (one page) as page `page` of block `block`. False: it was already there. */
  place(block: number, page: number, src: Uint8Array): boolean {
    const b = this.blocks[block];
    const at = page * PAGE_SIZE;
    let done: boolean;
    if (this.mode === 'minor') {
      if (testAndSet(b.claimed!, page)) return false;
      const alias = this.alias[block]!;
      alias.set(src.subarray(0, PAGE_SIZE), at);
      done = this.resolve(() => this.uffd.continue(b.addr + at, PAGE_SIZE), b, page);
    } else {
      done = this.resolve(() => this.uffd.copy(b.addr + at, src, PAGE_SIZE), b, page);
    }
    this.after(block, page);
    return done;
  }

  /** Place a zero page. False: it was already there. */
  zero(block: number, page: number): boolean {
    const b = this.blocks[block];
    const at = page * PAGE_SIZE;
    let done: boolean;
    if (this.mode === 'minor') {
      if (testAndSet(b.claimed!, page)) return false;
      this.alias[block]!.fill(0, at, at + PAGE_SIZE);
      done = this.resolve(() => this.uffd.continue(b.addr + at, PAGE_SIZE), b, page);
    } else if (this.zeropage) {
      done = this.resolve(() => this.uffd.zeropage(b.addr + at, PAGE_SIZE), b, page);
    } else {
      done = this.resolve(() => this.uffd.copy(b.addr + at, ZERO_PAGE, PAGE_SIZE), b, page);
    }
    this.after(block, page);
    return done;
  }

  /**
   * The whole PAGE/ZERO CONTINUE records of block `block` at buf[off, end), placed as place()
   * and zero() would place them, by one native call (native.ramPlaceRecords), at most
   * `maxRecords` of them. Returns the offset after the last one; out = [normal, zero, …].
   * Stops at the first record that needs a decision (the loader reads that one itself).
   */
  placeRecords(block: number, buf: Uint8Array, off: number, end: number, out: Float64Array, maxRecords: number): number {
    const b = this.blocks[block];
    const minor = this.mode === 'minor';
    let next: number;
    try {
      next = native.ramPlaceRecords(buf, off, end, this.uffd.fd, b.addr, b.size, minor ? b.aliasAddr! : 0, minor ? b.size : 0, minor, this.zeropage, b.received, b.requested, minor ? b.claimed! : null, out, this.req, maxRecords);
    } catch (e) {
      throw new MigrationError('EMIG_RAM', `placing pages of '${b.name}' failed: ${(e as Error).message}`, { section: 'ram', field: b.name, cause: e });
    }
    if (this.ring) {
      const now = monotonicMs();
      for (let k = 0; k < out[3]; k++) this.ring.push(pageKey(block, this.req[k]), now);
    }
    return next;
  }

  private resolve(op: () => number, b: SharedBlock, page: number): boolean {
    try {
      op();
      return true;
    } catch (e) {
      if (isHostError(e) && e.code === 'EEXIST') return false;
      throw new MigrationError('EMIG_RAM', `placing page 0x${(page * PAGE_SIZE).toString(16)} of '${b.name}' failed: ${(e as Error).message}`, {
        section: 'ram',
        field: b.name,
        cause: e,
      });
    }
  }

  private after(block: number, page: number): void {
    const b = this.blocks[block];
    testAndSet(b.received, page);
    if (this.ring && testBit(b.requested, page)) this.ring.push(pageKey(block, page), monotonicMs());
  }
}
