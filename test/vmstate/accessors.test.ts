import { F, vmstateLoad, vmstateSave, type VMStateDescription } from '../../lib/vmstate';
import { collectingSink, QemuFileReader, QemuFileWriter } from '../../lib/stream';

/** State kept somewhere `get` can only copy out of (shared memory, registers in pairs). */
class Regs {
  private words = new BigUint64Array(4);
  private bytes = new Uint8Array(3);
  read(): bigint[] {
    return Array.from(this.words);
  }
  write(v: ArrayLike<bigint>): void {
    for (let i = 0; i < 4; i++) this.words[i] = v[i];
  }
  get blob(): Uint8Array {
    return this.bytes.slice();
  }
  set blob(v: Uint8Array) {
    this.bytes.set(v.subarray(0, 3));
  }
}

const VMSD: VMStateDescription<Regs> = {
  name: 'regs',
  versionId: 1,
  minimumVersionId: 1,
  fields: [
    F.uint64Array('r', 4, { get: (s: Regs) => s.read(), set: (s: Regs, v) => s.write(v as bigint[]) }),
    F.buffer('blob', 3),
  ],
};

test('arrays and buffers whose get returns a copy are stored through set', async () => {
  const a = new Regs();
  a.write([1n, 2n, 3n, 2n ** 63n]);
  a.blob = Uint8Array.of(7, 8, 9);
  const sink = collectingSink();
  const w = new QemuFileWriter(sink);
  vmstateSave(w, VMSD, a);
  await w.close();
  const b = new Regs();
  await vmstateLoad(QemuFileReader.fromBytes(sink.bytes()), VMSD, b, 1);
  expect(b.read()).toEqual([1n, 2n, 3n, 2n ** 63n]);
  expect(Array.from(b.blob)).toEqual([7, 8, 9]);
});
