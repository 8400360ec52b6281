/**
 * The VMState sections of the virt board, named and ordered as QEMU's: per hart `cpu_common`
 * and `cpu`, then the CLINT's timer, the PLIC and the UART.
 */
import type { HartState } from './cpu';
import { cpuCommonVMState, cpuVMState } from './cpu';
import { VMSTATE_CLINT, VMSTATE_PLIC, VMSTATE_UART } from './devices';
import type { VirtDevices } from './virt-devices';
import type { VMStateDescription } from '../vmstate';

/** A VMState section the board migrates: QEMU's (idstr, instance id), description, object. */
export interface VmstateSection {
  idstr: string;
  instanceId: number;
  vmsd: VMStateDescription;
  opaque: unknown;
}

/** The sections over these harts and devices (live ones, or scratch copies for a dry run). */
export function virtSections(hartStates: readonly HartState[], devices: VirtDevices): VmstateSection[] {
  const out: VmstateSection[] = [];
  hartStates.forEach((hs, h) => {
    out.push({ idstr: 'cpu_common', instanceId: h, vmsd: cpuCommonVMState, opaque: hs });
    out.push({ idstr: 'cpu', instanceId: h, vmsd: cpuVMState, opaque: hs });
  });
  out.push({ idstr: 'riscv_mtimer', instanceId: 0, vmsd: VMSTATE_CLINT, opaque: devices.clint });
  out.push({ idstr: 'riscv_sifive_plic', instanceId: 0, vmsd: VMSTATE_PLIC, opaque: devices.plic });
  out.push({ idstr: 'serial', instanceId: 0, vmsd: VMSTATE_UART, opaque: devices.uart });
  return out;
}
