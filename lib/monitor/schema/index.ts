/**
 * The schema registry: every command and event, declared once in the files beside this one.
 * Everything else — validation, dispatch, query-commands, handler types, HMP — reads it.
 */

import * as control from './control';
import * as mig from './migration';
import * as rs from './run-state';
import type { CommandDef, EventDef } from './types';

export const COMMANDS = [
  control.qmpCapabilities,
  control.queryVersion,
  control.queryCommands,
  rs.queryStatus,
  rs.stop,
  rs.cont,
  rs.quit,
  rs.systemReset,
  rs.pmemsave,
  rs.queryName,
  rs.queryUuid,
  rs.xQueryVcpuTimes,
  control.humanMonitorCommand,
  control.getfd,
  control.closefd,
  mig.migrate,
  mig.migrateIncoming,
  mig.migrateCancel,
  mig.migrateContinue,
  mig.migrateSetCapabilities,
  mig.queryMigrateCapabilities,
  mig.migrateSetParameters,
  mig.queryMigrateParameters,
  mig.queryMigrate,
  mig.migrateStartPostcopy,
  mig.migrateRecover,
  mig.migratePause,
] as const;

export const EVENTS = [rs.STOP, rs.RESUME, rs.SHUTDOWN, rs.RESET, mig.MIGRATION, mig.MIGRATION_PASS] as const;

type AnyCommand = (typeof COMMANDS)[number];
type AnyEvent = (typeof EVENTS)[number];

export type CommandName = AnyCommand['name'];
export type EventName = AnyEvent['name'];

type CommandByName<N extends CommandName> = Extract<AnyCommand, { name: N }>;
type EventByName<N extends EventName> = Extract<AnyEvent, { name: N }>;

/** The validated arguments a handler of command N receives. */
export type ArgsOf<N extends CommandName> = NonNullable<CommandByName<N>['__args']>;
/** What a handler of command N returns (QEMU sends {} for commands without 'returns'). */
export type ReturnOf<N extends CommandName> = NonNullable<CommandByName<N>['__ret']>;
/** The data member of event N. */
export type EventData<N extends EventName> = NonNullable<EventByName<N>['__data']>;

const commandTable = new Map<string, CommandDef>(COMMANDS.map((c) => [c.name, c]));
const eventTable = new Map<string, EventDef>(EVENTS.map((e) => [e.name, e]));

export function findCommand(name: string): CommandDef | undefined {
  return commandTable.get(name);
}

export function findEvent(name: string): EventDef | undefined {
  return eventTable.get(name);
}

export type { CommandDef, EventDef, QapiType, ValueOf, MemberDef, StructType, EnumType } from './types';
export * from './control';
export * from './run-state';
export * from './sockets';
export * from './migration-types';
export * from './migration';
