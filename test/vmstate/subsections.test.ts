/** Subsections (peek rules, needed, unknown, missing, nested), *_equal, int32 le, withTmp. */
import { F, type VMStateDescription } from '../../lib/vmstate';
import { hex, loadBytes, loadError, saveBytes } from './helpers';

const sub = (name: string, fields: any[], extra: Partial<VMStateDescription> = {}): VMStateDescription => ({
  name,
  versionId: 1,
  minimumVersionId: 1,
  fields,
  ...extra,
});
const marker = (name: string, version = 1) =>
  '05' + name.length.toString(16).padStart(2, '0') + Buffer.from(name).toString('hex') + version.toString(16).padStart(8, '0');

const deepSub = sub('dev/a/deep', [F.uint8('d')], { needed: (o: any) => o.d !== 0 });
const subA = sub('dev/a', [F.uint16('a')], { needed: (o: any) => o.a !== 0, subsections: [deepSub] });
const subB = sub('dev/b', [F.uint8('b')], { needed: (o: any) => o.b !== 0 });
const dev = sub('dev', [F.uint8('x')], { subsections: [subA, subB] });

describe('subsections', () => {
  test('only needed subsections are sent, each as 0x05 + cstr8 name + be32 version + body', () => {
    expect(hex(saveBytes(dev, { x: 1, a: 0, b: 0, d: 0 }).bytes)).toBe('01');
    expect(hex(saveBytes(dev, { x: 1, a: 0, b: 2, d: 0 }).bytes)).toBe('01' + marker('dev/b') + '02');
    const all = saveBytes(dev, { x: 1, a: 0x102, b: 2, d: 9 });
    expect(hex(all.bytes)).toBe('01' + marker('dev/a') + '0102' + marker('dev/a/deep') + '09' + marker('dev/b') + '02');
    expect(all.desc.subsections!.map((s) => s.vmsd_name)).toEqual(['dev/a', 'dev/b']);
    expect(all.desc.subsections![0].subsections![0].vmsd_name).toBe('dev/a/deep');
  });

  test('missing subsections leave receiver defaults; order on the wire is free', async () => {
    const dst: any = { x: 0, a: 11, b: 22, d: 33 };
    await loadBytes(dev, dst, Buffer.from('07', 'hex'));
    expect(dst).toEqual({ x: 7, a: 11, b: 22, d: 33 });
    const swapped = Buffer.from('01' + marker('dev/b') + '05' + marker('dev/a') + '0006', 'hex');
    const dst2: any = {};
    await loadBytes(dev, dst2, swapped);
    expect(dst2).toEqual({ x: 1, b: 5, a: 6 });
  });

  test('unknown subsection with our prefix → EVMSTATE_SUBSECTION naming it', async () => {
    const bytes = Buffer.from('01' + marker('dev/zzz') + '00', 'hex');
    const e = await loadError(dev, {}, bytes, { idstr: 'dev.0' });
    expect(e.code).toBe('EVMSTATE_SUBSECTION');
    expect(e.message).toContain("unknown subsection 'dev/zzz'");
    expect(e.position).toBe(1);
    expect(e.field).toBe('dev');
  });

  test('a subsection not ours (short name, other prefix) is left for the outer level', async () => {
    for (const name of ['dev', 'other/a', 'de']) {
      const tail = marker(name) + 'ff';
      const f = await loadBytes(dev, {}, Buffer.from('01' + tail, 'hex'));
      expect(f.position).toBe(1); // nothing consumed past the fields
      expect(hex(f.getBytes(f.buffered))).toBe(tail);
    }
    // A next section starting with another byte is not a subsection either.
    const f = await loadBytes(dev, {}, Buffer.from('01' + '7e00000003', 'hex'));
    expect(f.position).toBe(1);
  });

  test('nested: a struct\'s subsections stop at the parent\'s, which the parent then loads', async () => {
    const inner = sub('inner', [F.uint8('i')], { subsections: [sub('inner/s', [F.uint8('is')], { needed: (o: any) => !!o.is })] });
    const outer = sub('outer', [F.struct('n', inner)], { subsections: [sub('outer/s', [F.uint8('os')], { needed: (o: any) => !!o.os })] });
    const { bytes } = saveBytes(outer, { n: { i: 1, is: 2 }, os: 3 });
    expect(hex(bytes)).toBe('01' + marker('inner/s') + '02' + marker('outer/s') + '03');
    const dst: any = { n: {} };
    await loadBytes(outer, dst, bytes);
    expect(dst).toEqual({ n: { i: 1, is: 2 }, os: 3 });
  });

  test('subsection version checks apply; the version byte aliases modulo 256 like QEMU', async () => {
    const tooNew = Buffer.from('01' + marker('dev/b', 2) + '05', 'hex');
    const e = await loadError(dev, {}, tooNew);
    expect(e.code).toBe('EVMSTATE_VERSION');
    expect(e.field).toBe('dev/b');
    const aliased = Buffer.from('01' + marker('dev/b', 0x101) + '05', 'hex');
    const dst: any = {};
    await loadBytes(dev, dst, aliased);
    expect(dst.b).toBe(5);
  });
});

