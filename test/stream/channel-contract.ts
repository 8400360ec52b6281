/**
 * The ByteChannel contract as a reusable jest suite (STYLE 15): every transport runs it with a
 * factory that returns a connected pair [a, b] (a's writes arrive at b's reads).
 *
 *   import { byteChannelContract } from '../stream/channel-contract';
 *   byteChannelContract('unix socket', async () => connectedUnixPair());
 */
import type { ByteChannel } from '../../lib/stream';

export type PairFactory = () => Promise<[ByteChannel, ByteChannel]> | [ByteChannel, ByteChannel];

async function readAll(ch: ByteChannel): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for (;;) {
    const c = await ch.read();
    if (c === null) return Buffer.concat(parts);
    parts.push(c);
  }
}

export function byteChannelContract(name: string, makePair: PairFactory): void {
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

    test('both directions are independent', async () => {
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

    test('backpressure: write() returns false at some point, and drain() resolves once the peer reads', async () => {
      const [a, b] = await makePair();
      const chunk = Buffer.alloc(64 * 1024, 1);
      let writes = 0;
      while (a.write(chunk) && writes < 4096) writes++;
      expect(writes).toBeLessThan(4096);
      const drained = a.drain();
      let read = 0;
      const target = (writes + 1) * chunk.length;
      while (read < target) read += (await b.read())!.length;
      await drained;
      a.destroy();
      b.destroy();
    });

    test('destroy(err) rejects a pending read', async () => {
      const [a, b] = await makePair();
      const pending = b.read();
      b.destroy(new Error('gone'));
      await expect(pending).rejects.toThrow();
      a.destroy();
    });
  });
}
