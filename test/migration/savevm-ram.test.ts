import { RamBlock } from '../../lib/machine/ram';
import { EmulatorDirtyLog } from '../../lib/machine/dirty';
import { ConfigurationState } from '../../lib/migration/configuration';
import { LoadVm } from '../../lib/migration/loadvm';
import { RamLoader } from '../../lib/migration/ram-load';
import { RamSaver } from '../../lib/migration/ram-save';
import { SectionRegistry } from '../../lib/migration/registry';
import { SaveVm } from '../../lib/migration/savevm';
import { collectingSink, QemuFileReader, QemuFileWriter } from '../../lib/stream';
import { F, type VMStateDescription } from '../../lib/vmstate';
import { MigrationError } from '../../lib/migration/errors';
import { RAM_SECTION_VERSION } from '../../lib/migration/wire';

const MiB = 2 ** 20;

interface Dev { a: number; b: bigint }
const DEV: VMStateDescription<Dev> = { name: 'dev', versionId: 2, minimumVersionId: 1, fields: [F.uint32('a'), F.uint64('b')] };

function fillPattern(b: RamBlock, seed: number): void {
  const buf = Buffer.alloc(b.size);
  let x = seed >>> 0 || 1;
  for (let p = 0; p < b.pages; p++) {
    if (p % 3 === 0) continue; // every third page stays zero
    for (let i = 0; i < 4096; i += 4) {
      x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
      buf.writeUInt32LE(x >>> 0, p * 4096 + i);
    }
  }
  b.write(0, buf);
}

async function save(blocks: RamBlock[], dev: Dev, mutate?: () => void): Promise<{ bytes: Buffer; saver: RamSaver }> {
  const sink = collectingSink();
  const f = new QemuFileWriter(sink);
  const reg = new SectionRegistry();
  const saver = new RamSaver(blocks, { makeLog: (b) => new EmulatorDirtyLog(b), zeroPageDetection: () => 'legacy' });
  reg.registerLive('ram', 0, RAM_SECTION_VERSION, saver);
  reg.registerVmsd('dev', 0, DEV, dev);
  const s = new SaveVm(f, reg, new ConfigurationState('virt-2.0'));
  s.writeHeader();
  await s.setup();
  while (!(await s.iterate())) { /* drain everything */ }
  mutate?.();
  await s.complete();
  s.saveDevices();
  s.finish();
  await f.close();
  saver.saveCleanup();
  return { bytes: sink.bytes(), saver };
}

async function load(bytes: Uint8Array, blocks: RamBlock[], dev: Dev, machine = 'virt-2.0'): Promise<RamLoader> {
  const reg = new SectionRegistry();
  const loader = new RamLoader(blocks);
  reg.registerLive('ram', 0, RAM_SECTION_VERSION, loader);
  reg.registerVmsd('dev', 0, DEV, dev);
  const l = new LoadVm(QemuFileReader.fromBytes(bytes), reg, new ConfigurationState(machine));
  await l.loadHeader();
  await l.loadMain();
  expect(await l.readVmdesc(1 << 20)).not.toBeNull();
  return loader;
}

