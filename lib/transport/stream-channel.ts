/**
 * A ByteChannel over Node streams: the body of exec: (the command's stdout and stdin) and of
 * fd: over a pipe (one of them null). tcp:, unix: and fd: sockets use FdChannel instead;
 * netSocketChannel() still wraps a net.Socket made elsewhere (full duplex: input and output
 * are the same socket), and bench/transport.ts measures it beside FdChannel.
 *
 * Read side — pull, no copies. The socket starts paused: nothing is taken from the kernel
 * before the first read(), so an unread return path pushes back on its peer. While reading,
 * Node's 'data' chunks (a fresh buffer per read(2), up to 64 KiB) are queued as they are and
 * handed out whole; above `readHighWaterMark` queued bytes the socket is paused again, which
 * stops reading from the kernel and lets TCP flow control reach the sender.
 *
 *   kernel ─▶ net.Socket ─'data'─▶ queue [c0 c1 c2 …] ─read()─▶ QemuFileReader
 *                 ▲ pause() when queued ≥ readHighWaterMark, resume() when below
 *
 * Write side — one writev(2) per batch. writev(chunks) corks the socket, queues every piece
 * (views of staged bytes and guest pages, never copied), then uncorks: Node hands the whole
 * batch to libuv as a single write request (Writable._writev), which tries it synchronously
 * first. write() returns false once `output.writableLength` (bytes queued in user space and
 * not yet taken by the kernel) reaches the high-water mark; drain() waits for Node's 'drain'.
 *
 * Half-close: end() flushes and shuts down only the write side (sockets are created with
 * allowHalfOpen), so the other direction keeps flowing: the migration stream ends while the
 * return path is still read, as QEMU's source does after QEMU_VM_EOF.
 *
 * Errors: the first error is kept; pending and later read()/drain()/end() reject with it and
 * queued bytes are dropped (the stream above treats any channel error as fatal). A peer that
 * closes cleanly gives read() → null; one that dies gives ECONNRESET/EPIPE from the OS.
 */
