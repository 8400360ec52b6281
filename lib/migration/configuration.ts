/**
 * The configuration section (QEMU savevm.c vmstate_configuration), written right after the
 * header with no section header of its own (unless `-global migration.send-configuration=off`):
 *
 *   0x07 │ be32 len │ name[len] │ subsection*     name = machine type, no NUL
 *   subsection "configuration/capabilities" v1: be32 count, count × (u8 len, name)
 *     the capabilities both ends must agree on (QEMU's migrate_cap_validated list),
 *     sent when one of them is on
 *   subsection "configuration/uuid" v1: 16 bytes, the machine's -uuid,
 *     sent when validate-uuid is on and a -uuid was given
 *
 * Machine types: our types are versions of one board ("virt-1.0", "virt-2.0"). QEMU refuses a
 * machine type that differs from its own; its check compares only the received length, so a
 * bare "virt" (what QEMU 7.2 writes for riscv) matches any of ours. We accept any version of
 * the same board — newer state is gated by subsections whose `needed` follows the machine type
 * (docs/devices.md: the compat rule) — and refuse another board.
 */
import { F, type VMStateDescription } from '../vmstate';
import { MigrationError } from './errors';
import { MIGRATION_CAPABILITIES } from './options';
import { formatUuid } from '../util/uuid';

/** Capabilities that must be equal on both ends (QEMU's migrate_cap_validated list). */
export const VALIDATED_CAPABILITIES = ['x-ignore-shared', 'mapped-ram'] as const;

export class ConfigurationState {
  len = 0;
  name: Uint8Array = new Uint8Array(0);
  capsCount = 0;
  capabilities: string[] = [];
  uuid: Uint8Array = new Uint8Array(16);
  /** What the last load received (null: no capabilities subsection). */
  receivedCaps: string[] = [];

  constructor(
    /** Our machine type, e.g. "virt-2.0". */
    readonly machineType: string,
    /** Our validated capabilities that are on. */
    readonly ourCaps: readonly string[] = [],
    /** Our -uuid (16 bytes), if one was given. */
    readonly ourUuid: Uint8Array | null = null,
    /** validate-uuid on this side: send our uuid. */
    readonly sendUuid = false,
  ) {}

  /** The board family: "virt-2.0" → "virt". */
  static family(type: string): string {
    return type.replace(/-\d+(\.\d+)*$/, '');
  }
}

const configError = (detail: string, field?: string) => new MigrationError('EMIG_CONFIG', detail, { section: 'configuration', field });

const VMSTATE_CAPABILITIES: VMStateDescription<ConfigurationState> = {
  name: 'configuration/capabilities',
  versionId: 1,
  minimumVersionId: 1,
  needed: (s) => s.ourCaps.length > 0,
  preSave(s) {
    s.capabilities = [...s.ourCaps];
    s.capsCount = s.capabilities.length;
  },
  fields: [
    F.uint32('caps_count', { key: 'capsCount' }),
    F.capabilityVarray('capabilities', (s: ConfigurationState) => s.capsCount, {
      set: (s: ConfigurationState, v) => (s.receivedCaps = v as string[]),
    }),
  ],
  postLoad(s) {
    // configuration_validate_capabilities(): unknown names fail; validated ones must match.
    for (const c of s.receivedCaps) {
      if (!(MIGRATION_CAPABILITIES as readonly string[]).includes(c)) throw configError(`Received unknown capability ${c}`, 'capabilities');
    }
  },
};

const VMSTATE_UUID: VMStateDescription<ConfigurationState> = {
  name: 'configuration/uuid',
  versionId: 1,
  minimumVersionId: 1,
  needed: (s) => s.sendUuid && s.ourUuid !== null,
  preSave(s) {
    s.uuid = s.ourUuid!;
  },
  fields: [F.buffer('uuid', 16)],
  postLoad(s) {
    if (!s.ourUuid) {
      // QEMU only warns: a destination without -uuid cannot check.
      process.stderr.write(`livemig: warning: UUID is received ${formatUuid(s.uuid)}, but local uuid isn't set\n`);
      return;
    }
    if (Buffer.compare(Buffer.from(s.uuid), Buffer.from(s.ourUuid)) !== 0) {
      throw configError(`UUID received is ${formatUuid(s.uuid)} and local is ${formatUuid(s.ourUuid)}`, 'uuid');
    }
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
  preLoad(s) {
    s.receivedCaps = [];
  },
  fields: [F.uint32('len'), F.vbuffer('name', (s: ConfigurationState) => s.len)],
  postLoad(s) {
    const received = Buffer.from(s.name.subarray(0, s.len)).toString('latin1');
    const ours = ConfigurationState.family(s.machineType);
    if (ConfigurationState.family(received) !== ours) {
      throw configError(`Machine type received is '${received}' and local is '${s.machineType}'`, 'name');
    }
    // Runs after the subsections: a missing capabilities subsection means "none on".
    for (const c of VALIDATED_CAPABILITIES) {
      const mine = s.ourCaps.includes(c);
      const theirs = s.receivedCaps.includes(c);
      if (mine !== theirs) {
        throw configError(`Capability ${c} is ${mine ? 'on' : 'off'}, but received capability is ${theirs ? 'on' : 'off'}`, 'capabilities');
      }
    }
  },
  subsections: [VMSTATE_CAPABILITIES, VMSTATE_UUID],
};

