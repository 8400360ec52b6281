/**
 * Reference semantics in BigInt, written straight from the unprivileged spec, to check the
 * int32-pair arithmetic of the translated code against.
 */
const M64 = (1n << 64n) - 1n;
export const u64 = (v: bigint) => BigInt.asUintN(64, v);
export const s64 = (v: bigint) => BigInt.asIntN(64, v);
const sx32 = (v: bigint) => u64(BigInt.asIntN(32, v));
const s32 = (v: bigint) => BigInt.asIntN(32, v);
const u32 = (v: bigint) => BigInt.asUintN(32, v);

export const REF: Record<string, (a: bigint, b: bigint) => bigint> = {
  add: (a, b) => u64(a + b),
  sub: (a, b) => u64(a - b),
  sll: (a, b) => u64(a << (b & 63n)),
  slt: (a, b) => (s64(a) < s64(b) ? 1n : 0n),
  sltu: (a, b) => (u64(a) < u64(b) ? 1n : 0n),
  xor: (a, b) => u64(a ^ b),
  srl: (a, b) => u64(a) >> (b & 63n),
  sra: (a, b) => u64(s64(a) >> (b & 63n)),
  or: (a, b) => u64(a | b),
  and: (a, b) => u64(a & b),
  addw: (a, b) => sx32(a + b),
  subw: (a, b) => sx32(a - b),
  sllw: (a, b) => sx32(a << (b & 31n)),
  srlw: (a, b) => sx32(u32(a) >> (b & 31n)),
  sraw: (a, b) => sx32(s32(a) >> (b & 31n)),
  mul: (a, b) => u64(a * b),
  mulh: (a, b) => u64((s64(a) * s64(b)) >> 64n),
  mulhsu: (a, b) => u64((s64(a) * u64(b)) >> 64n),
  mulhu: (a, b) => u64((u64(a) * u64(b)) >> 64n),
  div: (a, b) => {
    const x = s64(a), y = s64(b);
    if (y === 0n) return M64;
    if (x === -(1n << 63n) && y === -1n) return u64(x);
    return u64(x / y);
  },
  divu: (a, b) => (u64(b) === 0n ? M64 : u64(a) / u64(b)),
  rem: (a, b) => {
    const x = s64(a), y = s64(b);
    if (y === 0n) return u64(x);
    if (x === -(1n << 63n) && y === -1n) return 0n;
    return u64(x % y);
  },
  remu: (a, b) => (u64(b) === 0n ? u64(a) : u64(a) % u64(b)),
  mulw: (a, b) => sx32(a * b),
  divw: (a, b) => {
    const x = s32(a), y = s32(b);
    if (y === 0n) return M64;
    if (x === -(1n << 31n) && y === -1n) return sx32(x);
    return sx32(x / y);
  },
  divuw: (a, b) => (u32(b) === 0n ? M64 : sx32(u32(a) / u32(b))),
  remw: (a, b) => {
    const x = s32(a), y = s32(b);
    if (y === 0n) return sx32(x);
    if (x === -(1n << 31n) && y === -1n) return 0n;
    return sx32(x % y);
  },
  remuw: (a, b) => (u32(b) === 0n ? sx32(u32(a)) : sx32(u32(a) % u32(b))),
};

/** Operand values that sit on every edge the pair arithmetic has. */
export const EDGES: bigint[] = [
  0n, 1n, 2n, 3n, 31n, 32n, 33n, 63n, 64n, 0x7fn, 0x80n, 0xffn, 0x7fffn, 0x8000n, 0xffffn,
  0x7fffffffn, 0x80000000n, 0xffffffffn, 0x100000000n, 0x1_0000_0001n, 0x7fffffffffffffffn,
  0x8000000000000000n, 0xffffffffffffffffn, 0xfffffffffffffffen, 0xffffffff80000000n,
  0xffffffff7fffffffn, 0x123456789abcdef0n, 0xfedcba9876543210n, 0xdeadbeefn, 0x1fffffffffffffn,
];

/** Deterministic pseudo-random 64-bit values. */
export function* randoms(n: number, seed = 12345): Generator<bigint> {
  let s = BigInt(seed);
  for (let i = 0; i < n; i++) {
    s = (s * 6364136223846793005n + 1442695040888963407n) & M64;
    const shape = i % 4;
    if (shape === 0) yield s;
    else if (shape === 1) yield u64(BigInt.asIntN(32, s >> 17n));
    else if (shape === 2) yield s >> BigInt(Number(s & 63n));
    else yield u64(BigInt.asIntN(16, s >> 40n));
  }
}
