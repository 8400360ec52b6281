/**
 * FdChannel specifics: read-buffer ownership, partial writev with a tiny send buffer, the read
 * high-water mark, peer resets, detach(), and a worker thread driving a handed-over or
 * duplicated descriptor (the postcopy pattern: a worker reads while the main thread writes).
 */
import { createHash } from 'node:crypto';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { native, SOCK_STREAM } from '../../lib/host';
import { FdChannel, TransportError } from '../../lib/transport';
import { readAll } from '../stream/channel-contract';
import { fdChannelPair, tcpPair, tempDir, unixPair } from './helpers';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

const DIST_TRANSPORT = path.resolve(__dirname, '../../dist/lib/transport/index.js');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function pattern(n: number, seed = 0): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 131 + seed + (i >> 12)) & 0xff;
  return b;
}

async function failureOf(p: Promise<unknown>): Promise<TransportError> {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(TransportError);
  return e as TransportError;
}

/** A worker running `body` with `t` = dist/lib/transport, `workerData` and `parentPort`. */
function transportWorker(body: string, workerData: unknown): { worker: Worker; result: Promise<any> } {
  const code =
    `const t = require(${JSON.stringify(DIST_TRANSPORT)});\n` +
    `const { createHash } = require('node:crypto');\n` +
    `const { parentPort, workerData } = require('node:worker_threads');\n` +
    `(async () => {\n${body}\n})().then((r) => parentPort.postMessage(r), (e) => { throw e; });`;
  const worker = new Worker(code, { eval: true, workerData });
  const result = new Promise((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
    worker.once('exit', (c) => reject(new Error(`worker exited (${c}) before replying`)));
  });
  return { worker, result };
}

describe('read side', () => {
  test('chunks stay valid and unchanged while later reads land in the same slab', async () => {
    const [a, b] = fdChannelPair();
    const data = pattern(3 * 1024 * 1024 + 123);
    const kept: Uint8Array[] = [];
    const reading = (async () => {
      for (let c = await b.read(); c; c = await b.read()) kept.push(c); // kept, never copied
    })();
    for (let o = 0; o < data.length; o += 100_000) if (!a.write(data.subarray(o, o + 100_000))) await a.drain();
    await a.end();
    await reading;
    expect(Buffer.concat(kept).equals(data)).toBe(true);
    // Reads share slabs (views smaller than their buffer) rather than one allocation each.
    expect(kept.some((c) => c.byteLength < c.buffer.byteLength)).toBe(true);
    a.destroy();
    b.destroy();
  });

  test('nothing is read before the first read(), and reading stops at readHighWaterMark', async () => {
    const [w, r] = native.socketPair(SOCK_STREAM);
    const b = new FdChannel(r, { label: 'unix', readHighWaterMark: 64 * 1024 });
    const data = pattern(32 * 1024 * 1024);
    let off = 0;
    /** Raw non-blocking writes until the kernel refuses more; bytes pushed. */
    const push = (): number => {
      const from = off;
      for (let n = 0; n >= 0 && off < data.length; off += Math.max(0, n)) n = native.writev(w, [data.subarray(off, off + 65536)]);
      return off - from;
    };
    push();
    await sleep(50);
    expect(push()).toBe(0); // nobody read: the kernel buffers stay full
    const first = await b.read();
    expect(first!.length).toBeGreaterThan(0);
    // The channel now reads ahead only until 64 KiB wait unread; keep offering bytes: a
    // channel that did not stop would take all 32 MiB.
    let absorbed = 0;
    for (let round = 0; round < 20; round++) {
      await sleep(10);
      const n = push();
      absorbed += n;
      if (n === 0 && round > 3) break;
    }
    expect(absorbed).toBeLessThan(2 * 1024 * 1024);
    const a = new FdChannel(w, { label: 'unix' });
    const got: Uint8Array[] = [first!];
    const reading = (async () => {
      for (let c = await b.read(); c; c = await b.read()) got.push(c);
    })();
    for (; off < data.length; off += 256 * 1024) if (!a.write(data.subarray(off, off + 256 * 1024))) await a.drain();
    await a.end();
    await reading;
    expect(Buffer.concat(got).equals(data)).toBe(true);
    a.destroy();
    b.destroy();
  });
});

