/**
 * The RISC-V hart: RV64IMA + Zicsr + Zifencei, machine mode only. This is the folder's public
 * face; see hart.ts for the run loop and state.ts for the shared state layout.
 */
export { Hart } from './hart';
export type { ExitReason, HartOptions, RunExit, TrapLoopInfo } from './hart';
export {
  HartState,
  HART_STATE_BYTES,
  DEFAULT_RESET_VECTOR,
  S as HART_STATE_WORDS,
  MSTATUS_MIE,
  MSTATUS_MPIE,
  MSTATUS_MPP_M,
} from './state';
export type { HartStateOptions } from './state';
export { cpuVMState, cpuCommonVMState, CPU_INTERRUPT_HARD } from './vmstate';
export { CAUSE, IRQ, TRAP_LOOP_LIMIT } from './trap';
export { CSR, MISA, MISA_EXT, MISA_MXL } from './csr';
export { decode } from './decode';
export type { Insn, Mnemonic } from './decode';
export { Asm, enc, REG, liWords } from './encode';
