/** Save → load round trips over every field kind, hooks order, versions, subsections, tmp. */
import { F, VMStateError, vmstateSave, sectionNeeded, type VMStateDescription } from '../../lib/vmstate';
import { QemuFileWriter, collectingSink } from '../../lib/stream';
import { hex, loadBytes, loadError, saveBytes } from './helpers';
import { everything, receiver, sample } from './corpus';

describe('round trips', () => {
  test('every field kind survives save → load, and re-saves to the same bytes', async () => {
    const src = sample();
    const { bytes, desc } = saveBytes(everything, src);
    const dst = receiver();
    const f = await loadBytes(everything, dst, bytes);
    expect(f.position).toBe(bytes.length);
    for (const k of Object.keys(src)) expect([k, dst[k]]).toEqual([k, src[k]]);
    expect(hex(saveBytes(everything, dst).bytes)).toBe(hex(bytes));
    // vmdesc: fixed and variable arrays compress to one entry, unused is a hole of 3.
    const byName = Object.fromEntries(desc.fields.map((x) => [x.name, x]));
    expect(byName.ba).toEqual({ name: 'ba', array_len: 3, type: 'bool', size: 1 });
    expect(byName.va).toEqual({ name: 'va', array_len: 3, type: 'uint16', size: 2 });
    expect(byName.vb).toEqual({ name: 'vb', type: 'buffer', size: 4 });
    expect(byName.unused).toEqual({ name: 'unused', type: 'unused_buffer', size: 3 });
    expect(byName.sv.array_len).toBe(3);
    expect(byName.check).toBeUndefined();
    expect(desc.fields.reduce((n, x) => n + x.size * (x.array_len ?? 1), 0)).toBe(bytes.length);
  });

  test('scalars are big-endian of their width; bool loads non-zero as true', async () => {
    const d: VMStateDescription = {
      name: 'd',
      versionId: 1,
      minimumVersionId: 1,
      fields: [F.bool('x'), F.uint16('y'), F.int32('z'), F.uint64('w')],
    };
    const { bytes } = saveBytes(d, { x: true, y: 0x1234, z: -2, w: 0x0102030405060708n });
    expect(hex(bytes)).toBe('01' + '1234' + 'fffffffe' + '0102030405060708');
    const dst: any = {};
    await loadBytes(d, dst, Buffer.from('7f' + '1234' + 'fffffffe' + '0102030405060708', 'hex'));
    expect(dst.x).toBe(true);
    expect(dst.z).toBe(-2);
  });

  test('numbers are accepted for 64-bit fields and out-of-range integers wrap like a C store', () => {
    const d: VMStateDescription = {
      name: 'd',
      versionId: 1,
      minimumVersionId: 1,
      fields: [F.uint64('a'), F.uint32('b'), F.uint8('c'), F.int64('e')],
    };
    expect(hex(saveBytes(d, { a: 2 ** 40, b: -1, c: 0x1ff, e: -3 }).bytes)).toBe(
      '0000010000000000' + 'ffffffff' + 'ff' + 'fffffffffffffffd',
    );
  });

  test('arrays are filled in place when the receiver has room, else replaced', async () => {
    const d: VMStateDescription = {
      name: 'd',
      versionId: 1,
      minimumVersionId: 1,
      fields: [F.uint8('n'), F.varray('v', 'uint32', (o: any) => o.n), F.vbuffer('buf', (o: any) => o.n)],
    };
    const { bytes } = saveBytes(d, { n: 2, v: [1, 2], buf: new Uint8Array([9, 8]) });
    const capacity = new Uint32Array(8).fill(77);
    const bufCap = new Uint8Array(4).fill(1);
    const dst: any = { v: capacity, buf: bufCap };
    await loadBytes(d, dst, bytes);
    expect(dst.v).toBe(capacity);
    expect(Array.from(capacity)).toEqual([1, 2, 77, 77, 77, 77, 77, 77]);
    expect(dst.buf).toBe(bufCap);
    expect(Array.from(bufCap)).toEqual([9, 8, 1, 1]);
    const small: any = { v: new Uint32Array(1), buf: new Uint8Array(1) };
    await loadBytes(d, small, bytes);
    expect(small.v).toBeInstanceOf(Uint32Array);
    expect(Array.from(small.v)).toEqual([1, 2]);
    expect(Array.from(small.buf)).toEqual([9, 8]);
  });

  test('get/set/key accessors', async () => {
    const d: VMStateDescription = {
      name: 'acc',
      versionId: 1,
      minimumVersionId: 1,
      fields: [
        F.uint32('env.pc', { key: 'pc' }),
        F.uint8('mode', { get: (o: any) => o.regs[0], set: (o: any, v) => (o.regs[0] = v) }),
      ],
    };
    const { bytes } = saveBytes(d, { pc: 0x80000000, regs: [3] });
    expect(hex(bytes)).toBe('80000000' + '03');
    const dst: any = { regs: [0] };
    await loadBytes(d, dst, bytes);
    expect(dst).toEqual({ pc: 0x80000000, regs: [3] });
  });

  test('save errors: missing value, wrong type, short array, bad count', () => {
    const save = (d: VMStateDescription, o: any) => {
      try {
        vmstateSave(new QemuFileWriter(collectingSink()), d, o, { idstr: 'dev0' });
      } catch (e) {
        return e as VMStateError;
      }
      throw new Error('save succeeded');
    };
    const d = (fields: any[]): VMStateDescription => ({ name: 'd', versionId: 1, minimumVersionId: 1, fields });
    let e = save(d([F.uint8('a'), F.uint32('missing')]), { a: 1 });
    expect(e).toBeInstanceOf(VMStateError);
    expect(e.code).toBe('EVMSTATE_VALUE');
    expect(e.field).toBe('d/missing');
    expect(e.position).toBe(1);
    expect(e.message).toContain("idstr 'dev0'");
    expect(save(d([F.uint64('a')]), { a: 1.5 }).code).toBe('EVMSTATE_VALUE');
    expect(save(d([F.uint32Array('a', 4)]), { a: [1, 2] }).code).toBe('EVMSTATE_VALUE');
    expect(save(d([F.varray('a', 'uint8', () => -1)]), { a: [] }).code).toBe('EVMSTATE_LIMIT');
    expect(save(d([F.buffer('a', 4)]), { a: new Uint8Array(2) }).code).toBe('EVMSTATE_VALUE');
    expect(save(d([F.validate('v', () => false)]), {}).code).toBe('EVMSTATE_VALIDATE');
  });

  test('top-level needed', () => {
    const d: VMStateDescription = { name: 'd', versionId: 1, minimumVersionId: 1, fields: [], needed: (o: any) => o.on };
    expect(sectionNeeded(d, { on: false })).toBe(false);
    expect(sectionNeeded(d, { on: true })).toBe(true);
    expect(sectionNeeded({ ...d, needed: undefined }, {})).toBe(true);
  });
});