describe('write side', () => {
  test('writev with a tiny SO_SNDBUF: partial writes resume mid-piece, past IOV_MAX pieces', async () => {
    const [w, r] = native.socketPair(SOCK_STREAM);
    native.setSocketBuffers(w, 4096, 0);
    native.setSocketBuffers(r, 0, 4096);
    // The raw call first: the kernel takes part of the vector and says how much.
    const pieces = Array.from({ length: 64 }, (_, i) => pattern(4099, i));
    const n = native.writev(w, pieces);
    expect(n).toBeGreaterThan(0);
    expect(n).toBeLessThan(64 * 4099);
    expect(native.writev(w, pieces, Math.floor(n / 4099), n % 4099)).toBe(-1); // full now
    expect(() => native.writev(w, pieces, 65)).toThrow(expect.objectContaining({ code: 'ERANGE' }));
    const a = new FdChannel(w, { label: 'unix' });
    const b = new FdChannel(r, { label: 'unix' });
    const reading = readAll(b);
    // Then through the channel: the rest of that vector, then 3000 odd-sized pieces
    // (header + page shapes) in one writev, more than one writev(2) may take.
    const want = [Buffer.concat(pieces).subarray(n)];
    a.write(want[0]);
    const batch: Uint8Array[] = [];
    for (let i = 0; i < 1500; i++) batch.push(pattern(8 + (i % 5), i), pattern(4096 - (i % 7), i + 1));
    want.push(...batch.map((c) => Buffer.from(c)));
    expect(a.writev(batch)).toBe(false); // ~6 MiB cannot fit a 4 KiB socket buffer
    await a.end();
    const got = await reading; // the raw call's n bytes, then everything the channel wrote
    const whole = Buffer.concat([Buffer.concat(pieces).subarray(0, n), ...want]);
    expect(got.length).toBe(whole.length);
    expect(createHash('sha256').update(got).digest('hex')).toBe(createHash('sha256').update(whole).digest('hex'));
    a.destroy();
    b.destroy();
  });
});

describe('peer reset', () => {
  // Closing a socket with unread data resets the connection (a TCP RST; ECONNRESET on the
  // peer of a unix socket), unlike a clean close, which is end of stream.
  const pair = (kind: 'tcp' | 'unix') => (kind === 'tcp' ? tcpPair() : unixPair(tmp.dir));

  test.each(['tcp', 'unix'] as const)('%s: read() rejects with "read ECONNRESET"', async (kind) => {
    const [a, b] = await pair(kind);
    a.write(Buffer.alloc(1000, 1));
    b.write(Buffer.alloc(10, 2));
    await sleep(20); // both sit unread in the kernel
    expect(Buffer.from((await a.read())!).length).toBe(10);
    b.destroy();
    const e = await failureOf(a.read());
    expect(e.code).toBe('ECONNRESET');
    expect(e.syscall).toBe('read');
    expect(e.errno).toBeGreaterThan(0);
    expect(e.message).toContain('read ECONNRESET');
    expect(a.fd).toBeUndefined(); // closed on failure
    await expect(a.drain()).rejects.toBe(e); // sticky
  });

  test.each(['tcp', 'unix'] as const)('%s: writes fail with writev EPIPE or ECONNRESET', async (kind) => {
    const [a, b] = await pair(kind);
    a.write(Buffer.alloc(1000, 1));
    await sleep(20);
    b.destroy();
    await sleep(20);
    const chunk = Buffer.alloc(64 * 1024);
    for (let i = 0; i < 64 && a.write(chunk); i++);
    const e = await failureOf(a.drain().then(() => a.end()));
    expect(['EPIPE', 'ECONNRESET']).toContain(e.code);
    expect(e.syscall).toBe('writev');
    expect(e.message).toContain(`writev ${e.code}`);
    expect(a.write(chunk)).toBe(false); // after the error, writes are dropped
    a.destroy();
  });
});

