/**
 * Trap entry and return for a machine-mode-only hart (privileged spec §3.1.6–3.1.20, §3.3.2).
 *
 * A trap is a value: whoever detects it calls `enterTrap` with the cause and tval and then stops
 * executing the current instruction; nothing is thrown. Entry does what §3.1.6.1 prescribes:
 * "When a trap is taken from privilege mode y into privilege mode x, xPIE is set to the value of
 * xIE; xIE is set to 0; and xPP is set to y" — here x = y = M — then mepc, mcause and mtval are
 * written and the pc goes to mtvec (BASE, or BASE + 4×cause for interrupts in vectored mode).
 */
import type { Hart } from './hart';
import { MSTATUS_MIE, MSTATUS_MPIE, MSTATUS_MPP_M, S } from './state';

/** Synchronous exception codes (mcause with interrupt bit clear), privileged spec Table 3.6. */
export const CAUSE = {
  INSN_MISALIGNED: 0,
  INSN_ACCESS_FAULT: 1,
  ILLEGAL_INSN: 2,
  BREAKPOINT: 3,
  LOAD_MISALIGNED: 4,
  LOAD_ACCESS_FAULT: 5,
  STORE_MISALIGNED: 6,
  STORE_ACCESS_FAULT: 7,
  ECALL_M: 11,
} as const;

/** Interrupt codes (mcause with the interrupt bit set). */
export const IRQ = {
  MSI: 3,
  MTI: 7,
  MEI: 11,
} as const;

/** Traps taken back to back with no instruction retired in between before we call it a loop:
 * the handler never ran a single instruction, so mepc/mcause of the previous trap are lost and
 * the guest can never make progress. */
export const TRAP_LOOP_LIMIT = 4;

/**
 * Highest-priority interrupt among `pending` (= mip & mie), or -1. "Multiple simultaneous
 * interrupts destined for M-mode are handled in the following decreasing priority order: MEI,
 * MSI, MTI" (§3.1.9).
 */
export function selectInterrupt(pending: number): number {
  if (pending & (1 << IRQ.MEI)) return IRQ.MEI;
  if (pending & (1 << IRQ.MSI)) return IRQ.MSI;
  if (pending & (1 << IRQ.MTI)) return IRQ.MTI;
  return -1;
}

/**
 * Take a trap into M-mode. `epc` is the address of the instruction that trapped (exceptions) or
 * of the next instruction to run (interrupts).
 */
export function enterTrap(
  h: Hart,
  interrupt: boolean,
  code: number,
  tvLo: number,
  tvHi: number,
  epcLo: number,
  epcHi: number,
): void {
  const w = h.w;
  // Trap-loop detection: count traps taken with nothing retired since the previous one.
  if (h.n === h.lastTrapAt && h.trapStreak > 0) h.trapStreak++;
  else h.trapStreak = 1;
  h.lastTrapAt = h.n;

  w[S.MEPC] = epcLo & ~3; // IALIGN = 32: mepc[1:0] are always zero
  w[S.MEPC + 1] = epcHi;
  w[S.MCAUSE] = code;
  w[S.MCAUSE + 1] = interrupt ? 0x80000000 | 0 : 0;
  // "mtval is written with ... for other traps, mtval is set to zero" (§3.1.16).
  w[S.MTVAL] = tvLo;
  w[S.MTVAL + 1] = tvHi;

  const ms = w[S.MSTATUS];
  const mpie = ms & MSTATUS_MIE ? MSTATUS_MPIE : 0;
  w[S.MSTATUS] = (ms & ~(MSTATUS_MIE | MSTATUS_MPIE)) | mpie | MSTATUS_MPP_M;

  // Any trap clears the load reservation, so an SC after a trap handler fails.
  w[S.LOAD_RES] = -1;
  w[S.LOAD_RES + 1] = -1;

  // "When MODE=Vectored, all synchronous exceptions into machine mode cause the pc to be set to
  // the address in the BASE field, whereas interrupts cause the pc to be set to the address in
  // the BASE field plus four times the interrupt cause number."
  const tvec = w[S.MTVEC];
  let lo = tvec & ~3;
  let hi = w[S.MTVEC + 1];
  if (interrupt && (tvec & 3) === 1) {
    const sum = (lo >>> 0) + 4 * code;
    lo = sum | 0;
    if (sum > 0xffffffff) hi = (hi + 1) | 0;
  }
  h.pcLo = lo;
  h.pcHi = hi;
  w[S.HALTED] = 0;

  if (h.trapStreak >= TRAP_LOOP_LIMIT) h.reportTrapLoop();
}

/**
 * MRET (§3.3.2): "xIE is set to xPIE; the privilege mode is changed to y; xPIE is set to 1; and
 * xPP is set to the least-privileged supported mode" — M here, so MPP stays 3 and MPRV (which
 * would be cleared when leaving M) does not exist. The pc goes to mepc.
 */
export function mret(h: Hart): void {
  const w = h.w;
  const ms = w[S.MSTATUS];
  const mie = ms & MSTATUS_MPIE ? MSTATUS_MIE : 0;
  w[S.MSTATUS] = (ms & ~(MSTATUS_MIE | MSTATUS_MPIE)) | mie | MSTATUS_MPIE | MSTATUS_MPP_M;
  h.pcLo = w[S.MEPC] & ~3;
  h.pcHi = w[S.MEPC + 1];
}
