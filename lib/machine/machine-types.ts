/**
 * Versioned machine types (QEMU's versioned machines + hw_compat): an older type turns off state
 * that newer code would send, so a new livemig can migrate to one that only knows the old
 * layout. `virt` is an alias of the newest.
 */
import type { ClintCompat } from './devices';

export interface MachineType {
  /** Full name, sent in the configuration section: "virt-2.0". */
  readonly name: string;
  readonly description: string;
  readonly compat: {
    clint: ClintCompat;
    /** Defaults of the migration object's properties (QEMU's hw_compat entries for
     * "migration"), applied before any -global. */
    migration: Readonly<Record<string, boolean>>;
  };
}

const TYPES: readonly MachineType[] = [
  {
    name: 'virt-2.0',
    description: 'RISC-V VirtIO board (livemig 2.0): migrates mtime',
    compat: { clint: { migrateTime: true }, migration: {} },
  },
  {
    name: 'virt-1.0',
    description: 'RISC-V VirtIO board (livemig 1.0): mtime not migrated, no SWITCHOVER_START, as QEMU 7.2',
    // QEMU 10.0 added SWITCHOVER_START and turns it off for machines up to 9.2, whose
    // receivers fail on an unknown command; virt-1.0 stands for that older generation.
    compat: { clint: { migrateTime: false }, migration: { 'send-switchover-start': false } },
  },
];

const ALIASES: Record<string, string> = { virt: 'virt-2.0' };

export class MachineTypeError extends Error {
  readonly code = 'EMACHINE_TYPE';
}

export function resolveMachineType(name: string): MachineType {
  const full = ALIASES[name] ?? name;
  const t = TYPES.find((m) => m.name === full);
  if (!t) throw new MachineTypeError(`unsupported machine type '${name}' (use -machine help)`);
  return t;
}

export function machineTypes(): readonly MachineType[] {
  return TYPES;
}