describe('detach() and worker threads', () => {
  test('detach refuses while writes are queued, then hands the descriptor over open', async () => {
    const [a, b] = fdChannelPair();
    for (let i = 0; i < 64 && a.write(Buffer.alloc(64 * 1024)); i++);
    expect(() => a.detach()).toThrow(expect.objectContaining({ code: 'EDETACH_PENDING' }));
    const reading = (async () => {
      let n = 0;
      for (let c = await b.read(); c; c = await b.read()) n += c.length;
      return n;
    })();
    await a.flushed();
    const fd = a.detach();
    expect(a.fd).toBeUndefined();
    await expect(a.read()).rejects.toMatchObject({ code: 'EDETACHED' });
    expect(() => a.write(Buffer.from('x'))).toThrow(expect.objectContaining({ code: 'EDETACHED' }));
    a.destroy(); // does not close what was handed over
    expect(native.socketType(fd)).toBe(SOCK_STREAM);
    const again = new FdChannel(fd, { label: 'unix' });
    again.write(Buffer.from('tail'));
    await again.end();
    expect(await reading).toBeGreaterThan(4);
    again.destroy();
    b.destroy();
  });

  test('a worker reads a detached descriptor and answers on it; the main thread is the peer', async () => {
    const [src, dst] = await unixPair(tmp.dir);
    const fd = (dst as FdChannel).detach();
    const { worker, result } = transportWorker(
      `const ch = new t.FdChannel(workerData.fd, { label: 'unix' });
       const h = createHash('sha256');
       let n = 0;
       for (let c = await ch.read(); c; c = await ch.read()) { h.update(c); n += c.length; }
       ch.write(Buffer.from(n + ' ' + h.digest('hex')));
       await ch.end();
       ch.destroy();
       return n;`,
      { fd },
    );
    const data = pattern(8 * 1024 * 1024 + 5);
    const reply = readAll(src);
    for (let o = 0; o < data.length; o += 256 * 1024) if (!src.write(data.subarray(o, o + 256 * 1024))) await src.drain();
    await src.end();
    expect(await result).toBe(data.length);
    expect((await reply).toString()).toBe(`${data.length} ${createHash('sha256').update(data).digest('hex')}`);
    src.destroy();
    await worker.terminate();
  });

  test('a worker reads the return path on a dup while the main thread writes the stream', async () => {
    const [src, dst] = await tcpPair();
    const { worker, result } = transportWorker(
      `const ch = new t.FdChannel(workerData.fd, { label: 'tcp', writable: false });
       const msgs = [];
       for (let c = await ch.read(); c; c = await ch.read()) msgs.push(Buffer.from(c).toString());
       ch.destroy();
       return msgs.join('');`,
      { fd: native.dup(src.fd!) },
    );
    const data = pattern(16 * 1024 * 1024);
    const destination = (async () => {
      let n = 0;
      for (let c = await dst.read(); c; c = await dst.read()) {
        n += c.length;
        if (n % 7 === 0) dst.write(Buffer.from(`req ${n}\n`)); // a page request, now and then
      }
      dst.write(Buffer.from(`done ${n}\n`));
      await dst.end();
      return n;
    })();
    for (let o = 0; o < data.length; o += 256 * 1024) if (!src.write(data.subarray(o, o + 256 * 1024))) await src.drain();
    await src.end(); // the stream's FIN; the worker's dup still reads the other direction
    expect(await destination).toBe(data.length);
    const lines = (await result as string).trim().split('\n');
    expect(lines[lines.length - 1]).toBe(`done ${data.length}`);
    src.destroy();
    dst.destroy();
    await worker.terminate();
  });
});
