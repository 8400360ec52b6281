/**
 * What the monitor needs from the machine and the migration engine. The monitor validates
 * every argument against the schema before it calls in here, so implementations receive
 * well-typed values and only check what depends on state ("no migration in progress",
 * "not in postcopy", ...). To refuse, throw QmpError(class, desc) with QEMU's text; any
 * other exception becomes a GenericError carrying its message.
 *
 * Methods may return a value or a promise. In-band commands run one at a time across all
 * monitors (QEMU runs them under the big lock), so a slow stop() — waiting for vCPUs to
 * park — simply delays the next command; out-of-band commands (migrate-recover,
 * migrate-pause) do not wait for it.
 */

import type { NamedFdTable } from './fd-table';
import type { MigrationOptions } from '../migration';
import type { MigrationStatus } from '../migration';
import type { ArgsOf, EventData, EventName, ReturnOf } from './schema';

export type Awaitable<T> = T | Promise<T>;

export type StatusInfo = ReturnOf<'query-status'>;
export type RunStateName = StatusInfo['status'];
export type MigrationInfo = ReturnOf<'query-migrate'>;
export type MigrationChannel = NonNullable<ArgsOf<'migrate'>['channels']>[number];
export type MigrationAddress = MigrationChannel['addr'];
export type ShutdownCause = EventData<'SHUTDOWN'>['reason'];

/** Where a command came from; lets the engine resolve "fd:NAME" against getfd's table. */
export interface CommandContext {
  readonly monitor: 'qmp' | 'hmp';
  /** the named descriptors of the monitor the command arrived on (getfd/closefd) */
  readonly fds: NamedFdTable;
}

/**
 * An outgoing migration request after the monitor's checks: exactly one of `uri` (as the
 * client wrote it; the transport layer parses it) and `main` (a MigrationChannel), plus the
 * 'cpr' channel when one was given.
 */
export interface MigrateRequest {
  uri?: string;
  main?: MigrationChannel;
  cpr?: MigrationChannel;
  resume: boolean;
}

/** migrate-incoming / migrate_incoming, after the same checks (one main channel). */
export interface IncomingRequest {
  uri?: string;
  main?: MigrationChannel;
  /** default true: the process exits if the incoming migration fails */
  exitOnError: boolean;
}

export interface MigrationBackend {
  /** Capabilities, parameters and globals: the migration layer's store and rules. */
  readonly config: MigrationOptions;
  migrate(req: MigrateRequest, ctx: CommandContext): Awaitable<void>;
  incoming(req: IncomingRequest, ctx: CommandContext): Awaitable<void>;
  /** migrate_cancel: succeeds when nothing runs; refused once postcopy started */
  cancel(): Awaitable<void>;
  /** leave a paused state ('pre-switchover'); `state` must be the current one */
  continue(state: MigrationStatus): Awaitable<void>;
  /** query-migrate */
  info(): Awaitable<MigrationInfo>;
  startPostcopy(): Awaitable<void>;
  /** destination, postcopy-paused: listen on `uri` for the source to reconnect (OOB) */
  recover(uri: string, ctx: CommandContext): Awaitable<void>;
  /** postcopy only: break the channels so both sides pause (OOB) */
  pause(): Awaitable<void>;
}

export interface MonitorBackend {
  /** query-status: { status, running } */
  runState(): Awaitable<StatusInfo>;
  /** stop: resolve once every vCPU is parked; emit STOP */
  stop(): Awaitable<void>;
  /** cont: emit RESUME */
  cont(): Awaitable<void>;
  /**
   * quit: request shutdown and return. QEMU replies first, then its main loop shuts down:
   * so on a later tick emit SHUTDOWN {guest:false, reason:'host-qmp-quit'}, await
   * Monitor.close() (it flushes every client), and exit.
   */
  quit(): Awaitable<void>;
  /** system_reset: emit RESET {guest:false, reason:'host-qmp-system-reset'} */
  systemReset(): Awaitable<void>;
  /** pmemsave: write guest-physical [addr, addr+size) to `filename` */
  pmemsave(addr: number, size: number, filename: string): Awaitable<void>;
  /** number of vCPUs, for human-monitor-command's cpu-index (default: 1) */
  cpuCount?(): number;
  /** -name guest=NAME (query-name) */
  guestName?(): string | undefined;
  /** -uuid, formatted (query-uuid); all zeros when none was given */
  guestUuid?(): string;
  /** x-query-vcpu-times: CLOCK_MONOTONIC microseconds of the last park and the last run */
  vcpuTimes?(): { parked: number; running: number };
  readonly migration: MigrationBackend;
}

/** The event side: the backend emits through this; the monitor timestamps and broadcasts. */
export interface MonitorEventSink {
  emit<N extends EventName>(name: N, ...data: EventData<N> extends Record<string, never> ? [] : [EventData<N>]): void;
}
