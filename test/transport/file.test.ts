/** file: specifics: offset and truncation (QEMU file_start_outgoing/incoming_migration),
 * no return path, open errors, large batched writes and chunked reads. */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import type { ByteChannel } from '../../lib/stream';
import { connectAddress, listenAddress, parseUri, TransportError } from '../../lib/transport';
import { readAll } from '../stream/channel-contract';
import { tempDir, uniquePath } from './helpers';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

async function writeStream(uri: string, parts: Uint8Array[]): Promise<void> {
  const ch = await connectAddress(parseUri(uri));
  for (const p of parts) if (!ch.write(p)) await ch.drain();
  await ch.end();
}

async function readStream(uri: string, opts = {}): Promise<Buffer> {
  const ch = await (await listenAddress(parseUri(uri), opts)).accept();
  return readAll(ch);
}

async function rejection(p: Promise<unknown>): Promise<TransportError> {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(TransportError);
  return e as TransportError;
}

describe('file:', () => {
  test('outgoing with offset=N keeps the N bytes before it and cuts off the rest', async () => {
    const f = uniquePath(tmp.dir, 'with-header');
    fs.writeFileSync(f, Buffer.alloc(3 * 4096, 0xaa));
    await writeStream(`file:${f},offset=0x1000`, [Buffer.from('QEVM'), Buffer.from([0, 0, 0, 3])]);
    const got = fs.readFileSync(f);
    expect(got.length).toBe(4096 + 8);
    expect(got.subarray(0, 4096).equals(Buffer.alloc(4096, 0xaa))).toBe(true);
    expect(got.subarray(4096).toString('latin1')).toBe('QEVM\0\0\0\x03');
  });

  test('incoming with offset=N reads from N to the end of the file', async () => {
    const f = uniquePath(tmp.dir, 'read-offset');
    fs.writeFileSync(f, Buffer.concat([Buffer.alloc(4096, 0xee), Buffer.from('payload')]));
    expect((await readStream(`file:${f},offset=4K`)).toString()).toBe('payload');
    expect((await readStream(`file:${f},offset=1M`)).length).toBe(0); // past the end: empty
  });

  test('outgoing without offset truncates an existing file', async () => {
    const f = uniquePath(tmp.dir, 'truncate');
    fs.writeFileSync(f, Buffer.alloc(1 << 20, 1));
    await writeStream(`file:${f}`, [Buffer.from('short')]);
    expect(fs.readFileSync(f, 'utf8')).toBe('short');
  });

  test('a new file is created with mode 0600', async () => {
    const f = uniquePath(tmp.dir, 'mode');
    await writeStream(`file:${f}`, [Buffer.from('x')]);
    expect(fs.statSync(f).mode & 0o777).toBe(0o600);
  });

  test('no return path: outgoing read() is null at once, incoming write() is ENOT_WRITABLE', async () => {
    const f = uniquePath(tmp.dir, 'one-way');
    const out = await connectAddress(parseUri(`file:${f}`));
    expect(await out.read()).toBeNull();
    await out.end();
    const l = await listenAddress(parseUri(`file:${f}`));
    expect(l.multiChannel).toBe(false);
    expect(l.addresses).toEqual([]);
    const inc = await l.accept();
    expect(() => inc.write(Buffer.from('rp'))).toThrow(expect.objectContaining({ code: 'ENOT_WRITABLE' }));
    expect((await rejection(l.accept())).code).toBe('ENOT_MULTICHANNEL');
    inc.destroy();
  });

  test('open errors pass through: ENOENT reading a missing file, EISDIR writing a directory', async () => {
    const missing = await rejection(listenAddress(parseUri(`file:${uniquePath(tmp.dir, 'missing')}`)));
    expect(missing.code).toBe('ENOENT');
    expect(missing.syscall).toBe('open');
    const dir = await rejection(connectAddress(parseUri(`file:${tmp.dir}`)));
    expect(dir.code).toBe('EISDIR');
  });

  test('the descriptor is exposed while open and released after end()', async () => {
    const f = uniquePath(tmp.dir, 'fd');
    const out: ByteChannel = await connectAddress(parseUri(`file:${f}`));
    expect(typeof out.fd).toBe('number');
    expect(fs.fstatSync(out.fd!).isFile()).toBe(true);
    await out.end();
    expect(out.fd).toBeUndefined();
  });

  test('48 MiB of odd-sized pieces and page views, batched and backpressured, read back in chunks', async () => {
    const f = uniquePath(tmp.dir, 'big');
    const out = await connectAddress(parseUri(`file:${f},offset=512`), { highWaterMark: 256 * 1024 });
    const ram = new Uint8Array(1 << 20);
    for (let i = 0; i < ram.length; i++) ram[i] = (i * 31 + (i >> 10)) & 0xff;
    const want = createHash('sha256');
    let sawBackpressure = false;
    let total = 0;
    for (let pass = 0; pass < 48; pass++) {
      const iov: Uint8Array[] = [];
      for (let o = 0; o < ram.length; o += 4096) {
        const hdr = Buffer.alloc(1 + ((o >> 12) % 13), pass); // 1..13 bytes: odd sizes
        iov.push(hdr, ram.subarray(o, o + 4096));
        want.update(hdr).update(ram.subarray(o, o + 4096));
        total += hdr.length + 4096;
      }
      if (!out.writev!(iov)) {
        sawBackpressure = true;
        await out.drain();
      }
    }
    await out.end();
    expect(sawBackpressure).toBe(true);
    expect(fs.statSync(f).size).toBe(512 + total);
    const inc = await (await listenAddress(parseUri(`file:${f},offset=512`), { readChunkSize: 192 * 1024 })).accept();
    const got = createHash('sha256');
    let n = 0;
    let chunks = 0;
    for (let c = await inc.read(); c; c = await inc.read()) {
      got.update(c);
      n += c.length;
      chunks++;
      expect(c.length).toBeLessThanOrEqual(192 * 1024);
    }
    expect(n).toBe(total);
    expect(chunks).toBe(Math.ceil(total / (192 * 1024)));
    expect(got.digest('hex')).toBe(want.digest('hex'));
  });

  test('concurrent read() calls are refused (one at a time)', async () => {
    const f = uniquePath(tmp.dir, 'busy');
    fs.writeFileSync(f, 'abc');
    const inc = await (await listenAddress(parseUri(`file:${f}`))).accept();
    const first = inc.read();
    expect((await rejection(inc.read())).code).toBe('EREAD_BUSY');
    expect(Buffer.from((await first)!).toString()).toBe('abc');
    inc.destroy();
  });
});
