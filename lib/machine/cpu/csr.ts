/**
 * The machine-mode CSR file of an RV64IMA hart without S or U mode (privileged spec ch. 2–3).
 *
 * Rules applied here:
 * - "Attempts to access a non-existent CSR raise an illegal-instruction exception."
 * - "Attempts to ... write a read-only register also raise illegal-instruction exceptions"; the
 *   read-only CSRs are those whose number has bits [11:10] = 11 (§2.1).
 * - WARL fields keep only legal values: mstatus keeps MIE/MPIE with MPP fixed at M; mie keeps
 *   MSIE/MTIE/MEIE; mtvec ignores writes selecting a reserved MODE (as QEMU does); mepc[1:0] = 0.
 * - S-mode and U-mode CSRs do not exist here ("In systems with only M-mode ... the medeleg and
 *   mideleg registers should not exist"; menvcfg needs U-mode), so they are illegal.
 * - Counters: "All counters should be implemented, but a legal implementation is to make both
 *   the counter and its corresponding event selector be read-only 0" — mhpmcounter3..31 and
 *   mhpmevent3..31 read 0 and ignore writes. PMP CSRs likewise exist as read-only zero (zero PMP
 *   entries), so firmware that programs PMP does not trap.
 * - mcycle counts one cycle per retired instruction (no timing model); both it and minstret are
 *   writable, and "if a CSR access instruction writes such a CSR, the write is done instead of
 *   the increment" (unprivileged spec, Zicsr chapter): the writing instruction is not counted.
 */
import { MIP_MEIP, MIP_MSIP, MIP_MTIP } from '../bus';
import type { Hart } from './hart';
import { hi32, lo32, toU64 } from './int64';
import { MCOUNTINHIBIT_MASK, MIE_MASK, MSTATUS_MIE, MSTATUS_MPIE, MSTATUS_MPP_M, S } from './state';

export const CSR = {
  MSTATUS: 0x300,
  MISA: 0x301,
  MEDELEG: 0x302,
  MIDELEG: 0x303,
  MIE: 0x304,
  MTVEC: 0x305,
  MCOUNTEREN: 0x306,
  MCOUNTINHIBIT: 0x320,
  MHPMEVENT3: 0x323,
  MHPMEVENT31: 0x33f,
  MSCRATCH: 0x340,
  MEPC: 0x341,
  MCAUSE: 0x342,
  MTVAL: 0x343,
  MIP: 0x344,
  PMPCFG0: 0x3a0,
  PMPCFG15: 0x3af,
  PMPADDR0: 0x3b0,
  PMPADDR63: 0x3ef,
  MCYCLE: 0xb00,
  MINSTRET: 0xb02,
  MHPMCOUNTER3: 0xb03,
  MHPMCOUNTER31: 0xb1f,
  CYCLE: 0xc00,
  TIME: 0xc01,
  INSTRET: 0xc02,
  HPMCOUNTER3: 0xc03,
  HPMCOUNTER31: 0xc1f,
  MVENDORID: 0xf11,
  MARCHID: 0xf12,
  MIMPID: 0xf13,
  MHARTID: 0xf14,
  MCONFIGPTR: 0xf15,
} as const;

/** misa: MXL = 2 (XLEN 64) in bits 63:62; extensions A (bit 0), I (bit 8), M (bit 12). */
export const MISA_MXL = 2;
export const MISA_EXT = (1 << 0) | (1 << 8) | (1 << 12);
export const MISA = (BigInt(MISA_MXL) << 62n) | BigInt(MISA_EXT);

const U64 = (1n << 64n) - 1n;

/** Read-only by number: bits [11:10] = 11. */
export function csrReadOnly(num: number): boolean {
  return num >>> 10 === 3;
}

function get64(h: Hart, word: number): bigint {
  return toU64(h.w[word], h.w[word + 1]);
}

function set64(h: Hart, word: number, v: bigint): void {
  h.w[word] = lo32(v);
  h.w[word + 1] = hi32(v);
}

/** Does the CSR exist on this hart? */
export function csrExists(num: number): boolean {
  switch (num) {
    case CSR.MSTATUS: case CSR.MISA: case CSR.MIE: case CSR.MTVEC: case CSR.MCOUNTEREN:
    case CSR.MCOUNTINHIBIT: case CSR.MSCRATCH: case CSR.MEPC: case CSR.MCAUSE: case CSR.MTVAL:
    case CSR.MIP: case CSR.MCYCLE: case CSR.MINSTRET: case CSR.CYCLE: case CSR.TIME:
    case CSR.INSTRET: case CSR.MVENDORID: case CSR.MARCHID: case CSR.MIMPID: case CSR.MHARTID:
    case CSR.MCONFIGPTR:
      return true;
  }
  if (num >= CSR.MHPMEVENT3 && num <= CSR.MHPMEVENT31) return true;
  if (num >= CSR.MHPMCOUNTER3 && num <= CSR.MHPMCOUNTER31) return true;
  if (num >= CSR.HPMCOUNTER3 && num <= CSR.HPMCOUNTER31) return true;
  // RV64: only the even pmpcfg registers exist ("pmpcfg1, pmpcfg3, ... are illegal").
  if (num >= CSR.PMPCFG0 && num <= CSR.PMPCFG15) return (num & 1) === 0;
  if (num >= CSR.PMPADDR0 && num <= CSR.PMPADDR63) return true;
  return false;
}

