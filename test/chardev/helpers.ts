/** Shared helpers for the chardev tests: temporary socket paths and a line-reading peer. */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Readable } from 'node:stream';

export const DIST_CHARDEV = path.resolve(__dirname, '../../dist/lib/chardev/index.js');
export const DIST_HOST = path.resolve(__dirname, '../../dist/lib/host/index.js');

const dirs: string[] = [];

/** A fresh directory, removed by cleanupDirs(). */
export function tmpDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'livemig-chardev-'));
  dirs.push(d);
  return d;
}

export function cleanupDirs(): void {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
}

/** Everything a readable has produced, with a way to wait for a pattern in it. */
export class Collected {
  text = '';
  ended = false;

  constructor(readonly stream: Readable) {
    stream.on('data', (d: Buffer) => (this.text += d.toString()));
    stream.on('end', () => (this.ended = true));
    stream.on('close', () => (this.ended = true));
  }

  async waitFor(re: RegExp, ms = 5000): Promise<RegExpExecArray> {
    const deadline = Date.now() + ms;
    for (;;) {
      const m = re.exec(this.text);
      if (m) return m;
      if (this.ended || Date.now() > deadline) throw new Error(`timed out waiting for ${re} in ${JSON.stringify(this.text)}`);
      await sleep(10);
    }
  }
}

/** A client socket that records its bytes and every event that would mean "disconnected". */
export class Client {
  readonly out: Collected;
  readonly events: string[] = [];

  private constructor(readonly sock: net.Socket) {
    this.out = new Collected(sock);
    for (const ev of ['end', 'close', 'error']) sock.on(ev, () => this.events.push(ev));
  }

  static connect(to: string | number): Promise<Client> {
    return new Promise((resolve, reject) => {
      const sock = typeof to === 'string' ? net.connect(to) : net.connect(to, '127.0.0.1');
      sock.once('error', reject);
      sock.once('connect', () => {
        sock.off('error', reject);
        resolve(new Client(sock));
      });
    });
  }

  /** Connects, retrying while the path is not there yet (a child still starting). */
  static async connectWhenThere(to: string, ms = 5000): Promise<Client> {
    const deadline = Date.now() + ms;
    for (;;) {
      try {
        return await Client.connect(to);
      } catch (e) {
        if (Date.now() > deadline) throw e;
        await sleep(20);
      }
    }
  }

  close(): void {
    this.sock.destroy();
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
