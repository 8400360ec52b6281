/**
 * VMState descriptions of a hart: the sections `cpu` and `cpu_common`, one pair per hart with
 * instance id = hart index, as QEMU's riscv `virt` sends them. Field names are QEMU's where the
 * concept matches (target/riscv/machine.c, include/hw/core/cpu.h); the field lists and version
 * numbers are our own (we start at 1), since we carry only what an M-mode RV64IMA hart has.
 * The opaque is the hart's HartState; the hart must be parked while these run.
 */
import { MIP_MEIP, MIP_MSIP, MIP_MTIP } from '../bus';
import { F, type FieldOpts } from '../../vmstate/fields';
import type { VMStateDescription } from '../../vmstate/types';
import { MISA_EXT, MISA_MXL } from './csr';
import { type HartState, S } from './state';

/** QEMU's CPU_INTERRUPT_HARD: set in interrupt_request while any mip bit is pending. */
export const CPU_INTERRUPT_HARD = 0x0002;

/** Typed accessors for the F.* constructors (which are not generic per call). */
function on(opts: FieldOpts<HartState>): FieldOpts<unknown> {
  return opts as FieldOpts<unknown>;
}

/** A uint64 field stored at `word` of the HartState. */
function u64(name: string, word: number): ReturnType<typeof F.uint64> {
  return F.uint64(name, on({ get: (s) => s.get64(word), set: (s, v) => s.set64(word, v as bigint) }));
}

export const cpuVMState: VMStateDescription<HartState> = {
  name: 'cpu',
  versionId: 1,
  minimumVersionId: 1,
  fields: [
    F.uint64Array('env.gpr', 32, on({
      get: (s) => Array.from({ length: 32 }, (_, i) => s.getX(i)),
      set: (s, v) => {
        const regs = v as ArrayLike<bigint>;
        for (let i = 1; i < 32; i++) s.setX(i, regs[i]);
      },
    })),
    u64('env.pc', S.PC),
    u64('env.load_res', S.LOAD_RES),
    u64('env.load_val', S.LOAD_VAL),
    // Configuration checks: a stream from a hart with other extensions must not load.
    F.uint32Equal('env.misa_mxl', { get: () => MISA_MXL }),
    F.uint32Equal('env.misa_ext', { get: () => MISA_EXT }),
    // Machine mode is the only privilege level there is.
    F.uint64Equal('env.priv', { get: () => 3n }),
    u64('env.resetvec', S.RESETVEC),
    u64('env.mhartid', S.MHARTID),
    u64('env.mstatus', S.MSTATUS),
    u64('env.mip', S.MIP),
    u64('env.mie', S.MIE),
    u64('env.mtvec', S.MTVEC),
    u64('env.mepc', S.MEPC),
    u64('env.mcause', S.MCAUSE),
    u64('env.mtval', S.MTVAL),
    u64('env.mcounteren', S.MCOUNTEREN),
    u64('env.mcountinhibit', S.MCOUNTINHIBIT),
    u64('env.mscratch', S.MSCRATCH),
    // Not in QEMU 7.2's section (its counters derive from host time); ours are exact state.
    u64('env.mcycle', S.MCYCLE),
    u64('env.minstret', S.MINSTRET),
  ],
  preSave: (s) => {
    // mip as QEMU keeps it: MSIP and MEIP as the lines show them now, MTIP as last sampled.
    if (s.lines) {
      const live = s.lines.get(Number(s.mhartid)) & (MIP_MSIP | MIP_MEIP);
      s.mip = BigInt(live | (Number(s.mip) & MIP_MTIP));
    }
  },
  postLoad: (s) => s.afterLoad(),
};

export const cpuCommonVMState: VMStateDescription<HartState> = {
  name: 'cpu_common',
  versionId: 1,
  minimumVersionId: 1,
  fields: [
    F.uint32('halted', on({
      get: (s) => (s.halted ? 1 : 0),
      set: (s, v) => {
        s.halted = (v as number) !== 0;
      },
    })),
    // Derived from mip on the way out; on the way in the hart recomputes it, so it is dropped.
    F.uint32('interrupt_request', on({
      get: (s) => (s.mip !== 0n ? CPU_INTERRUPT_HARD : 0),
      set: () => undefined,
    })),
  ],
  postLoad: (s) => s.invalidate(),
};
