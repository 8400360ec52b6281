/**
 * Every section the machine migrates (each hart's cpu_common and cpu, riscv_mtimer,
 * riscv_sifive_plic, serial), from a machine that has run a guest: save → load into a second
 * machine → save again gives the same bytes, and the hart state reads back identical.
 */
import * as fs from 'node:fs';
import { VirtMachine } from '../../lib/machine/virt';
import { collectingSink, QemuFileReader, QemuFileWriter } from '../../lib/stream';
import { vmstateLoad, vmstateSave } from '../../lib/vmstate';
import { guest } from '../e2e/helpers';

async function bytesOf(m: VirtMachine, i: number): Promise<Buffer> {
  const s = m.vmstateSections()[i];
  const sink = collectingSink();
  const w = new QemuFileWriter(sink);
  vmstateSave(w, s.vmsd, s.opaque);
  await w.close();
  return sink.bytes();
}

describe.each(['virt-2.0', 'virt-1.0'])('VMState round trip of every section (%s)', (type) => {
  let a: VirtMachine;
  let b: VirtMachine;
  beforeAll(async () => {
    a = await VirtMachine.create({ type, memSize: 16 * 2 ** 20, smp: 2, kernel: fs.readFileSync(guest('idle')), append: 'size=64K' });
    b = await VirtMachine.create({ type, memSize: 16 * 2 ** 20, smp: 2 });
    a.cont();
    await new Promise((r) => setTimeout(r, 400)); // timers armed, UART used, harts in wfi
    await a.stop();
  });
  afterAll(async () => {
    await a.destroy();
    await b.destroy();
  });

  test('sections are the ones QEMU names, in its order', () => {
    expect(a.vmstateSections().map((s) => `${s.idstr}:${s.instanceId}`)).toEqual([
      'cpu_common:0', 'cpu:0', 'cpu_common:1', 'cpu:1', 'riscv_mtimer:0', 'riscv_sifive_plic:0', 'serial:0',
    ]);
  });

  test('save → load → save is exact for each', async () => {
    const sections = a.vmstateSections();
    for (let i = 0; i < sections.length; i++) {
      const first = await bytesOf(a, i);
      const target = b.vmstateSections()[i];
      await vmstateLoad(QemuFileReader.fromBytes(first), target.vmsd, target.opaque, target.vmsd.versionId);
      const second = await bytesOf(b, i);
      expect({ section: sections[i].idstr, bytes: second.toString('hex') }).toEqual({ section: sections[i].idstr, bytes: first.toString('hex') });
    }
    for (let h = 0; h < 2; h++) {
      const { ...sa } = a.hartStates[h].snapshot();
      const { ...sb } = b.hartStates[h].snapshot();
      expect(sb).toEqual(sa);
    }
    expect(b.devices.clint.mtime()).toBe(type === 'virt-2.0' ? a.devices.clint.mtime() : b.devices.clint.mtime());
    for (let h = 0; h < 2; h++) expect(b.devices.clint.timecmp(h)).toBe(a.devices.clint.timecmp(h));
  });
});
