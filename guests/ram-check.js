'use strict';
/**
 * Checks a guest's RAM image (a dump of the `riscv_virt_board.ram` block, i.e. guest physical
 * RAM_BASE onwards) against what the livemig guests promise. Plain Node, no dependencies, so
 * migration tests can verify a destination's RAM. Formats and invariants: docs/guests.md.
 *
 * Info block at RAM_BASE + 0x1000 (little-endian):
 *
 *   0x00 magic "LVMGINFO"  0x08 u32 version  0x0c u32 kind  0x10 u32 state  0x14 u32 page_size
 *   0x18 u64 range_start   0x20 u64 range_end  0x28 u64 seed  0x30 u64 counter
 *   0x38 u64 ram_base      0x40 u64 ram_size   0x48 u64 fdt_addr  0x50 u64 fdt_size
 *   0x58 u64 image_end     0x60 u64 param      0x68 u32 harts     0x6c u32 reserved
 */

const RAM_BASE = 0x80000000;
const INFO_OFFSET = 0x1000;
const INFO_SIZE = 0x70;
const INFO_MAGIC = 'LVMGINFO';
const PAGE_SIZE = 4096;
const DEFAULT_SEED = 0x9e3779b97f4a7c15n;
const DIRTY_TAG_HI = 0x59545244; // "DRTY" in bytes 4..7 of a dirtied page's first word

const KIND = Object.freeze({ NONE: 0, HELLO: 1, AB: 2, DIRTY: 3, IDLE: 4, SMP_COUNTER: 5, TRAP: 6, ECHO: 7, STRIDE: 8 });
const STATE = Object.freeze({ BOOT: 0, FILLING: 1, RUNNING: 2, DONE: 3 });
const MAX_ERRORS = 10;

function view(ram) {
  return new DataView(ram.buffer, ram.byteOffset, ram.byteLength);
}

/** Reads the info block; null when the magic is absent (guest not booted, or not ours). */
function readInfo(ram, ramBase = RAM_BASE) {
  if (ram.byteLength < INFO_OFFSET + INFO_SIZE) return null;
  const magic = Buffer.from(ram.buffer, ram.byteOffset + INFO_OFFSET, 8).toString('latin1');
  if (magic !== INFO_MAGIC) return null;
  const v = view(ram);
  const u32 = (off) => v.getUint32(INFO_OFFSET + off, true);
  const u64 = (off) => v.getBigUint64(INFO_OFFSET + off, true);
  const num = (off) => Number(u64(off));
  return {
    ramBase,
    version: u32(0x08),
    kind: u32(0x0c),
    state: u32(0x10),
    pageSize: u32(0x14),
    rangeStart: num(0x18),
    rangeEnd: num(0x20),
    seed: u64(0x28),
    counter: u64(0x30),
    ramBaseReported: num(0x38),
    ramSize: num(0x40),
    fdtAddr: num(0x48),
    fdtSize: num(0x50),
    imageEnd: num(0x58),
    param: u64(0x60),
    harts: u32(0x68),
  };
}

/** Writes an info block (for synthetic RAM images in tests). */
function writeInfo(ram, info) {
  const v = view(ram);
  Buffer.from(ram.buffer, ram.byteOffset + INFO_OFFSET, 8).write(INFO_MAGIC, 'latin1');
  const set32 = (off, x) => v.setUint32(INFO_OFFSET + off, x, true);
  const set64 = (off, x) => v.setBigUint64(INFO_OFFSET + off, BigInt(x), true);
  set32(0x08, info.version ?? 1);
  set32(0x0c, info.kind);
  set32(0x10, info.state);
  set32(0x14, info.pageSize ?? PAGE_SIZE);
  set64(0x18, info.rangeStart);
  set64(0x20, info.rangeEnd);
  set64(0x28, info.seed ?? DEFAULT_SEED);
  set64(0x30, info.counter ?? 0);
  set64(0x38, info.ramBase ?? RAM_BASE);
  set64(0x40, info.ramSize ?? ram.byteLength);
  set64(0x48, info.fdtAddr ?? 0);
  set64(0x50, info.fdtSize ?? 0);
  set64(0x58, info.imageEnd ?? 0);
  set64(0x60, info.param ?? 0);
  set32(0x68, info.harts ?? 1);
}

