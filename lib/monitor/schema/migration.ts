/** Migration commands and events (qapi/migration.json, QEMU 10.2). */

import {
  MigrationCapabilityStatus, MigrationChannel, MigrationInfo, MigrationParameters, MigrationStatus,
} from './migration-types';
import { args, bool, command, event, int, list, opt, req, str, struct } from './types';

export const migrate = command('migrate', {
  args: args('migrate', {
    uri: opt(str, 'the Uniform Resource Identifier of the destination VM'),
    channels: opt(list(MigrationChannel), "migration stream channels: 'main' and, for cpr-transfer, 'cpr'"),
    detach: opt(bool, 'exists only for compatibility reasons and is ignored'),
    resume: opt(bool, 'resume one paused migration, default "off"'),
  }),
  doc: "Migrates the current running guest to another VM. Exactly one of 'uri' and 'channels'.",
});

export const migrateIncoming = command('migrate-incoming', {
  args: args('migrate-incoming', {
    uri: opt(str, 'the URI identifying the source or address to listen on'),
    channels: opt(list(MigrationChannel), 'one main migration channel'),
    'exit-on-error': opt(bool, 'exit on incoming migration failure; default true'),
  }),
  doc: 'Start an incoming migration; the VM must have been started with -incoming defer.',
});

export const migrateCancel = command('migrate_cancel', {
  doc: 'Cancel the current executing migration process. Succeeds even if none is running.',
});

export const migrateContinue = command('migrate-continue', {
  args: args('migrate-continue', {
    state: req(MigrationStatus, 'The state the migration is currently expected to be in'),
  }),
  doc: "Continue migration when it's in a paused state.",
});

export const migrateSetCapabilities = command('migrate-set-capabilities', {
  args: args('migrate-set-capabilities', {
    capabilities: req(list(MigrationCapabilityStatus), 'json array of capability modifications to make'),
  }),
  doc: 'Enable/Disable the following migration capabilities (like xbzrle).',
});

export const queryMigrateCapabilities = command('query-migrate-capabilities', {
  returns: list(MigrationCapabilityStatus),
  doc: 'Returns information about the current migration capabilities status.',
});

/** Boxed: the arguments object is the MigrationParameters struct itself. */
export const migrateSetParameters = command('migrate-set-parameters', {
  args: MigrationParameters,
  doc: 'Set various migration parameters.',
});

export const queryMigrateParameters = command('query-migrate-parameters', {
  returns: MigrationParameters,
  doc: 'Returns information about the current migration parameters.',
});

export const queryMigrate = command('query-migrate', {
  returns: MigrationInfo,
  doc: 'Returns information about current migration process.',
});

export const migrateStartPostcopy = command('migrate-start-postcopy', {
  doc: 'Followup to a migration command to switch the migration to postcopy mode.',
});

export const migrateRecover = command('migrate-recover', {
  args: args('migrate-recover', { uri: req(str, 'the URI to be used for the recovery of migration stream') }),
  allowOob: true,
  doc: 'Provide a recovery migration stream URI.',
});

export const migratePause = command('migrate-pause', {
  allowOob: true,
  doc: 'Pause a migration. Currently it only supports postcopy.',
});

export const MIGRATION = event('MIGRATION', {
  data: struct('q_obj_MIGRATION-arg', { status: req(MigrationStatus, 'the current migration status') }),
  doc: "Emitted when a migration event happens (only with the 'events' capability).",
});

export const MIGRATION_PASS = event('MIGRATION_PASS', {
  data: struct('q_obj_MIGRATION_PASS-arg', { pass: req(int, 'An incrementing count (starting at 1 on the first pass)') }),
  doc: 'Emitted from the source side at the start of each pass (when it syncs the dirty bitmap).',
});
