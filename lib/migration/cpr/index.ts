/**
 * cpr-transfer: upgrading the process under a running guest without copying its RAM. The CPR
 * state format (state.ts), the old process's side (source.ts) and the new one's
 * (destination.ts). The shared engine calls in through CprSourceHooks and CprIncomingHooks.
 * See docs/cpr.md.
 */
export { saveCprState, loadCprState, QEMU_CPR_FILE_MAGIC, QEMU_CPR_FILE_VERSION, CPR_FDS_MAX, CPR_NAME_MAX, type CprFd } from './state';
export {
  CprSource, checkCprTransfer, checkCprMode, cprTransferBlocker, cprRamFds, cprConflict,
  type CprHandover, type CprSourceHooks,
} from './source';
export { CprReceiver, CprState, type CprIncomingHooks } from './destination';
export { warmUpSave, warmUpLoad, warmUpSaving, warmUpLoading, WARM_UP_ROUNDS } from './warmup';