/** Reference xorshift64 (13, 7, 17) on BigInt. */
function xorshift64(x) {
  const M = 0xffffffffffffffffn;
  x ^= (x << 13n) & M;
  x ^= x >> 7n;
  x ^= (x << 17n) & M;
  return x;
}

/**
 * The same generator on two uint32 halves (fast: no BigInt per word). `s` is {hi, lo} and is
 * advanced in place.
 */
function xorshiftStep(s) {
  let { hi, lo } = s;
  hi = (hi ^ ((hi << 13) | (lo >>> 19))) >>> 0; // x ^= x << 13
  lo = (lo ^ (lo << 13)) >>> 0;
  lo = (lo ^ ((lo >>> 7) | (hi << 25))) >>> 0; // x ^= x >> 7
  hi = (hi ^ (hi >>> 7)) >>> 0;
  hi = (hi ^ ((hi << 17) | (lo >>> 15))) >>> 0; // x ^= x << 17
  lo = (lo ^ (lo << 17)) >>> 0;
  s.hi = hi;
  s.lo = lo;
}

function seedState(seed) {
  const x = BigInt.asUintN(64, BigInt(seed)) || DEFAULT_SEED;
  return { hi: Number(x >> 32n), lo: Number(x & 0xffffffffn) };
}

/** Writes the guests' fill pattern into [start, end) of a RAM image (for synthetic tests). */
function fillRange(ram, start, end, seed, ramBase = RAM_BASE) {
  const v = view(ram);
  const s = seedState(seed);
  for (let off = start - ramBase; off < end - ramBase; off += 8) {
    xorshiftStep(s);
    const first = (off & (PAGE_SIZE - 1)) === 0;
    v.setUint32(off, first ? s.lo & ~0xff : s.lo, true);
    v.setUint32(off + 4, s.hi, true);
  }
}

function result(errors, extra) {
  return { ok: errors.length === 0, errors: errors.slice(0, MAX_ERRORS), errorCount: errors.length, ...extra };
}

function rangeErrors(ram, info, kinds) {
  const errors = [];
  if (!info) return ['no info block (magic "LVMGINFO" at RAM offset 0x1000)'];
  if (!kinds.includes(info.kind)) errors.push(`info.kind is ${info.kind}, expected one of ${kinds}`);
  if (info.state !== STATE.RUNNING) errors.push(`info.state is ${info.state}, not RUNNING (${STATE.RUNNING})`);
  if (info.pageSize !== PAGE_SIZE) errors.push(`info.page_size is ${info.pageSize}`);
  const lo = info.rangeStart - info.ramBase;
  const hi = info.rangeEnd - info.ramBase;
  if (lo < 0 || hi > ram.byteLength || hi <= lo || lo % PAGE_SIZE || hi % PAGE_SIZE) {
    errors.push(`range [0x${info.rangeStart.toString(16)}, 0x${info.rangeEnd.toString(16)}) ` +
      `does not fit a ${ram.byteLength}-byte RAM image at 0x${info.ramBase.toString(16)}`);
  }
  return errors;
}

/**
 * The A/B invariant of the `ab` guest, exact form (docs/guests.md): with P = info.counter
 * (completed passes), byte 0 of the range's pages, in address order, is (P+1) mod 256 for a
 * prefix of k pages (0 <= k <= n) and P mod 256 for the rest.
 */