describe('savevm framing and the ram section', () => {
  const made: RamBlock[] = [];
  const block = (name: string, size: number) => {
    const b = RamBlock.create({ name, base: 0x8000_0000, size });
    made.push(b);
    return b;
  };
  afterAll(() => made.forEach((b) => b.close()));

  test('RAM and device state arrive identical; zero pages are sent as ZERO', async () => {
    const src = block('ram0', 4 * MiB);
    fillPattern(src, 7);
    const { bytes, saver } = await save([src], { a: 7, b: 1n << 60n });
    expect(bytes.subarray(0, 8).toString('hex')).toBe('5145564d00000003');
    expect(saver.counters.normal + saver.counters.duplicate).toBe(src.pages);
    expect(saver.counters.duplicate).toBe(Math.ceil(src.pages / 3));

    const dst = block('ram0', 4 * MiB);
    dst.fill(0, dst.size, 0xee); // stale data must be overwritten, zero pages included
    const dev = { a: 0, b: 0n };
    const loader = await load(bytes, [dst], dev);
    expect(Buffer.from(dst.read(0, dst.size)).equals(Buffer.from(src.read(0, src.size)))).toBe(true);
    expect(dev).toEqual({ a: 7, b: 1n << 60n });
    expect(loader.counters.normal).toBe(saver.counters.normal);
  });

  test('postcopy: the event loop turns while a stream that keeps data ready is placed', async () => {
    const src = block('ram0', 4 * MiB);
    fillPattern(src, 5);
    const { bytes } = await save([src], { a: 1, b: 2n });
    const dst = block('ram0', 4 * MiB);
    const placed: number[] = [];
    const reg = new SectionRegistry();
    const loader = new RamLoader([dst]);
    // As after POSTCOPY_LISTEN: every page goes through the placer (here it only counts).
    const received = [new Int32Array(Math.ceil(dst.pages / 32))];
    // placeRecords as the native call does it, minus userfaultfd: whole CONTINUE records only.
    const placeRecords = (_b: number, buf: Uint8Array, off: number, end: number, out: Float64Array, max: number): number => {
      const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
      out.fill(0);
      for (let n = 0; n < max && end - off >= 9; n++) {
        const lo = dv.getUint32(off + 4);
        const flags = lo & 0xfff;
        const page = (dv.getUint32(off) * 2 ** 32 + lo - flags) / 4096;
        if (flags === (0x08 | 0x20) && end - off >= 8 + 4096) off += 8 + 4096;
        else if (flags === (0x02 | 0x20)) off += 9;
        else break;
        placed.push(page);
        out[flags & 0x08 ? 0 : 1]++;
      }
      return off;
    };
    loader.startPostcopy({ received, placer: { place: (_b, p) => placed.push(p) > 0, zero: (_b, p) => placed.push(p) > 0, placeRecords } });
    reg.registerLive('ram', 0, RAM_SECTION_VERSION, loader);
    reg.registerVmsd('dev', 0, DEV, { a: 0, b: 0n });
    const l = new LoadVm(QemuFileReader.fromBytes(bytes), reg, new ConfigurationState('virt-2.0'));
    let placedWhenTurned = -1;
    setImmediate(() => (placedWhenTurned = placed.length));
    await l.loadHeader();
    await l.loadMain();
    expect(placed.length).toBe(dst.pages);
    // The monitor, UART output and device effects of the guest running meanwhile are served
    // by the same thread: they had a turn long before the last page.
    expect(placedWhenTurned).toBeGreaterThan(0);
    expect(placedWhenTurned).toBeLessThan(dst.pages / 2);
  });

  test('pages dirtied after being sent are sent again at completion', async () => {
    const src = block('ram0', 1 * MiB);
    fillPattern(src, 3);
    const { bytes } = await save([src], { a: 1, b: 2n }, () => src.write(4096 * 5 + 17, Uint8Array.of(1, 2, 3)));
    const dst = block('ram0', 1 * MiB);
    await load(bytes, [dst], { a: 0, b: 0n });
    expect(Buffer.from(dst.read(0, dst.size)).equals(Buffer.from(src.read(0, src.size)))).toBe(true);
  });

  test('refuses a stream whose RAM size differs, naming the block', async () => {
    const src = block('ram0', 1 * MiB);
    const { bytes } = await save([src], { a: 1, b: 2n });
    const dst = block('ram0', 2 * MiB);
    await expect(load(bytes, [dst], { a: 0, b: 0n })).rejects.toMatchObject({ code: 'EMIG_RAM', section: 'ram', field: 'ram0' });
  });

  test('refuses another board, accepts another version of ours', async () => {
    const src = block('ram0', 1 * MiB);
    const { bytes } = await save([src], { a: 1, b: 2n });
    await expect(load(bytes, [block('ram0', 1 * MiB)], { a: 0, b: 0n }, 'sifive_u')).rejects.toMatchObject({ code: 'EMIG_CONFIG' });
    await expect(load(bytes, [block('ram0', 1 * MiB)], { a: 0, b: 0n }, 'virt-1.0')).resolves.toBeDefined();
  });

  test('every truncation fails with a typed error naming a position', async () => {
    const src = block('ram0', 1 * MiB);
    fillPattern(src, 9);
    const { bytes } = await save([src], { a: 1, b: 2n });
    const eof = bytes.indexOf(0x06, bytes.length - 4000) ; // somewhere near the end: vmdesc marker
    const cuts = [0, 3, 8, 9, 20, 40, 100, 5000, 300000, eof - 1];
    for (const cut of cuts) {
      const dst = block('ram0', 1 * MiB);
      const err = await load(bytes.subarray(0, cut), [dst], { a: 0, b: 0n }).then(() => null, (e) => e);
      expect(err).toBeInstanceOf(MigrationError);
      expect(typeof err.position).toBe('number');
      dst.close();
      made.pop();
    }
  });
});
