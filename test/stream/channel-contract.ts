/**
 * The ByteChannel contract as a reusable jest suite: every transport runs it with a
 * factory that returns a connected pair [a, b] (a's writes arrive at b's reads).
 *
 *   import { byteChannelContract } from '../stream/channel-contract';
 *   byteChannelContract('unix socket', async () => connectedUnixPair());
 *
 * Traits say what a transport cannot do, so the tests that need it are skipped with the
 * reason in their name (never silently):
 *   duplex  b can write back to a (false: a pipe, a file — no return path)
 *   live    b reads while a is still writing (false: a file, read after the writer ended)
 */
import { createHash } from 'node:crypto';
import type { ByteChannel } from '../../lib/stream';

export type PairFactory = () => Promise<[ByteChannel, ByteChannel]> | [ByteChannel, ByteChannel];

export interface ContractTraits {
  duplex?: boolean;
  live?: boolean;
}

export async function readAll(ch: ByteChannel): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for (;;) {
    const c = await ch.read();
    if (c === null) return Buffer.concat(parts);
    parts.push(c);
  }
}

/** Read until null or a rejection; never throws. */
async function readToEnd(ch: ByteChannel): Promise<{ bytes: number; error: unknown }> {
  let bytes = 0;
  try {
    for (let c = await ch.read(); c !== null; c = await ch.read()) bytes += c.length;
    return { bytes, error: null };
  } catch (e) {
    return { bytes, error: e };
  }
}

/** Write until write() says "enough" (bounded), returning the bytes written. */
function fillUntilFull(ch: ByteChannel, chunk: Uint8Array): number {
  let writes = 0;
  while (writes < 4096) {
    writes++;
    if (!ch.write(chunk)) break;
  }
  expect(writes).toBeLessThan(4096);
  return writes * chunk.length;
}

export function byteChannelContract(name: string, makePair: PairFactory, traits: ContractTraits = {}): void {
  const duplex = traits.duplex ?? true;
  const live = traits.live ?? true;
  const duplexTest = duplex ? test : test.skip;
  const liveTest = live ? test : test.skip;
  const noDuplex = duplex ? '' : ' [skipped: one direction only]';
  const noLive = live ? '' : ' [skipped: the reader starts after the writer ended]';

  describe(`ByteChannel contract: ${name}`, () => {
    test('bytes arrive in order across write and writev; end() gives EOF after them', async () => {
      const [a, b] = await makePair();
      const got = readAll(b);
      a.write(Buffer.from('he'));
      if (a.writev) a.writev([Buffer.from('ll'), Buffer.from('o ')]);
      else {
        a.write(Buffer.from('ll'));
        a.write(Buffer.from('o '));
      }
      a.write(Buffer.from('world'));
      await a.end();
      expect((await got).toString()).toBe('hello world');
      a.destroy();
      b.destroy();
    });

    duplexTest(`both directions are independent${noDuplex}`, async () => {
      const [a, b] = await makePair();
      a.write(Buffer.from('ping'));
      b.write(Buffer.from('pong'));
      await a.end();
      await b.end();
      expect((await readAll(b)).toString()).toBe('ping');
      expect((await readAll(a)).toString()).toBe('pong');
      a.destroy();
      b.destroy();
    });

    duplexTest(`after end(), the reverse direction still flows (return path on a half-closed channel)${noDuplex}`, async () => {
      const [a, b] = await makePair();
      a.write(Buffer.from('stream'));
      await a.end();
      expect((await readAll(b)).toString()).toBe('stream');
      b.write(Buffer.from('ack:'));
      b.writev ? b.writev([Buffer.from('6')]) : b.write(Buffer.from('6'));
      await b.end();
      expect((await readAll(a)).toString()).toBe('ack:6');
      a.destroy();
      b.destroy();
    });

    test('backpressure: write() returns false at some point, and drain() resolves (once the peer reads, when live)', async () => {
      const [a, b] = await makePair();
      const written = fillUntilFull(a, Buffer.alloc(64 * 1024, 1));
      const drained = a.drain();
      if (live) {
        let read = 0;
        while (read < written) read += (await b.read())!.length;
      }
      await drained;
      a.destroy();
      b.destroy();
    });

    test('a stream of page views and headers (the RAM path) arrives intact', async () => {
      const [a, b] = await makePair();
      const page = 4096;
      const ram = new Uint8Array(256 * page);
      for (let i = 0; i < ram.length; i++) ram[i] = (i * 131 + (i >> 12)) & 0xff;
      const want = createHash('sha256');
      const got = createHash('sha256');
      const reading = live
        ? (async () => {
            for (let c = await b.read(); c; c = await b.read()) got.update(c);
          })()
        : null;
      for (let pass = 0; pass < 8; pass++) {
        const iov: Uint8Array[] = [];
        for (let p = 0; p < 256; p++) {
          const hdr = new Uint8Array(8);
          new DataView(hdr.buffer).setUint32(4, (p * page) | 0x08 | pass);
          const view = ram.subarray(p * page, (p + 1) * page);
          iov.push(hdr, view);
          want.update(hdr).update(view);
        }
        const ok = a.writev ? a.writev(iov) : iov.map((c) => a.write(c)).every(Boolean);
        if (!ok) await a.drain();
      }
      await a.end();
      if (reading) await reading;
      else for (let c = await b.read(); c; c = await b.read()) got.update(c);
      expect(got.digest('hex')).toBe(want.digest('hex'));
      a.destroy();
      b.destroy();
    });

    test('read() after end of stream keeps resolving null', async () => {
      const [a, b] = await makePair();
      a.write(Buffer.from('x'));
      await a.end();
      expect((await readAll(b)).toString()).toBe('x');
      expect(await b.read()).toBeNull();
      expect(await b.read()).toBeNull();
      a.destroy();
      b.destroy();
    });

    test('write() after end() is an error', async () => {
      const [a, b] = await makePair();
      await a.end();
      expect(() => a.write(Buffer.from('late'))).toThrow();
      a.destroy();
      b.destroy();
    });

    test('destroy(err) rejects a pending read', async () => {
      const [a, b] = await makePair();
      const pending = b.read();
      b.destroy(new Error('gone'));
      await expect(pending).rejects.toThrow();
      await expect(b.read()).rejects.toThrow();
      a.destroy();
    });

    test('destroy() without an error resolves a pending read with null', async () => {
      const [a, b] = await makePair();
      const pending = b.read();
      b.destroy();
      await expect(pending).resolves.toBeNull();
      a.destroy();
    });

    test('destroy(err) rejects a pending drain', async () => {
      const [a, b] = await makePair();
      fillUntilFull(a, Buffer.alloc(64 * 1024, 2));
      const pending = a.drain();
      a.destroy(new Error('cancelled'));
      await expect(pending).rejects.toThrow();
      await expect(a.drain()).rejects.toThrow();
      b.destroy();
    });

    liveTest(`the writer's destroy ends the reader's stream: read resolves null or rejects, never hangs${noLive}`, async () => {
      const [a, b] = await makePair();
      a.write(Buffer.from('partial'));
      const reading = readToEnd(b);
      a.destroy();
      const r = await reading;
      expect(r.bytes).toBeLessThanOrEqual('partial'.length);
      b.destroy();
    });
  });
}
