/**
 * One QMP connection (QEMU monitor/qmp.c): greeting, capabilities negotiation, a request
 * queue, out-of-band execution, events, flow control.
 *
 *   bytes ─▶ JsonMessageParser ─▶ exec-oob? ──yes──▶ dispatch now (reply may overtake)
 *                                    │no
 *                                    ▼
 *                               in-band queue ─▶ one at a time ─▶ reply, in order
 *
 * Parse errors go through the queue too, so every reply comes back in request order.
 * Flow control as QEMU's handle_qmp_command(): without OOB at most one request is queued
 * before reading stops; with OOB the queue holds QMP_REQ_QUEUE_LEN_MAX (8) so an exec-oob
 * can still be read while an in-band command runs. Reading also stops while the client is
 * not reading our output, so a client flooding us with garbage cannot grow our buffers.
 * Every message we send is one JSON object followed by CRLF.
 */

import type { CommandContext } from './backend';
import type { Connection } from './chardev';
import { Dispatcher, type QmpSessionState } from './dispatcher';
import type { EventBus } from './events';
import type { FdReceiver, NamedFdTable } from './fd-table';
import { toJson } from './json/encode';
import { JsonMessageParser, type JsonLimits } from './json/parser';
import type { JsonValue } from './json/value';

/** QEMU monitor-internal.h QMP_REQ_QUEUE_LEN_MAX */
export const QMP_REQ_QUEUE_LEN_MAX = 8;

export interface QmpSessionOptions {
  greeting: Record<string, unknown>;
  fds: NamedFdTable;
  fdReceiver?: FdReceiver;
  jsonLimits?: Partial<JsonLimits>;
  /** stop reading while this many bytes of output are waiting (default 1 MiB) */
  outputHighWater?: number;
}

type Request = { req: JsonValue } | { error: string };

export class QmpSession {
  readonly state: QmpSessionState;
  private readonly ctx: CommandContext;
  private readonly parser: JsonMessageParser;
  private readonly queue: Request[] = [];
  private pumping = false;
  private closed = false;
  private unsubscribe: () => void;
  private readonly highWater: number;
  private waitingForDrain = false;
  private readonly done: Promise<void>;
  private resolveDone!: () => void;

  constructor(
    private readonly conn: Connection,
    private readonly dispatcher: Dispatcher,
    events: EventBus,
    private readonly opts: QmpSessionOptions,
  ) {
    this.state = { commandMode: false, oobEnabled: false, oobOffered: true, fdReceiver: opts.fdReceiver };
    this.ctx = { monitor: 'qmp', fds: opts.fds };
    this.highWater = opts.outputHighWater ?? 1024 * 1024;
    this.done = new Promise((res) => (this.resolveDone = res));
    this.parser = new JsonMessageParser((v, e) => this.onMessage(v, e), opts.jsonLimits);
    // Events reach a client only in command mode (qmp-spec.rst, capabilities negotiation).
    this.unsubscribe = events.subscribe((ev) => {
      if (this.state.commandMode) this.sendRaw(ev.json);
    });
    conn.input.on('data', (chunk: Buffer | string) => this.onData(chunk));
    conn.input.once('end', () => this.close());
    conn.input.once('close', () => this.close());
    conn.output.on('drain', () => this.onDrain());
    this.send(opts.greeting);
  }

  /** Resolves when the connection has gone away. */
  get closedPromise(): Promise<void> {
    return this.done;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe();
    this.queue.length = 0;
    this.parser.reset();
    this.opts.fdReceiver?.dispose?.();
    this.resolveDone();
  }

  private onData(chunk: Buffer | string): void {
    if (this.closed) return;
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    try {
      this.parser.feed(bytes);
    } catch (e) {
      // Never reached by design; if the parser has a bug, report it and start afresh
      // rather than letting a client's bytes take the process down.
      this.parser.reset();
      this.onMessage(undefined, `JSON parse error, internal error: ${(e as Error).message}`);
    }
  }

  private onMessage(value: JsonValue | undefined, error: string | undefined): void {
    if (this.closed) return;
    if (value !== undefined && Dispatcher.isOob(value)) {
      // OOB requests run at once, even when OOB is not enabled: then the dispatcher
      // refuses them ("QMP input member 'exec-oob' is unexpected"), as QEMU does.
      void this.dispatchAndSend(value);
      return;
    }
    this.queue.push(error !== undefined ? { error } : { req: value! });
    this.updateFlow();
    void this.pump();
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (!this.closed && this.queue.length) {
        const item = this.queue[0];
        if ('error' in item) {
          this.send({ error: { class: 'GenericError', desc: item.error } });
        } else {
          await this.dispatchAndSend(item.req);
        }
        this.queue.shift();
        this.updateFlow();
      }
    } finally {
      this.pumping = false;
    }
  }

  private async dispatchAndSend(req: JsonValue): Promise<void> {
    const rsp = await this.dispatcher.dispatch(req, this.state, this.ctx);
    this.send(rsp);
  }

  /** Pause reading when the queue is full or the client is not reading our output. */
  private updateFlow(): void {
    if (this.closed) return;
    const limit = this.state.oobEnabled ? QMP_REQ_QUEUE_LEN_MAX : 1;
    const full = this.queue.length >= limit;
    if (full || this.waitingForDrain) this.conn.input.pause();
    else this.conn.input.resume();
  }

  private onDrain(): void {
    this.waitingForDrain = false;
    this.updateFlow();
  }

  private send(msg: Record<string, unknown>): void {
    this.sendRaw(toJson(msg));
  }

  private sendRaw(json: string): void {
    const out = this.conn.output;
    if (this.closed || out.destroyed || out.writableEnded) return;
    out.write(`${json}\r\n`);
    if (out.writableLength > this.highWater && !this.waitingForDrain) {
      this.waitingForDrain = true;
      this.updateFlow();
    }
  }
}
