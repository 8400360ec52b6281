/**
 * The monitor layer's public face: QMP and HMP servers, the schema, the backend contract
 * the machine and migration engine implement, and the migration configuration they share.
 * See docs/monitor.md.
 */

export { Monitor, QEMU_VERSION, type MonitorOptions } from './monitor';
export type {
  Awaitable,
  CommandContext,
  IncomingRequest,
  MigrateRequest,
  MigrationAddress,
  MigrationBackend,
  MigrationChannel,
  MigrationInfo,
  MonitorBackend,
  MonitorEventSink,
  RunStateName,
  ShutdownCause,
  StatusInfo,
} from './backend';
export { QmpError, ERROR_CLASSES, genericError, type QmpErrorClass } from './errors';
export { EventBus, systemClock, type Clock, type EmittedEvent, type Timestamp } from './events';
export { ManagerMigrationBackend } from './migration';
export { NamedFdTable, type FdReceiver, type FdReceiverFactory } from './fd-table';
export { QmpServer, type QmpServerOptions } from './qmp-server';
export { QmpSession, QMP_REQ_QUEUE_LEN_MAX } from './qmp-session';
export { HmpServer, HmpSession, HMP_PROMPT } from './hmp';
export { HmpEngine } from './hmp/engine';
export { Dispatcher } from './dispatcher';
export { MonitorEndpoint, type Connection } from './endpoint';
export { JsonMessageParser, QEMU_JSON_LIMITS, type JsonLimits } from './json/parser';
export { toJson } from './json/encode';
export {
  COMMANDS,
  EVENTS,
  findCommand,
  findEvent,
  type ArgsOf,
  type CommandName,
  type EventData,
  type EventName,
  type ReturnOf,
} from './schema';
