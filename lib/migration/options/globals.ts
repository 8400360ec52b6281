/**
 * Properties of QEMU's "migration" object, set with `-global migration.NAME=VALUE`
 * (migration/options.c migration_properties[]), and the machine-type compat that changes
 * their defaults (QEMU's hw_compat_* lists: an older machine type turns off what an older
 * QEMU did not send, so a stream from a new livemig loads on an old one).
 *
 * Only the properties that change the stream are offered, each one acted on:
 *   store-global-state     send the `globalstate` section (the source's run state)
 *   send-configuration     send the configuration section after the header
 *   send-section-footer    close every section with 0x7e + section id
 *   send-switchover-start  send QEMU_VM_COMMAND SWITCHOVER_START at switchover
 *                          (off for virt-1.0, as QEMU turns it off for ≤ 9.2 machines)
 *   only-migratable        refuse devices that cannot migrate: every device here can, so it
 *                          holds whichever way it is set
 * Anything else is refused with QEMU's "Property 'migration.X' not found".
 */
import { MigrationError } from '../errors';

export interface MigrationGlobals {
  'store-global-state': boolean;
  'only-migratable': boolean;
  'send-configuration': boolean;
  'send-section-footer': boolean;
  'send-switchover-start': boolean;
}

export type MigrationGlobalName = keyof MigrationGlobals;

/** Defaults for a machine type's compat set (see machine-types.ts). */
export function defaultGlobals(compat: Partial<MigrationGlobals> = {}): MigrationGlobals {
  return {
    'store-global-state': true,
    'only-migratable': false,
    'send-configuration': true,
    'send-section-footer': true,
    'send-switchover-start': true,
    ...compat,
  };
}

const fail = (text: string): never => {
  throw new MigrationError('EMIG_SETTING', text);
};

/** QEMU's bool property parser (qapi/qobject-input-visitor: on/off, yes/no, true/false). */
function parseBoolProperty(name: string, v: string): boolean {
  if (['on', 'yes', 'true'].includes(v)) return true;
  if (['off', 'no', 'false'].includes(v)) return false;
  return fail(`Parameter '${name}' expects 'on' or 'off'`);
}

/**
 * One `-global` argument: `migration.NAME=VALUE` (QEMU also takes `driver=migration,
 * property=NAME,value=VALUE`). Returns the property and its value; properties of other
 * drivers are refused, since no other device takes globals here.
 */
export function parseMigrationGlobal(arg: string): { name: MigrationGlobalName; value: boolean } {
  let driver: string;
  let prop: string;
  let value: string;
  const dotted = /^([^.=,]+)\.([^=,]+)=(.*)$/.exec(arg);
  if (dotted) {
    [, driver, prop, value] = dotted;
  } else {
    const kv = new Map(arg.split(',').map((p) => p.split('=', 2) as [string, string]));
    driver = kv.get('driver') ?? '';
    prop = kv.get('property') ?? '';
    value = kv.get('value') ?? '';
    if (!driver || !prop || !kv.has('value')) fail(`Invalid -global '${arg}': use DRIVER.PROPERTY=VALUE`);
  }
  if (driver !== 'migration') fail(`-global ${driver}.${prop}: no device '${driver}' takes global properties here`);
  const name = prop as MigrationGlobalName;
  if (!(name in defaultGlobals())) fail(`Property 'migration.${prop}' not found`);
  return { name, value: parseBoolProperty(prop, value) };
}
