/** QemuFileWriter: encodings, zero-copy ordering, staging, sticky errors, backpressure. */
import {
  CollectingSink,
  QemuFileWriter,
  StreamError,
  collectingSink,
  memoryChannelPair,
  QemuFileReader,
  type ByteSink,
} from '../../lib/stream';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

function written(fn: (w: QemuFileWriter) => void, opts = {}): { w: QemuFileWriter; sink: CollectingSink } {
  const sink = collectingSink();
  const w = new QemuFileWriter(sink, opts);
  fn(w);
  w.flush();
  return { w, sink };
}

describe('QemuFileWriter encodings', () => {
  test('big-endian scalars of every width', () => {
    const { w, sink } = written((w) => {
      w.putU8(0xab);
      w.putBe16(0x1234);
      w.putBe32(0xdeadbeef);
      w.putBe64(0x0102030405060708n);
    });
    expect(hex(sink.bytes())).toBe('ab' + '1234' + 'deadbeef' + '0102030405060708');
    expect(w.position).toBe(15);
    expect(w.error).toBeNull();
  });

  test('64-bit values beyond 2^53 via bigint; negatives wrap to two\'s complement', () => {
    const { sink } = written((w) => {
      w.putBe64(2n ** 64n - 2n);
      w.putBe64(-1n);
      w.putBe64(2n ** 53n + 1n);
      w.putBe64Number(2 ** 53 - 1);
      w.putBe64Number(-2);
      w.putBe64Number(0x1_0000_0001);
    });
    expect(hex(sink.bytes())).toBe(
      'fffffffffffffffe' + 'ffffffffffffffff' + '0020000000000001' + '001fffffffffffff' + 'fffffffffffffffe' + '0000000100000001',
    );
  });

  test('counted strings: u8 length + bytes, up to 255; longer is ESTREAM_LIMIT', () => {
    const s255 = 'x'.repeat(255);
    const { w, sink } = written((w) => {
      w.putCounted('ram');
      w.putCounted(new Uint8Array([1, 2]));
      w.putCounted('');
      w.putCounted(s255);
    });
    const b = sink.bytes();
    expect(hex(b.subarray(0, 8))).toBe('03' + '72616d' + '02' + '0102' + '00');
    expect(b[8]).toBe(255);
    expect(b.length).toBe(9 + 255);
    expect(w.error).toBeNull();
    const bad = written((w) => {
      w.putU8(1);
      w.putCounted('y'.repeat(256));
      w.putU8(2);
    });
    expect((bad.w.error as StreamError).code).toBe('ESTREAM_LIMIT');
    expect((bad.w.error as StreamError).position).toBe(1);
    expect(hex(bad.sink.bytes())).toBe(''); // pending bytes are dropped with the error
    expect(written((w) => w.putCounted('\u0100')).w.error).toMatchObject({ code: 'ESTREAM_RANGE' });
  });

  test('putZeros and large putBuffer cross staging buffers intact', () => {
    const big = Buffer.alloc(10_000, 7);
    const { w, sink } = written((w) => {
      w.putZeros(5000);
      w.putBuffer(big);
      w.putBe32(1);
    }, { stagingSize: 4096 });
    const b = sink.bytes();
    expect(b.length).toBe(15_004);
    expect(b.subarray(0, 5000).every((x) => x === 0)).toBe(true);
    expect(b.subarray(5000, 15_000).every((x) => x === 7)).toBe(true);
    expect(w.position).toBe(15_004);
  });
});

