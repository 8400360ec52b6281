/**
 * Guest RAM blocks (QEMU's RAMBlock): a named, fixed-size region backed by a memfd (or a file
 * for memory-backend-file), mapped once per process MAP_SHARED. The main thread and every vCPU
 * worker wrap that one mapping in WINDOW_SIZE windows; only the block's owner unmaps it.
 *
 * The block carries its dirty map (one byte per page, SharedArrayBuffer): harts set a byte
 * after every store to the page; migration clears it with an atomic exchange before reading.
 */
import * as fs from 'node:fs';
import { MemfdMapping, native, windowAt } from '../host';
import { PAGE_SHIFT, PAGE_SIZE, WINDOW_SHIFT, WINDOW_SIZE, type RamRegion } from './bus';

/** What a worker needs to wrap a block: plain data, postMessage-able. */
export interface RamBlockShare {
  readonly name: string;
  readonly base: number;
  readonly size: number;
  readonly addr: number;
  readonly readonly: boolean;
  readonly dirty: SharedArrayBuffer;
}

export interface RamBlockOptions {
  /** idstr, e.g. "riscv_virt_board.ram". */
  name: string;
  /** Guest physical base address. */
  base: number;
  size: number;
  readonly?: boolean;
  hugetlb?: boolean;
  /** Back with this file instead of an anonymous memfd (memory-backend-file mem-path). */
  memPath?: string;
  /** Map an existing fd (a memfd handed over by cpr-transfer). The block owns it from the
   * call on, even when creation fails. Its size must be the block's. */
  fd?: number;
  /** The memory region's name (QEMU's memory_region_name): a memory backend's id, else the
   * idstr. cpr-transfer hands the block's descriptor over under this name. */
  cprName?: string;
  /**
   * Whether another process may map this memory (QEMU's RAM_SHARED: a backend with share=on,
   * or implicit RAM with -machine aux-ram-share=on). Every block lives in a memfd or file
   * mapped MAP_SHARED by this process's threads either way; the flag says whether livemig may
   * treat it as shared with the outside: skip it under x-ignore-shared (file backends), hand
   * it to a new process under cpr-transfer.
   */
  shared?: boolean;
}

export class RamBlockError extends Error {
  readonly code = 'ERAMBLOCK';
}

export class RamBlock implements RamRegion {
  readonly name: string;
  readonly base: number;
  readonly size: number;
  readonly readonly: boolean;
  readonly shared: boolean;
  /** See RamBlockOptions.cprName. */
  readonly cprName: string;
  /** The backing file's path (memory-backend-file), QEMU's RAM_NAMED_FILE. */
  readonly memPath: string | undefined;
  readonly pageSize = PAGE_SIZE;
  readonly windows: ArrayBuffer[];
  readonly dirty: Uint8Array;
  private readonly bytes: Uint8Array[];

  private constructor(opts: RamBlockOptions, readonly mapping: MemfdMapping) {
    this.name = opts.name;
    this.base = opts.base;
    this.size = opts.size;
    this.readonly = opts.readonly ?? false;
    this.shared = opts.shared ?? false;
    this.cprName = opts.cprName ?? opts.name;
    this.memPath = opts.memPath;
    this.windows = mapping.windows(WINDOW_SIZE);
    this.bytes = this.windows.map((w) => new Uint8Array(w));
    this.dirty = new Uint8Array(new SharedArrayBuffer(this.pages));
  }

