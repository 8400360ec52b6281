/**
 * The configuration section (QEMU savevm.c vmstate_configuration), written right after the
 * header with no section header of its own:
 *
 *   0x07 │ be32 len │ name[len] │ subsection*     name = machine type, no NUL
 *   subsection "configuration/capabilities": be32 count, count × cstr8 capability
 *     (only capabilities QEMU validates across the two ends: x-ignore-shared, mapped-ram)
 *
 * Machine types: our types are versions of one board ("virt-1.0", "virt-2.0"). QEMU refuses a
 * machine type that differs from its own; its check compares only the received length, so a
 * bare "virt" (what QEMU 7.2 writes for riscv) matches any of ours. We accept any version of
 * the same board — newer state is gated by subsections whose `needed` follows the machine type
 * (docs/devices.md: the compat rule) — and refuse another board.
 */
import { F, type VMStateDescription } from '../vmstate';
import { MigrationError } from './errors';

/** Capabilities that must be equal on both ends (QEMU's migrate_cap_validated list). */
export const VALIDATED_CAPABILITIES = ['x-ignore-shared', 'mapped-ram'] as const;

export class ConfigurationState {
  len = 0;
  name: Uint8Array = new Uint8Array(0);
  capsCount = 0;

  constructor(
    /** Our machine type, e.g. "virt-2.0". */
    readonly machineType: string,
  ) {}

  /** The board family: "virt-2.0" → "virt". */
  static family(type: string): string {
    return type.replace(/-\d+(\.\d+)*$/, '');
  }
}

const VMSTATE_CAPABILITIES: VMStateDescription<ConfigurationState> = {
  name: 'configuration/capabilities',
  versionId: 1,
  minimumVersionId: 1,
  // We support no validated capability, so we never send this; receiving it fails.
  needed: () => false,
  fields: [
    // The counted-string list that follows is never read: no validated capability is
    // supported here, so receiving any fails in postLoad before it matters.
    F.uint32('caps_count', { key: 'capsCount' }),
  ],
  postLoad(s) {
    throw new MigrationError('EMIG_CONFIG', `capability list received (${s.capsCount}) but no validated capability is supported here`, {
      section: 'configuration',
    });
  },
};

export const VMSTATE_CONFIGURATION: VMStateDescription<ConfigurationState> = {
  name: 'configuration',
  versionId: 1,
  minimumVersionId: 1,
  preSave(s) {
    s.name = Buffer.from(s.machineType, 'latin1');
    s.len = s.name.length;
  },
  fields: [F.uint32('len'), F.vbuffer('name', (s: ConfigurationState) => s.len)],
  postLoad(s) {
    const received = Buffer.from(s.name.subarray(0, s.len)).toString('latin1');
    const ours = ConfigurationState.family(s.machineType);
    if (ConfigurationState.family(received) !== ours) {
      throw new MigrationError('EMIG_CONFIG', `Machine type received is '${received}' and local is '${s.machineType}'`, {
        section: 'configuration',
        field: 'name',
      });
    }
  },
  subsections: [VMSTATE_CAPABILITIES],
};
