/**
 * What the engine reads of the migration capabilities and parameters. The monitor owns their
 * storage and validation (QEMU's rules: ranges, dependencies, "not while migrating"); the
 * engine only reads effective values, and hears about live changes (max-bandwidth,
 * downtime-limit apply to a running migration).
 */
import { SectionRegistry } from './registry';
import { ConfigurationState } from './configuration';
import { GlobalState, VMSTATE_GLOBALSTATE, type RunState } from './globalstate';
import type { VirtMachine } from '../machine/virt';
import type { LiveHandler } from './registry';
import { RAM_IDSTR, RAM_SECTION_VERSION } from './wire';

export interface MigrationSettings {
  capability(name: string): boolean;
  parameter(name: string): unknown;
  subscribe?(listener: (c: { kind: 'capabilities' | 'parameters'; changed: string[] }) => void): () => void;
}

/** Plain defaults, for library use and tests (QEMU's defaults). */
export class DefaultSettings implements MigrationSettings {
  caps = new Map<string, boolean>();
  params = new Map<string, unknown>([
    ['max-bandwidth', 128 * 1024 * 1024],
    ['downtime-limit', 300],
    ['throttle-trigger-threshold', 50],
    ['cpu-throttle-initial', 20],
    ['cpu-throttle-increment', 10],
    ['max-cpu-throttle', 99],
    ['zero-page-detection', 'multifd'],
    ['avail-switchover-bandwidth', 0],
    ['multifd-channels', 2],
  ]);
  capability(name: string): boolean {
    return this.caps.get(name) ?? false;
  }
  parameter(name: string): unknown {
    return this.params.get(name);
  }
}

export function numParam(s: MigrationSettings, name: string): number {
  const v = s.parameter(name);
  return typeof v === 'number' ? v : Number(v ?? 0);
}

/**
 * The sections a virt machine migrates, registered in QEMU's order: `ram` (live), then per hart
 * `cpu_common` + `cpu`, the devices, and `globalstate` last.
 */
export function machineRegistry(machine: VirtMachine, ram: LiveHandler, global: GlobalState): SectionRegistry {
  const reg = new SectionRegistry();
  reg.registerLive(RAM_IDSTR, 0, RAM_SECTION_VERSION, ram);
  for (const s of machine.vmstateSections()) reg.registerVmsd(s.idstr, s.instanceId, s.vmsd, s.opaque);
  reg.registerVmsd('globalstate', 0, VMSTATE_GLOBALSTATE, global);
  return reg;
}

export function configurationFor(machine: VirtMachine): ConfigurationState {
  return new ConfigurationState(machine.type.name);
}

export function globalStateFor(current: () => RunState): GlobalState {
  return new GlobalState(current);
}
