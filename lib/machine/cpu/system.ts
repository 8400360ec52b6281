/**
 * The SYSTEM and MISC-MEM instructions that change machine state: ECALL, EBREAK, MRET, WFI and
 * FENCE.I (Zifencei). Like CSR accesses they end a translated block and run in the runtime.
 */
import type { Insn } from './decode';
import type { Hart } from './hart';
import { CAUSE, mret } from './trap';
import { execCsr } from './zicsr';

export function execSystem(h: Hart, insn: Insn): void {
  switch (insn.op) {
    case 'ecall':
      // "ECALL ... generates an environment-call-from-M-mode exception" (cause 11), mtval = 0.
      // It does not retire: mepc points at the ECALL itself.
      h.raise(CAUSE.ECALL_M, 0, 0);
      return;
    case 'ebreak':
      // Breakpoint, mtval = 0 (QEMU 7.2 leaves tval zero for EBREAK; the spec allows zero).
      h.raise(CAUSE.BREAKPOINT, 0, 0);
      return;
    case 'mret':
      h.n++;
      mret(h);
      return;
    case 'wfi':
      // "the WFI instruction ... provides a hint ... that the current hart can be stalled until
      // an interrupt might need servicing." It retires; if no enabled interrupt is pending
      // (mip & mie, whatever mstatus.MIE says) the hart halts and run() returns 'wfi'.
      h.advance();
      h.waitForInterrupt();
      return;
    case 'fence.i':
      // "FENCE.I ... ensures that a subsequent instruction fetch on a RISC-V hart will see any
      // previous data stores already visible to the same RISC-V hart." Our own stores already
      // invalidate the blocks they hit; other harts' stores we cannot see, so drop everything.
      h.advance();
      h.flushDecodeCache();
      return;
    case 'csrrw': case 'csrrs': case 'csrrc': case 'csrrwi': case 'csrrsi': case 'csrrci':
      execCsr(h, insn);
      return;
    default:
      h.raise(CAUSE.ILLEGAL_INSN, insn.bits | 0, 0);
  }
}
