/**
 * The `fd` and `qlist` field kinds (QEMU's VMSTATE_FD and VMSTATE_QLIST): descriptors ride on
 * a ' ' byte beside the stream, and a list is a u8 1 before each element and a u8 0 after the
 * last. A fake channel stands in for SCM_RIGHTS here; test/transport/cpr.test.ts passes real
 * descriptors.
 */
import { F, VMStateError, vmstateLoad, vmstateSave, type VMStateDescription } from '../../lib/vmstate';
import { QemuFileReader, QemuFileWriter, type ByteSink, type ByteSource } from '../../lib/stream';

interface Elem {
  id: number;
  fd: number;
}
const ELEM: VMStateDescription<Elem> = { name: 'el', versionId: 1, minimumVersionId: 1, fields: [F.int32('id'), F.fd('fd')] };
const LIST: VMStateDescription<{ items: Elem[] }> = {
  name: 'L',
  versionId: 1,
  minimumVersionId: 1,
  fields: [F.qlist('items', ELEM, 3)],
};

/** Records bytes; each fd is remembered with the stream offset of the byte it rides on. */
class FdSink implements ByteSink {
  bytes: number[] = [];
  fds: Array<{ at: number; fd: number }> = [];
  write(c: Uint8Array): boolean {
    this.bytes.push(...c);
    return true;
  }
  writeFds(c: Uint8Array, fds: readonly number[]): boolean {
    for (const fd of fds) this.fds.push({ at: this.bytes.length, fd });
    return this.write(c);
  }
  drain(): Promise<void> {
    return Promise.resolve();
  }
  end(): Promise<void> {
    return Promise.resolve();
  }
}

/** Hands out the bytes one at a time, delivering each fd with its byte. */
function fdSource(bytes: number[], fds: Array<{ at: number; fd: number }>): ByteSource {
  let i = 0;
  const got: number[] = [];
  return {
    read: async () => {
      if (i >= bytes.length) return null;
      for (const f of fds) if (f.at === i) got.push(f.fd);
      return Uint8Array.of(bytes[i++]);
    },
    takeFd: () => got.shift(),
  };
}

function save(items: Elem[]): FdSink {
  const sink = new FdSink();
  const f = new QemuFileWriter(sink);
  vmstateSave(f, LIST, { items }, { vmdesc: false });
  f.flush();
  expect(f.error).toBeNull();
  return sink;
}

async function load(src: ByteSource): Promise<{ items: Elem[] }> {
  const o = { items: [] as Elem[] };
  await vmstateLoad(new QemuFileReader(src), LIST, o, 1);
  return o;
}

test('wire form: 01 element 01 element 00, each fd on a 0x20 byte', async () => {
  const sink = save([{ id: 7, fd: 41 }, { id: -1, fd: 42 }]);
  expect(sink.bytes).toEqual([1, 0, 0, 0, 7, 0x20, 1, 0xff, 0xff, 0xff, 0xff, 0x20, 0]);
  expect(sink.fds).toEqual([{ at: 5, fd: 41 }, { at: 11, fd: 42 }]);
  expect(await load(fdSource(sink.bytes, sink.fds))).toEqual({ items: [{ id: 7, fd: 41 }, { id: -1, fd: 42 }] });
});

test('an empty list is one 00 byte', async () => {
  const sink = save([]);
  expect(sink.bytes).toEqual([0]);
  expect(await load(fdSource(sink.bytes, []))).toEqual({ items: [] });
});

async function loadError(src: ByteSource): Promise<VMStateError> {
  const o = { items: [] as Elem[] };
  try {
    await vmstateLoad(new QemuFileReader(src), LIST, o, 1);
  } catch (e) {
    expect(e).toBeInstanceOf(VMStateError);
    return e as VMStateError;
  }
  throw new Error('loaded');
}

test('more elements than the limit: EVMSTATE_LIMIT at the element', async () => {
  const sink = save([{ id: 1, fd: 1 }, { id: 2, fd: 2 }, { id: 3, fd: 3 }]);
  const bytes = [...sink.bytes.slice(0, -1), 1, 0, 0, 0, 4, 0x20, 0];
  const e = await loadError(fdSource(bytes, [...sink.fds, { at: bytes.length - 2, fd: 4 }]));
  expect(e.code).toBe('EVMSTATE_LIMIT');
  expect(e.field).toBe('L/items[3]');
});

test('a descriptor byte with no descriptor, or the wrong service byte, names the field', async () => {
  const sink = save([{ id: 7, fd: 41 }]);
  let e = await loadError(fdSource(sink.bytes, []));
  expect(e.code).toBe('EVMSTATE_STREAM');
  expect(e.field).toBe('L/items[0]/fd');
  expect(e.detail).toMatch(/no descriptor came/);
  const bad = [...sink.bytes];
  bad[5] = 0x21;
  e = await loadError(fdSource(bad, sink.fds));
  expect(e.field).toBe('L/items[0]/fd');
  expect(e.detail).toMatch(/service byte 0x21/);
});

test('a channel that cannot pass descriptors fails both ways', async () => {
  const plain: ByteSink = { write: () => true, drain: async () => {}, end: async () => {} };
  const f = new QemuFileWriter(plain);
  vmstateSave(f, LIST, { items: [{ id: 1, fd: 3 }] }, { vmdesc: false });
  expect((f.error as any)?.code).toBe('ESTREAM_FD');
  const src: ByteSource = { read: async () => null };
  const bytes = save([{ id: 1, fd: 3 }]).bytes;
  let i = 0;
  src.read = async () => (i < bytes.length ? Uint8Array.of(bytes[i++]) : null);
  const e = await loadError(src);
  expect(e.detail).toMatch(/does not support fd passing/);
});

test('truncated inside the list: EVMSTATE_TRUNCATED', async () => {
  const sink = save([{ id: 7, fd: 41 }]);
  const e = await loadError(fdSource(sink.bytes.slice(0, -1), sink.fds));
  expect(e.code).toBe('EVMSTATE_TRUNCATED');
});
