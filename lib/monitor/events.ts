/**
 * QMP events: the backend emits, the bus timestamps, checks the data against the event's
 * declaration, and hands the message to every QMP client in command mode
 * (monitor/monitor.c monitor_qapi_event_emit; docs/interop/qmp-spec.rst "Asynchronous
 * events"):
 *
 *   {"timestamp": {"seconds": S, "microseconds": US}, "event": "STOP"}
 *   {"timestamp": {...}, "event": "MIGRATION", "data": {"status": "setup"}}
 *
 * MIGRATION and MIGRATION_PASS are sent only when the 'events' capability is on (QEMU
 * checks migrate_events() before sending them); the bus enforces that when given the config,
 * so the engine may emit them unconditionally.
 */

import type { MonitorEventSink } from './backend';
import { toJson } from './json/encode';
import { fromPlain } from './json/value';
import { findEvent, type EventData, type EventName } from './schema';
import { shapeOutput } from './schema/output';
import { validateValue } from './schema/visit';

export interface Timestamp {
  seconds: number;
  microseconds: number;
}

export type Clock = () => Timestamp;

/** Wall-clock time with microseconds; QEMU sends -1/-1 if it cannot read the clock. */
export const systemClock: Clock = () => {
  const us = Math.floor((performance.timeOrigin + performance.now()) * 1000);
  if (!Number.isFinite(us)) return { seconds: -1, microseconds: -1 };
  return { seconds: Math.floor(us / 1e6), microseconds: us % 1e6 };
};

export interface EmittedEvent {
  name: EventName;
  data?: Record<string, unknown>;
  timestamp: Timestamp;
  /** the wire form, without the trailing CRLF */
  json: string;
}

export type EventListener = (e: EmittedEvent) => void;

export interface EventBusOptions {
  clock?: Clock;
  /** MIGRATION and MIGRATION_PASS go out only while this says the 'events' capability is on */
  config?: { capability(name: 'events'): boolean };
  /** return false to drop any other event */
  filter?: (name: EventName, data: unknown) => boolean;
  /** called when the backend emits data that does not match the declaration */
  onInvalid?: (name: string, reason: string) => void;
}

export class EventBus implements MonitorEventSink {
  private readonly listeners = new Set<EventListener>();
  private readonly clock: Clock;

  constructor(private readonly opts: EventBusOptions = {}) {
    this.clock = opts.clock ?? systemClock;
  }

  subscribe(l: EventListener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  emit<N extends EventName>(name: N, ...rest: EventData<N> extends Record<string, never> ? [] : [EventData<N>]): void {
    const def = findEvent(name);
    const data = rest[0] as Record<string, unknown> | undefined;
    if (!def) return this.invalid(name, 'unknown event');
    if (def.data) {
      try {
        validateValue(def.data, fromPlain(data ?? {}));
      } catch (e) {
        return this.invalid(name, (e as Error).message);
      }
    }
    const migrationEvent = name === 'MIGRATION' || name === 'MIGRATION_PASS';
    if (migrationEvent && this.opts.config && !this.opts.config.capability('events')) return;
    if (this.opts.filter && !this.opts.filter(name, data)) return;
    const timestamp = this.clock();
    const msg: Record<string, unknown> = { timestamp, event: name };
    const shaped = def.data ? (shapeOutput(def.data, data ?? {}) as Record<string, unknown>) : undefined;
    if (shaped) msg.data = shaped;
    const e: EmittedEvent = { name, data: shaped, timestamp, json: toJson(msg) };
    for (const l of [...this.listeners]) {
      try {
        l(e);
      } catch {
        // a broken client connection must not stop delivery to the others
      }
    }
  }

  private invalid(name: string, reason: string): void {
    (this.opts.onInvalid ?? ((n, r) => process.emitWarning(`QMP event ${n} dropped: ${r}`)))(name, reason);
  }
}