describe('zero-copy putBufferRef', () => {
  test('referenced views arrive in order with staged bytes, without being copied', () => {
    const chunks: Uint8Array[] = [];
    const sink: ByteSink = {
      write: (c) => (chunks.push(c), true),
      writev: (cs) => (chunks.push(...cs), true),
      drain: async () => {},
      end: async () => {},
    };
    const w = new QemuFileWriter(sink);
    const pages = [Buffer.alloc(4096, 1), Buffer.alloc(4096, 2), Buffer.alloc(4096, 3)];
    for (let i = 0; i < pages.length; i++) {
      w.putBe64Number(i * 4096 + 0x08);
      w.putBufferRef(pages[i]);
    }
    w.putU8(0x10);
    w.flush();
    expect(chunks.filter((c) => (pages as Uint8Array[]).includes(c))).toHaveLength(3); // same objects
    const all = Buffer.concat(chunks);
    expect(all.length).toBe(3 * (8 + 4096) + 1);
    for (let i = 0; i < 3; i++) {
      const o = i * 4104;
      expect(all.readBigUInt64BE(o)).toBe(BigInt(i * 4096 + 8));
      expect(all.subarray(o + 8, o + 8 + 4096).every((x) => x === i + 1)).toBe(true);
    }
    expect(all[all.length - 1]).toBe(0x10);
    expect(w.position).toBe(all.length);
  });

  test('small views are copied into staging; flushes happen at maxIov / flushBytes', () => {
    let writes = 0;
    const sink = collectingSink();
    const orig = sink.writev.bind(sink);
    sink.writev = (cs) => (writes++, orig(cs));
    const w = new QemuFileWriter(sink, { maxIov: 8, copyThreshold: 64 });
    w.putBufferRef(new Uint8Array(10).fill(9));
    expect(writes).toBe(0);
    for (let i = 0; i < 8; i++) w.putBufferRef(new Uint8Array(100).fill(i));
    expect(writes).toBeGreaterThan(0);
    w.flush();
    expect(sink.bytes().length).toBe(810);
    expect(w.flushedBytes).toBe(810);
  });

  test('staged regions handed to the sink are never rewritten', () => {
    const sink = collectingSink({ copy: false });
    const w = new QemuFileWriter(sink, { stagingSize: 4096 });
    w.putBe32(0x11111111);
    w.flush();
    for (let i = 0; i < 3000; i++) w.putBe32(0x22222222); // rolls staging several times
    w.flush();
    expect(sink.chunks[0].length).toBe(4);
    expect(hex(sink.chunks[0])).toBe('11111111');
    expect(sink.bytes().length).toBe(4 + 12000);
  });
});

describe('sticky first error', () => {
  test('after the first error every put does nothing and the first error stays', () => {
    const sink = collectingSink();
    const w = new QemuFileWriter(sink);
    w.putU8(1);
    w.flush();
    const first = new StreamError('ESTREAM_CHANNEL', 'first', w.position);
    w.setError(first);
    w.setError(new Error('second'));
    w.putBe64(1n);
    w.putBufferRef(new Uint8Array(4096));
    w.flush();
    expect(w.error).toBe(first);
    expect(first.message).toContain('stream offset 1');
    expect(sink.bytes().length).toBe(1);
    expect(w.rateLimitExceeded()).toBe(true);
  });

  test('a throwing sink becomes ESTREAM_CHANNEL; write after close is ESTREAM_CLOSED', async () => {
    const w = new QemuFileWriter({ write: () => { throw new Error('EPIPE'); }, drain: async () => {}, end: async () => {} });
    w.putU8(1);
    w.flush();
    expect(w.error).toMatchObject({ code: 'ESTREAM_CHANNEL' });
    expect((w.error as Error).message).toContain('EPIPE');
    const w2 = new QemuFileWriter(collectingSink());
    expect(await w2.close()).toBeNull();
    w2.putU8(1);
    expect(w2.error).toMatchObject({ code: 'ESTREAM_CLOSED' });
    const w3 = new QemuFileWriter({ write: () => true, drain: async () => {}, end: () => Promise.reject(new Error('EIO')) });
    expect(await w3.close()).toMatchObject({ code: 'ESTREAM_CHANNEL' });
  });
});

describe('backpressure over a memory pipe', () => {
  test('needsDrain turns on past the high-water mark and drain() waits for the reader', async () => {
    const [a, b] = memoryChannelPair({ highWaterMark: 8192 });
    const w = new QemuFileWriter(a, { flushBytes: 4096 });
    for (let i = 0; i < 4; i++) w.putBufferRef(Buffer.alloc(4096, i));
    expect(w.needsDrain).toBe(true);
    let drained = false;
    const d = w.drain().then(() => (drained = true));
    await Promise.resolve();
    expect(drained).toBe(false);
    const r = new QemuFileReader(b);
    const got = new Uint8Array(4 * 4096);
    expect(await r.readInto(got)).toBe(true);
    await d;
    expect(drained).toBe(true);
    expect(w.needsDrain).toBe(false);
    expect(got[3 * 4096]).toBe(3);
    await w.close();
    expect(await r.atEnd()).toBe(true);
  });

  test('a destroyed pipe fails drain() into the sticky error, and the reader sees it', async () => {
    const [a, b] = memoryChannelPair({ highWaterMark: 16 });
    const w = new QemuFileWriter(a);
    w.putBuffer(Buffer.alloc(64));
    w.flush();
    a.destroy(new Error('reset by peer'));
    await w.drain();
    expect(w.error).toMatchObject({ code: 'ESTREAM_CHANNEL' });
    const r = new QemuFileReader(b);
    expect(await r.ensure(1)).toBe(false);
    expect(r.error).toMatchObject({ code: 'ESTREAM_CHANNEL' });
  });
});
