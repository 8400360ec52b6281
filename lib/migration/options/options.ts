/**
 * The migration settings of one machine: capabilities, parameters and `-global migration.*`
 * properties, stored with QEMU's defaults and validated with QEMU's rules (migration/options.c).
 * The migration manager owns this object; the monitor calls down into it, the engine reads
 * typed values from it and hears about live changes.
 *
 *   monitor ──migrate-set-capabilities──▶ setCapabilities ─┐ validate the whole new set,
 *   monitor ──migrate-set-parameters────▶ setParameters ───┤ then apply,
 *                                                          │ then notify
 *   engine  ◀──────────── subscribe(change) ◀──────────────┘ (max-bandwidth, downtime-limit…
 *                                                             act on a running migration)
 *
 * Capability changes are refused while a migration runs ("There's a migration process in
 * progress"); parameter changes apply at once, as in QEMU.
 */
import { MigrationError } from '../errors';
import {
  checkCapabilities, defaultCapabilities, MIGRATION_CAPABILITIES,
  type CapabilitySet, type MigrationCapabilityName, type MigrationHostSupport,
} from './capabilities';
import { defaultGlobals, type MigrationGlobalName, type MigrationGlobals } from './globals';
import {
  checkParameters, defaultParameters, mergeParameters,
  type MigrationParameterName, type MigrationParameters, type MigrationParametersInput,
} from './parameters';

export type OptionsChange =
  | { kind: 'capabilities'; changed: MigrationCapabilityName[] }
  | { kind: 'parameters'; changed: MigrationParameterName[] };

/** What the rules need to know of the migration's and the machine's state. */
export interface OptionsContext {
  /** a migration is under way (QEMU's migration_is_running) */
  migrationRunning(): boolean;
  /** an incoming migration has opened its transport */
  incomingStarted(): boolean;
  /** the machine's run state */
  runState(): string;
}

const idle: OptionsContext = { migrationRunning: () => false, incomingStarted: () => false, runState: () => 'running' };

export const MIGRATION_ACTIVE = "There's a migration process in progress";

export class MigrationOptions {
  private capsNow: CapabilitySet = defaultCapabilities();
  private paramsNow: MigrationParameters = defaultParameters();
  private globalsNow: MigrationGlobals;
  private readonly listeners = new Set<(c: OptionsChange) => void>();
  private readonly host: MigrationHostSupport;

  constructor(
    opts: { globals?: Partial<MigrationGlobals>; host?: MigrationHostSupport } = {},
    private context: OptionsContext = idle,
  ) {
    this.globalsNow = defaultGlobals(opts.globals);
    this.host = opts.host ?? {};
  }

  /** The manager binds the live state the rules consult. */
  bind(context: OptionsContext): void {
    this.context = context;
  }

  /* ---- reading ---- */

  get caps(): Readonly<CapabilitySet> {
    return this.capsNow;
  }

  get params(): Readonly<MigrationParameters> {
    return this.paramsNow;
  }

  get globals(): Readonly<MigrationGlobals> {
    return this.globalsNow;
  }

  capability(name: MigrationCapabilityName): boolean {
    return this.capsNow[name];
  }

  parameter<K extends MigrationParameterName>(name: K): MigrationParameters[K] {
    return this.paramsNow[name];
  }

  /** query-migrate-capabilities: every capability in QAPI order. */
  capabilityList(): Array<{ capability: MigrationCapabilityName; state: boolean }> {
    return MIGRATION_CAPABILITIES.map((capability) => ({ capability, state: this.capsNow[capability] }));
  }

  /** query-migrate-parameters: every member; block-bitmap-mapping only once set. */
  parameterValues(): MigrationParameters {
    const p: MigrationParameters = { ...this.paramsNow, 'cpr-exec-command': [...this.paramsNow['cpr-exec-command']] };
    if (p['block-bitmap-mapping'] === undefined) delete p['block-bitmap-mapping'];
    return p;
  }

  /* ---- changing ---- */

  /** qmp_migrate_set_capabilities(): all or nothing. Throws MigrationError('EMIG_SETTING'). */
  setCapabilities(list: ReadonlyArray<{ capability: MigrationCapabilityName; state: boolean }>): void {
    if (this.context.migrationRunning()) throw new MigrationError('EMIG_SETTING', MIGRATION_ACTIVE);
    const next = { ...this.capsNow };
    for (const c of list) next[c.capability] = c.state;
    checkCapabilities(this.capsNow, next, {
      runState: this.context.runState(),
      incomingStarted: this.context.incomingStarted(),
      multifdCompression: this.paramsNow['multifd-compression'],
      tls: this.paramsNow['tls-creds'] !== '',
    }, this.host);
    const changed = MIGRATION_CAPABILITIES.filter((c) => next[c] !== this.capsNow[c]);
    this.capsNow = next;
    if (changed.length) this.notify({ kind: 'capabilities', changed });
  }

  /** qmp_migrate_set_parameters(): check the merged result, then apply. */
  setParameters(set: MigrationParametersInput): void {
    const next = mergeParameters(this.paramsNow, set);
    checkParameters(next, this.capsNow);
    const changed = (Object.keys(set) as MigrationParameterName[]).filter((k) => set[k] !== undefined);
    this.paramsNow = next;
    if (changed.length) this.notify({ kind: 'parameters', changed });
  }

  /** `-global migration.NAME=VALUE`: before anything runs. */
  setGlobal(name: MigrationGlobalName, value: boolean): void {
    this.globalsNow = { ...this.globalsNow, [name]: value };
  }

  subscribe(listener: (c: OptionsChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private notify(c: OptionsChange): void {
    for (const l of [...this.listeners]) {
      try {
        l(c);
      } catch {
        // A listener's failure must not undo a change the client was told succeeded.
      }
    }
  }
}