import type { Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { native } from '../host';
import type { ByteChannel } from '../stream';
import { TransportError } from './errors';
import { SOCKET_BUFFER_BYTES } from './socket';
import { DEFAULT_HIGH_WATER_MARK, DEFAULT_READ_HIGH_WATER_MARK, type ChannelOptions } from './types';

interface Waiter<T> {
  resolve: (v: T) => void;
  reject: (e: Error) => void;
}

export interface StreamChannelInit extends ChannelOptions {
  /** Where bytes come from (a socket, or a child's stdout); null: no read direction
   * (read() resolves null at once). */
  input: Readable | null;
  /** Where bytes go (a socket, or a child's stdin); null: no write direction (write()
   * throws ENOT_WRITABLE). */
  output: Writable | null;
  /** Names the transport in messages ('tcp', 'unix', 'fd', 'exec'). */
  label: string;
  fd?: number;
}

/** The descriptor behind a net.Socket. Node exposes it only on the internal handle; native
 * fast paths (bulk page I/O) need it, and it is absent (-1) once the socket is closed. */
export function socketFd(s: Socket): number | undefined {
  const fd = (s as unknown as { _handle?: { fd?: number } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/** A connected net.Socket (made with allowHalfOpen) as a channel, set up like the migration
 * sockets: TCP_NODELAY and SOCKET_BUFFER_BYTES kernel buffers. */
export function netSocketChannel(sock: Socket, label: string, opts: ChannelOptions = {}): StreamChannel {
  sock.setNoDelay(true);
  const fd = socketFd(sock);
  if (fd !== undefined) {
    try {
      native.setSocketBuffers(fd, SOCKET_BUFFER_BYTES, SOCKET_BUFFER_BYTES);
    } catch {
      /* keep the defaults */
    }
  }
  return new StreamChannel({
    input: sock,
    output: sock,
    label,
    fd,
    highWaterMark: opts.highWaterMark,
    readHighWaterMark: opts.readHighWaterMark,
  });
}

export class StreamChannel implements ByteChannel {
  protected readonly label: string;
  protected readonly input: Readable | null;
  protected readonly output: Writable | null;
  protected failure: Error | null = null;
  protected destroyed = false;

  private readonly queue: Uint8Array[] = [];
  private head = 0;
  private queued = 0;
  private eof = false;
  private endSeen = false;
  private flowing = false;
  private reader: Waiter<Uint8Array | null> | null = null;

  private ended = false;
  private finished = false;
  private endPromise: Promise<void> | null = null;
  private readonly drainers: Waiter<void>[] = [];
  private readonly finishers: Waiter<void>[] = [];
  private readonly hwm: number;
  private readonly readHwm: number;
  private fdNumber: number | undefined;

  constructor(init: StreamChannelInit) {
    this.label = init.label;
    this.input = init.input;
    this.output = init.output;
    this.fdNumber = init.fd;
    // Never below the socket's own mark: Node only emits 'drain' after a write() that found
    // writableLength at or above it, and drain() relies on that event.
    this.hwm = Math.max(init.highWaterMark ?? DEFAULT_HIGH_WATER_MARK, init.output?.writableHighWaterMark ?? 0);
    this.readHwm = Math.max(1, init.readHighWaterMark ?? DEFAULT_READ_HIGH_WATER_MARK);

    const { input, output } = init;
    if (input) {
      input.pause();
      input.on('data', (c: Buffer) => this.onData(c));
      input.on('end', () => {
        this.endSeen = true;
        this.inputEnded();
      });
    } else {
      this.eof = true;
    }
    if (output) {
      output.on('drain', () => this.onDrain());
      output.on('finish', () => {
        // Node emits no 'drain' once ending; everything has been taken by the kernel now.
        this.finished = true;
        this.settle(this.drainers, null);
        this.settle(this.finishers, null);
      });
    }
    for (const s of new Set([input, output])) {
      if (!s) continue;
      // Node's message names the failing call ("read ECONNRESET", "write EPIPE").
      s.on('error', (e) => this.fail(TransportError.from(e, this.label)));
      s.on('close', () => this.onClose(s));
      // A socket that died before it got here (a connection reset while waiting in a
      // listener's queue, a read started by Node on a descriptor that cannot be read) will
      // emit nothing more: fail now, with its error if it kept one, rather than wait forever.
      if (s.destroyed) {
        const cause = s.errored;
        this.fail(
          cause
            ? TransportError.from(cause, this.label)
            : new TransportError('EDESTROYED', `${this.label}: socket closed before use`),
        );
      }
    }
  }

  /* ---------------------------------------------------------------------------------------- */
  /* ByteChannel                                                                                */

  /** The descriptor, while it is open (a closed number may already name something else). */
  get fd(): number | undefined {
    return this.fdNumber;
  }

  read(): Promise<Uint8Array | null> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.head < this.queue.length) {
      const c = this.queue[this.head++];
      if (this.head > 64 && this.head * 2 > this.queue.length) {
        this.queue.splice(0, this.head);
        this.head = 0;
      }
      this.queued -= c.length;
      if (!this.flowing && !this.eof && this.queued < this.readHwm) this.startFlow();
      return Promise.resolve(c);
    }
    if (this.eof) return Promise.resolve(null);
    if (this.reader) return Promise.reject(new TransportError('EREAD_BUSY', `${this.label}: concurrent read()`));
    if (!this.flowing) this.startFlow();
    return new Promise((resolve, reject) => {
      this.reader = { resolve, reject };
    });
  }

  write(chunk: Uint8Array): boolean {
    const out = this.writable();
    if (!out) return false;
    if (chunk.length > 0) out.write(chunk);
    return out.writableLength < this.hwm;
  }

  writev(chunks: readonly Uint8Array[]): boolean {
    const out = this.writable();
    if (!out) return false;
    out.cork();
    for (let i = 0; i < chunks.length; i++) if (chunks[i].length > 0) out.write(chunks[i]);
    out.uncork();
    return out.writableLength < this.hwm;
  }

  drain(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.destroyed) return Promise.reject(this.destroyedError());
    if (!this.output || this.output.writableLength < this.hwm) return Promise.resolve();
    return new Promise((resolve, reject) => this.drainers.push({ resolve, reject }));
  }

  end(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.endPromise) return this.endPromise;
    if (this.destroyed) return Promise.reject(this.destroyedError());
    this.ended = true;
    const out = this.output;
    const flushed = out
      ? new Promise<void>((resolve, reject) => {
          this.finishers.push({ resolve, reject });
          out.end();
        })
      : Promise.resolve();
    this.endPromise = flushed.then(() => this.afterEnd());
    return this.endPromise;
  }

  destroy(err?: Error): void {
    if (this.destroyed) return;
    if (err) this.fail(err);
    this.destroyed = true;
    this.dropQueue();
    this.eof = true;
    const r = this.reader;
    this.reader = null;
    r?.resolve(null); // only reached without an error: fail() already rejected it otherwise
    this.settle(this.drainers, this.destroyedError());
    this.settle(this.finishers, this.destroyedError());
    for (const s of new Set([this.input, this.output])) s?.destroy();
    this.fdNumber = undefined;
    this.onDestroy();
  }

  /* ---------------------------------------------------------------------------------------- */
  /* Hooks for transports with more to watch than a socket (exec: a child process)             */

  /** The input reached end of stream. Default: read() resolves null once the queue is empty. */
  protected inputEnded(): void {
    this.finishRead();
  }

  /** Runs after end() has flushed and shut down the write side. */
  protected afterEnd(): Promise<void> {
    return Promise.resolve();
  }

  /** Runs once, when destroy() is called. */
  protected onDestroy(): void {}

  /** No more bytes will arrive: a pending read() gets null (the queue is empty if it waits). */
  protected finishRead(): void {
    if (this.eof) return;
    this.eof = true;
    const r = this.reader;
    this.reader = null;
    r?.resolve(null);
  }

  /** Keep the first error; reject everything pending; release the sockets. */
  protected fail(err: Error): void {
    if (this.failure || this.destroyed) return;
    this.failure = err;
    this.dropQueue();
    const r = this.reader;
    this.reader = null;
    r?.reject(err);
    this.settle(this.drainers, err);
    this.settle(this.finishers, err);
    for (const s of new Set([this.input, this.output])) s?.destroy();
  }

  /* ---------------------------------------------------------------------------------------- */

  private writable(): Writable | null {
    if (this.failure || this.destroyed) return null;
    if (this.ended) throw new TransportError('EWRITE_AFTER_END', `${this.label}: write after end()`);
    if (!this.output) throw new TransportError('ENOT_WRITABLE', `${this.label}: this channel has no write direction`);
    return this.output;
  }

  private onData(c: Buffer): void {
    if (this.failure || this.destroyed) return;
    const r = this.reader;
    if (r) {
      this.reader = null;
      r.resolve(c);
      return;
    }
    this.queue.push(c);
    this.queued += c.length;
    if (this.flowing && this.queued >= this.readHwm) {
      this.flowing = false;
      this.input!.pause();
    }
  }

  private startFlow(): void {
    this.flowing = true;
    this.input!.resume();
  }

  private onDrain(): void {
    if (this.output && this.output.writableLength < this.hwm) this.settle(this.drainers, null);
  }

  private onClose(s: Readable | Writable): void {
    this.fdNumber = undefined;
    // A socket closed without 'end' or 'error' (destroyed under us): nothing more will come,
    // and nothing pending may hang.
    if (s === this.input && !this.endSeen) this.finishRead();
    if (s === this.output && !this.failure && !this.finished) {
      const e = new TransportError('EDESTROYED', `${this.label}: closed before the write side finished`);
      this.settle(this.drainers, e);
      this.settle(this.finishers, e);
    }
  }

  private dropQueue(): void {
    this.queue.length = 0;
    this.head = 0;
    this.queued = 0;
  }

  private settle(list: Waiter<void>[], err: Error | null): void {
    const ws = list.splice(0);
    for (const w of ws) {
      if (err) w.reject(err);
      else w.resolve();
    }
  }

  private destroyedError(): TransportError {
    return new TransportError('EDESTROYED', `${this.label}: channel destroyed`);
  }
}
