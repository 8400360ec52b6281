/** exec: specifics: the command as a relay, exit status as errors, stderr, cleanup. */
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import type { ByteChannel } from '../../lib/stream';
import { connectAddress, ExecChannel, listenAddress, parseUri, TransportError } from '../../lib/transport';
import { readAll } from '../stream/channel-contract';

async function incoming(uri: string): Promise<ByteChannel> {
  return (await listenAddress(parseUri(uri))).accept();
}

/** Read until null (resolves the bytes) or a rejection (resolves the error). */
async function drainReads(ch: ByteChannel): Promise<{ data: Buffer; error: unknown }> {
  const parts: Uint8Array[] = [];
  try {
    for (let c = await ch.read(); c; c = await ch.read()) parts.push(c);
    return { data: Buffer.concat(parts), error: null };
  } catch (e) {
    return { data: Buffer.concat(parts), error: e };
  }
}

async function rejection(p: Promise<unknown>): Promise<TransportError> {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(TransportError);
  return e as TransportError;
}

describe('exec: outgoing', () => {
  test('the stream goes to stdin; what the command prints comes back as the reverse direction', async () => {
    const ch = await connectAddress(parseUri('exec:cat'));
    const data = Buffer.alloc(4 * 1024 * 1024);
    for (let i = 0; i < data.length; i++) data[i] = (i * 13) & 0xff;
    const echoed = readAll(ch); // read while writing: cat blocks once its stdout is full
    for (let o = 0; o < data.length; o += 256 * 1024) {
      if (!ch.writev!([data.subarray(o, o + 8), data.subarray(o + 8, o + 256 * 1024)])) await ch.drain();
    }
    await ch.end(); // resolves once cat has exited 0
    expect((await echoed).equals(data)).toBe(true);
    expect((ch as ExecChannel).exitStatus).toEqual({ code: 0, signal: null });
    ch.destroy();
  });

  test('a non-zero exit is EXEC_EXIT with the status, from end()', async () => {
    const ch = await connectAddress(parseUri('exec:exit 3'));
    const e = await rejection(ch.end());
    expect(e.code).toBe('EXEC_EXIT');
    expect(e.exitCode).toBe(3);
    ch.destroy();
  });

  test('death by a signal is EXEC_SIGNAL', async () => {
    const ch = await connectAddress(parseUri('exec:kill -TERM $$'));
    const e = await rejection(ch.end());
    expect(e.code).toBe('EXEC_SIGNAL');
    expect(e.signal).toBe('SIGTERM');
    ch.destroy();
  });

  test('a command that exits without reading the stream fails the writer (never hangs)', async () => {
    const ch = await connectAddress(parseUri('exec:exit 0'));
    const chunk = Buffer.alloc(256 * 1024);
    const e = await (async () => {
      for (;;) if (!ch.write(chunk)) await ch.drain();
    })().then(
      () => null,
      (err: unknown) => err,
    );
    expect(e).toBeInstanceOf(TransportError);
    expect(['EPIPE', 'ECONNRESET']).toContain((e as TransportError).code);
    ch.destroy();
  });

  test('a missing command is the shell exit 127', async () => {
    const ch = await connectAddress(parseUri('exec:/nonexistent/livemig-dst 2>/dev/null'));
    expect((await rejection(ch.end())).exitCode).toBe(127);
    ch.destroy();
  });

  test('destroy() stops a command that is still running (SIGTERM)', async () => {
    const ch = (await connectAddress(parseUri('exec:exec sleep 1000'))) as ExecChannel;
    expect(ch.pid).toBeGreaterThan(0);
    ch.destroy();
    expect(await ch.wait()).toEqual({ code: null, signal: 'SIGTERM' });
  });
});

describe('exec: incoming', () => {
  test('the stream is the command\'s stdout; EOF once it exited 0', async () => {
    const ch = await incoming("exec:printf 'QEVM'; printf '\\000\\000\\000\\003'");
    expect(await readAll(ch)).toEqual(Buffer.from([0x51, 0x45, 0x56, 0x4d, 0, 0, 0, 3]));
    ch.destroy();
  });

  test('a command that fails after part of a stream never ends it cleanly', async () => {
    const ch = await incoming("exec:printf 'QEVM'; exit 5");
    const r = await drainReads(ch);
    expect(r.error).toBeInstanceOf(TransportError);
    expect((r.error as TransportError).code).toBe('EXEC_EXIT');
    expect((r.error as TransportError).exitCode).toBe(5);
    ch.destroy();
  });

  test('the listener has no address and one channel; accept() after close() is refused', async () => {
    const l = await listenAddress(parseUri('exec:exec sleep 1000'));
    expect(l.multiChannel).toBe(false);
    expect(l.addresses).toEqual([]);
    await l.close();
    expect((await rejection(l.accept())).code).toBe('ELISTENER_CLOSED');
  });

  test('return path: what the destination writes reaches the command\'s stdin', async () => {
    // The command relays its stdin (our return path) to its stdout after the stream part.
    const ch = await incoming("exec:printf 'stream|'; cat");
    const first = Buffer.from((await ch.read())!).toString();
    expect(first).toBe('stream|');
    ch.write(Buffer.from('rp-ack'));
    await ch.end();
    expect((await readAll(ch)).toString()).toBe('rp-ack');
    ch.destroy();
  });
});

test("the command's stderr goes to ours", async () => {
  const dist = path.resolve(__dirname, '../../dist/lib/transport');
  const script = `
    const t = require(process.argv[1]);
    t.connectAddress(t.parseUri('exec:echo livemig-exec-stderr >&2')).then((ch) => ch.end()).then(
      () => process.exit(0), (e) => { console.log(e.code); process.exit(1); });`;
  const child = spawn(process.execPath, ['-e', script, dist], { stdio: ['ignore', 'inherit', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('close', (c) => resolve(c)));
  expect(code).toBe(0);
  expect(err).toContain('livemig-exec-stderr');
});
