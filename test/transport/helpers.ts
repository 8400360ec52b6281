/**
 * Connected channel pairs over real sockets, pipes, processes and files, for the contract
 * suite and the per-transport tests. Every pair is [outgoing a, incoming b]: a's writes arrive
 * at b's reads, as the migration stream does; b's writes (when the transport has a reverse
 * direction) are the return path.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { native, SOCK_STREAM } from '../../lib/host';
import type { ByteChannel } from '../../lib/stream';
import { connectAddress, FdChannel, listenAddress, parseUri, type FdChannelOptions, type MigrationAddress } from '../../lib/transport';

/** A fresh directory for one test file; removed by the returned cleanup. */
export function tempDir(): { dir: string; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'livemig-transport-'));
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

let seq = 0;
export function uniquePath(dir: string, stem: string): string {
  return path.join(dir, `${stem}-${process.pid}-${++seq}`);
}

export function mkfifo(p: string): string {
  execFileSync('mkfifo', [p]);
  return p;
}

/** Both ends of a fresh FIFO, opened by us (so nothing else owns the descriptors). */
export function pipeFds(dir: string): { r: number; w: number } {
  const p = mkfifo(uniquePath(dir, 'fifo'));
  const { O_RDONLY, O_WRONLY, O_NONBLOCK } = fs.constants;
  const r = fs.openSync(p, O_RDONLY | O_NONBLOCK);
  const w = fs.openSync(p, O_WRONLY | O_NONBLOCK);
  return { r, w };
}

/** Listen on `addr`, connect to the address it reports, accept. */
export async function socketPair(addr: MigrationAddress): Promise<[ByteChannel, ByteChannel]> {
  const listener = await listenAddress(addr);
  const where = listener.addresses[0];
  const target: MigrationAddress =
    where.type === 'inet' ? { transport: 'socket', ...where } : { transport: 'socket', type: 'unix', path: where.path };
  const [a, b] = await Promise.all([connectAddress(target), listener.accept()]);
  await listener.close();
  return [a, b];
}

export function tcpPair(host = '127.0.0.1'): Promise<[ByteChannel, ByteChannel]> {
  return socketPair({ transport: 'socket', type: 'inet', host, port: '0' });
}

export function unixPair(dir: string): Promise<[ByteChannel, ByteChannel]> {
  return socketPair({ transport: 'socket', type: 'unix', path: uniquePath(dir, 'sock') });
}

/** Two FdChannels over a fresh AF_UNIX socketpair (kernel default buffer sizes). */
export function fdChannelPair(opts: FdChannelOptions = {}): [FdChannel, FdChannel] {
  const [x, y] = native.socketPair(SOCK_STREAM);
  return [new FdChannel(x, { label: 'unix', ...opts }), new FdChannel(y, { label: 'unix', ...opts })];
}

/** fd: over a socketpair: each side takes one end, as a management tool would pass them. */
export async function socketFdPair(): Promise<[ByteChannel, ByteChannel]> {
  const [x, y] = native.socketPair(SOCK_STREAM);
  const a = await connectAddress(parseUri(`fd:${x}`));
  const b = await (await listenAddress(parseUri(`fd:${y}`))).accept();
  return [a, b];
}

/** fd: over a pipe: a writes the write end, b reads the read end. */
export async function pipePair(dir: string): Promise<[ByteChannel, ByteChannel]> {
  const { r, w } = pipeFds(dir);
  const a = await connectAddress(parseUri(`fd:${w}`));
  const b = await (await listenAddress(parseUri(`fd:${r}`))).accept();
  return [a, b];
}

/**
 * exec: through `cat`, both directions: two FIFOs join two commands.
 *   a (outgoing):  stdin ─cat▶ ab ─cat▶ stdout of b        b's stdin ─cat▶ ba ─cat▶ a's stdout
 * Each side's main process is the cat that carries its migration-stream direction (a: stdin
 * to ab; b: ab to stdout), so end() and EOF follow the exit of the right process. A
 * background list reads /dev/null unless redirected, hence b's `<&3` copy of stdin.
 */
export async function execPair(dir: string): Promise<[ByteChannel, ByteChannel]> {
  const ab = mkfifo(uniquePath(dir, 'ab'));
  const ba = mkfifo(uniquePath(dir, 'ba'));
  const [a, listener] = await Promise.all([
    connectAddress(parseUri(`exec:cat <'${ba}' & exec cat >'${ab}'`)),
    listenAddress(parseUri(`exec:exec 3<&0; cat <&3 >'${ba}' & exec cat <'${ab}' 3<&-`)),
  ]);
  const b = await listener.accept();
  // Opening a FIFO blocks until its other end is opened. One byte each way proves all four
  // opens happened, so a side that is destroyed early cannot leave the other blocked in open.
  a.write(Buffer.from('S'));
  b.write(Buffer.from('S'));
  expect(Buffer.from((await b.read())!).toString()).toBe('S');
  expect(Buffer.from((await a.read())!).toString()).toBe('S');
  return [a, b];
}

/**
 * file: a writer, then a reader of the same file from the same offset. The reader opens the
 * file once the writer has ended (a file is not a pipe: reading early would see a short file).
 */
export async function filePair(file: string, offset = 0): Promise<[ByteChannel, ByteChannel]> {
  const addr: MigrationAddress = { transport: 'file', filename: file, offset };
  const writer = await connectAddress(addr);
  let ended!: () => void;
  const writerEnded = new Promise<void>((resolve) => (ended = resolve));
  const a: ByteChannel = {
    write: (c) => writer.write(c),
    writev: (cs) => writer.writev!(cs),
    drain: () => writer.drain(),
    end: async () => {
      await writer.end();
      ended();
    },
    read: () => writer.read(),
    destroy: (e) => writer.destroy(e),
    fd: writer.fd,
  };
  return [a, new SequencedReader(writerEnded, async () => (await listenAddress(addr)).accept())];
}

/** Opens its channel when `ready` resolves; destroy() settles a read that is still waiting. */
class SequencedReader implements ByteChannel {
  private inner: Promise<ByteChannel> | null = null;
  private pending: { resolve: (v: Uint8Array | null) => void; reject: (e: Error) => void } | null = null;
  private failure: Error | null = null;
  private destroyed = false;

  constructor(
    private readonly ready: Promise<void>,
    private readonly open: () => Promise<ByteChannel>,
  ) {}

  read(): Promise<Uint8Array | null> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.destroyed) return Promise.resolve(null);
    this.inner ??= this.ready.then(() => this.open());
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      this.inner!.then((ch) => ch.read()).then(
        (v) => this.settle((p) => p.resolve(v)),
        (e: Error) => this.settle((p) => p.reject(e)),
      );
    });
  }

  write(): boolean {
    throw new Error('file reader: no write direction');
  }

  drain(): Promise<void> {
    return Promise.resolve();
  }

  end(): Promise<void> {
    return Promise.resolve();
  }

  destroy(err?: Error): void {
    if (this.destroyed) return;
    this.destroyed = true;
    if (err) this.failure = err;
    this.settle((p) => (err ? p.reject(err) : p.resolve(null)));
    this.inner?.then((ch) => ch.destroy(err)).catch(() => undefined);
  }

  private settle(f: (p: NonNullable<SequencedReader['pending']>) => void): void {
    const p = this.pending;
    this.pending = null;
    if (p) f(p);
  }
}

/** Whether this machine has an IPv6 loopback (it may be disabled in containers). */
export function hasIpv6Loopback(): boolean {
  return Object.values(os.networkInterfaces()).some((list) => list?.some((i) => i.address === '::1'));
}
