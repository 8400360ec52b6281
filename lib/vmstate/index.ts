/**
 * Declarative device state (QEMU's VMState): descriptions, save, load and the vmdesc JSON.
 * Devices describe their state with `F.*` field constructors; this layer does all encoding.
 * See docs/vmstate.md.
 */
export * from './types';
export { F } from './fields';
export type { FieldOpts } from './fields';
export { VMStateError } from './errors';
export type { VMStateErrorCode, VMStateErrorInfo } from './errors';
export { vmstateSave, sectionNeeded, VM_SUBSECTION } from './save';
export type { SaveOptions } from './save';
export { vmstateLoad } from './load';
export type { LoadOptions } from './load';
export { vmdescDevice, vmdescFile, vmdescToJson, encodeVmdesc, parseVmdesc } from './vmdesc';
export type { VmdescField, VmdescNode, VmdescDevice, VmdescFile } from './vmdesc';
export { SCALAR } from './scalar';
export type { ScalarSpec } from './scalar';
export { vmdescNames, vmdescType, fieldExists, isArrayField } from './walk';