/** Value of an existing CSR (callers check `csrExists` first). Reading has no side effects
 * beyond bringing the counters up to date. */
export function csrRead(h: Hart, num: number): bigint {
  switch (num) {
    case CSR.MSTATUS:
      return BigInt((h.w[S.MSTATUS] & (MSTATUS_MIE | MSTATUS_MPIE)) | MSTATUS_MPP_M);
    case CSR.MISA: return MISA;
    case CSR.MIE: return BigInt(h.w[S.MIE] & MIE_MASK);
    case CSR.MTVEC: return get64(h, S.MTVEC);
    case CSR.MCOUNTEREN: return BigInt(h.w[S.MCOUNTEREN] >>> 0);
    case CSR.MCOUNTINHIBIT: return BigInt(h.w[S.MCOUNTINHIBIT] & MCOUNTINHIBIT_MASK);
    case CSR.MSCRATCH: return get64(h, S.MSCRATCH);
    case CSR.MEPC: return get64(h, S.MEPC);
    case CSR.MCAUSE: return get64(h, S.MCAUSE);
    case CSR.MTVAL: return get64(h, S.MTVAL);
    // "mip ... reads return the live pending bits": sample lines and the timer now.
    case CSR.MIP: return BigInt(h.liveMip(true) & (MIP_MSIP | MIP_MTIP | MIP_MEIP));
    case CSR.MCYCLE: case CSR.CYCLE:
      h.flushCounters();
      return get64(h, S.MCYCLE);
    case CSR.MINSTRET: case CSR.INSTRET:
      h.flushCounters();
      return get64(h, S.MINSTRET);
    case CSR.TIME:
      return BigInt(Math.floor(h.env.timebase.mtime())) & U64;
    case CSR.MHARTID: return get64(h, S.MHARTID);
    default:
      // mvendorid, marchid, mimpid, mconfigptr, hpm counters and events, PMP: all zero.
      return 0n;
  }
}

/** Write an existing, writable CSR (callers check existence and read-only-ness). */
export function csrWrite(h: Hart, num: number, v: bigint): void {
  const lo = lo32(v);
  switch (num) {
    case CSR.MSTATUS:
      h.w[S.MSTATUS] = (lo & (MSTATUS_MIE | MSTATUS_MPIE)) | MSTATUS_MPP_M;
      h.w[S.MSTATUS + 1] = 0;
      return;
    case CSR.MIE:
      h.w[S.MIE] = lo & MIE_MASK;
      h.w[S.MIE + 1] = 0;
      return;
    case CSR.MTVEC:
      // MODE ≥ 2 is reserved; QEMU ignores such writes rather than storing them.
      if ((lo & 3) < 2) set64(h, S.MTVEC, v);
      return;
    case CSR.MCOUNTEREN:
      h.w[S.MCOUNTEREN] = lo;
      h.w[S.MCOUNTEREN + 1] = 0;
      return;
    case CSR.MCOUNTINHIBIT:
      h.flushCounters();
      h.w[S.MCOUNTINHIBIT] = lo & MCOUNTINHIBIT_MASK;
      h.w[S.MCOUNTINHIBIT + 1] = 0;
      return;
    case CSR.MSCRATCH: set64(h, S.MSCRATCH, v); return;
    case CSR.MEPC: set64(h, S.MEPC, v & ~3n); return;
    case CSR.MCAUSE: set64(h, S.MCAUSE, v); return;
    case CSR.MTVAL: set64(h, S.MTVAL, v); return;
    case CSR.MCYCLE: {
      h.flushCounters();
      // The write replaces this instruction's own increment, which is counted when it retires.
      const counting = (h.w[S.MCOUNTINHIBIT] & 1) === 0;
      set64(h, S.MCYCLE, counting ? (v - 1n) & U64 : v);
      return;
    }
    case CSR.MINSTRET: {
      h.flushCounters();
      const counting = (h.w[S.MCOUNTINHIBIT] & 4) === 0;
      set64(h, S.MINSTRET, counting ? (v - 1n) & U64 : v);
      return;
    }
    default:
      // misa (WARL, fixed), mip (no software-writable bits without S-mode), hpm counters and
      // events, PMP: writes are accepted and ignored.
      return;
  }
}
