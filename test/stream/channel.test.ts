/** The in-memory pipe satisfies the ByteChannel contract; plus its own specifics. */
import { bytesSource, collectingSink, memoryChannelPair } from '../../lib/stream';
import { byteChannelContract } from './channel-contract';

byteChannelContract('memoryChannelPair', () => memoryChannelPair({ highWaterMark: 256 * 1024 }));

describe('memory pipe and helpers', () => {
  test('copies on write by default, so later changes to the source are not seen', async () => {
    const [a, b] = memoryChannelPair();
    const src = Buffer.from('abc');
    a.write(src);
    src[0] = 0x7a;
    expect(Buffer.from((await b.read())!).toString()).toBe('abc');
    const [c, d] = memoryChannelPair({ copy: false });
    c.write(src);
    expect((await d.read())!).toBe(src);
  });

  test('destroy() without an error ends reads with null', async () => {
    const [a, b] = memoryChannelPair();
    const p = b.read();
    a.destroy();
    await expect(p).resolves.toBeNull();
  });

  test('bytesSource cuts at sizes or split points; collectingSink concatenates', async () => {
    const src = bytesSource(Buffer.from('abcdef'), [2, 2, 5]);
    const sink = collectingSink();
    for (let c = await src.read(); c; c = await src.read()) sink.write(c);
    expect(sink.chunks.map((c) => Buffer.from(c).toString())).toEqual(['ab', 'cde', 'f']);
    expect(sink.bytes().toString()).toBe('abcdef');
  });
});
