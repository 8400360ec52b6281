/**
 * Byte-exact checks against layouts QEMU 7.2's riscv virt machine writes (see the riscv vmstate
 * reference): wire bytes and the vmdesc JSON text, character for character.
 */
import { F, vmdescDevice, vmdescFile, vmdescToJson, type VMStateDescription } from '../../lib/vmstate';
import { hex, loadBytes, saveBytes } from './helpers';

// hw/char/serial.c: vmstate_serial (v3, min 2) and the serial-mm wrapper named "serial" too.
const thrIpending: VMStateDescription = {
  name: 'serial/thr_ipending',
  versionId: 1,
  minimumVersionId: 1,
  needed: (s: any) => s.thr_ipending !== ((s.ier & 0x02) ? 1 : 0),
  fields: [F.int32('thr_ipending')],
};
const vmstateSerial: VMStateDescription = {
  name: 'serial',
  versionId: 3,
  minimumVersionId: 2,
  fields: [
    F.uint16('divider', { version: 2 }),
    F.uint8('rbr'),
    F.uint8('ier'),
    F.uint8('iir'),
    F.uint8('lcr'),
    F.uint8('mcr'),
    F.uint8('lsr'),
    F.uint8('msr'),
    F.uint8('scr'),
    F.uint8('fcr_vmstate', { version: 3 }),
  ],
  subsections: [thrIpending],
};
const vmstateSerialMm: VMStateDescription = {
  name: 'serial',
  versionId: 3,
  minimumVersionId: 2,
  fields: [F.struct('serial', vmstateSerial)],
};
function resetUart(): any {
  // The reset values the 7.2 capture showed: iir 0x01, lsr 0x60, msr 0xb0, mcr 0x08, divider 0x000c.
  return { serial: { divider: 0x0c, rbr: 0, ier: 0, iir: 0x01, lcr: 0, mcr: 0x08, lsr: 0x60, msr: 0xb0, scr: 0, fcr_vmstate: 0, thr_ipending: 0 } };
}

// migration/global_state.c as of 7.2: be32 size + 100-byte runstate buffer = 104 bytes.
function globalState72(): VMStateDescription {
  return {
    name: 'globalstate',
    versionId: 1,
    minimumVersionId: 1,
    preSave: (s: any) => {
      const nul = s.runstate.indexOf(0);
      s.size = (nul < 0 ? s.runstate.length : nul) + 1;
    },
    fields: [F.uint32('size'), F.buffer('runstate', 100)],
  };
}
// Newer QEMU (9.x+) splits the same 100 bytes: runstate[32], has_vm_was_suspended,
// vm_was_suspended, unused[66]; the wire stays 104 bytes, only the vmdesc differs.
function globalStateNew(): VMStateDescription {
  return {
    name: 'globalstate',
    versionId: 1,
    minimumVersionId: 1,
    fields: [
      F.uint32('size'),
      F.buffer('runstate', 32),
      F.uint8('has_vm_was_suspended'),
      F.uint8('vm_was_suspended'),
      F.buffer('unused', 66),
    ],
  };
}
function runstateBuf(name: string, len: number): Uint8Array {
  const b = new Uint8Array(len);
  b.set(Buffer.from(name, 'latin1'));
  return b;
}