  static create(opts: RamBlockOptions): RamBlock {
    if (opts.size <= 0 || opts.size % PAGE_SIZE !== 0) {
      throw new RamBlockError(`RAM block ${opts.name}: size ${opts.size} is not a positive multiple of ${PAGE_SIZE}`);
    }
    let mapping: MemfdMapping;
    if (opts.fd !== undefined) {
      mapping = adoptFd(opts);
    } else if (opts.memPath && !opts.shared) {
      // share=off (QEMU's default for memory-backend-file) maps the file MAP_PRIVATE: the guest
      // starts from the file's contents and its writes never reach the file. A private memfd
      // filled from the file is the same memory, and stays shareable between our threads.
      mapping = MemfdMapping.create({ name: opts.name, size: opts.size, hugetlb: opts.hugetlb });
      try {
        copyFileInto(opts.memPath, mapping, opts.size);
      } catch (e) {
        mapping.close();
        throw e;
      }
    } else if (opts.memPath) {
      const fd = fs.openSync(opts.memPath, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
      try {
        if (fs.fstatSync(fd).size < opts.size) fs.ftruncateSync(fd, opts.size);
        mapping = MemfdMapping.fromFd(fd, { length: opts.size, ownsFd: true });
      } catch (e) {
        fs.closeSync(fd);
        throw e;
      }
    } else {
      mapping = MemfdMapping.create({ name: opts.name, size: opts.size, hugetlb: opts.hugetlb });
    }
    return new RamBlock(opts, mapping);
  }

  get pages(): number {
    return this.size / PAGE_SIZE;
  }

  get fd(): number {
    return this.mapping.fd;
  }

  share(): RamBlockShare {
    return {
      name: this.name,
      base: this.base,
      size: this.size,
      addr: this.mapping.addr,
      readonly: this.readonly,
      dirty: this.dirty.buffer as SharedArrayBuffer,
    };
  }

  /** A view of [offset, offset+length) that must not cross a window (pages never do). */
  view(offset: number, length: number): Uint8Array {
    const w = Math.floor(offset / WINDOW_SIZE);
    const off = offset - w * WINDOW_SIZE;
    if (off + length > this.bytes[w].length) throw new RamBlockError(`view crosses a window at ${offset}`);
    return this.bytes[w].subarray(off, off + length);
  }

  /** The page at index `page` (zero-copy). */
  page(page: number): Uint8Array {
    const w = page >>> (WINDOW_SHIFT - PAGE_SHIFT);
    const off = (page - w * (WINDOW_SIZE / PAGE_SIZE)) * PAGE_SIZE;
    return this.bytes[w].subarray(off, off + PAGE_SIZE);
  }

  /** Copy `data` in at `offset`, across windows if needed. Host side only: the guest's
   * stores set dirty bytes themselves; host writes mark the pages dirty here. */
  write(offset: number, data: Uint8Array): void {
    this.spans(offset, data.length, (w, off, n, done) => w.set(data.subarray(done, done + n), off));
    this.markDirty(offset, data.length);
  }

  read(offset: number, length: number, into = new Uint8Array(length)): Uint8Array {
    this.spans(offset, length, (w, off, n, done) => into.set(w.subarray(off, off + n), done));
    return into;
  }

  fill(offset: number, length: number, value = 0): void {
    this.spans(offset, length, (w, off, n) => w.fill(value, off, off + n));
    this.markDirty(offset, length);
  }

  /** Calls `fn` for each window-contained piece of [offset, offset+length). */
  private spans(offset: number, length: number, fn: (w: Uint8Array, off: number, n: number, done: number) => void): void {
    this.check(offset, length);
    let done = 0;
    while (done < length) {
      const at = offset + done;
      const w = Math.floor(at / WINDOW_SIZE);
      const off = at - w * WINDOW_SIZE;
      const n = Math.min(length - done, this.bytes[w].length - off);
      fn(this.bytes[w], off, n, done);
      done += n;
    }
  }

  markDirty(offset: number, length: number): void {
    if (length <= 0) return;
    this.dirty.fill(1, Math.floor(offset / PAGE_SIZE), Math.ceil((offset + length) / PAGE_SIZE));
  }

  contains(paddr: number, length = 1): boolean {
    return paddr >= this.base && paddr + length <= this.base + this.size;
  }

  /** Populate every page now (-mem-prealloc). */
  prealloc(): void {
    this.mapping.populate();
  }

  /** Unmap and close; only after every worker has stopped using its windows. */
  close(): void {
    this.mapping.close();
  }

  private check(offset: number, length: number): void {
    if (offset < 0 || length < 0 || offset + length > this.size) {
      throw new RamBlockError(`RAM block ${this.name}: [${offset}, +${length}) is outside its ${this.size} bytes`);
    }
  }
}

/** A descriptor from another process: exactly the block's size (a shorter file would SIGBUS
 * past its end, a longer one is somebody else's layout). Closed on failure. */
function adoptFd(opts: RamBlockOptions): MemfdMapping {
  const fd = opts.fd!;
  try {
    const size = native.fdSize(fd);
    if (size !== opts.size) {
      throw new RamBlockError(`RAM block ${opts.name}: the descriptor '${opts.cprName ?? opts.name}' holds ${size} bytes, the block has ${opts.size}`);
    }
    return MemfdMapping.fromFd(fd, { length: opts.size, ownsFd: true });
  } catch (e) {
    try {
      native.close(fd);
    } catch {
      /* already closed */
    }
    throw e;
  }
}

/** Copy what the file holds (up to `size` bytes; a shorter file leaves zeros) into a fresh
 * mapping, skipping the file's holes so untouched memory stays unallocated. */
function copyFileInto(path: string, mapping: MemfdMapping, size: number): void {
  let fd: number;
  try {
    fd = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_CREAT, 0o600);
  } catch (e) {
    throw new RamBlockError(`memory-backend-file: cannot open '${path}': ${(e as NodeJS.ErrnoException).code ?? e}`);
  }
  try {
    const windows = mapping.windows(WINDOW_SIZE).map((w) => new Uint8Array(w));
    const end = Math.min(size, fs.fstatSync(fd).size);
    let at = native.seekData(fd, 0);
    while (at >= 0 && at < end) {
      const holeAt = Math.min(end, native.seekData(fd, at, true));
      while (at < holeAt) {
        const w = Math.floor(at / WINDOW_SIZE);
        const off = at - w * WINDOW_SIZE;
        const n = fs.readSync(fd, windows[w], off, Math.min(holeAt - at, windows[w].length - off, 16 * 2 ** 20), at);
        if (n <= 0) return;
        at += n;
      }
      at = native.seekData(fd, at);
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** A worker's view of a block: windows over the owner's mapping, by address. */
export function regionFromShare(s: RamBlockShare): RamRegion {
  const windows: ArrayBuffer[] = [];
  for (let off = 0; off < s.size; off += WINDOW_SIZE) windows.push(windowAt(s.addr, off, Math.min(WINDOW_SIZE, s.size - off)));
  return { name: s.name, base: s.base, size: s.size, windows, dirty: new Uint8Array(s.dirty), readonly: s.readonly };
}
