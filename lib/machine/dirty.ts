/**
 * Dirty logging for precopy (QEMU's memory_global_dirty_log_sync → migration bitmap). One
 * interface, two implementations:
 *
 *  - `EmulatorDirtyLog`: the harts' own dirty map (a byte per page, set after every guest
 *    store). Sync moves set bytes into the migration bitmap with an atomic exchange, so a store
 *    racing with the sync is either moved now or left for the next sync: never lost.
 *  - `KernelDirtyLog`: userfaultfd write-protect in async mode + PAGEMAP_SCAN over the block's
 *    mapping; it also sees writes the emulator does not make (another process sharing the memfd,
 *    the kernel).
 *
 * The migration bitmap is one bit per page in Uint32 words (bit i of word w = page 32w+i), the
 * layout the RAM saver walks with Math.clz32.
 */
import { WpDirtyTracker } from '../host';
import type { RamBlock } from './ram';

export interface DirtyLog {
  readonly kind: 'emulator' | 'kernel';
  /** Begin logging from now (earlier writes are forgotten). */
  start(): void;
  /** OR the pages written since the previous sync (or start) into `bitmap`, forgetting them
   * here; returns how many bits went from clear to set. */
  sync(bitmap: Uint32Array): number;
  /** Pages written since the last sync, without taking them (for estimates); -1 if unknown. */
  peek(): number;
  stop(): void;
}

export function bitmapWords(pages: number): number {
  return Math.ceil(pages / 32);
}

function setBit(bitmap: Uint32Array, page: number): number {
  const w = page >>> 5;
  const m = 1 << (page & 31);
  if (bitmap[w] & m) return 0;
  bitmap[w] |= m;
  return 1;
}

export class EmulatorDirtyLog implements DirtyLog {
  readonly kind = 'emulator';
  private readonly words: Int32Array;

  constructor(private readonly block: RamBlock) {
    this.words = new Int32Array(block.dirty.buffer, 0, block.dirty.length >>> 2);
  }

  start(): void {
    // Forget history: an exchange per non-zero word, like a sync into nowhere.
    const w = this.words;
    for (let i = 0; i < w.length; i++) if (w[i] !== 0) Atomics.store(w, i, 0);
    for (let p = w.length * 4; p < this.block.dirty.length; p++) Atomics.store(this.block.dirty, p, 0);
  }

  sync(bitmap: Uint32Array): number {
    const w = this.words;
    let added = 0;
    for (let i = 0; i < w.length; i++) {
      // A plain read first keeps the common all-clean case free of locked instructions.
      if (w[i] === 0) continue;
      const v = Atomics.exchange(w, i, 0);
      if (v === 0) continue;
      const page = i << 2;
      if (v & 0xff) added += setBit(bitmap, page);
      if (v & 0xff00) added += setBit(bitmap, page + 1);
      if (v & 0xff0000) added += setBit(bitmap, page + 2);
      if (v & 0xff000000) added += setBit(bitmap, page + 3);
    }
    const bytes = this.block.dirty;
    for (let p = w.length * 4; p < bytes.length; p++) {
      if (bytes[p] !== 0 && Atomics.exchange(bytes, p, 0) !== 0) added += setBit(bitmap, p);
    }
    return added;
  }

  peek(): number {
    const w = this.words;
    let n = 0;
    for (let i = 0; i < w.length; i++) {
      const v = w[i];
      if (v !== 0) n += (v & 0xff ? 1 : 0) + (v & 0xff00 ? 1 : 0) + (v & 0xff0000 ? 1 : 0) + (v & 0xff000000 ? 1 : 0);
    }
    return n;
  }

  stop(): void {
    /* the harts keep marking; nothing to release */
  }
}

export class KernelDirtyLog implements DirtyLog {
  readonly kind = 'kernel';
  private tracker: WpDirtyTracker | null = null;

  constructor(private readonly block: RamBlock) {}

  static supported(): boolean {
    return WpDirtyTracker.supported();
  }

  start(): void {
    this.stop();
    this.tracker = WpDirtyTracker.arm({ addr: this.block.mapping.addr, size: this.block.size });
  }

  sync(bitmap: Uint32Array): number {
    if (!this.tracker) return 0;
    const pairs = this.tracker.scan();
    let added = 0;
    for (let i = 0; i < pairs.length; i += 2) {
      const end = pairs[i] + pairs[i + 1];
      for (let p = pairs[i]; p < end; p++) added += setBit(bitmap, p);
    }
    return added;
  }

  peek(): number {
    return -1;
  }

  stop(): void {
    this.tracker?.close();
    this.tracker = null;
  }
}
