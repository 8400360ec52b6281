/**
 * 64-bit integers as (lo, hi) pairs of int32, the representation the hart uses everywhere on
 * the hot path (BigInt allocates; doubles lose bits above 2^53). These helpers are for the slow
 * paths, translation time and the main thread's view of saved state.
 */

const TWO32 = 4294967296;

/** (lo, hi) → unsigned 64-bit bigint. */
export function toU64(lo: number, hi: number): bigint {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}

/** (lo, hi) → signed 64-bit bigint. */
export function toI64(lo: number, hi: number): bigint {
  return BigInt.asIntN(64, toU64(lo, hi));
}

/** Low word (int32) of a bigint taken modulo 2^64. */
export function lo32(v: bigint): number {
  return Number(BigInt.asIntN(32, v));
}

/** High word (int32) of a bigint taken modulo 2^64. */
export function hi32(v: bigint): number {
  return Number(BigInt.asIntN(32, v >> 32n));
}

/** Unsigned value as a double; exact while hi < 2^21 (physical addresses, counters). */
export function toNumber(lo: number, hi: number): number {
  return (hi >>> 0) * TWO32 + (lo >>> 0);
}

/** Non-negative integer double (< 2^64) → hi word. */
export function hiOf(n: number): number {
  return Math.floor(n / TWO32) | 0;
}

/** Non-negative integer double → lo word. */
export function loOf(n: number): number {
  return n % TWO32 | 0;
}

/** High 32 bits of the unsigned 64-bit product of two uint32s (16-bit limbs stay exact). */
export function mulhu32(a: number, b: number): number {
  const a0 = a & 0xffff;
  const a1 = a >>> 16;
  const b0 = b & 0xffff;
  const b1 = b >>> 16;
  const m1 = a1 * b0;
  const m2 = a0 * b1;
  const t = ((a0 * b0) >>> 16) + (m1 & 0xffff) + (m2 & 0xffff);
  return (a1 * b1 + (m1 >>> 16) + (m2 >>> 16) + Math.floor(t / 65536)) | 0;
}