describe('hooks', () => {
  function recorded(log: string[], failAt?: string): VMStateDescription {
    const h = (name: string) => (o: any, v?: number) => {
      log.push(v === undefined ? name : `${name}(${v})`);
      if (name === failAt) throw new Error(`boom in ${name}`);
    };
    const sub: VMStateDescription = {
      name: 'top/sub',
      versionId: 1,
      minimumVersionId: 1,
      preSave: h('sub.preSave'),
      postSave: h('sub.postSave'),
      preLoad: h('sub.preLoad'),
      postLoad: h('sub.postLoad'),
      fields: [F.uint8('y', { get: (o: any) => (log.push('sub.field'), o.y) })],
    };
    const nested: VMStateDescription = {
      name: 'nested',
      versionId: 1,
      minimumVersionId: 1,
      preSave: h('nested.preSave'),
      postSave: h('nested.postSave'),
      preLoad: h('nested.preLoad'),
      postLoad: h('nested.postLoad'),
      fields: [F.uint8('z')],
    };
    return {
      name: 'top',
      versionId: 2,
      minimumVersionId: 1,
      preSave: h('preSave'),
      postSave: h('postSave'),
      preLoad: h('preLoad'),
      postLoad: h('postLoad'),
      fields: [F.uint8('x', { get: (o: any) => (log.push('field'), o.x) }), F.struct('n', nested)],
      subsections: [sub],
    };
  }

  test('save: preSave → fields → subsections → postSave; load: preLoad → fields → subsections → postLoad(v)', async () => {
    const log: string[] = [];
    const { bytes } = saveBytes(recorded(log), { x: 1, y: 2, n: { z: 3 } });
    expect(log).toEqual([
      'preSave', 'field', 'nested.preSave', 'nested.postSave',
      'sub.preSave', 'sub.field', 'sub.postSave', 'postSave',
    ]);
    log.length = 0;
    await loadBytes(recorded(log), { n: {} }, bytes);
    expect(log).toEqual(['preLoad', 'nested.preLoad', 'nested.postLoad(1)', 'sub.preLoad', 'sub.postLoad(1)', 'postLoad(2)']);
  });

  test('postSave runs after a failed field; preSave failure skips postSave', () => {
    const log: string[] = [];
    const d = recorded(log);
    const w = () => new QemuFileWriter(collectingSink());
    expect(() => vmstateSave(w(), d, { y: 2, n: { z: 3 } })).toThrow(VMStateError);
    expect(log).toEqual(['preSave', 'field', 'postSave']);
    log.length = 0;
    let err: any;
    try {
      vmstateSave(w(), recorded(log, 'preSave'), { x: 1, y: 2, n: { z: 1 } });
    } catch (e) {
      err = e;
    }
    expect(err.code).toBe('EVMSTATE_HOOK');
    expect(log).toEqual(['preSave']);
  });

  test('a throwing postLoad fails the load with EVMSTATE_HOOK naming the section', async () => {
    const log: string[] = [];
    const { bytes } = saveBytes(recorded(log), { x: 1, y: 2, n: { z: 3 } });
    const e = await loadError(recorded([], 'postLoad'), { n: {} }, bytes, { idstr: 'top-0' });
    expect(e.code).toBe('EVMSTATE_HOOK');
    expect(e.message).toMatch(/section 'top' \(idstr 'top-0'\).*postLoad failed: boom/);
    expect(e.position).toBe(bytes.length);
  });
});

