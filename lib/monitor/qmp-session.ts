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
 * before input stops; with OOB the queue holds QMP_REQ_QUEUE_LEN_MAX (8) so an exec-oob
 * can still be read while an in-band command runs. QEMU gets this exactly by reading QMP
 * input one byte at a time; we hand the parser a received chunk but stop it at the
 * message that fills the queue, keep the rest, and pause the socket. Input also stops
 * while the client is not reading our output, so a client flooding us with garbage grows
 * neither our queue nor our output buffer.
 * Every message we send is one JSON object followed by CRLF.
 */

import type { CommandContext } from './backend';
import type { Connection } from './endpoint';
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
  /** received bytes the parser has not been given yet */
  private held: Buffer | undefined;
  private consuming = false;
  private inputEnded = false;
  private oobInFlight = 0;
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
    // A client that half-closes after its last request still gets every reply: QEMU, which
    // reads input only as it dispatches, sees the end of input after the last command.
    conn.input.once('end', () => {
      this.inputEnded = true;
      this.finishIfDrained();
    });
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
    this.held = undefined;
    this.parser.reset();
    this.opts.fdReceiver?.dispose?.();
    this.resolveDone();
  }

  private onData(chunk: Buffer | string): void {
    if (this.closed) return;
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    this.held = this.held ? Buffer.concat([this.held, bytes]) : bytes;
    this.consume();
  }

  private blocked(): boolean {
    return this.closed || this.waitingForDrain || this.queue.length >= this.queueLimit();
  }

  private queueLimit(): number {
    return this.state.oobEnabled ? QMP_REQ_QUEUE_LEN_MAX : 1;
  }

  /**
   * Feed held input to the parser until it is used up or the queue is full. Replies to
   * parse errors are sent from inside the parser's callback and free their queue slot at
   * once; the guard keeps that from feeding the parser re-entrantly.
   */
  private consume(): void {
    if (this.consuming) return;
    this.consuming = true;
    try {
      this.consumeHeld();
    } finally {
      this.consuming = false;
    }
    this.updateFlow();
  }

  private consumeHeld(): void {
    while (this.held && !this.blocked()) {
      const data = this.held;
      let used: number;
      try {
        used = this.parser.feed(data, () => this.blocked());
      } catch (e) {
        // Never reached by design; if the parser has a bug, report it and start afresh
        // rather than letting a client's bytes take the process down.
        this.parser.reset();
        used = data.length;
        this.onMessage(undefined, `JSON parse error, internal error: ${(e as Error).message}`);
      }
      this.held = used < data.length ? data.subarray(used) : undefined;
    }
  }

  private onMessage(value: JsonValue | undefined, error: string | undefined): void {
    if (this.closed) return;
    if (value !== undefined && Dispatcher.isOob(value)) {
      // OOB requests run at once, even when OOB is not enabled: then the dispatcher
      // refuses them ("QMP input member 'exec-oob' is unexpected"), as QEMU does.
      this.oobInFlight++;
      void this.dispatchAndSend(value).finally(() => {
        this.oobInFlight--;
        this.finishIfDrained();
      });
      return;
    }
    this.queue.push(error !== undefined ? { error } : { req: value! });
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
        this.consume();
      }
    } finally {
      this.pumping = false;
    }
    this.finishIfDrained();
  }

  /** After the client's end of input: close once everything it sent has been answered. */
  private finishIfDrained(): void {
    if (!this.inputEnded || this.closed || this.held || this.queue.length || this.pumping || this.oobInFlight) return;
    this.close();
    this.conn.end();
  }

  private async dispatchAndSend(req: JsonValue): Promise<void> {
    const rsp = await this.dispatcher.dispatch(req, this.state, this.ctx);
    this.send(rsp);
  }

  /** Read from the connection only while everything received has been consumed. */
  private updateFlow(): void {
    if (this.closed) return;
    if (this.held || this.blocked()) this.conn.input.pause();
    else this.conn.input.resume();
  }

  private onDrain(): void {
    this.waitingForDrain = false;
    this.consume();
  }

  private send(msg: Record<string, unknown>): void {
    let json: string;
    try {
      json = toJson(msg);
    } catch (e) {
      // A backend result that cannot be encoded (say, a cyclic object) is a bug on our
      // side; the client still gets a well-formed reply and the process lives on.
      const desc = `internal error: ${(e as Error).message}`;
      const err: Record<string, unknown> = { error: { class: 'GenericError', desc } };
      if (msg.id !== undefined) err.id = msg.id;
      json = toJson(err);
    }
    this.sendRaw(json);
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
