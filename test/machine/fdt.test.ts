import { buildFdt, findNode, node, parseFdt, propString } from '../../lib/machine/fdt';
import { virtFdt } from '../../lib/machine/virt-fdt';
import { fdtAddress, resetVector, MROM_BASE } from '../../lib/machine/boot';

const cfg = {
  ramBase: 0x8000_0000,
  ramSize: 128 * 2 ** 20,
  harts: 2,
  bootargs: 'seed=7 start=0x80100000',
  uart: { base: 0x1000_0000, size: 0x100, irq: 10, clockHz: 3686400 },
  test: { base: 0x10_0000, size: 0x1000 },
  clint: { base: 0x200_0000, size: 0x10000 },
  plic: { base: 0xc00_0000, size: 0x60_0000, sources: 96 },
  isa: 'rv64ima_zicsr_zifencei',
};

describe('flattened device tree', () => {
  test('round trips a tree through the binary format', () => {
    const blob = buildFdt(node('', { a: 1 }, [node('x@1', { s: 'str', l: ['a', 'b'], e: null, c: [1, 2] })]));
    expect(blob.readUInt32BE(0)).toBe(0xd00dfeed);
    expect(blob.readUInt32BE(4)).toBe(blob.length);
    const t = parseFdt(blob);
    expect(t.children[0].name).toBe('x@1');
    expect(propString(t.children[0], 's')).toBe('str');
    const c = t.children[0].props.find(([k]) => k === 'c')![1] as Uint8Array;
    expect(Buffer.from(c).toString('hex')).toBe('0000000100000002');
  });

  test('virt tree has the nodes a guest looks for, at QEMU paths', () => {
    const t = parseFdt(virtFdt(cfg));
    expect(propString(findNode(t, '/chosen'), 'bootargs')).toBe('seed=7 start=0x80100000');
    expect(propString(findNode(t, '/chosen'), 'stdout-path')).toBe('/soc/serial@10000000');
    const reg = findNode(t, '/memory@80000000')!.props.find(([k]) => k === 'reg')![1] as Uint8Array;
    expect(Buffer.from(reg).toString('hex')).toBe('00000000' + '80000000' + '00000000' + '08000000');
    expect(findNode(t, '/cpus/cpu@1')).toBeDefined();
    expect(findNode(t, '/cpus/cpu@2')).toBeUndefined();
    for (const p of ['/soc/serial@10000000', '/soc/clint@2000000', '/soc/plic@c000000', '/soc/test@100000']) {
      expect(findNode(t, p)).toBeDefined();
    }
  });

  test('the tree goes where QEMU puts it: below min(RAM end, 3 GiB), 2 MiB aligned', () => {
    expect(fdtAddress(0x8000_0000, 128 * 2 ** 20, 2142)).toBe(0x87e0_0000);
    expect(fdtAddress(0x8000_0000, 4 * 2 ** 30, 2142)).toBe(0xbfe0_0000);
  });

  test('reset vector carries entry and fdt address like QEMU virt mrom', () => {
    const v = Buffer.from(resetVector(0x8000_0000, 0x87e0_0000));
    expect(v.readUInt32LE(0)).toBe(0x00000297);
    expect(v.readBigUInt64LE(0x18)).toBe(0x8000_0000n);
    expect(v.readBigUInt64LE(0x20)).toBe(0x87e0_0000n);
    expect(v.readBigUInt64LE(0x28)).toBe(0x4942534fn);
    expect(MROM_BASE).toBe(0x1000);
  });
});
