/**
 * Page bookkeeping shared by the RAM saver, the loader and the multifd channels: bitmaps of
 * one bit per page in Uint32 words (bit i of word w = page 32w + i), which pages of a block
 * were never written, and which blocks are not migrated at all.
 */
import { PAGE_SIZE } from '../machine/bus';
import { bitmapWords } from '../machine/dirty';
import type { RamBlock } from '../machine/ram';
import type { MigMode } from './options';

/**
 * QEMU's migrate_ram_is_ignored(): the blocks whose pages are not sent, because the other
 * side maps the same memory. With x-ignore-shared, a block backed by a named file and mapped
 * shared; in cpr-transfer (and cpr-exec), every block: the new process maps them all.
 */
export function ramBlockIgnored(block: RamBlock, ignoreShared: boolean, mode: MigMode = 'normal'): boolean {
  if (mode === 'cpr-transfer' || mode === 'cpr-exec') return true;
  return ignoreShared && block.shared && block.memPath !== undefined;
}

/** One bit per page that is a hole in the block's backing file right now, or null when the
 * backing cannot tell (then every page is read). */
export function holeBitmap(block: RamBlock): Uint32Array | null {
  let extents: number[];
  try {
    extents = block.mapping.dataExtents();
  } catch {
    return null;
  }
  const bits = new Uint32Array(bitmapWords(block.pages)).fill(0xffffffff);
  for (let i = 0; i < extents.length; i += 2) {
    const first = Math.floor(extents[i] / PAGE_SIZE);
    const end = Math.ceil(extents[i + 1] / PAGE_SIZE);
    for (let p = first; p < end; p++) bits[p >>> 5] &= ~(1 << (p & 31));
  }
  return bits;
}

/** First set bit at or after `from` (below `limit`), or -1. */
export function nextSetBit(bitmap: Uint32Array, from: number, limit: number): number {
  let w = from >>> 5;
  if (w >= bitmap.length) return -1;
  let word = bitmap[w] & (0xffffffff << (from & 31));
  for (;;) {
    if (word !== 0) {
      const bit = 31 - Math.clz32(word & -word);
      const page = (w << 5) + bit;
      return page < limit ? page : -1;
    }
    if (++w >= bitmap.length) return -1;
    word = bitmap[w];
  }
}

/**
 * Claims up to `max` set bits of `bm` at or after `from` (below `limit`) into run[0, n), in
 * order, a word at a time — one Atomics.and per 32 pages, so a bit another thread clears first
 * (the postcopy page server) is never claimed twice. `at.next` is where the scan goes on. May
 * claim none while moving on, when another thread took the bits first.
 */
export function claimRun(bm: Uint32Array, from: number, limit: number, max: number, run: Int32Array, at: { next: number }): number {
  let n = 0;
  let w = from >>> 5;
  for (let mask = (0xffffffff << (from & 31)) | 0; w < bm.length && n < max; w++, mask = -1) {
    const avail = bm[w] & mask;
    if (avail === 0) continue;
    // More dirty pages than room: take the lowest ones and stop inside this word.
    let want = avail;
    const partial = popcount32(avail) > max - n;
    if (partial) {
      want = 0;
      for (let v = avail, room = max - n; room > 0; room--) {
        const low = v & -v;
        want |= low;
        v ^= low;
      }
    }
    const got = Atomics.and(bm, w, ~want) & want;
    for (let v = got; v !== 0; v &= v - 1) run[n++] = (w << 5) + (31 - Math.clz32(v & -v));
    if (partial) {
      at.next = (w << 5) + (32 - Math.clz32(want));
      return n;
    }
  }
  at.next = Math.min(w << 5, limit);
  return n;
}

/** Set bits of a 32-bit word. */
export function popcount32(v: number): number {
  v = v - ((v >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (((v + (v >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}

/** All 1024 words of the page zero? Eight at a time, ORed, so random data exits at once. */
export function isZeroPage(words: Int32Array, first: number): boolean {
  const end = first + PAGE_SIZE / 4;
  for (let i = first; i < end; i += 8) {
    if ((words[i] | words[i + 1] | words[i + 2] | words[i + 3] | words[i + 4] | words[i + 5] | words[i + 6] | words[i + 7]) !== 0) {
      return false;
    }
  }
  return true;
}
