/**
 * livemig's own VMState descriptions, by section idstr, for decoding streams without a vmdesc.
 *
 * No machine is started: the board's devices are built the way VirtMachine builds them
 * (createVirtShares + buildVirtDevices, HartState.create — plain objects over shared memory,
 * no vCPU threads, no RAM) and serve as *shapes*: the objects a description's `numFrom` /
 * `exists` hooks ask for counts (harts, PLIC sources and contexts). Nothing is loaded into
 * them. The sections and their order mirror VirtMachine.vmstateSections() plus `globalstate`;
 * a test checks this table against a real machine's list.
 *
 * The number of harts is not in the stream; it is taken from the `cpu` sections seen so far
 * (each hart sends `cpu_common` + `cpu` with instance id = hart index, before the board's
 * devices), and the board shape is rebuilt when a higher hart index appears.
 */
import { HartState, cpuCommonVMState, cpuVMState } from '../../machine/cpu';
import { VMSTATE_CLINT, VMSTATE_PLIC, VMSTATE_UART } from '../../machine/devices';
import { resolveMachineType } from '../../machine/machine-types';
import { buildVirtDevices, createVirtShares, type VirtDevices } from '../../machine/virt-devices';
import type { VMStateDescription } from '../../vmstate';
import { GlobalState, VMSTATE_GLOBALSTATE } from '../globalstate';

/** QEMU virt's VIRT_CPUS_MAX: a `cpu` instance at or above it is no hart of this board (and
 * the shape is not built for it: its size follows the hart count). */
export const HARTS_MAX = 512;

export interface KnownSection {
  readonly vmsd: VMStateDescription;
  /** The object the description's hooks read counts from (never written). */
  readonly shape: unknown;
}

/** idstr → description, for every section livemig's virt board sends. */
export const LIVEMIG_SECTION_VMSDS: ReadonlyMap<string, VMStateDescription> = new Map<string, VMStateDescription>([
  ['cpu_common', cpuCommonVMState],
  ['cpu', cpuVMState],
  ['riscv_mtimer', VMSTATE_CLINT],
  ['riscv_sifive_plic', VMSTATE_PLIC],
  ['serial', VMSTATE_UART],
  ['globalstate', VMSTATE_GLOBALSTATE],
]);

export class LivemigDescriptions {
  private harts = 1;
  private board: VirtDevices | null = null;
  private readonly hartShapes = new Map<number, HartState>();
  private readonly globalstate = new GlobalState(() => 'paused');

  constructor(private readonly machineType = 'virt') {}

  /** The description and shape for a section, or undefined if livemig has none. */
  find(idstr: string, instanceId: number): KnownSection | undefined {
    const vmsd = LIVEMIG_SECTION_VMSDS.get(idstr);
    if (!vmsd) return undefined;
    switch (idstr) {
      case 'cpu_common':
      case 'cpu':
        if (instanceId >= HARTS_MAX) return undefined;
        if (instanceId + 1 > this.harts) {
          this.harts = instanceId + 1;
          this.board = null;
        }
        return { vmsd, shape: this.hart(instanceId) };
      case 'riscv_mtimer':
        return instanceId === 0 ? { vmsd, shape: this.devices().clint } : undefined;
      case 'riscv_sifive_plic':
        return instanceId === 0 ? { vmsd, shape: this.devices().plic } : undefined;
      case 'serial':
        return instanceId === 0 ? { vmsd, shape: this.devices().uart } : undefined;
      case 'globalstate':
        return instanceId === 0 ? { vmsd, shape: this.globalstate } : undefined;
      default:
        return undefined;
    }
  }

  private hart(h: number): HartState {
    let s = this.hartShapes.get(h);
    if (!s) {
      s = HartState.create(h);
      this.hartShapes.set(h, s);
    }
    return s;
  }

  private devices(): VirtDevices {
    if (!this.board) {
      let compat;
      try {
        compat = resolveMachineType(this.machineType).compat.clint;
      } catch {
        compat = resolveMachineType('virt').compat.clint;
      }
      this.board = buildVirtDevices(createVirtShares(this.harts, compat));
    }
    return this.board;
  }
}
