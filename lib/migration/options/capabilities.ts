/**
 * Migration capabilities (QEMU qapi/migration.json MigrationCapability, migration/options.c
 * migrate_caps_check()). All default off. Two kinds of rule apply to a new set, in this order:
 *
 *  1. what livemig does: every capability is either implemented (it changes what the engine
 *     does, and a test fails when it stops doing so) or refused here, naming it and saying
 *     why — never accepted and ignored (QEMU refuses what it cannot do, too);
 *  2. QEMU's own cross-checks, with QEMU's texts, so a QEMU user's mistakes get QEMU's answers.
 *
 * The first failure is reported.
 */
import { MigrationError } from '../errors';

export const MIGRATION_CAPABILITIES = [
  'xbzrle',
  'rdma-pin-all',
  'auto-converge',
  'events',
  'postcopy-ram',
  'x-colo',
  'release-ram',
  'return-path',
  'pause-before-switchover',
  'multifd',
  'dirty-bitmaps',
  'postcopy-blocktime',
  'late-block-activate',
  'x-ignore-shared',
  'validate-uuid',
  'background-snapshot',
  'zero-copy-send',
  'postcopy-preempt',
  'switchover-ack',
  'dirty-limit',
  'mapped-ram',
] as const;

export type MigrationCapabilityName = (typeof MIGRATION_CAPABILITIES)[number];
export type CapabilitySet = Record<MigrationCapabilityName, boolean>;

export function defaultCapabilities(): CapabilitySet {
  return Object.fromEntries(MIGRATION_CAPABILITIES.map((c) => [c, false])) as CapabilitySet;
}

/**
 * What livemig does with each capability. `refused` carries the reason it cannot be turned
 * on; everything else is implemented. Capabilities that need a subsystem this machine does
 * not have (block devices, RDMA, COLO replication, KVM) are refused for that reason.
 */
export const CAPABILITY_SUPPORT: Record<MigrationCapabilityName, { refused?: string }> = {
  xbzrle: { refused: 'XBZRLE delta encoding is not implemented' },
  'rdma-pin-all': { refused: 'there is no RDMA transport' },
  'auto-converge': {},
  events: {},
  'postcopy-ram': {},
  'x-colo': { refused: 'COLO replication is not implemented' }, // QEMU's text is given first
  'release-ram': {},
  'return-path': {},
  'pause-before-switchover': {},
  multifd: {},
  'dirty-bitmaps': { refused: 'the machine has no block devices' },
  'postcopy-blocktime': {},
  'late-block-activate': { refused: 'the machine has no block devices' },
  'x-ignore-shared': {},
  'validate-uuid': {},
  'background-snapshot': { refused: 'background snapshots are not implemented' },
  'zero-copy-send': { refused: 'MSG_ZEROCOPY sends are not implemented' },
  'postcopy-preempt': {},
  'switchover-ack': {},
  'dirty-limit': { refused: 'the dirty limit needs KVM with a dirty ring' }, // QEMU's text is given first
  'mapped-ram': { refused: 'the mapped-ram file format is not implemented' },
};

/** What the host can do; filled in from the native addon's probes. */
export interface MigrationHostSupport {
  /** undefined if userfaultfd postcopy works here, else the reason it does not */
  postcopyUnsupportedReason?(): string | undefined;
}

/** The parts of migration state the rules look at. */
export interface CapabilityCheckContext {
  /** the machine's run state ('inmigrate' on a destination) */
  runState: string;
  /** an incoming migration has opened its transport (migrate_incoming_started()) */
  incomingStarted: boolean;
  multifdCompression: string;
  tls: boolean;
}

const fail = (text: string): never => {
  throw new MigrationError('EMIG_SETTING', text);
};

/** Capabilities background-snapshot cannot be combined with (check_caps_background_snapshot). */
const BACKGROUND_SNAPSHOT_CONFLICTS: MigrationCapabilityName[] = [
  'postcopy-ram', 'dirty-bitmaps', 'postcopy-blocktime', 'late-block-activate', 'return-path', 'multifd',
  'pause-before-switchover', 'auto-converge', 'release-ram', 'rdma-pin-all', 'xbzrle', 'x-colo',
  'validate-uuid', 'zero-copy-send',
];

export function checkCapabilities(old: CapabilitySet, next: CapabilitySet, ctx: CapabilityCheckContext, host: MigrationHostSupport): void {
  // QEMU's own checks first, in QEMU's order, so QEMU's mistakes get QEMU's answers.
  if (next['x-colo']) fail("QEMU compiled without replication module can't enable COLO");
  if (next['postcopy-ram']) {
    // Only the destination needs kernel support, and the probe is costly: check once.
    if (!old['postcopy-ram'] && ctx.runState === 'inmigrate') {
      const why = host.postcopyUnsupportedReason?.();
      if (why) fail(`Postcopy is not supported: ${why}`);
    }
    if (next['x-ignore-shared']) fail('Postcopy is not compatible with ignore-shared');
  }
  if (next['background-snapshot']) {
    for (const c of BACKGROUND_SNAPSHOT_CONFLICTS) if (next[c]) fail(`Background-snapshot is not compatible with ${c}`);
  }
  if (next['zero-copy-send'] && (!next.multifd || next.xbzrle || ctx.multifdCompression !== 'none' || ctx.tls)) {
    fail('Zero copy only available for non-compressed non-TLS multifd migration');
  }
  if (next['postcopy-preempt']) {
    if (!next['postcopy-ram']) fail('Postcopy preempt requires postcopy-ram');
    if (!old['postcopy-preempt'] && ctx.incomingStarted) fail('Postcopy preempt must be set before incoming starts');
  }
  if (next.multifd && !old.multifd && ctx.incomingStarted) fail('Multifd must be set before incoming starts');
  if (next['switchover-ack'] && !next['return-path']) fail("Capability 'switchover-ack' requires capability 'return-path'");
  if (next['dirty-limit']) {
    if (next['auto-converge']) fail('dirty-limit conflicts with auto-converge either of then available currently');
    // An emulator has no KVM dirty ring: QEMU's answer for a KVM without one.
    fail("dirty-limit requires KVM with accelerator property 'dirty-ring-size' set");
  }
  if (next.multifd && next.xbzrle) fail('Multifd is not compatible with xbzrle');
  if (next['mapped-ram']) {
    if (next.xbzrle) fail('Mapped-ram migration is incompatible with xbzrle');
    if (next['postcopy-ram']) fail('Mapped-ram migration is incompatible with postcopy');
  }
  // Then what livemig cannot do. QEMU 10.x runs multifd during precopy and flushes it before
  // postcopy starts; here postcopy's destination tracks received pages on the main thread, which
  // multifd channel threads do not report to, so the pair is refused rather than half-done.
  if (next.multifd && next['postcopy-ram'] && (!old.multifd || !old['postcopy-ram'])) {
    fail("Capability 'multifd' is not supported by livemig together with 'postcopy-ram'");
  }
  // A capability being turned on that it does not implement.
  for (const c of MIGRATION_CAPABILITIES) {
    const why = CAPABILITY_SUPPORT[c].refused;
    if (next[c] && !old[c] && why) fail(`Capability '${c}' is not supported by livemig: ${why}`);
  }
}
