/**
 * The board's devices and the shared-memory helpers they use. Every device follows one
 * pattern (docs/devices.md): `X.createShare(cfg)` once on the main thread gives plain,
 * postMessage-able data (SharedArrayBuffers and numbers); `new X(share, deps)` in every thread
 * builds the same device over that shared state.
 */
export { AtomicLock } from './atomic-lock';
export { SharedStruct, defineStruct, viaState } from './shared-struct';
export type { StructView, StructSpec, FieldSpec, ScalarType, ArrayType } from './shared-struct';
export { EffectQueue, Effect } from './effect-queue';
export type { EffectQueueShare, EffectHandler, Drainer } from './effect-queue';
export { monotonicClock, ManualClock } from './host-clock';
export type { HostClock } from './host-clock';
export { silentGuestLogger, stderrGuestLogger } from './guest-log';
export type { GuestLogger } from './guest-log';
export * from './uart16550-regs';
export { Uart16550 } from './uart16550';
export type { UartConfig, UartShare, UartDeps, Fifo8 } from './uart16550';
export { VMSTATE_UART, VMSTATE_SERIAL, VMSTATE_FIFO8 } from './uart16550-vmstate';
export * from './clint';
export * from './plic';
export * from './sifive-test';
