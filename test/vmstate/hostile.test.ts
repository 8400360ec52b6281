/** Hostile input: every failure is a typed VMStateError naming section, field and offset. */
import { F, VMStateError, vmstateLoad, type VMStateDescription } from '../../lib/vmstate';
import { QemuFileReader, VMSTATE_ARRAY_MAX, VMSTATE_BUFFER_MAX, bytesSource, chunkSource, type ByteSource } from '../../lib/stream';
import { CASES } from './corpus';
import { loadBytes, loadError, saveBytes } from './helpers';

function expectTyped(e: any, section: string): void {
  expect(e).toBeInstanceOf(VMStateError);
  expect(e.section).toBe(section);
  expect(e.message).toContain(`section '${section}'`);
  expect(e.message).toMatch(/stream offset \d+/);
  expect(typeof e.field).toBe('string');
  expect(Number.isInteger(e.position)).toBe(true);
}

describe.each(CASES)('truncation: $name', ({ vmsd, make, receiver }) => {
  const { bytes } = saveBytes(vmsd, make());
  test('cut at every byte: TRUNCATED at the field that ran short, or a partial subsection header left unread', async () => {
    for (let k = 0; k < bytes.length; k++) {
      const f = new QemuFileReader(bytesSource(bytes.subarray(0, k), 3));
      let err: any = null;
      try {
        await vmstateLoad(f, vmsd, receiver(), vmsd.versionId, { idstr: `${vmsd.name}-0` });
      } catch (e) {
        err = e;
      }
      if (err) {
        expectTyped(err, vmsd.name);
        expect(err.code).toBe('EVMSTATE_TRUNCATED');
        expect(err.position).toBeLessThanOrEqual(k);
        expect(f.error).toBe(err); // the loader's error is the stream's sticky error
      } else {
        // QEMU's peek rules: a missing or incomplete subsection header is "not ours"; the
        // framing layer then fails on the footer. So a cut may only succeed at a subsection.
        expect(f.position).toBeLessThanOrEqual(k);
        expect(bytes[f.position]).toBe(0x05);
      }
    }
  });
});

describe('bogus lengths and counts', () => {
  const d: VMStateDescription = {
    name: 'blob',
    versionId: 1,
    minimumVersionId: 1,
    fields: [F.uint32('len'), F.vbuffer('data', (o: any) => o.len), F.uint32('n'), F.varray('items', 'uint64', (o: any) => o.n)],
  };

  test('a buffer size over the limit fails before anything is allocated', async () => {
    const e = await loadError(d, {}, Buffer.from('ffffffff', 'hex'), { idstr: 'blob.0' });
    expectTyped(e, 'blob');
    expect(e.code).toBe('EVMSTATE_LIMIT');
    expect(e.field).toBe('blob/data');
    expect(e.position).toBe(4);
    expect(e.message).toContain(String(VMSTATE_BUFFER_MAX));
  });

  test('a legal but absent large buffer is TRUNCATED, without allocating it', async () => {
    const before = process.memoryUsage().arrayBuffers;
    const e = await loadError(d, {}, Buffer.from('03ffffff' + '00', 'hex'));
    expect(e.code).toBe('EVMSTATE_TRUNCATED');
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(32 * 1024 * 1024);
  });

  test('a count over the limit fails with EVMSTATE_LIMIT', async () => {
    const e = await loadError(d, {}, Buffer.from('00000000' + '80000000', 'hex'));
    expectTyped(e, 'blob');
    expect(e.code).toBe('EVMSTATE_LIMIT');
    expect(e.field).toBe('blob/items');
    expect(e.message).toContain(String(VMSTATE_ARRAY_MAX));
  });

  test('a count from a hook that is not an integer fails with EVMSTATE_LIMIT', async () => {
    const bad: VMStateDescription = { ...d, fields: [F.varray('x', 'uint8', () => 1.5)] };
    expect((await loadError(bad, {}, Buffer.alloc(4))).code).toBe('EVMSTATE_LIMIT');
  });

  test('wrong subsection names: unknown with our prefix fails, others are left alone', async () => {
    const withSub: VMStateDescription = { ...d, fields: [F.uint8('x')], subsections: [{ name: 'blob/s', versionId: 1, minimumVersionId: 1, fields: [] }] };
    const name = Buffer.from('blob/t');
    const bytes = Buffer.concat([Buffer.from([1, 5, name.length]), name, Buffer.alloc(4)]);
    const e = await loadError(withSub, {}, bytes);
    expect(e.code).toBe('EVMSTATE_SUBSECTION');
    expect(e.position).toBe(1);
  });

  test('a failing channel mid-section is EVMSTATE_STREAM with the cause', async () => {
    const parts = [Buffer.from('0000', 'hex'), null];
    const src: ByteSource = {
      read: () => (parts.length > 1 ? Promise.resolve(parts.shift() as Buffer) : Promise.reject(new Error('ECONNRESET'))),
    };
    const f = new QemuFileReader(src);
    const e = await vmstateLoad(f, d, {}, 1).catch((x) => x);
    expectTyped(e, 'blob');
    expect(e.code).toBe('EVMSTATE_STREAM');
    expect(e.message).toContain('ECONNRESET');
    expect(e.field).toBe('blob/len');
  });

  test('a stream that already failed is refused at once', async () => {
    const f = new QemuFileReader(chunkSource([Buffer.alloc(16)]));
    f.setError(new Error('earlier'));
    const e = await vmstateLoad(f, d, {}, 1).catch((x) => x);
    expect(e.code).toBe('EVMSTATE_STREAM');
    expect(f.error!.message).toBe('earlier'); // the first error stays
  });

  test('hooks that throw become EVMSTATE_HOOK; a description bug becomes EVMSTATE_INTERNAL', async () => {
    const hooky: VMStateDescription = { ...d, fields: [F.uint8('x', { exists: () => { throw new TypeError('nope'); } })] };
    expect((await loadError(hooky, {}, Buffer.alloc(1))).code).toBe('EVMSTATE_HOOK');
    const frozen: VMStateDescription = { ...d, fields: [F.uint8('x')] };
    const e = await loadError(frozen, Object.freeze({}), Buffer.alloc(1));
    expect(e.code).toBe('EVMSTATE_INTERNAL');
    expect(e.field).toBe('blob/x');
  });

  test('loads never hang: a finite input always settles', async () => {
    for (const c of CASES) {
      const { bytes } = saveBytes(c.vmsd, c.make());
      await expect(loadBytes(c.vmsd, c.receiver(), bytes.subarray(0, bytes.length >> 1)).catch(() => 'failed')).resolves.toBeDefined();
    }
  });
});
