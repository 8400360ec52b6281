/**
 * Character backends for -serial: stdio, null, file:PATH, and unix/tcp sockets as client or
 * server. A socket server behaves as QEMU's chardev-socket: one client at a time, `wait=on`
 * holds start-up until it connects, `wait=off` does not, and output written while no client is
 * connected is dropped.
 *
 *   const serial = await openChardev(spec, { id: 'serial0' });
 *   serial.onInput((bytes) => uart.receive(bytes));
 *   serial.write(bytes);
 *
 * For cpr-transfer a backend names the descriptors it lives on (`fds()`), lets go of them for
 * another process (`detach()`, see socket.ts for the sequence), and is rebuilt there on them
 * (`openChardev(spec, { id, adopt })`): a connected console survives without reconnecting.
 */
import * as fs from 'node:fs';
import type * as net from 'node:net';

import { Adoption, type NamedFd } from './fds';
import { ChardevSocket } from './socket';
import type { ChardevSpec, SocketSpec } from './spec';
import { StdioChardev } from './stdio';

export interface Chardev {
  /** QEMU's chardev id (`serial0`); it prefixes the descriptor names. */
  readonly id: string;
  write(bytes: Uint8Array): void;
  /** Bytes arriving from the outside (keyboard, socket peer). */
  onInput(cb: (bytes: Uint8Array) => void): void;
  /** The descriptors that keep the backend alive now, e.g. serial0/listen and serial0/conn. */
  fds(): NamedFd[];
  /**
   * Stops using the descriptors without shutting a connection down, removing a socket path or
   * closing the open file, and returns copies that the caller owns (to send, then close).
   * The backend is inert afterwards.
   */
  detach(): NamedFd[];
  /** Resolves once what was written has left this process, or after `timeoutMs` (a client
   * that reads nothing): what is still queued here when detach() comes is lost. */
  flush(timeoutMs: number): Promise<void>;
  /** Stops (or resumes) reading input, which waits in the kernel meanwhile: a guest being
   * handed over must take no input it could not keep. A client that arrives meanwhile is
   * paused too. */
  setInputPaused(paused: boolean): void;
  /** A listener stops (or resumes) accepting; clients wait in the backlog meanwhile. Done when
   * the call returns for `false`, when the promise resolves for `true`. */
  setAccepting(on: boolean): Promise<void>;
  close(): void;
}

export interface OpenChardevOptions {
  /** The chardev id, e.g. `serial0`. */
  id: string;
  /**
   * Descriptors from `detach()` in another process: build the backend on them instead of
   * opening, binding or connecting (a file is not truncated again, a unix socket path is
   * neither removed nor bound, wait=on does not wait again). Each must be named
   * `<id>/<role>` and every one given must be used.
   */
  adopt?: readonly NamedFd[];
}

export async function openChardev(spec: ChardevSpec, opts: OpenChardevOptions): Promise<Chardev> {
  const { id, adopt } = opts;
  switch (spec.kind) {
    case 'stdio':
      if (adopt) new Adoption(id, adopt).finish();
      return new StdioChardev(id);
    case 'null':
      if (adopt) new Adoption(id, adopt).finish();
      return new NullChardev(id);
    case 'file': {
      if (!adopt) return new FileChardev(id, fs.openSync(spec.path, 'w'));
      const adoption = new Adoption(id, adopt);
      const fd = adoption.take('file');
      adoption.finish();
      return new FileChardev(id, fd ?? adoption.missing('file'));
    }
    case 'unix':
    case 'tcp': {
      const c = new SocketChardev(id, spec);
      await c.open(adopt);
      return c;
    }
  }
}

class NullChardev implements Chardev {
  constructor(readonly id: string) {}
  write(): void {}
  onInput(): void {}
  async flush(): Promise<void> {}
  setInputPaused(): void {}
  async setAccepting(): Promise<void> {}
  fds(): NamedFd[] {
    return [];
  }
  detach(): NamedFd[] {
    return [];
  }
  close(): void {}
}

class FileChardev implements Chardev {
  constructor(
    readonly id: string,
    private fd: number,
  ) {}

  write(bytes: Uint8Array): void {
    if (this.fd >= 0) fs.writeSync(this.fd, bytes);
  }
  onInput(): void {}
  /** Writes are synchronous: nothing is ever queued here. */
  async flush(): Promise<void> {}
  setInputPaused(): void {}
  async setAccepting(): Promise<void> {}

  fds(): NamedFd[] {
    return this.fd >= 0 ? [{ name: `${this.id}/file`, fd: this.fd }] : [];
  }

  /** A plain file descriptor has no handle around it: it is simply given away. */
  detach(): NamedFd[] {
    const out = this.fds();
    this.fd = -1;
    return out;
  }

  close(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }
}

/** QEMU's chardev-socket for the serial port: one client at a time. */
class SocketChardev implements Chardev {
  private readonly socket: ChardevSocket;
  private client: net.Socket | null = null;
  private input: ((b: Uint8Array) => void) | null = null;
  private inputPaused = false;

  constructor(
    readonly id: string,
    private readonly spec: SocketSpec,
  ) {
    this.socket = new ChardevSocket(spec, { id, maxClients: 1, onClient: (sock) => this.attach(sock) });
  }

  async open(adopt?: readonly NamedFd[]): Promise<void> {
    await this.socket.open(adopt);
    // Adopted: the old process already waited for (and may still have) its client.
    if (this.spec.server && this.spec.wait && !adopt) await this.socket.connected;
  }

  private attach(sock: net.Socket): void {
    this.client = sock;
    sock.on('data', (b) => this.input?.(b));
    if (this.inputPaused) sock.pause();
    sock.on('close', () => {
      if (this.client === sock) this.client = null;
    });
  }

  write(bytes: Uint8Array): void {
    // No client: dropped, as QEMU drops output of a disconnected socket chardev.
    if (this.client && !this.client.destroyed) this.client.write(bytes);
  }
  onInput(cb: (bytes: Uint8Array) => void): void {
    this.input = cb;
  }
  setInputPaused(paused: boolean): void {
    this.inputPaused = paused;
    if (paused) this.client?.pause();
    else this.client?.resume();
  }
  setAccepting(on: boolean): Promise<void> {
    return this.socket.setAccepting(on);
  }
  flush(timeoutMs: number): Promise<void> {
    const c = this.client;
    if (!c || c.destroyed || c.writableLength === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        c.off('drain', done);
        c.off('close', done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      c.once('drain', done);
      c.once('close', done);
    });
  }
  fds(): NamedFd[] {
    return this.socket.fds();
  }
  detach(): NamedFd[] {
    return this.socket.detach();
  }
  close(): void {
    void this.socket.close();
  }
}
