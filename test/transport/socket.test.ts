/** tcp: and unix: specifics: addresses, socket-file lifecycle, errors, half-close, peer death. */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import type { ByteChannel } from '../../lib/stream';
import {
  connectAddress,
  listenAddress,
  parseUri,
  supportsMultiChannel,
  TransportError,
  type MigrationAddress,
} from '../../lib/transport';
import { readAll } from '../stream/channel-contract';
import { tcpPair, tempDir, uniquePath, unixPair } from './helpers';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

const unixAddr = (path: string): MigrationAddress => ({ transport: 'socket', type: 'unix', path });

/** Run a node script in a child process; resolves when it has printed `ready` on stdout. */
function nodeChild(script: string, args: string[] = []) {
  const child = spawn(process.execPath, ['-e', script, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const ready = new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('ready')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`child exited (${code}) before it was ready`)));
  });
  return { child, ready, exited };
}

/** A unix socket file nobody listens on: the listener process was killed before closing it. */
async function staleSocket(path: string): Promise<void> {
  const { ready, exited, child } = nodeChild(
    `require('net').createServer().listen(process.argv[1], () => { console.log('ready'); setInterval(() => {}, 1e6); })`,
    [path],
  );
  await ready;
  child.kill('SIGKILL');
  await exited;
  expect(fs.lstatSync(path).isSocket()).toBe(true);
}

async function expectCode(p: Promise<unknown>, code: string): Promise<TransportError> {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(TransportError);
  expect((e as TransportError).code).toBe(code);
  return e as TransportError;
}

describe('tcp:', () => {
  test('port 0 listens on an ephemeral port and reports it (query-migrate socket-address)', async () => {
    const l = await listenAddress(parseUri('tcp:127.0.0.1:0'));
    expect(l.multiChannel).toBe(true);
    expect(l.addresses).toHaveLength(1);
    const a = l.addresses[0];
    expect(a.type).toBe('inet');
    if (a.type !== 'inet') return;
    expect(a.host).toBe('127.0.0.1');
    expect(a.port).toMatch(/^\d+$/);
    expect(Number(a.port)).toBeGreaterThan(0);
    const [out, inc] = await Promise.all([connectAddress(parseUri(`tcp:127.0.0.1:${a.port}`)), l.accept()]);
    expect(typeof out.fd).toBe('number');
    expect(typeof inc.fd).toBe('number');
    out.destroy();
    inc.destroy();
    expect(out.fd).toBeUndefined(); // a closed number may already name something else
    await l.close();
  });

  test('an empty host listens on every address', async () => {
    const l = await listenAddress(parseUri('tcp::0'));
    const a = l.addresses[0];
    expect(a.type === 'inet' && ['::', '0.0.0.0'].includes(a.host)).toBe(true);
    await l.close();
  });

  test('connection refused passes the OS error through with its syscall', async () => {
    const l = await listenAddress(parseUri('tcp:127.0.0.1:0'));
    const port = (l.addresses[0] as { port: string }).port;
    await l.close();
    const e = await expectCode(connectAddress(parseUri(`tcp:127.0.0.1:${port}`)), 'ECONNREFUSED');
    expect(e.syscall).toBe('connect');
    expect(e.errno).toBeGreaterThan(0);
  });

  test('a port in use is EADDRINUSE', async () => {
    const l = await listenAddress(parseUri('tcp:127.0.0.1:0'));
    const port = (l.addresses[0] as { port: string }).port;
    const e = await expectCode(listenAddress(parseUri(`tcp:127.0.0.1:${port}`)), 'EADDRINUSE');
    // bind(2) is the call that fails (Node says 'listen': libuv defers bind errors to listen).
    expect(e.syscall).toBe('bind');
    await l.close();
  });

  test('an aborted connect rejects with EABORTED', async () => {
    const l = await listenAddress(parseUri('tcp:127.0.0.1:0'));
    const addr = { transport: 'socket' as const, ...(l.addresses[0] as { type: 'inet'; host: string; port: string }) };
    const before = new AbortController();
    before.abort();
    await expectCode(connectAddress(addr, { signal: before.signal }), 'EABORTED');
    const during = new AbortController();
    const p = connectAddress(addr, { signal: during.signal });
    during.abort();
    await expectCode(p, 'EABORTED');
    await l.close();
  });

  test('the listener keeps accepting (multifd, preempt, recovery) until closed', async () => {
    const l = await listenAddress(parseUri('tcp:127.0.0.1:0'));
    const addr = { transport: 'socket' as const, ...(l.addresses[0] as { type: 'inet'; host: string; port: string }) };
    const chans: ByteChannel[] = [];
    for (const tag of ['main', 'preempt', 'recovered']) {
      const [out, inc] = await Promise.all([connectAddress(addr), l.accept()]);
      out.write(Buffer.from(tag));
      await out.end();
      expect((await readAll(inc)).toString()).toBe(tag);
      chans.push(out, inc);
    }
    const waiting = l.accept();
    await l.close();
    await expectCode(waiting, 'ELISTENER_CLOSED');
    await expectCode(l.accept(), 'ELISTENER_CLOSED');
    for (const c of chans) c.destroy();
  });

  test('half-close: the stream ends while the return path keeps flowing both ways', async () => {
    const [src, dst] = await tcpPair();
    const stream = Buffer.alloc(4 * 1024 * 1024);
    for (let i = 0; i < stream.length; i++) stream[i] = i % 251;
    // Destination: read the whole stream, acknowledging every chunk on the return path.
    const dstSide = (async () => {
      let n = 0;
      for (let c = await dst.read(); c; c = await dst.read()) {
        n += c.length;
        dst.write(Buffer.from(`ack ${n}\n`));
      }
      dst.write(Buffer.from('done\n'));
      await dst.end();
      return n;
    })();
    const acks = readAll(src);
    for (let o = 0; o < stream.length; o += 256 * 1024) {
      if (!src.write(stream.subarray(o, o + 256 * 1024))) await src.drain();
    }
    await src.end();
    expect(await dstSide).toBe(stream.length);
    const lines = (await acks).toString().trim().split('\n');
    expect(lines[lines.length - 1]).toBe('done');
    expect(lines[lines.length - 2]).toBe(`ack ${stream.length}`);
    src.destroy();
    dst.destroy();
  });

  test('supportsMultiChannel: inet and unix sockets only', () => {
    expect(supportsMultiChannel(parseUri('tcp:h:1'))).toBe(true);
    expect(supportsMultiChannel(parseUri('unix:/x'))).toBe(true);
    for (const u of ['fd:3', 'exec:cat', 'file:/x']) expect(supportsMultiChannel(parseUri(u))).toBe(false);
  });
});

