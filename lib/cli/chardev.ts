/**
 * Character backends for -serial (and the byte side of -monitor/-qmp): stdio, null, file:PATH,
 * and unix/tcp sockets as client or server (QEMU's chardev-socket: `server=on,wait=off` listens
 * and does not block start-up; `wait=on` blocks until a client connects; output written while
 * no client is connected is dropped, as QEMU does).
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import type { ChardevSpec } from './options';

export interface Chardev {
  write(bytes: Uint8Array): void;
  /** Bytes arriving from the outside (keyboard, socket peer). */
  onInput(cb: (bytes: Uint8Array) => void): void;
  close(): void;
}

class StdioChardev implements Chardev {
  private listener: ((b: Buffer) => void) | null = null;

  constructor() {
    // A reader that went away (`livemig ... | head`) must not take the machine with it: the
    // write error arrives as an event, and output is dropped from then on.
    process.stdout.on('error', () => (this.broken = true));
  }
  private broken = false;

  write(bytes: Uint8Array): void {
    if (this.broken) return;
    try {
      process.stdout.write(bytes);
    } catch {
      /* stdout closed: QEMU ignores it too */
    }
  }
  onInput(cb: (bytes: Uint8Array) => void): void {
    this.listener = (b) => cb(b);
    if (process.stdin.isTTY) process.stdin.setRawMode?.(true);
    process.stdin.on('data', this.listener);
  }
  close(): void {
    if (this.listener) process.stdin.off('data', this.listener);
    if (process.stdin.isTTY) process.stdin.setRawMode?.(false);
    process.stdin.pause();
  }
}

class FileChardev implements Chardev {
  private fd: number;
  constructor(path: string) {
    this.fd = fs.openSync(path, 'w');
  }
  write(bytes: Uint8Array): void {
    if (this.fd >= 0) fs.writeSync(this.fd, bytes);
  }
  onInput(): void {}
  close(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }
}

class NullChardev implements Chardev {
  write(): void {}
  onInput(): void {}
  close(): void {}
}

class SocketChardev implements Chardev {
  private client: net.Socket | null = null;
  private server: net.Server | null = null;
  private input: ((b: Uint8Array) => void) | null = null;

  constructor(private readonly spec: Extract<ChardevSpec, { kind: 'unix' | 'tcp' }>) {}

  async open(): Promise<void> {
    const s = this.spec;
    if (!s.server) {
      const sock = s.kind === 'unix' ? net.connect(s.path) : net.connect(s.port, s.host);
      await new Promise<void>((resolve, reject) => {
        sock.once('connect', resolve);
        sock.once('error', reject);
      });
      this.attach(sock);
      return;
    }
    if (s.kind === 'unix') removeStaleSocket(s.path);
    this.server = net.createServer((sock) => {
      if (this.client) {
        // QEMU's socket chardev serves one client at a time.
        sock.destroy();
        return;
      }
      this.attach(sock);
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      if (s.kind === 'unix') this.server!.listen(s.path, resolve);
      else this.server!.listen(s.port, s.host, resolve);
    });
    if (s.wait) {
      await new Promise<void>((resolve) => {
        const t = setInterval(() => {
          if (this.client) {
            clearInterval(t);
            resolve();
          }
        }, 10);
      });
    }
  }

  private attach(sock: net.Socket): void {
    this.client = sock;
    sock.on('data', (b) => this.input?.(b));
    sock.on('error', () => sock.destroy());
    sock.on('close', () => {
      if (this.client === sock) this.client = null;
    });
  }

  write(bytes: Uint8Array): void {
    if (this.client && !this.client.destroyed) this.client.write(bytes);
  }
  onInput(cb: (bytes: Uint8Array) => void): void {
    this.input = cb;
  }
  close(): void {
    this.client?.destroy();
    this.server?.close();
    if (this.spec.kind === 'unix' && this.spec.server) removeStaleSocket(this.spec.path);
  }
}

/** QEMU unlinks an existing socket file before binding a unix server socket. */
export function removeStaleSocket(path: string): void {
  try {
    if (fs.lstatSync(path).isSocket()) fs.unlinkSync(path);
  } catch {
    /* not there */
  }
}

export async function openChardev(spec: ChardevSpec): Promise<Chardev> {
  switch (spec.kind) {
    case 'stdio':
      return new StdioChardev();
    case 'null':
      return new NullChardev();
    case 'file':
      return new FileChardev(spec.path);
    case 'unix':
    case 'tcp': {
      const c = new SocketChardev(spec);
      await c.open();
      return c;
    }
  }
}
