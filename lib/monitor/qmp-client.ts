/**
 * A small QMP client (the other end of qmp-server.ts): connect, read the greeting, negotiate
 * capabilities, then `execute` commands in order and receive events. Used by the demo, the
 * benchmarks and the end-to-end tests; it speaks to livemig and to QEMU alike.
 */
import { EventEmitter } from 'node:events';
import * as net from 'node:net';

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp: { seconds: number; microseconds: number };
}

export class QmpClientError extends Error {
  constructor(
    readonly errorClass: string,
    desc: string,
  ) {
    super(desc);
  }
}

interface Pending {
  resolve(v: unknown): void;
  reject(e: Error): void;
}

export class QmpClient extends EventEmitter {
  greeting: unknown;
  private buf = '';
  private readonly pending: Pending[] = [];
  private closed = false;

  private constructor(private readonly sock: net.Socket) {
    super();
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => this.onData(d));
    sock.on('close', () => {
      this.closed = true;
      for (const p of this.pending.splice(0)) p.reject(new Error('QMP connection closed'));
      this.emit('close');
    });
    sock.on('error', () => {});
  }

  /** Connect to `unix:PATH` or a unix path, or `tcp:HOST:PORT`; negotiates capabilities. */
  static async connect(where: string, timeoutMs = 10000): Promise<QmpClient> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const sock = await new Promise<net.Socket>((resolve, reject) => {
          const m = /^tcp:(.*):(\d+)$/.exec(where);
          const s = m ? net.connect(Number(m[2]), m[1]) : net.connect(where.replace(/^unix:/, ''));
          s.once('connect', () => resolve(s));
          s.once('error', reject);
        });
        const c = new QmpClient(sock);
        c.greeting = await new Promise((resolve, reject) => {
          c.pending.push({ resolve, reject });
        });
        await c.execute('qmp_capabilities');
        return c;
      } catch (e) {
        // The server may not be listening yet: retry until the deadline.
        if (Date.now() > deadline) throw e;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  execute<T = any>(command: string, args?: Record<string, unknown>): Promise<T> {
    if (this.closed) return Promise.reject(new Error('QMP connection closed'));
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ resolve: resolve as (v: unknown) => void, reject });
      this.sock.write(JSON.stringify(args ? { execute: command, arguments: args } : { execute: command }) + '\n');
    });
  }

  /** The next event named `name` (optionally matching `pred`). */
  waitEvent(name: string, pred: (e: QmpEvent) => boolean = () => true, timeoutMs = 60000): Promise<QmpEvent> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.off('event', on);
        reject(new Error(`no ${name} event within ${timeoutMs} ms`));
      }, timeoutMs);
      const on = (e: QmpEvent) => {
        if (e.event === name && pred(e)) {
          clearTimeout(t);
          this.off('event', on);
          resolve(e);
        }
      };
      this.on('event', on);
    });
  }

  close(): void {
    this.sock.destroy();
  }

  private onData(d: string): void {
    this.buf += d;
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl).trim();
      this.buf = this.buf.slice(nl + 1);
      if (!line) continue;
      let msg: any;
      try {
        msg = JSON.parse(line);
      } catch {
        continue;
      }
      if (msg.event) {
        this.emit('event', msg as QmpEvent);
        continue;
      }
      const p = this.pending.shift();
      if (!p) continue;
      if (msg.error) p.reject(new QmpClientError(msg.error.class, msg.error.desc));
      else if (msg.QMP) p.resolve(msg.QMP);
      else p.resolve(msg.return);
    }
  }
}
