/**
 * What a virt machine migrates, shaped by the migration options: the section list (QEMU's
 * savevm handlers), the configuration section and the stream's framing properties.
 */
import type { VirtMachine, VmstateSection } from '../machine/virt';
import { ConfigurationState, VALIDATED_CAPABILITIES } from './configuration';
import { GlobalState, VMSTATE_GLOBALSTATE, type RunState } from './globalstate';
import type { MigrationOptions } from './options';
import type { LiveHandler } from './registry';
import { SectionRegistry } from './registry';
import type { StreamFormat } from './savevm';
import { RAM_IDSTR, RAM_SECTION_VERSION } from './wire';

/**
 * The sections a virt machine migrates, registered in QEMU's order: `ram` (live), then per hart
 * `cpu_common` + `cpu`, the devices, and `globalstate` last (left out with
 * `-global migration.store-global-state=off`, as QEMU's needed() does).
 */
export function machineRegistry(
  machine: VirtMachine,
  ram: LiveHandler,
  global: GlobalState,
  options?: MigrationOptions,
  sections: readonly VmstateSection[] = machine.vmstateSections(),
): SectionRegistry {
  const reg = new SectionRegistry();
  reg.registerLive(RAM_IDSTR, 0, RAM_SECTION_VERSION, ram);
  for (const s of sections) reg.registerVmsd(s.idstr, s.instanceId, s.vmsd, s.opaque);
  const store = options?.globals['store-global-state'] ?? true;
  reg.registerVmsd('globalstate', 0, { ...VMSTATE_GLOBALSTATE, needed: () => store }, global);
  return reg;
}

export function configurationFor(machine: VirtMachine, options?: MigrationOptions): ConfigurationState {
  const caps = options ? VALIDATED_CAPABILITIES.filter((c) => options.capability(c)) : [];
  return new ConfigurationState(machine.type.name, caps, machine.uuid, options?.capability('validate-uuid') ?? false);
}

export function globalStateFor(current: () => RunState): GlobalState {
  return new GlobalState(current);
}

export function streamFormat(options?: MigrationOptions): StreamFormat {
  const g = options?.globals;
  return {
    sendConfiguration: g?.['send-configuration'] ?? true,
    sendSectionFooter: g?.['send-section-footer'] ?? true,
    sendSwitchoverStart: g?.['send-switchover-start'] ?? true,
  };
}
