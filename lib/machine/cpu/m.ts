/**
 * M extension: multiply and divide (unprivileged spec, "M" chapter).
 *
 * - "MUL performs an XLEN-bit×XLEN-bit multiplication ... and places the lower XLEN bits in the
 *   destination register. MULH, MULHU, and MULHSU perform the same multiplication but return
 *   the upper XLEN bits of the full 2×XLEN-bit product, for signed×signed, unsigned×unsigned,
 *   and signed rs1×unsigned rs2 multiplication."
 * - "MULW ... multiplies the lower 32 bits of the source registers, placing the sign-extension
 *   of the lower 32 bits of the result into the destination register."
 * - Division by zero and overflow do not trap (table "Semantics for division by zero and
 *   division overflow"): x/0 = -1 (all ones, also for DIVU), x%0 = x; the signed overflow
 *   −2^(L−1) / −1 = −2^(L−1) with remainder 0, where L is 64 or 32 (the W forms, whose results
 *   are then sign-extended).
 *
 * Arithmetic stays in int32 halves: 16-bit limbs keep every partial product exact in a double.
 * Only 64-bit division with operands outside the int32 range falls back to BigInt.
 */
import type { Gen } from './rv64i';
import type { Mnemonic } from './decode';
import { hi32, lo32, mulhu32, toI64, toU64 } from './int64';

/** Runtime helpers called from generated code; 64-bit results come back as (return, MR.hi). */
export const MR = {
  hi: 0,
  mulhu32,
  mulhu(al: number, ah: number, bl: number, bh: number): number {
    return mulhu64(al, ah, bl, bh);
  },
  mulh(al: number, ah: number, bl: number, bh: number): number {
    let lo = mulhu64(al, ah, bl, bh);
    let hi = MR.hi;
    // Signed correction: hi(a*b) = hiu(a*b) − (a<0 ? b : 0) − (b<0 ? a : 0)  (mod 2^64).
    if (ah < 0) [lo, hi] = sub64(lo, hi, bl, bh);
    if (bh < 0) [lo, hi] = sub64(lo, hi, al, ah);
    MR.hi = hi;
    return lo;
  },
  mulhsu(al: number, ah: number, bl: number, bh: number): number {
    let lo = mulhu64(al, ah, bl, bh);
    let hi = MR.hi;
    if (ah < 0) [lo, hi] = sub64(lo, hi, bl, bh);
    MR.hi = hi;
    return lo;
  },
  div(al: number, ah: number, bl: number, bh: number): number {
    if ((bl | bh) === 0) return ret(-1, -1);
    if (ah === al >> 31 && bh === bl >> 31) return retNum(Math.trunc(al / bl)); // int32 operands: exact
    const a = toI64(al, ah);
    const b = toI64(bl, bh);
    if (a === -(1n << 63n) && b === -1n) return ret(al, ah);
    return retBig(a / b);
  },
  divu(al: number, ah: number, bl: number, bh: number): number {
    if ((bl | bh) === 0) return ret(-1, -1);
    if (ah === 0 && bh === 0) return retNum(Math.floor((al >>> 0) / (bl >>> 0)));
    return retBig(toU64(al, ah) / toU64(bl, bh));
  },
  rem(al: number, ah: number, bl: number, bh: number): number {
    if ((bl | bh) === 0) return ret(al, ah);
    if (ah === al >> 31 && bh === bl >> 31) return retNum(al % bl); // sign follows the dividend
    const a = toI64(al, ah);
    const b = toI64(bl, bh);
    if (a === -(1n << 63n) && b === -1n) return ret(0, 0);
    return retBig(a % b);
  },
  remu(al: number, ah: number, bl: number, bh: number): number {
    if ((bl | bh) === 0) return ret(al, ah);
    if (ah === 0 && bh === 0) return retNum((al >>> 0) % (bl >>> 0));
    return retBig(toU64(al, ah) % toU64(bl, bh));
  },
  divw(a: number, b: number): number {
    if (b === 0) return -1;
    if (a === -0x80000000 && b === -1) return a;
    return (a / b) | 0;
  },
  divuw(a: number, b: number): number {
    if (b === 0) return -1;
    return ((a >>> 0) / (b >>> 0)) | 0;
  },
  remw(a: number, b: number): number {
    if (b === 0) return a;
    if (a === -0x80000000 && b === -1) return 0;
    return a % b | 0;
  },
  remuw(a: number, b: number): number {
    if (b === 0) return a;
    return (a >>> 0) % (b >>> 0) | 0;
  },
};

