/**
 * Migration parameters: QEMU's defaults and range rules (migration/options.c
 * migration_properties[] and migrate_params_check(), QEMU 10.x), typed.
 *
 * Checks run on the merged result (current values with the requested changes applied), so
 * raising cpu-throttle-initial above the current max-cpu-throttle is refused as QEMU refuses
 * it. Error texts are QEMU's, underscores included: QEMU names the C fields.
 *
 * Every parameter either acts as it does in QEMU for this machine or is refused. Some act on
 * nothing here as they act on nothing in QEMU for a machine like this one (announce-* with no
 * network card, xbzrle-cache-size while xbzrle is off, vcpu-dirty-limit without dirty-limit):
 * QEMU takes those and so do we. What would change behaviour we do not implement (TLS,
 * multifd compression) is refused where it would take effect.
 */
import { MigrationError } from '../errors';
import type { CapabilitySet } from './capabilities';

export type MigMode = 'normal' | 'cpr-reboot' | 'cpr-transfer' | 'cpr-exec';
export type ZeroPageDetection = 'none' | 'legacy' | 'multifd';
export type MultiFdCompression = 'none' | 'zlib' | 'zstd' | 'qatzip' | 'qpl' | 'uadk';

export interface BitmapAlias {
  'node-name': string;
  alias: string;
  bitmaps: Array<{ name: string; alias: string; transform?: { persistent?: boolean } }>;
}

/** Every parameter with its effective value (query-migrate-parameters). */
export interface MigrationParameters {
  'announce-initial': number;
  'announce-max': number;
  'announce-rounds': number;
  'announce-step': number;
  'throttle-trigger-threshold': number;
  'cpu-throttle-initial': number;
  'cpu-throttle-increment': number;
  'cpu-throttle-tailslow': boolean;
  'tls-creds': string;
  'tls-hostname': string;
  'tls-authz': string;
  /** bytes per second; 0 = unlimited */
  'max-bandwidth': number;
  'avail-switchover-bandwidth': number;
  /** milliseconds */
  'downtime-limit': number;
  'x-checkpoint-delay': number;
  'multifd-channels': number;
  'xbzrle-cache-size': number;
  'max-postcopy-bandwidth': number;
  'max-cpu-throttle': number;
  'multifd-compression': MultiFdCompression;
  'multifd-zlib-level': number;
  'multifd-qatzip-level': number;
  'multifd-zstd-level': number;
  /** unset until a client sets it; the empty list is a valid value */
  'block-bitmap-mapping'?: BitmapAlias[];
  'x-vcpu-dirty-limit-period': number;
  'vcpu-dirty-limit': number;
  mode: MigMode;
  'zero-page-detection': ZeroPageDetection;
  'direct-io': boolean;
  'cpr-exec-command': string[];
  /** livemig's own: how a postcopy destination places pages (postcopy/placement.ts) */
  'x-postcopy-placement': 'copy' | 'minor';
}

export type MigrationParameterName = keyof MigrationParameters;

/** migrate-set-parameters: any subset; TLS members may be null, which means "". */
export type MigrationParametersInput = {
  [K in MigrationParameterName]?: K extends 'tls-creds' | 'tls-hostname' | 'tls-authz' ? string | null : MigrationParameters[K];
};

/** The most multifd channels livemig opens: each is a thread on both sides (QEMU takes 255). */
export const MULTIFD_MAX_CHANNELS = 16;

/** riscv64 TARGET_PAGE_BITS is 12. */
export const TARGET_PAGE_SIZE = 4096;

/** QEMU MAX_MIGRATE_DOWNTIME: 2000 seconds, in milliseconds. */
export const MAX_MIGRATE_DOWNTIME = 2000 * 1000;

/** QEMU MAX_THROTTLE: the default max-bandwidth, 128 MiB/s. */
export const MAX_THROTTLE = 128 * 1024 * 1024;

export function defaultParameters(): MigrationParameters {
  return {
    'announce-initial': 50,
    'announce-max': 550,
    'announce-rounds': 5,
    'announce-step': 100,
    'throttle-trigger-threshold': 50,
    'cpu-throttle-initial': 20,
    'cpu-throttle-increment': 10,
    'cpu-throttle-tailslow': false,
    'tls-creds': '',
    'tls-hostname': '',
    'tls-authz': '',
    'max-bandwidth': MAX_THROTTLE,
    'avail-switchover-bandwidth': 0,
    'downtime-limit': 300,
    'x-checkpoint-delay': 200 * 100,
    'multifd-channels': 2,
    'xbzrle-cache-size': 64 * 1024 * 1024,
    'max-postcopy-bandwidth': 0,
    'max-cpu-throttle': 99,
    'multifd-compression': 'none',
    'multifd-zlib-level': 1,
    'multifd-qatzip-level': 1,
    'multifd-zstd-level': 1,
    'block-bitmap-mapping': undefined,
    'x-vcpu-dirty-limit-period': 1000,
    'vcpu-dirty-limit': 1,
    mode: 'normal',
    'zero-page-detection': 'multifd',
    'direct-io': false,
    'cpr-exec-command': [],
    'x-postcopy-placement': 'copy',
  };
}

