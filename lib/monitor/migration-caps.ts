/**
 * Migration capability rules (migration/options.c migrate_caps_check(), QEMU 10.x).
 * All capabilities default to off. The checks run on the whole new set, in QEMU's order,
 * and the first failure is reported with QEMU's text.
 */

import { genericError } from './errors';
import { MigrationCapability } from './schema';
import type { RunStateName } from './backend';

export type MigrationCapabilityName = (typeof MigrationCapability.values)[number];
export type CapabilitySet = Record<MigrationCapabilityName, boolean>;

export function defaultCapabilities(): CapabilitySet {
  return Object.fromEntries(MigrationCapability.values.map((c) => [c, false])) as CapabilitySet;
}

/** What the host can do; the engine fills this in from the native addon's probes. */
export interface MigrationHostSupport {
  /** undefined if userfaultfd postcopy works here, else the reason it does not */
  postcopyUnsupportedReason?(): string | undefined;
  /** userfaultfd write-protect for background-snapshot */
  writeTracking?(): 'absent' | 'available' | 'compatible';
  /** KVM with a dirty ring: never true for an emulator, so dirty-limit is refused */
  kvmDirtyRing?: boolean;
  /** QEMU built with the replication module (COLO) */
  replication?: boolean;
}

/** The parts of migration state the rules look at. */
export interface CapabilityCheckContext {
  runState: RunStateName;
  /** an incoming migration has opened its transport (migrate_incoming_started()) */
  incomingStarted: boolean;
  multifdCompression: string;
  tls: boolean;
}

/** Capabilities background-snapshot cannot be combined with (check_caps_background_snapshot). */
const BACKGROUND_SNAPSHOT_CONFLICTS: MigrationCapabilityName[] = [
  'postcopy-ram',
  'dirty-bitmaps',
  'postcopy-blocktime',
  'late-block-activate',
  'return-path',
  'multifd',
  'pause-before-switchover',
  'auto-converge',
  'release-ram',
  'rdma-pin-all',
  'xbzrle',
  'x-colo',
  'validate-uuid',
  'zero-copy-send',
];

const fail = (text: string) => {
  throw genericError(text);
};

export function checkCapabilities(
  old: CapabilitySet,
  next: CapabilitySet,
  ctx: CapabilityCheckContext,
  host: MigrationHostSupport,
): void {
  if (next['x-colo'] && !host.replication) {
    fail("QEMU compiled without replication module can't enable COLO");
  }
  if (next['postcopy-ram']) {
    // Only the destination needs kernel support, and the probe is costly: check once.
    if (!old['postcopy-ram'] && ctx.runState === 'inmigrate') {
      const why = host.postcopyUnsupportedReason?.();
      if (why) fail(`Postcopy is not supported: ${why}`);
    }
    if (next['x-ignore-shared']) fail('Postcopy is not compatible with ignore-shared');
  }
  if (next['background-snapshot']) {
    const wt = host.writeTracking?.() ?? 'absent';
    if (wt === 'absent') fail('Background-snapshot is not supported by host kernel');
    if (wt === 'available') fail('Background-snapshot is not compatible with guest memory configuration');
    for (const c of BACKGROUND_SNAPSHOT_CONFLICTS) {
      if (next[c]) fail(`Background-snapshot is not compatible with ${c}`);
    }
  }
  if (
    next['zero-copy-send'] &&
    (!next.multifd || next.xbzrle || ctx.multifdCompression !== 'none' || ctx.tls)
  ) {
    fail('Zero copy only available for non-compressed non-TLS multifd migration');
  }
  if (next['postcopy-preempt']) {
    if (!next['postcopy-ram']) fail('Postcopy preempt requires postcopy-ram');
    if (!old['postcopy-preempt'] && ctx.incomingStarted) {
      fail('Postcopy preempt must be set before incoming starts');
    }
  }
  if (next.multifd && !old.multifd && ctx.incomingStarted) {
    fail('Multifd must be set before incoming starts');
  }
  if (next['switchover-ack'] && !next['return-path']) {
    fail("Capability 'switchover-ack' requires capability 'return-path'");
  }
  if (next['dirty-limit']) {
    if (next['auto-converge']) {
      fail('dirty-limit conflicts with auto-converge either of then available currently');
    }
    if (!host.kvmDirtyRing) {
      fail("dirty-limit requires KVM with accelerator property 'dirty-ring-size' set");
    }
  }
  if (next.multifd && next.xbzrle) fail('Multifd is not compatible with xbzrle');
  if (next['mapped-ram']) {
    if (next.xbzrle) fail('Mapped-ram migration is incompatible with xbzrle');
    if (next['postcopy-ram']) fail('Mapped-ram migration is incompatible with postcopy');
  }
}
