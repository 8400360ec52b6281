/** QemuFileReader: getters, chunk boundaries, position accounting, EOF, sticky errors, peeks. */
import {
  QemuFileReader,
  QemuFileWriter,
  StreamError,
  bytesSource,
  chunkSource,
  collectingSink,
} from '../../lib/stream';

const bytes = (h: string) => Buffer.from(h.replace(/\s/g, ''), 'hex');

/** A mixed record sequence and how to parse it synchronously after one ensure per record. */
function encodeRecords(): Buffer {
  const sink = collectingSink();
  const w = new QemuFileWriter(sink);
  for (let i = 0; i < 20; i++) {
    w.putU8(i);
    w.putBe16(0x100 + i);
    w.putBe32(0xfffffff0 + (i % 16));
    w.putBe64(2n ** 63n + BigInt(i));
    w.putCounted(`rec${i}`);
    w.putBuffer(Buffer.alloc(i, i));
  }
  w.flush();
  return sink.bytes();
}
async function parseRecords(r: QemuFileReader): Promise<unknown[]> {
  const out: unknown[] = [];
  for (let i = 0; i < 20; i++) {
    const need = 1 + 2 + 4 + 8 + 1 + `rec${i}`.length + i;
    if (!r.has(need) && !(await r.ensure(need))) throw r.error;
    const rec = [r.getU8(), r.getBe16(), r.getBe32(), r.getBe64(), r.getCounted(), Buffer.from(r.getBytes(i)).toString('hex'), r.position];
    out.push(rec);
  }
  return out;
}

describe('QemuFileReader', () => {
  test('parses the same records whatever the chunking, with exact positions', async () => {
    const data = encodeRecords();
    const ref = await parseRecords(QemuFileReader.fromBytes(data));
    expect((ref[19] as unknown[])[6]).toBe(data.length);
    for (let k = 1; k < data.length; k++) {
      expect(await parseRecords(new QemuFileReader(bytesSource(data, [k])))).toEqual(ref);
    }
    expect(await parseRecords(new QemuFileReader(bytesSource(data, 1)))).toEqual(ref);
    expect(await parseRecords(new QemuFileReader(bytesSource(data, 7)))).toEqual(ref);
  });

  test('signed getters and 64-bit as number', () => {
    const r = QemuFileReader.fromBytes(bytes('ff fffe fffffffd fffffffffffffffc 001fffffffffffff 0020000000000000'));
    expect(r.getS8()).toBe(-1);
    expect(r.getSbe16()).toBe(-2);
    expect(r.getSbe32()).toBe(-3);
    expect(r.getSbe64()).toBe(-4n);
    expect(r.getBe64Number()).toBe(2 ** 53 - 1);
    expect(r.getBe64Number()).toBe(0);
    expect(r.error).toMatchObject({ code: 'ESTREAM_RANGE', position: 23 });
  });

  test('ensure() at end of stream: false, ESTREAM_EOF with the offset; later reads return 0', async () => {
    const r = new QemuFileReader(chunkSource([bytes('0102'), bytes('03')]));
    expect(await r.ensure(2)).toBe(true);
    expect(r.getBe16()).toBe(0x102);
    expect(await r.ensure(4)).toBe(false);
    const e = r.error as StreamError;
    expect(e).toBeInstanceOf(StreamError);
    expect(e.code).toBe('ESTREAM_EOF');
    expect(e.position).toBe(2);
    expect(e.message).toContain('stream offset 2');
    expect(r.getU8()).toBe(0); // the buffered 03 is gone with the error
    expect(r.getBe64()).toBe(0n);
    expect(r.getCounted()).toBe('');
    expect(r.peekU8()).toBe(-1);
    expect(r.position).toBe(2);
  });

  test('sync getters past buffered data: ESTREAM_UNDERRUN, sticky', () => {
    const r = new QemuFileReader(chunkSource([]));
    r.push(bytes('aabb'));
    expect(r.getBe32()).toBe(0);
    expect(r.error).toMatchObject({ code: 'ESTREAM_UNDERRUN', position: 0 });
    r.push(bytes('ccdd')); // ignored after the error
    expect(r.getU8()).toBe(0);
    const first = r.error;
    r.setError(new Error('later'));
    expect(r.error).toBe(first);
  });

  test('fill() and atEnd() do not set errors; fill stops at EOF', async () => {
    const r = new QemuFileReader(bytesSource(bytes('010203'), 1));
    expect(await r.fill(10)).toBe(3);
    expect(r.error).toBeNull();
    expect(await r.atEnd()).toBe(false);
    r.skip(3);
    expect(await r.atEnd()).toBe(true);
    expect(r.sourceEnded).toBe(true);
    expect(r.error).toBeNull();
  });

  test('peeks look across chunks without consuming', async () => {
    const r = new QemuFileReader(bytesSource(bytes('05 03 616263 00000001'), 1));
    await r.fill(9);
    expect(r.peekU8(0)).toBe(5);
    expect(r.peekU8(1)).toBe(3);
    expect(Buffer.from(r.peekBytes(2, 3)!).toString()).toBe('abc');
    expect(r.peekU8(9)).toBe(-1);
    expect(r.peekBytes(5, 5)).toBeNull();
    expect(r.position).toBe(0);
    expect(r.getU8()).toBe(5);
    expect(r.getCounted()).toBe('abc');
    expect(r.getBe32()).toBe(1);
    expect(r.position).toBe(9);
  });

  test('counted strings are byte strings: any byte value round-trips', async () => {
    const raw = Buffer.from([0xff, 0x00, 0x80, 0x41]);
    const r = QemuFileReader.fromBytes(Buffer.concat([Buffer.from([4]), raw]));
    const s = await r.readCounted();
    expect(Array.from(s!, (c) => c.charCodeAt(0))).toEqual([0xff, 0x00, 0x80, 0x41]);
    expect(await QemuFileReader.fromBytes(bytes('05 6162')).readCounted()).toBeNull();
  });

  test('readInto and skipAsync pull large payloads chunk by chunk', async () => {
    const data = Buffer.alloc(100_000);
    for (let i = 0; i < data.length; i++) data[i] = i & 0xff;
    const r = new QemuFileReader(bytesSource(data, 4093));
    const dst = new Uint8Array(60_000);
    expect(await r.readInto(dst)).toBe(true);
    expect(Buffer.from(dst).equals(data.subarray(0, 60_000))).toBe(true);
    expect(await r.skipAsync(39_999)).toBe(true);
    expect(r.position).toBe(99_999);
    expect(await r.readInto(new Uint8Array(2))).toBe(false);
    expect(r.error).toMatchObject({ code: 'ESTREAM_EOF', position: 100_000 }); // it took the byte there was
  });

  test('getBytes returns a view when contiguous, a copy across chunks', () => {
    const r = new QemuFileReader(null);
    const a = bytes('01020304');
    r.push(a);
    r.push(bytes('0506'));
    const v = r.getBytes(2);
    expect(v.buffer).toBe(a.buffer);
    const c = r.getBytes(3);
    expect(Array.from(c)).toEqual([3, 4, 5]);
    expect(r.buffered).toBe(1);
  });

  test('a rejecting source becomes ESTREAM_CHANNEL with the cause', async () => {
    const cause = new Error('ECONNRESET');
    const r = new QemuFileReader({ read: () => Promise.reject(cause) });
    expect(await r.ensure(1)).toBe(false);
    expect(r.error).toMatchObject({ code: 'ESTREAM_CHANNEL' });
    expect((r.error as Error).cause).toBe(cause);
  });
});
