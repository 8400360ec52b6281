/** Capabilities, parameters and `-global migration.*` properties: typed, with QEMU's rules. */
export {
  MIGRATION_CAPABILITIES, CAPABILITY_SUPPORT, defaultCapabilities, checkCapabilities,
  type CapabilitySet, type MigrationCapabilityName, type MigrationHostSupport, type CapabilityCheckContext,
} from './capabilities';
export {
  defaultParameters, mergeParameters, checkParameters, refusedParameters, TARGET_PAGE_SIZE, MAX_MIGRATE_DOWNTIME, MAX_THROTTLE,
  type MigrationParameters, type MigrationParameterName, type MigrationParametersInput, type MigMode,
  type ZeroPageDetection, type MultiFdCompression, type BitmapAlias,
} from './parameters';
export { defaultGlobals, parseMigrationGlobal, type MigrationGlobals, type MigrationGlobalName } from './globals';
export { MigrationOptions, MIGRATION_ACTIVE, type OptionsChange, type OptionsContext } from './options';
