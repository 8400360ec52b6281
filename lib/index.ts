/**
 * livemig as a library: build a machine, migrate it, take one in, ask how it went.
 *
 *   const { createMachine, migrate, acceptMigration, guestImage } = require('livemig');
 *   const src = await createMachine({ memSize: 256 << 20, smp: 2, kernel: guestImage('ab') });
 *   src.cont();
 *   const dst = await createMachine({ memSize: 256 << 20, smp: 2 });
 *   const incoming = await acceptMigration(dst, 'unix:/tmp/mig.sock');
 *   const info = await migrate(src, 'unix:/tmp/mig.sock');   // query-migrate once completed
 *   await incoming.done;                                     // the destination runs the guest
 *
 * For full control (cancel, pause-before-switchover, live parameter changes, events) use the
 * machine's MigrationManager: `migrationOf(machine)`. Everything here is what the `livemig`
 * command and its QMP monitor use.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { VirtMachine, type MachineOptions } from './machine';
import {
  MigrationError, MigrationManager,
  type MigrationCapabilityName, type MigrationInfo, type MigrationParametersInput, type ManagerOptions,
} from './migration';
import type { ListenAddress, MigrationAddress } from './transport';

export { VirtMachine, VirtMachine as Machine, RAM_BASE, machineTypes, type MachineOptions, type RunState } from './machine';
export {
  MigrationManager, MigrationOptions, MigrationError, MIGRATION_CAPABILITIES, CAPABILITY_SUPPORT, MIGRATION_STATUSES,
  type MigrationInfo, type MigrationStatus, type MigrationCapabilityName, type MigrationParameters,
  type MigrationParametersInput, type MigrationGlobals, type MigrationErrorCode,
} from './migration';
export { parseUri, formatAddress, type MigrationAddress, type ListenAddress } from './transport';

/** Build a virt machine, load its kernel and start its vCPU threads (parked: call cont()). */
export function createMachine(opts: MachineOptions): Promise<VirtMachine> {
  return VirtMachine.create(opts);
}

const managers = new WeakMap<VirtMachine, MigrationManager>();

/** The machine's migration manager (one per machine, made on first use). */
export function migrationOf(machine: VirtMachine, opts?: ManagerOptions): MigrationManager {
  let m = managers.get(machine);
  if (!m) {
    m = new MigrationManager(machine, opts);
    managers.set(machine, m);
  }
  return m;
}

export interface MigrationSettings {
  capabilities?: Partial<Record<MigrationCapabilityName, boolean>>;
  parameters?: MigrationParametersInput;
}

function apply(m: MigrationManager, s: MigrationSettings = {}): void {
  if (s.capabilities) m.options.setCapabilities(Object.entries(s.capabilities).map(([c, state]) => ({ capability: c as MigrationCapabilityName, state: !!state })));
  if (s.parameters) m.options.setParameters(s.parameters);
}

/**
 * Migrate `machine` to `target` (a URI such as "unix:/run/mig.sock", "tcp:host:port",
 * "file:/path" or "exec:cmd", or an address) and wait for the end. Resolves with query-migrate
 * once completed; rejects with a MigrationError if it failed or was cancelled, the guest
 * running again on this side as it was.
 */
export async function migrate(machine: VirtMachine, target: string | MigrationAddress, settings?: MigrationSettings): Promise<MigrationInfo> {
  const m = migrationOf(machine);
  apply(m, settings);
  await m.migrate(target);
  const status = await m.done();
  const info = m.query();
  if (status !== 'completed') throw new MigrationError('EMIG_PEER', `migration ${status}${info['error-desc'] ? `: ${info['error-desc']}` : ''}`);
  return info;
}

export interface Incoming {
  /** Where it listens (the real port for tcp port 0). */
  readonly addresses: readonly ListenAddress[];
  /** Resolves with query-migrate once the guest is loaded (and running, unless startPaused);
   * rejects if the load failed. */
  readonly done: Promise<MigrationInfo>;
}

/**
 * Take a migration in: listen on `target` and load the first stream that arrives into
 * `machine` (which must not have run). `startPaused` keeps the guest stopped afterwards, as
 * QEMU's -S does.
 */
export async function acceptMigration(
  machine: VirtMachine,
  target: string | MigrationAddress,
  opts: MigrationSettings & { startPaused?: boolean } = {},
): Promise<Incoming> {
  const m = migrationOf(machine, { startPaused: opts.startPaused });
  apply(m, opts);
  m.expectIncoming();
  await m.incoming(target, { exitOnError: false });
  const done = m.done().then((status) => {
    const info = m.query();
    if (status !== 'completed') throw new MigrationError('EMIG_PEER', `incoming migration ${status}${info['error-desc'] ? `: ${info['error-desc']}` : ''}`);
    return info;
  });
  done.catch(() => undefined);
  return { addresses: m.listenAddresses, done };
}

/** The bytes of a guest program shipped with livemig (guests/NAME.elf: ab, dirty, idle,
 * hello, smp-counter, trap, echo). */
export function guestImage(name: string): Uint8Array {
  const file = path.resolve(__dirname, '../../guests', `${name}.elf`);
  return fs.readFileSync(file);
}