describe('versions', () => {
  const v2: VMStateDescription = {
    name: 'dev',
    versionId: 2,
    minimumVersionId: 1,
    fields: [F.uint32('a'), F.uint32('b', { version: 2 }), F.uint8('c')],
  };
  const v1: VMStateDescription = { name: 'dev', versionId: 1, minimumVersionId: 1, fields: [F.uint32('a'), F.uint8('c')] };

  test('too new and too old', async () => {
    let e = await loadError(v2, {}, new Uint8Array(9), { version: 3 });
    expect(e.code).toBe('EVMSTATE_VERSION');
    expect(e.message).toContain('too new');
    e = await loadError({ ...v2, minimumVersionId: 2 }, {}, new Uint8Array(9), { version: 1 });
    expect(e.code).toBe('EVMSTATE_VERSION');
    expect(e.message).toContain('too old');
    expect(e.position).toBe(0);
  });

  test('a v1 stream loads into v2 (new field keeps its value); v2 → v1 is refused', async () => {
    const { bytes } = saveBytes(v1, { a: 1, c: 3 });
    const dst: any = { b: 42 };
    await loadBytes(v2, dst, bytes, { version: 1 });
    expect(dst).toEqual({ a: 1, b: 42, c: 3 });
    const newer = saveBytes(v2, { a: 1, b: 2, c: 3 }).bytes;
    expect(newer.length).toBe(9);
    expect((await loadError(v1, {}, newer, { version: 2 })).code).toBe('EVMSTATE_VERSION');
  });

  test('exists(opaque, version) decides alone', async () => {
    const d: VMStateDescription = {
      name: 'd',
      versionId: 5,
      minimumVersionId: 1,
      fields: [F.uint8('flag'), F.uint16('opt', { version: 99, exists: (o: any) => o.flag === 1 })],
    };
    expect(hex(saveBytes(d, { flag: 1, opt: 7 }).bytes)).toBe('010007');
    expect(hex(saveBytes(d, { flag: 0, opt: 7 }).bytes)).toBe('00');
    const dst: any = {};
    await loadBytes(d, dst, Buffer.from('010009', 'hex'));
    expect(dst).toEqual({ flag: 1, opt: 9 });
  });
});