describe('QEMU 7.2 riscv virt layouts', () => {
  test('serial v3: 11 bytes and the vmdesc entry QEMU writes', () => {
    const { bytes, desc } = saveBytes(vmstateSerialMm, resetUart());
    expect(hex(bytes)).toBe('000c000001000860b00000');
    expect(bytes.length).toBe(11);
    expect(vmdescToJson(vmdescDevice('serial', 0, desc))).toBe(
      '{"name": "serial", "instance_id": 0, "vmsd_name": "serial", "version": 3, "fields": [' +
        '{"name": "serial", "type": "struct", "struct": {"vmsd_name": "serial", "version": 3, "fields": [' +
        '{"name": "divider", "type": "uint16", "size": 2}, {"name": "rbr", "type": "uint8", "size": 1}, ' +
        '{"name": "ier", "type": "uint8", "size": 1}, {"name": "iir", "type": "uint8", "size": 1}, ' +
        '{"name": "lcr", "type": "uint8", "size": 1}, {"name": "mcr", "type": "uint8", "size": 1}, ' +
        '{"name": "lsr", "type": "uint8", "size": 1}, {"name": "msr", "type": "uint8", "size": 1}, ' +
        '{"name": "scr", "type": "uint8", "size": 1}, {"name": "fcr_vmstate", "type": "uint8", "size": 1}]}, ' +
        '"size": 11}]}',
    );
  });

  test('serial: a needed nested subsection goes after the struct fields, and loads back', async () => {
    const s = resetUart();
    s.serial.ier = 0x02; // THR interrupt enabled but not pending: subsection needed
    const { bytes, desc } = saveBytes(vmstateSerialMm, s);
    expect(hex(bytes)).toBe(
      '000c000201000860b00000' + '05' + '13' + Buffer.from('serial/thr_ipending').toString('hex') + '00000001' + '00000000',
    );
    expect(desc.fields[0].size).toBe(bytes.length);
    expect(desc.fields[0].struct!.subsections).toEqual([
      { vmsd_name: 'serial/thr_ipending', version: 1, fields: [{ name: 'thr_ipending', type: 'int32', size: 4 }] },
    ]);
    const dst = resetUart();
    dst.serial.thr_ipending = 7;
    await loadBytes(vmstateSerialMm, dst, bytes);
    expect(dst.serial.thr_ipending).toBe(0);
    expect(dst.serial.ier).toBe(2);
  });

  test('serial: a v2 stream (no fcr_vmstate) loads into the v3 description', async () => {
    const dst = resetUart();
    dst.serial.fcr_vmstate = 0x55;
    await loadBytes(vmstateSerial, dst.serial, Buffer.from('000c000001000860b000', 'hex'), { version: 2 });
    expect(dst.serial.fcr_vmstate).toBe(0x55);
    expect(dst.serial.msr).toBe(0xb0);
  });

  test('globalstate: be32 size + 100-byte runstate = 104 bytes ("paused", size 7)', async () => {
    const gs = { size: 0, runstate: runstateBuf('paused', 100) };
    const { bytes, desc } = saveBytes(globalState72(), gs);
    expect(bytes.length).toBe(104);
    expect(hex(bytes.subarray(0, 12))).toBe('00000007' + Buffer.from('paused').toString('hex') + '0000');
    expect(bytes.subarray(10).every((b) => b === 0)).toBe(true);
    expect(vmdescToJson(desc)).toBe(
      '{"vmsd_name": "globalstate", "version": 1, "fields": [{"name": "size", "type": "uint32", "size": 4}, ' +
        '{"name": "runstate", "type": "buffer", "size": 100}]}',
    );
    // The newer description reads the same 104 bytes: has_vm_was_suspended stays 0.
    const dst: any = { runstate: new Uint8Array(32), unused: new Uint8Array(66), has_vm_was_suspended: 9, vm_was_suspended: 9 };
    const f = await loadBytes(globalStateNew(), dst, bytes);
    expect(f.position).toBe(104);
    expect(dst.size).toBe(7);
    expect(Buffer.from(dst.runstate.subarray(0, 6)).toString()).toBe('paused');
    expect(dst.has_vm_was_suspended).toBe(0);
    // ... and writes the same bytes back.
    expect(hex(saveBytes(globalStateNew(), dst).bytes)).toBe(hex(bytes));
  });

  test('timer v2: int64, unused(8), int64 = 24 bytes; unused is "unused_buffer"', async () => {
    const vmsd: VMStateDescription = {
      name: 'timer',
      versionId: 2,
      minimumVersionId: 1,
      fields: [F.int64('cpu_ticks_offset'), F.unused(8), F.int64('cpu_clock_offset', { version: 2 })],
    };
    const { bytes, desc } = saveBytes(vmsd, { cpu_ticks_offset: -2n, cpu_clock_offset: 0x123456789abcdef0n });
    expect(hex(bytes)).toBe('fffffffffffffffe' + '0000000000000000' + '123456789abcdef0');
    expect(vmdescToJson(desc.fields)).toBe(
      '[{"name": "cpu_ticks_offset", "type": "int64", "size": 8}, {"name": "unused", "type": "unused_buffer", "size": 8}, ' +
        '{"name": "cpu_clock_offset", "type": "int64", "size": 8}]',
    );
    const dst: any = {};
    await loadBytes(vmsd, dst, Buffer.from('fffffffffffffffe' + 'ffffffffffffffff' + '123456789abcdef0', 'hex'));
    expect(dst).toEqual({ cpu_ticks_offset: -2n, cpu_clock_offset: 0x123456789abcdef0n });
  });

  test('riscv_mtimer (-smp 2): timecmp varray of uint64 counted by num_harts → array_len 2', () => {
    const vmsd: VMStateDescription = {
      name: 'riscv_mtimer',
      versionId: 1,
      minimumVersionId: 1,
      fields: [F.varray('timecmp', 'uint64', (s: any) => s.num_harts)],
    };
    const { bytes, desc } = saveBytes(vmsd, { num_harts: 2, timecmp: new BigUint64Array([1n, 0xffffffffffffffffn]) });
    expect(hex(bytes)).toBe('0000000000000001ffffffffffffffff');
    expect(vmdescToJson(desc)).toBe(
      '{"vmsd_name": "riscv_mtimer", "version": 1, "fields": [{"name": "timecmp", "array_len": 2, "type": "uint64", "size": 8}]}',
    );
  });

  test('fw_cfg v2: duplicated names become name[k]; subsection version 0', async () => {
    const dma: VMStateDescription = {
      name: 'fw_cfg/dma',
      versionId: 0,
      minimumVersionId: 0,
      needed: (s: any) => s.dma_enabled,
      fields: [F.uint64('dma_addr')],
    };
    const vmsd: VMStateDescription = {
      name: 'fw_cfg',
      versionId: 2,
      minimumVersionId: 1,
      fields: [
        F.uint16('cur_entry'),
        // VMSTATE_UINT16_HACK(cur_offset, …, is_version_1) then VMSTATE_UINT32_V(cur_offset, …, 2)
        F.uint16('cur_offset', { exists: (_s, v) => v === 1 }),
        F.uint32('cur_offset', { version: 2 }),
      ],
      subsections: [dma],
    };
    const s = { cur_entry: 0x19, cur_offset: 3, dma_enabled: true, dma_addr: 0n };
    const { bytes, desc } = saveBytes(vmsd, s);
    expect(hex(bytes)).toBe('0019' + '00000003' + '05' + '0a' + Buffer.from('fw_cfg/dma').toString('hex') + '00000000' + '0000000000000000');
    expect(vmdescToJson(vmdescDevice('fw_cfg', 0, desc))).toBe(
      '{"name": "fw_cfg", "instance_id": 0, "vmsd_name": "fw_cfg", "version": 2, "fields": [' +
        '{"name": "cur_entry", "type": "uint16", "size": 2}, {"name": "cur_offset[1]", "type": "uint32", "size": 4}], ' +
        '"subsections": [{"vmsd_name": "fw_cfg/dma", "version": 0, "fields": [{"name": "dma_addr", "type": "uint64", "size": 8}]}]}',
    );
    // A v1 stream carries the 16-bit variant instead.
    const dst: any = { dma_enabled: true, dma_addr: 5n };
    await loadBytes(vmsd, dst, Buffer.from('0019' + '0004', 'hex'), { version: 1 });
    expect(dst.cur_offset).toBe(4);
    expect(dst.dma_addr).toBe(5n);
  });

  test('PCIBUS: "int32 equal" count then an int32 varray; cpu/pmp style struct array', () => {
    const pcibus: VMStateDescription = {
      name: 'PCIBUS',
      versionId: 1,
      minimumVersionId: 1,
      fields: [F.int32Equal('nirq'), F.varray('irq_count', 'int32', (s: any) => s.nirq)],
    };
    const { bytes, desc } = saveBytes(pcibus, { nirq: 4, irq_count: new Int32Array([0, 1, -1, 0]) });
    expect(hex(bytes)).toBe('00000004' + '00000000' + '00000001' + 'ffffffff' + '00000000');
    expect(vmdescToJson(desc.fields)).toBe(
      '[{"name": "nirq", "type": "int32 equal", "size": 4}, {"name": "irq_count", "array_len": 4, "type": "int32", "size": 4}]',
    );
    const entry: VMStateDescription = {
      name: 'cpu/pmp/entry',
      versionId: 1,
      minimumVersionId: 1,
      fields: [F.uint64('addr_reg'), F.uint8('cfg_reg')],
    };
    const pmp: VMStateDescription = {
      name: 'cpu/pmp',
      versionId: 1,
      minimumVersionId: 1,
      fields: [F.structArray('env.pmp_state.pmp', 16, entry, { get: (c: any) => c.pmp })],
    };
    const cpu = { pmp: Array.from({ length: 16 }, (_, i) => ({ addr_reg: BigInt(i), cfg_reg: i })) };
    const r = saveBytes(pmp, cpu);
    expect(r.bytes.length).toBe(16 * 9);
    expect(vmdescToJson(r.desc.fields)).toBe(
      '[{"name": "env.pmp_state.pmp", "array_len": 16, "type": "struct", "struct": {"vmsd_name": "cpu/pmp/entry", "version": 1, ' +
        '"fields": [{"name": "addr_reg", "type": "uint64", "size": 8}, {"name": "cfg_reg", "type": "uint8", "size": 1}]}, "size": 9}]',
    );
  });

  test('whole-file object: {"page_size": 4096, "devices": [...]} in stream order', () => {
    const a = saveBytes(vmstateSerialMm, resetUart()).desc;
    const b = saveBytes(globalState72(), { size: 0, runstate: runstateBuf('running', 100) }).desc;
    const json = vmdescToJson(vmdescFile([vmdescDevice('serial', 0, a), vmdescDevice('globalstate', 0, b)]));
    expect(json.startsWith('{"page_size": 4096, "devices": [{"name": "serial", "instance_id": 0, "vmsd_name": "serial"')).toBe(true);
    expect(json.endsWith('{"name": "globalstate", "instance_id": 0, "vmsd_name": "globalstate", "version": 1, "fields": [' +
      '{"name": "size", "type": "uint32", "size": 4}, {"name": "runstate", "type": "buffer", "size": 100}]}]}')).toBe(true);
    expect(JSON.parse(json).devices).toHaveLength(2);
    // Newer QEMU's configuration entry comes first when given.
    const withCfg = vmdescToJson(vmdescFile([], { configuration: { vmsd_name: 'configuration', version: 1, fields: [] } }));
    expect(withCfg).toBe('{"configuration": {"vmsd_name": "configuration", "version": 1, "fields": []}, "page_size": 4096, "devices": []}');
  });

  test('JSON strings are escaped like QEMU\'s JSONWriter', () => {
    expect(vmdescToJson({ n: 'a"b\\c\n\t\u0001\u007f\u00e9\u{1F600}' })).toBe(
      '{"n": "a\\"b\\\\c\\n\\t\\u0001\\u007F\\u00E9\\uD83D\\uDE00"}',
    );
  });
});
