/**
 * One outgoing migration's live objects, shared by its phases (setup.ts, iterate.ts,
 * complete.ts): the channel and stream, the RAM saver and section writer, the estimator, the
 * throttle, the return-path reader, the statistics, and the cancel flag every phase checks.
 */
import { performance } from 'node:perf_hooks';
import type { VirtMachine } from '../../machine/virt';
import type { ByteChannel, QemuFileWriter } from '../../stream';
import type { MigrationAddress } from '../../transport/uri';
import { MigrationError } from '../errors';
import type { CprSourceHooks } from '../cpr/source';
import type { MultifdSender } from '../multifd';
import type { MigMode, MigrationOptions } from '../options';
import { abortChannel } from '../postcopy/shared';
import type { RamSaver } from '../ram-save';
import type { MigrationRunState } from '../run-state';
import type { SaveVm } from '../savevm';
import type { MigrationState } from '../state';
import type { Throttle } from '../throttle';
import type { SwitchoverEstimator } from './estimator';
import type { PageServerClient } from './page-server-client';
import type { ReturnPath } from './return-path';

export interface OutgoingDeps {
  machine: VirtMachine;
  options: MigrationOptions;
  state: MigrationState;
  /** The run-state owner (the manager's). */
  vm: MigrationRunState;
  connect(addr: MigrationAddress): Promise<ByteChannel>;
  /** MIGRATION_PASS (with the events capability). */
  onPass?(pass: number): void;
  now?(): number;
  /** The `mode` parameter as `migrate` found it (default normal). */
  mode?: MigMode;
  /** cpr-transfer: the old process's side of the handover (cpr/source.ts). */
  cpr?: CprSourceHooks;
}

/** query-migrate's source-side figures (QEMU MigrationStats and friends). */
export interface OutgoingStats {
  startTime: number;
  setupTime: number;
  totalTime: number;
  downtime: number;
  expectedDowntime: number;
  transferred: number;
  /** bytes on the multifd channels (included in transferred) */
  multifdBytes: number;
  remaining: number;
  total: number;
  duplicate: number;
  normal: number;
  dirtyPagesRate: number;
  mbps: number;
  dirtySyncCount: number;
  pagesPerSecond: number;
  precopyBytes: number;
  downtimeBytes: number;
  postcopyBytes: number;
  postcopyRequests: number;
  throttlePercentage: number;
  errorDesc?: string;
}

export class OutgoingContext {
  readonly now: () => number;
  readonly stats: OutgoingStats;
  channel: ByteChannel | null = null;
  f: QemuFileWriter | null = null;
  saver: RamSaver | null = null;
  sv: SaveVm | null = null;
  estimator: SwitchoverEstimator | null = null;
  throttle: Throttle | null = null;
  /** multifd: the page channels beside the main one */
  multifd: MultifdSender | null = null;
  rp: ReturnPath | null = null;
  cancelled = false;
  /** The guest ran when `migrate` started: the run state the destination is told. */
  vmWasRunning = false;
  /** switchover-ack: the destination said it may switch over. */
  switchoverAcked = false;
  /** When the vCPUs had parked for the switchover (0 until then). */
  stoppedAt = 0;
  /** When the guest stopped for the switchover (0 until then). */
  stopTime = 0;
  bytesAtStop = 0;
  /** Resolves a pre-switchover pause (migrate-continue or cancel). */
  continueResolve: (() => void) | null = null;
  /** Where the main channel goes (the preempt channel connects there too). */
  addr: MigrationAddress | null = null;
  /** postcopy: the return-path thread that also serves page requests */
  pageServer: PageServerClient | null = null;
  /** migrate-start-postcopy was asked */
  startPostcopy = false;
  /** stream position when postcopy began (postcopy-bytes counts from here) */
  postcopyStartBytes = -1;
  /** bytes written on main channels that a recovery replaced */
  bytesBeforeRecovery = 0;
  /** postcopy-paused: resolved by `migrate resume=true` with the new address */
  resumeWith: ((addr: MigrationAddress) => void) | null = null;
  /** postcopy-paused: ends the wait for `migrate resume=true` (the machine is going away) */
  resumeAborted: ((err: Error) => void) | null = null;
  /** recovery: the blocks whose received bitmap is awaited */
  recoveryBitmaps: Map<string, () => void> | null = null;
  /** recovery: resolved by RESUME_ACK */
  resumeAcked: (() => void) | null = null;
  /** the destination may run the guest: from here on the source guest must never run again */
  destinationRuns = false;
  /** Why the return path broke, if it did since the last pause: the phases throw it. */
  returnPathError: Error | null = null;
  readonly cleanups: Array<() => void> = [];

  constructor(readonly deps: OutgoingDeps) {
    this.now = deps.now ?? (() => performance.now());
    this.stats = {
      startTime: this.now(),
      setupTime: 0,
      totalTime: 0,
      downtime: 0,
      expectedDowntime: deps.options.params['downtime-limit'],
      transferred: 0,
      multifdBytes: 0,
      remaining: 0,
      total: 0,
      duplicate: 0,
      normal: 0,
      dirtyPagesRate: 0,
      mbps: 0,
      dirtySyncCount: 0,
      pagesPerSecond: 0,
      precopyBytes: 0,
      downtimeBytes: 0,
      postcopyBytes: 0,
      postcopyRequests: 0,
      throttlePercentage: 0,
    };
  }

  get options(): MigrationOptions {
    return this.deps.options;
  }

  get state(): MigrationState {
    return this.deps.state;
  }

  /** Throws if the migration was cancelled or its stream failed. */
  checkCancel(): void {
    if (this.cancelled) throw new MigrationError('EMIG_CANCELLED', 'migration cancelled');
    if (this.returnPathError) throw this.returnPathError;
    const err = this.f?.error;
    if (err) throw err instanceof MigrationError ? err : new MigrationError('EMIG_PEER', err.message, { cause: err });
  }

  /** Compare-and-set the status, or explain why not (a cancel got there first). */
  advance(from: Parameters<MigrationState['cas']>[0], to: Parameters<MigrationState['cas']>[1]): void {
    if (!this.state.cas(from, to)) {
      this.checkCancel();
      throw new MigrationError('EMIG_STATE', `migration status is ${this.state.status}, expected ${from}`);
    }
  }

  /**
   * The return path broke (a bad message, or the destination went away): fail now, as QEMU's
   * migration thread does when the return-path thread reports an error, rather than when the
   * migration would next wait for the destination — precopy might never get there. Breaking
   * the channel ends whatever the phases wait on; the error they then throw is this one.
   * In postcopy the same break pauses the migration (recovery.ts).
   */
  returnPathBroke(err: Error): void {
    this.returnPathError ??= err;
    abortChannel(this.channel, err);
    // The phases may be waiting on a multifd channel, not on the main one: a channel blocked
    // on a peer that is gone would wait forever.
    this.multifd?.abort(err instanceof MigrationError ? err : new MigrationError('EMIG_RETURN_PATH', err.message, { cause: err }));
  }

  /** Bytes sent on every channel (QEMU's migration_transferred_bytes): the main stream over all
   * its postcopy recoveries (each new stream counts from 0), the multifd channels and the
   * preempt channel. */
  transferred(): number {
    return this.bytesBeforeRecovery + (this.f?.position ?? 0) + (this.multifd?.bytes ?? 0) + (this.pageServer?.preemptBytes ?? 0);
  }

  pagesSent(): number {
    const c = this.saver?.counters;
    return c ? c.normal + c.duplicate : 0;
  }
}
