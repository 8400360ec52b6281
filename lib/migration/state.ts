/**
 * Migration status, QEMU's MigrationStatus enum (qapi/migration.json), changed only by
 * compare-and-set so that two actors (a cancel from the monitor and the migration loop finishing,
 * say) cannot both win. Every successful change emits `MIGRATION {status}`.
 *
 * Source (precopy):
 *
 *   none ──► setup ──► active ──┬──────────────► device ──► completed
 *              │          │     └► pre-switchover ┘   │
 *              │          │                           │
 *              └──────────┴──────► cancelling ──► cancelled
 *              └──────────┴───────────────────┴──► failed
 *
 * Destination:  none ──► setup ──► active ──► completed | failed
 */

export const MIGRATION_STATUSES = [
  'none',
  'setup',
  'cancelling',
  'cancelled',
  'active',
  'postcopy-device',
  'postcopy-active',
  'postcopy-paused',
  'postcopy-recover-setup',
  'postcopy-recover',
  'completed',
  'failed',
  'colo',
  'pre-switchover',
  'device',
  'wait-unplug',
] as const;

export type MigrationStatus = (typeof MIGRATION_STATUSES)[number];

/** States in which a migration is under way (QEMU's migration_is_running). */
export function isRunning(s: MigrationStatus): boolean {
  switch (s) {
    case 'setup':
    case 'active':
    case 'pre-switchover':
    case 'device':
    case 'cancelling':
    case 'wait-unplug':
    case 'postcopy-device':
    case 'postcopy-active':
    case 'postcopy-paused':
    case 'postcopy-recover-setup':
    case 'postcopy-recover':
    case 'colo':
      return true;
    default:
      return false;
  }
}

export function isTerminal(s: MigrationStatus): boolean {
  return s === 'completed' || s === 'failed' || s === 'cancelled';
}

export type StatusListener = (status: MigrationStatus, previous: MigrationStatus) => void;

export class MigrationState {
  private current: MigrationStatus = 'none';
  private readonly listeners: StatusListener[] = [];

  get status(): MigrationStatus {
    return this.current;
  }

  onChange(l: StatusListener): void {
    this.listeners.push(l);
  }

  /** Move from `expected` to `next`; false (and nothing happens) if the status was not `expected`. */
  cas(expected: MigrationStatus, next: MigrationStatus): boolean {
    if (this.current !== expected) return false;
    this.current = next;
    for (const l of this.listeners) l(next, expected);
    return true;
  }

  /** Unconditional move, for starting a new migration from a terminal (or none) state. */
  reset(next: MigrationStatus): void {
    const prev = this.current;
    this.current = next;
    if (prev !== next) for (const l of this.listeners) l(next, prev);
  }
}
