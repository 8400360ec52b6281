/**
 * The machine layer's public face: the virt board, its RAM blocks and machine types.
 * See docs/devices.md and docs/ARCHITECTURE.md (the board, threads and memory).
 */
export { VirtMachine, RAM_BASE, RAM_BLOCK_NAME, MROM_BLOCK_NAME, MIN_RAM, MAX_RAM, type MachineOptions, type RunState, type VmstateSection } from './virt';
export { RamBlock, type RamBlockOptions } from './ram';
export { machineTypes, resolveMachineType, type MachineType } from './machine-types';
export type { DirtyLog } from './dirty';