function checkAb(ram, ramBase = RAM_BASE) {
  const info = readInfo(ram, ramBase);
  const errors = rangeErrors(ram, info, [KIND.AB]);
  if (errors.length) return result(errors, { info });
  const n = (info.rangeEnd - info.rangeStart) / PAGE_SIZE;
  const base = info.rangeStart - ramBase;
  const lo = Number(info.counter & 0xffn);
  const hi = (lo + 1) & 0xff;
  let k = 0;
  while (k < n && ram[base + k * PAGE_SIZE] === hi) k++;
  for (let i = k; i < n; i++) {
    const b = ram[base + i * PAGE_SIZE];
    if (b !== lo) {
      const addr = info.rangeStart + i * PAGE_SIZE;
      errors.push(`page ${i} (0x${addr.toString(16)}): byte 0 is ${b}, expected ${lo} ` +
        `(passes=${info.counter}, step after page ${k - 1})`);
    }
  }
  return result(errors, { info, pages: n, passes: info.counter, step: k });
}

/**
 * QEMU's form of the check (tests/qtest/migration-test.c check_guests_ram): walking byte 0 of
 * each page, every byte equals its predecessor except at most one place where it is one less
 * (mod 256). Takes the byte-0 values in page order.
 */
function checkAbRelative(bytes) {
  const errors = [];
  const edges = [];
  for (let i = 1; i < bytes.length; i++) {
    if (bytes[i] === bytes[i - 1]) continue;
    if (bytes[i] === ((bytes[i - 1] + 255) & 0xff) && edges.length === 0) edges.push(i);
    else errors.push(`page ${i}: byte 0 is ${bytes[i]} after ${bytes[i - 1]}`);
  }
  return result(errors, { edges });
}

/**
 * Every page of the range still holds the fill pattern, except byte 0 (ab's counter) and, for
 * `dirty`, a first word of the form 'DRTY' << 32 | n with 1 <= n <= counter (mod 2^32).
 */
function checkFill(ram, ramBase = RAM_BASE) {
  const info = readInfo(ram, ramBase);
  const errors = rangeErrors(ram, info, [KIND.AB, KIND.DIRTY, KIND.IDLE]);
  if (errors.length) return result(errors, { info });
  const v = view(ram);
  const s = seedState(info.seed);
  const counter = info.counter;
  let dirtied = 0;
  for (let off = info.rangeStart - ramBase; off < info.rangeEnd - ramBase; off += 8) {
    xorshiftStep(s);
    let lo = v.getUint32(off, true);
    const hi = v.getUint32(off + 4, true);
    let wantLo = s.lo;
    if ((off & (PAGE_SIZE - 1)) === 0) {
      if (info.kind === KIND.DIRTY && hi === DIRTY_TAG_HI && (hi !== s.hi || lo !== (s.lo & ~0xff))) {
        const seq = BigInt(lo);
        if (seq === 0n || (counter < 0x100000000n && seq > counter)) {
          errors.push(`page at 0x${(off + ramBase).toString(16)}: dirty sequence ${seq} > counter ${counter}`);
        }
        dirtied++;
        continue;
      }
      lo &= ~0xff; // byte 0 is ab's pass counter
      wantLo &= ~0xff;
    }
    if (lo >>> 0 !== wantLo >>> 0 || hi !== s.hi) {
      errors.push(`word at 0x${(off + ramBase).toString(16)}: 0x${hex32(hi)}${hex32(lo)}, ` +
        `fill pattern says 0x${hex32(s.hi)}${hex32(wantLo)}`);
      if (errors.length > 100) break;
    }
  }
  return result(errors, { info, dirtiedPages: dirtied });
}

function hex32(x) {
  return (x >>> 0).toString(16).padStart(8, '0');
}

module.exports = {
  RAM_BASE,
  INFO_OFFSET,
  PAGE_SIZE,
  DEFAULT_SEED,
  KIND,
  STATE,
  readInfo,
  writeInfo,
  xorshift64,
  fillRange,
  checkAb,
  checkAbRelative,
  checkFill,
};
