export { OutgoingMigration } from './outgoing';
export type { OutgoingDeps, OutgoingStats } from './context';
export { SwitchoverEstimator, switchoverThreshold, predictDowntime, SWITCHOVER_OVERHEAD_MS, BUFFER_DELAY_MS } from './estimator';
export { ReturnPathReader, type RpHandler } from './return-path';