function ret(lo: number, hi: number): number {
  MR.hi = hi;
  return lo;
}

/** An integer-valued double in (−2^53, 2^53) as (lo, hi). */
function retNum(q: number): number {
  MR.hi = Math.floor(q / 4294967296) | 0;
  return q | 0;
}

function retBig(v: bigint): number {
  MR.hi = hi32(v);
  return lo32(v);
}

function sub64(al: number, ah: number, bl: number, bh: number): [number, number] {
  const lo = (al - bl) | 0;
  const hi = (ah - bh - ((al >>> 0) < (bl >>> 0) ? 1 : 0)) | 0;
  return [lo, hi];
}

const A = new Float64Array(4);
const B = new Float64Array(4);

/** Upper 64 bits of the unsigned 128-bit product, by 16-bit limbs (every partial sum < 2^36). */
function mulhu64(al: number, ah: number, bl: number, bh: number): number {
  A[0] = al & 0xffff; A[1] = al >>> 16; A[2] = ah & 0xffff; A[3] = ah >>> 16;
  B[0] = bl & 0xffff; B[1] = bl >>> 16; B[2] = bh & 0xffff; B[3] = bh >>> 16;
  let carry = 0;
  let p4 = 0, p5 = 0, p6 = 0;
  for (let k = 0; k < 7; k++) {
    let sum = carry;
    const i0 = k > 3 ? k - 3 : 0;
    const i1 = k < 3 ? k : 3;
    for (let i = i0; i <= i1; i++) sum += A[i] * B[k - i];
    const limb = sum % 65536;
    carry = Math.floor(sum / 65536);
    if (k === 4) p4 = limb;
    else if (k === 5) p5 = limb;
    else if (k === 6) p6 = limb;
  }
  MR.hi = (p6 | (carry << 16)) | 0;
  return (p4 | (p5 << 16)) | 0;
}

/** Call a (lo, hi) × (lo, hi) → (lo, MR.hi) helper. */
function call64(name: string): Gen {
  return (b, i) => {
    b.emit(`tl = MR.${name}(${b.l(i.rs1)}, ${b.h(i.rs1)}, ${b.l(i.rs2)}, ${b.h(i.rs2)}); th = MR.hi;`);
    b.set(i.rd, 'tl', 'th');
  };
}

function call32(name: string): Gen {
  return (b, i) => b.setW(i.rd, `MR.${name}(${b.l(i.rs1)}, ${b.l(i.rs2)})`);
}

export const M_EXT: Partial<Record<Mnemonic, Gen>> = {
  mul: (b, i) => {
    const [al, ah, bl, bh] = [b.l(i.rs1), b.h(i.rs1), b.l(i.rs2), b.h(i.rs2)];
    // lo×lo gives the low word and a carry into the high word; the cross terms only matter
    // modulo 2^32 in the high word.
    b.emit(`tl = Math.imul(${al}, ${bl}); th = (MR.mulhu32(${al}, ${bl}) + Math.imul(${al}, ${bh}) + Math.imul(${ah}, ${bl})) | 0;`);
    b.set(i.rd, 'tl', 'th');
  },
  mulh: call64('mulh'),
  mulhsu: call64('mulhsu'),
  mulhu: call64('mulhu'),
  div: call64('div'),
  divu: call64('divu'),
  rem: call64('rem'),
  remu: call64('remu'),
  mulw: (b, i) => b.setW(i.rd, `Math.imul(${b.l(i.rs1)}, ${b.l(i.rs2)})`),
  divw: call32('divw'),
  divuw: call32('divuw'),
  remw: call32('remw'),
  remuw: call32('remuw'),
};