describe('equal and le checks', () => {
  const d = sub('cfg', [F.uint32Equal('nirq'), F.int32Le('version_id'), F.uint64Equal('big')]);
  test('equal values load; a mismatch fails with EVMSTATE_EQUAL at the field', async () => {
    const { bytes } = saveBytes(d, { nirq: 4, version_id: 2, big: 2n ** 64n - 1n });
    await loadBytes(d, { nirq: 4, version_id: 4, big: -1n }, bytes);
    const e = await loadError(d, { nirq: 8, version_id: 4, big: -1n }, bytes, { idstr: 'PCIBUS' });
    expect(e.code).toBe('EVMSTATE_EQUAL');
    expect(e.field).toBe('cfg/nirq');
    expect(e.position).toBe(0);
    expect(e.message).toContain('incoming 0x4 != local 0x8');
    const e2 = await loadError(d, { nirq: 4, version_id: 4, big: 5n }, bytes);
    expect(e2.code).toBe('EVMSTATE_EQUAL');
    expect(e2.position).toBe(8);
  });
  test('int32 le: 0 ≤ incoming ≤ current, then stored', async () => {
    const dst: any = { nirq: 4, version_id: 4, big: -1n };
    await loadBytes(d, dst, saveBytes(d, { nirq: 4, version_id: 3, big: -1n }).bytes);
    expect(dst.version_id).toBe(3);
    const over = saveBytes(d, { nirq: 4, version_id: 5, big: -1n }).bytes;
    expect((await loadError(d, { nirq: 4, version_id: 4, big: -1n }, over)).code).toBe('EVMSTATE_RANGE');
    const neg = saveBytes(d, { nirq: 4, version_id: -1, big: -1n }).bytes;
    expect((await loadError(d, { nirq: 4, version_id: 4, big: -1n }, neg)).code).toBe('EVMSTATE_RANGE');
  });
  test('equal arrays compare element by element', async () => {
    const a = sub('arr', [F.uint8('n'), F.varray('ids', 'uint16 equal', (o: any) => o.n)]);
    const bytes = saveBytes(a, { n: 2, ids: [1, 2] }).bytes;
    await loadBytes(a, { ids: [1, 2] }, bytes);
    const e = await loadError(a, { ids: [1, 3] }, bytes);
    expect(e.code).toBe('EVMSTATE_EQUAL');
    expect(e.field).toBe('arr/ids[1]');
    expect(e.position).toBe(3);
  });
});

describe('validate', () => {
  test('VALIDATE fields carry no bytes and fail the load when false', async () => {
    const d = sub('v', [F.uint8('n'), F.validate('n_ok', (o: any) => o.n <= 4), F.varray('a', 'uint8', (o: any) => o.n)]);
    const good = saveBytes(d, { n: 2, a: [1, 2] }).bytes;
    expect(hex(good)).toBe('020102');
    const e = await loadError(d, {}, Buffer.from('09' + '00'.repeat(9), 'hex'));
    expect(e.code).toBe('EVMSTATE_VALIDATE');
    expect(e.field).toBe('v/n_ok');
  });
});

describe('withTmp (VMSTATE_WITH_TMP)', () => {
  // Memory form: a 64-bit counter; wire form: two 32-bit halves, as QEMU devices do.
  interface Dev { counter: bigint; flags: number }
  interface Tmp { parent: Dev; hi: number; lo: number }
  const tmpVmsd: VMStateDescription<Tmp> = {
    name: 'dev/tmp',
    versionId: 1,
    minimumVersionId: 1,
    preSave: (t) => {
      t.hi = Number(t.parent.counter >> 32n);
      t.lo = Number(t.parent.counter & 0xffffffffn);
    },
    postLoad: (t) => {
      t.parent.counter = (BigInt(t.hi) << 32n) | BigInt(t.lo);
    },
    fields: [F.uint32('hi'), F.uint32('lo')],
  };
  const d: VMStateDescription<Dev> = {
    name: 'dev',
    versionId: 1,
    minimumVersionId: 1,
    fields: [F.uint8('flags'), F.withTmp((p: Dev) => ({ parent: p, hi: 0, lo: 0 }), tmpVmsd)],
  };
  test('the temporary carries the wire form both ways; vmdesc keys go inline', async () => {
    const { bytes, desc } = saveBytes(d, { counter: 0x1122334455667788n, flags: 1 });
    expect(hex(bytes)).toBe('01' + '11223344' + '55667788');
    expect(desc.fields[1]).toEqual({
      name: 'tmp',
      type: 'tmp',
      vmsd_name: 'dev/tmp',
      version: 1,
      fields: [
        { name: 'hi', type: 'uint32', size: 4 },
        { name: 'lo', type: 'uint32', size: 4 },
      ],
      size: 8,
    });
    expect(Object.keys(desc.fields[1])).toEqual(['name', 'type', 'vmsd_name', 'version', 'fields', 'size']);
    const dst: any = { counter: 0n, flags: 0 };
    await loadBytes(d, dst, bytes);
    expect(dst).toEqual({ counter: 0x1122334455667788n, flags: 1 });
  });
});
