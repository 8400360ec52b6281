/**
 * A extension: LR/SC and AMOs, correct across harts running in different threads on the same
 * memory. Every access here is an `Atomics` operation on a typed array over the RAM window, so
 * it is a real atomic read-modify-write on the host (and a full barrier: aq/rl need nothing
 * more).
 *
 * Rules (unprivileged spec, "A" chapter; QEMU's trans_rva.c.inc for the choices it leaves open):
 * - "LR.W loads a word from the address in rs1, places the sign-extended value in rd, and
 *   registers a reservation set." We record the address (`load_res`) and the value (`load_val`).
 * - SC succeeds only if the reservation is held for this address *and* memory still holds the
 *   value LR saw: a compare-exchange against `load_val`, as QEMU does. "SC.W writes zero to rd
 *   on success or a nonzero code on failure" (we write 1). "Regardless of success or failure,
 *   executing an SC.W instruction invalidates any reservation held by this hart." An SC whose
 *   address does not match the reservation fails without touching memory (no alignment or
 *   access check, as in QEMU).
 * - AMOs "atomically load a data value from the address in rs1, place the value into register
 *   rd, apply a binary operator to the loaded value and the original value in rs2, then store
 *   the result back"; the .W forms sign-extend the loaded value into rd.
 * - "For LR and SC, the A extension requires that the address held in rs1 be naturally aligned
 *   ... If the address is not naturally aligned, an address-misaligned exception ... will be
 *   generated"; the same holds for AMOs. LR raises a load-address-misaligned exception, SC and
 *   AMOs a store/AMO-address-misaligned exception.
 * - Atomics are only supported on RAM: on devices, ROM or unmapped addresses LR raises a load
 *   access fault and SC/AMOs a store/AMO access fault (a PMA choice the spec permits).
 * - SC and AMOs are stores: they set the page's dirty byte afterwards and may hit translated
 *   code.
 */
import type { Gen } from './rv64i';
import type { Insn, Mnemonic } from './decode';
import type { Hart } from './hart';
import { hi32, lo32, toU64 } from './int64';
import { ST_FAULT, ST_OK, type Memory } from './memory';
import { S } from './state';
import { CAUSE } from './trap';
import { WINDOW_SIZE } from '../bus';

const TWO32 = 4294967296;

function fail(m: Memory, cause: number, lo: number, hi: number): number {
  m.fault = cause;
  m.tvLo = lo;
  m.tvHi = hi;
  return ST_FAULT;
}

/** Apply one AMO operator to 32-bit int values. */
function op32(op: Mnemonic, a: number, b: number): number {
  switch (op) {
    case 'amoadd': return (a + b) | 0;
    case 'amoxor': return a ^ b;
    case 'amoand': return a & b;
    case 'amoor': return a | b;
    case 'amomin': return a < b ? a : b;
    case 'amomax': return a > b ? a : b;
    case 'amominu': return (a >>> 0) < (b >>> 0) ? a : b;
    case 'amomaxu': return (a >>> 0) > (b >>> 0) ? a : b;
    default: return b; // amoswap
  }
}

function op64(op: Mnemonic, a: bigint, b: bigint): bigint {
  switch (op) {
    case 'amoadd': return BigInt.asIntN(64, a + b);
    case 'amoxor': return a ^ b;
    case 'amoand': return a & b;
    case 'amoor': return a | b;
    case 'amomin': return a < b ? a : b;
    case 'amomax': return a > b ? a : b;
    case 'amominu': return BigInt.asUintN(64, a) < BigInt.asUintN(64, b) ? a : b;
    case 'amomaxu': return BigInt.asUintN(64, a) > BigInt.asUintN(64, b) ? a : b;
    default: return b;
  }
}

/**
 * Execute LR/SC/AMO `insn` with address (al, ah) and rs2 value (vl, vh). Returns ST_OK, ST_SMC
 * (done, but translated code was hit) or ST_FAULT; the rd value is left in (m.rl, m.vh).
 */