describe('unix:', () => {
  test('listening creates the socket file and close() removes it', async () => {
    const path = uniquePath(tmp.dir, 'mig.sock');
    const l = await listenAddress(unixAddr(path));
    expect(l.addresses).toEqual([{ type: 'unix', path }]);
    expect(fs.lstatSync(path).isSocket()).toBe(true);
    await l.close();
    expect(fs.existsSync(path)).toBe(false);
  });

  test('a stale socket file is refused by connect (ECONNREFUSED) and replaced by listen', async () => {
    const path = uniquePath(tmp.dir, 'stale.sock');
    await staleSocket(path);
    await expectCode(connectAddress(unixAddr(path)), 'ECONNREFUSED');
    const l = await listenAddress(unixAddr(path));
    const [out, inc] = await Promise.all([connectAddress(unixAddr(path)), l.accept()]);
    out.write(Buffer.from('fresh'));
    await out.end();
    expect((await readAll(inc)).toString()).toBe('fresh');
    out.destroy();
    inc.destroy();
    await l.close();
  });

  test('like QEMU, whatever is at the path is unlinked before bind', async () => {
    const path = uniquePath(tmp.dir, 'plain');
    fs.writeFileSync(path, 'not a socket');
    const l = await listenAddress(unixAddr(path));
    expect(fs.lstatSync(path).isSocket()).toBe(true);
    await l.close();
  });

  test('connecting to a missing path is ENOENT', async () => {
    await expectCode(connectAddress(unixAddr(uniquePath(tmp.dir, 'missing.sock'))), 'ENOENT');
  });

  test('accepted connections stay open after the listener closes', async () => {
    const [a, b] = await unixPair(tmp.dir); // the helper closes the listener after accept
    a.write(Buffer.from('still here'));
    await a.end();
    expect((await readAll(b)).toString()).toBe('still here');
    a.destroy();
    b.destroy();
  });
});

describe('peer death mid-transfer', () => {
  const peer = (role: 'reader' | 'writer') => `
    const s = require('net').connect(process.argv[1], () => console.log('ready'));
    s.on('error', () => {});
    ${role === 'writer' ? "s.write(Buffer.alloc(1 << 20, 7));" : "s.once('data', () => s.pause());"}
    setInterval(() => {}, 1e6);`;

  test('a writer sees pending drain()/write fail (EPIPE or ECONNRESET) when the reader is killed', async () => {
    const path = uniquePath(tmp.dir, 'death-r.sock');
    const l = await listenAddress(unixAddr(path));
    const { child, ready, exited } = nodeChild(peer('reader'), [path]);
    const ch = await l.accept();
    await ready;
    const chunk = Buffer.alloc(256 * 1024, 1);
    let full!: () => void;
    const backedUp = new Promise<void>((resolve) => (full = resolve));
    const writing = (async () => {
      for (;;) {
        if (ch.write(chunk)) continue;
        full(); // the paused reader's buffers are full: a drain() is now pending
        await ch.drain();
      }
    })().then(
      () => null,
      (err: unknown) => err,
    );
    await backedUp;
    child.kill('SIGKILL');
    await exited;
    const e = await writing;
    expect(e).toBeInstanceOf(TransportError);
    expect(['EPIPE', 'ECONNRESET']).toContain((e as TransportError).code);
    ch.destroy();
    await l.close();
  });

  test('a reader gets its bytes, then null or a rejection, when the writer is killed', async () => {
    const path = uniquePath(tmp.dir, 'death-w.sock');
    const l = await listenAddress(unixAddr(path));
    const { child, ready, exited } = nodeChild(peer('writer'), [path]);
    const ch = await l.accept();
    await ready;
    let n = 0;
    while (n < 1 << 20) n += (await ch.read())!.length;
    child.kill('SIGKILL');
    await exited;
    const end = await ch.read().then(
      (c) => c,
      (err: unknown) => err,
    );
    expect(end === null || (end instanceof TransportError && end.code === 'ECONNRESET')).toBe(true);
    ch.destroy();
    await l.close();
  });
});
