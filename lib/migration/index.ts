/**
 * The migration layer's public face: the manager (status, settings, run-state effects), the
 * engines it runs, the settings and their rules, QEMU's stream framing, and the analyzer.
 * See docs/migration.md.
 */
export { MigrationManager, type ManagerOptions, type MigrateOptions, type IncomingOptions, type MigrationRole } from './manager';
export { MigrationRunState } from './run-state';
export type { MigrationInfo, MigrationRamInfo, ListenSocketAddress } from './info';
export * from './options';
export { MIGRATION_STATUSES, MigrationState, isRunning, isTerminal, type MigrationStatus } from './state';
export { MigrationError, type MigrationErrorCode } from './errors';
export { OutgoingMigration, SwitchoverEstimator, switchoverThreshold, predictDowntime, SWITCHOVER_OVERHEAD_MS, type OutgoingDeps, type OutgoingStats } from './outgoing';
export { IncomingMigration, type IncomingDeps, type IncomingResult } from './incoming';
export { RUN_STATES, type RunState } from './globalstate';
export { VALIDATED_CAPABILITIES } from './configuration';