/** migrate_params_test_apply(): the parameters as they would be after `set`. */
export function mergeParameters(cur: MigrationParameters, set: MigrationParametersInput): MigrationParameters {
  const next: MigrationParameters = { ...cur };
  for (const [k, v] of Object.entries(set)) {
    if (v === undefined) continue;
    // tls_opt_to_str(): null means "", which disables TLS.
    (next as unknown as Record<string, unknown>)[k] = v === null ? '' : v;
  }
  return next;
}

const fail = (text: string): never => {
  throw new MigrationError('EMIG_SETTING', text);
};

const isPowerOf2 = (n: number) => Number.isInteger(n) && n > 0 && 2 ** Math.round(Math.log2(n)) === n;

/** migrate_params_check(); `caps` are the current capabilities. Throws MigrationError. */
export function checkParameters(p: MigrationParameters, caps: CapabilitySet): void {
  if (p['throttle-trigger-threshold'] < 1 || p['throttle-trigger-threshold'] > 100) {
    fail('Option throttle_trigger_threshold expects an integer in the range of 1 to 100');
  }
  if (p['cpu-throttle-initial'] < 1 || p['cpu-throttle-initial'] > 99) {
    fail('Option cpu_throttle_initial expects an integer in the range of 1 to 99');
  }
  if (p['cpu-throttle-increment'] < 1 || p['cpu-throttle-increment'] > 99) {
    fail('Option cpu_throttle_increment expects an integer in the range of 1 to 99');
  }
  if (p['downtime-limit'] > MAX_MIGRATE_DOWNTIME) {
    // QEMU stringifies the macro, so the message really reads "(2000 * 1000)".
    fail('Option downtime_limit expects an integer in the range of 0 to (2000 * 1000) ms');
  }
  if (p['multifd-channels'] < 1) fail('Option multifd_channels expects a value between 1 and 255');
  if (p['multifd-zlib-level'] > 9) fail('Option multifd_zlib_level expects a value between 0 and 9');
  if (p['multifd-qatzip-level'] > 9 || p['multifd-qatzip-level'] < 1) {
    fail('Option multifd_qatzip_level expects a value between 1 and 9');
  }
  if (p['multifd-zstd-level'] > 20) fail('Option multifd_zstd_level expects a value between 0 and 20');
  if (p['xbzrle-cache-size'] < TARGET_PAGE_SIZE || !isPowerOf2(p['xbzrle-cache-size'])) {
    fail('Option xbzrle_cache_size expects a power of two no less than the target page size');
  }
  if (p['max-cpu-throttle'] < p['cpu-throttle-initial'] || p['max-cpu-throttle'] > 99) {
    // QEMU 10.x garbles this one ("max_Option cpu_throttle expects ..."), a slip of the
    // mechanical rewrite of QERR_INVALID_PARAMETER_VALUE; we print the intended text.
    fail('Option max_cpu_throttle expects an integer in the range of cpu_throttle_initial to 99');
  }
  if (p['announce-initial'] > 100000) fail('Option announce_initial expects a value between 0 and 100000');
  if (p['announce-max'] > 100000) fail('Option announce_max expects a value between 0 and 100000');
  if (p['announce-rounds'] > 1000) fail('Option announce_rounds expects a value between 0 and 1000');
  if (p['announce-step'] < 1 || p['announce-step'] > 10000) {
    fail('Option announce_step expects a value between 0 and 10000');
  }
  const compressed = p['multifd-compression'] !== 'none';
  const tls = p['tls-creds'] !== '';
  if (caps['zero-copy-send'] && (compressed || tls)) {
    fail('Zero copy only available for non-compressed non-TLS multifd migration');
  }
  if (caps['mapped-ram'] && (compressed || tls)) {
    fail('Mapped-ram only available for non-compressed non-TLS multifd migration');
  }
  if (p['x-vcpu-dirty-limit-period'] < 1 || p['x-vcpu-dirty-limit-period'] > 1000) {
    fail('Option x-vcpu-dirty-limit-period expects a value between 1 and 1000');
  }
  if (p['vcpu-dirty-limit'] < 1) fail("Parameter 'vcpu_dirty_limit' must be greater than 1 MB/s");
  if (p['block-bitmap-mapping'] !== undefined && p['block-bitmap-mapping'].length > 0) {
    // QEMU checks every node name against its block graph; this machine has no block nodes.
    fail(`Block node '${p['block-bitmap-mapping'][0]['node-name']}' not found`);
  }
}

/**
 * What a migration started with these parameters cannot do here (checked by `migrate` and
 * when an incoming migration starts). TLS wraps every channel, and no tls-creds object can
 * exist in livemig: QEMU's text for a missing object. Compression acts only on multifd
 * channels (QEMU ignores it without multifd, and so do we) and is not implemented.
 */
export function refusedParameters(p: MigrationParameters, caps: CapabilitySet): void {
  if (p['tls-creds'] !== '') fail(`No TLS credentials with id '${p['tls-creds']}'`);
  if (caps.multifd && p['multifd-channels'] > MULTIFD_MAX_CHANNELS) {
    fail(`multifd-channels ${p['multifd-channels']} is more than livemig runs (at most ${MULTIFD_MAX_CHANNELS}: one thread per channel on each side)`);
  }
  if (caps.multifd && p['multifd-compression'] !== 'none') {
    fail(`multifd-compression '${p['multifd-compression']}' is not supported by livemig (only 'none')`);
  }
}
