/**
 * Zicsr: CSRRW, CSRRS, CSRRC and their immediate forms. They end a translated block and run
 * here, in the runtime, because a CSR write can change what the next instruction may do
 * (interrupt enables, mtvec, counters) — QEMU likewise exits the TB after every CSR access.
 *
 * Access rules (unprivileged spec, Zicsr chapter, "CSR Instructions"):
 * - "If rd=x0, then the instruction shall not read the CSR and shall not cause any of the side
 *   effects that might occur on a CSR read" (CSRRW/CSRRWI).
 * - "For both CSRRS and CSRRC, if rs1=x0, then the instruction will not write to the CSR at all,
 *   and so shall not cause any of the side effects that might otherwise occur on a CSR write,
 *   nor raise illegal-instruction exceptions on accesses to read-only CSRs." The same holds for
 *   CSRRSI/CSRRCI with uimm = 0. A non-zero rs1 that happens to hold 0 still writes.
 * - A write to a read-only CSR, or any access to a CSR that does not exist, raises an
 *   illegal-instruction exception with the instruction bits in mtval, and changes nothing.
 */
import type { Insn } from './decode';
import { csrExists, csrRead, csrReadOnly, csrWrite } from './csr';
import type { Hart } from './hart';
import { hi32, lo32, toU64 } from './int64';
import { CAUSE } from './trap';

export function execCsr(h: Hart, insn: Insn): void {
  const num = insn.csr;
  const imm = insn.op === 'csrrwi' || insn.op === 'csrrsi' || insn.op === 'csrrci';
  const src = imm ? BigInt(insn.imm) : toU64(h.x[2 * insn.rs1], h.x[2 * insn.rs1 + 1]);
  const isRw = insn.op === 'csrrw' || insn.op === 'csrrwi';
  const writes = isRw || insn.rs1 !== 0; // rs1 field = uimm for the immediate forms
  const reads = !isRw || insn.rd !== 0;

  if (!csrExists(num) || (writes && csrReadOnly(num))) {
    h.raise(CAUSE.ILLEGAL_INSN, insn.bits | 0, 0);
    return;
  }
  const old = reads ? csrRead(h, num) : 0n;
  if (writes) {
    let v: bigint;
    if (isRw) v = src;
    else if (insn.op === 'csrrs' || insn.op === 'csrrsi') v = old | src;
    else v = old & ~src;
    csrWrite(h, num, v);
  }
  if (insn.rd !== 0) {
    h.x[2 * insn.rd] = lo32(old);
    h.x[2 * insn.rd + 1] = hi32(old);
  }
  h.advance();
}
