/**
 * Migration capabilities, parameters and "-global migration.*" properties: storage with
 * QEMU's defaults and validation, shared by the monitor (which sets and queries them) and
 * the migration engine (which reads the effective values and reports its state here).
 *
 *   monitor ──migrate-set-capabilities──▶ MigrationConfig.setCapabilities ─┐ validate,
 *   monitor ──migrate-set-parameters────▶ MigrationConfig.setParameters ───┤ then apply,
 *                                                                           │ then notify
 *   engine  ◀──────────── subscribe(change) ◀──────────────────────────────┘
 *   engine  ───setOutgoingStatus/markIncomingStarted/setRunState──▶ (rules consult these)
 *   engine  ───caps / params / globals (read) ─────────────────────────────
 *
 * QEMU keeps these in MigrationState (migration/options.c); capability changes are refused
 * while a migration runs ("There's a migration process in progress"), parameter changes
 * apply at once (max-bandwidth and friends take effect on a running migration).
 */

import { isRunning } from '../migration/state';
import { QERR, genericError } from './errors';
import type { RunStateName } from './backend';
import {
  CapabilitySet, MigrationCapabilityName, MigrationHostSupport, checkCapabilities, defaultCapabilities,
} from './migration-caps';
import {
  MigrationParameterName, MigrationParameterValues, checkParameters, defaultParameters, mergeParameters,
} from './migration-params';
import { MigrationCapability, type ArgsOf, type ReturnOf } from './schema';

export type MigrationStatusName = ArgsOf<'migrate-continue'>['state'];
export type MigrationParametersInput = ArgsOf<'migrate-set-parameters'>;
export type MigrationCapabilityStatus = ReturnOf<'query-migrate-capabilities'>[number];

/**
 * migration_is_running(): the outgoing states in which capabilities are frozen and a new
 * 'migrate' is refused (the engine's own list).
 */
export function isMigrationRunning(status: MigrationStatusName): boolean {
  return isRunning(status);
}

/** Properties of QEMU's "migration" object, settable with -global migration.NAME=VALUE. */
export interface MigrationGlobals {
  'store-global-state': boolean;
  'only-migratable': boolean;
  'send-configuration': boolean;
  'send-section-footer': boolean;
  'send-switchover-start': boolean;
  'clear-bitmap-shift': number;
  'multifd-flush-after-each-section': boolean;
  'x-preempt-pre-7-2': boolean;
}

export function defaultGlobals(): MigrationGlobals {
  return {
    'store-global-state': true,
    'only-migratable': false,
    'send-configuration': true,
    'send-section-footer': true,
    'send-switchover-start': true,
    'clear-bitmap-shift': 18, // CLEAR_BITMAP_SHIFT_DEFAULT
    'multifd-flush-after-each-section': false,
    'x-preempt-pre-7-2': false,
  };
}

export type ConfigChange =
  | { kind: 'capabilities'; changed: MigrationCapabilityName[] }
  | { kind: 'parameters'; changed: MigrationParameterName[] };

export class MigrationConfig {
  private caps: CapabilitySet = defaultCapabilities();
  private params: MigrationParameterValues = defaultParameters();
  private blockBitmapMappingSet = false;
  private readonly listeners = new Set<(c: ConfigChange) => void>();
  private outgoing: MigrationStatusName = 'none';
  private incomingStarted = false;
  private runState: RunStateName = 'running';
  readonly globals: MigrationGlobals = defaultGlobals();

  constructor(private readonly host: MigrationHostSupport = {}) {}

  /* ---- what the engine reports ---- */

  setOutgoingStatus(status: MigrationStatusName): void {
    this.outgoing = status;
  }

  markIncomingStarted(started = true): void {
    this.incomingStarted = started;
  }

  setRunState(state: RunStateName): void {
    this.runState = state;
  }

  get outgoingStatus(): MigrationStatusName {
    return this.outgoing;
  }

  /* ---- capabilities ---- */

  capability(name: MigrationCapabilityName): boolean {
    return this.caps[name];
  }

  /** query-migrate-capabilities: every capability, in QAPI order. */
  capabilities(): MigrationCapabilityStatus[] {
    return MigrationCapability.values.map((capability) => ({ capability, state: this.caps[capability] }));
  }

  /** qmp_migrate_set_capabilities(): all or nothing. Throws QmpError. */
  setCapabilities(list: ReadonlyArray<{ capability: MigrationCapabilityName; state: boolean }>): void {
    if (isMigrationRunning(this.outgoing)) throw genericError(QERR.migrationActive);
    const next = { ...this.caps };
    for (const c of list) next[c.capability] = c.state;
    checkCapabilities(this.caps, next, {
      runState: this.runState,
      incomingStarted: this.incomingStarted,
      multifdCompression: this.params['multifd-compression'],
      tls: this.params['tls-creds'] !== '',
    }, this.host);
    const changed = MigrationCapability.values.filter((c) => next[c] !== this.caps[c]);
    this.caps = next;
    if (changed.length) this.notify({ kind: 'capabilities', changed });
  }

  /* ---- parameters ---- */

  /** The effective value of one parameter. */
  parameter<K extends MigrationParameterName>(name: K): MigrationParameterValues[K] {
    return this.params[name];
  }

  /** All effective values (a copy). */
  effectiveParameters(): MigrationParameterValues {
    return { ...this.params, 'cpr-exec-command': [...this.params['cpr-exec-command']] };
  }

  /**
   * query-migrate-parameters: every member present, TLS as strings, and
   * block-bitmap-mapping only once it has been set (QEMU keeps the old API shape).
   */
  parameters(): ReturnOf<'query-migrate-parameters'> {
    const p: Record<string, unknown> = this.effectiveParameters();
    if (!this.blockBitmapMappingSet) delete p['block-bitmap-mapping'];
    return p as ReturnOf<'query-migrate-parameters'>;
  }

  /** qmp_migrate_set_parameters(): check the merged result, then apply. Throws QmpError. */
  setParameters(set: MigrationParametersInput): void {
    const next = mergeParameters(this.params, set);
    checkParameters(next, this.caps);
    const changed = (Object.keys(set) as MigrationParameterName[]).filter((k) => set[k] !== undefined);
    if (set['block-bitmap-mapping'] !== undefined) this.blockBitmapMappingSet = true;
    this.params = next;
    if (changed.length) this.notify({ kind: 'parameters', changed });
  }

  /** TLS is on when tls-creds names an object (migrate_tls()). */
  tlsEnabled(): boolean {
    return this.params['tls-creds'] !== '';
  }

  /* ---- change notification ---- */

  subscribe(listener: (c: ConfigChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private notify(c: ConfigChange): void {
    for (const l of [...this.listeners]) {
      try {
        l(c);
      } catch {
        // A listener's failure must not undo a change the client was told succeeded.
      }
    }
  }
}

export type { MigrationCapabilityName, MigrationHostSupport, CapabilitySet } from './migration-caps';
export type { MigrationParameterName, MigrationParameterValues } from './migration-params';
export { TARGET_PAGE_SIZE, MAX_MIGRATE_DOWNTIME, defaultParameters } from './migration-params';
export { defaultCapabilities } from './migration-caps';