export function execAtomic(h: Hart, m: Memory, insn: Insn, al: number, ah: number, vl: number, vh: number): number {
  const w = h.w;
  const op = insn.op;
  const width = insn.width;
  const isLr = op === 'lr';
  m.fault = 0;

  if (op === 'sc') {
    const held = w[S.LOAD_RES] === al && w[S.LOAD_RES + 1] === ah;
    w[S.LOAD_RES] = -1;
    w[S.LOAD_RES + 1] = -1;
    if (!held) {
      m.rl = 1;
      m.vh = 0;
      return ST_OK;
    }
  }
  if ((al & (width - 1)) !== 0) return fail(m, isLr ? CAUSE.LOAD_MISALIGNED : CAUSE.STORE_MISALIGNED, al, ah);
  const paddr = ah >>> 0 < 0x200000 ? (ah >>> 0) * TWO32 + (al >>> 0) : -1;
  const ri = paddr < 0 ? -1 : m.findRam(paddr, width);
  if (ri < 0 || (!isLr && m.regions[ri].region.readonly)) {
    return fail(m, isLr ? CAUSE.LOAD_ACCESS_FAULT : CAUSE.STORE_ACCESS_FAULT, al, ah);
  }
  const r = m.regions[ri];
  const off = paddr - r.base;
  const win = Math.floor(off / WINDOW_SIZE);
  const wo = off - win * WINDOW_SIZE;

  if (width === 4) {
    const a = r.i32[win];
    const idx = wo >>> 2;
    if (isLr) {
      const v = Atomics.load(a, idx);
      w[S.LOAD_RES] = al;
      w[S.LOAD_RES + 1] = ah;
      w[S.LOAD_VAL] = v;
      w[S.LOAD_VAL + 1] = v >> 31;
      return result(m, v, v >> 31, ST_OK);
    }
    if (op === 'sc') {
      // QEMU compares the sign-extended old word with the whole 64-bit load_val, so a
      // load_val that is not a sign-extended word (left by LR.D) can never succeed. (QEMU 7.2
      // would still store when the low words match; we fail without storing.)
      const expect = w[S.LOAD_VAL];
      if (w[S.LOAD_VAL + 1] !== expect >> 31 || Atomics.compareExchange(a, idx, expect, vl) !== expect) {
        return result(m, 1, 0, ST_OK);
      }
      return result(m, 0, 0, m.markStored(r, off, 4));
    }
    let old: number;
    switch (op) {
      case 'amoswap': old = Atomics.exchange(a, idx, vl); break;
      case 'amoadd': old = Atomics.add(a, idx, vl); break;
      case 'amoxor': old = Atomics.xor(a, idx, vl); break;
      case 'amoand': old = Atomics.and(a, idx, vl); break;
      case 'amoor': old = Atomics.or(a, idx, vl); break;
      default:
        // min/max have no host instruction: retry a compare-exchange until it sticks.
        for (;;) {
          old = Atomics.load(a, idx);
          if (Atomics.compareExchange(a, idx, old, op32(op, old, vl)) === old) break;
        }
    }
    return result(m, old, old >> 31, m.markStored(r, off, 4));
  }

  const a = r.i64[win];
  const idx = wo >>> 3;
  if (isLr) {
    const v = Atomics.load(a, idx);
    const lo = lo32(v);
    const hi = hi32(v);
    w[S.LOAD_RES] = al;
    w[S.LOAD_RES + 1] = ah;
    w[S.LOAD_VAL] = lo;
    w[S.LOAD_VAL + 1] = hi;
    return result(m, lo, hi, ST_OK);
  }
  const src = BigInt.asIntN(64, toU64(vl, vh));
  if (op === 'sc') {
    const expect = BigInt.asIntN(64, toU64(w[S.LOAD_VAL], w[S.LOAD_VAL + 1]));
    if (Atomics.compareExchange(a, idx, expect, src) !== expect) return result(m, 1, 0, ST_OK);
    return result(m, 0, 0, m.markStored(r, off, 8));
  }
  let old: bigint;
  switch (op) {
    case 'amoswap': old = Atomics.exchange(a, idx, src); break;
    case 'amoadd': old = Atomics.add(a, idx, src); break;
    case 'amoxor': old = Atomics.xor(a, idx, src); break;
    case 'amoand': old = Atomics.and(a, idx, src); break;
    case 'amoor': old = Atomics.or(a, idx, src); break;
    default:
      for (;;) {
        old = Atomics.load(a, idx);
        if (Atomics.compareExchange(a, idx, old, op64(op, old, src)) === old) break;
      }
  }
  return result(m, lo32(old), hi32(old), m.markStored(r, off, 8));
}

function result(m: Memory, lo: number, hi: number, status: number): number {
  m.rl = lo;
  m.vh = hi;
  return status;
}

/** Every LR/SC/AMO: call the runtime, trap on a fault, write rd, end the block on SMC. */
const atomic: Gen = (b, i) => {
  b.regs.memOps = true;
  b.emit(`v = AT(${b.insnRef()}, ${b.l(i.rs1)}, ${b.h(i.rs1)}, ${b.l(i.rs2)}, ${b.h(i.rs2)});`);
  b.emit(`if (v === 2) { ${b.memTrapCode()} }`);
  b.set(i.rd, 'M.rl', 'M.vh');
  b.emit(`if (v !== 0) { ${b.exitNext()} }`);
};

export const A_EXT: Partial<Record<Mnemonic, Gen>> = {
  lr: atomic, sc: atomic, amoswap: atomic, amoadd: atomic, amoxor: atomic, amoand: atomic,
  amoor: atomic, amomin: atomic, amomax: atomic, amominu: atomic, amomaxu: atomic,
};

