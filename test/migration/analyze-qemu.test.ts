/**
 * livemig-analyze on streams QEMU 7.2 wrote: the committed fixture (a 16 MiB idle guest,
 * gzip), checked against docs of the riscv virt stream and the fixture's `.json` sidecar
 * (query-migrate at completion); and, when qemu-system-riscv64 is installed, a fresh
 * two-hart stream whose extracted RAM is compared with the guest's memory read over QMP.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { QemuGuest, findQemu } from '../../guests/qemu-run';
import { RAM_BASE, checkAb, checkFill } from '../../guests/ram-check';
import { parseElf } from '../../lib/machine/loader';
import { analyzeFile, renderStateJson, type AnalyzeResult } from '../../lib/migration/analyze';
import { FIXTURE, FIXTURE_JSON, MiB } from './analyze-helpers';

const sidecar = JSON.parse(fs.readFileSync(FIXTURE_JSON, 'utf8'));

describe('the QEMU 7.2 fixture', () => {
  let r: AnalyzeResult;
  let state: Record<string, any>;
  let dir: string;
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'livemig-analyze-qemu-'));
    r = await analyzeFile(FIXTURE, { extractDir: dir });
    state = JSON.parse(renderStateJson(r));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('is the stream its sidecar describes', () => {
    const bytes = zlib.gunzipSync(fs.readFileSync(FIXTURE));
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(sidecar.sha256);
    expect(r.streamBytes).toBe(sidecar.bytes);
    expect(r.trailingBytes).toBe(0);
  });

  test('sections: ids, names, instances and versions as QEMU 7.2 riscv virt sends them', () => {
    const list = r.records.map((x) => [x.kind, x.sectionId ?? null, x.idstr ?? x.name ?? null, x.instanceId ?? null, x.versionId ?? null]);
    expect(list).toEqual([
      ['header', null, null, null, null],
      ['configuration', null, 'virt', null, null],
      ['start', 2, 'ram', 0, 4],
      ['part', 2, 'ram', 0, 4],
      ['end', 2, 'ram', 0, 4],
      ['full', 0, 'timer', 0, 2],
      // -nodefaults was not given: the default user-mode NIC adds a legacy slirp section.
      ['full', 4, 'slirp', 0, 4],
      ['full', 5, 'cpu_common', 0, 1],
      ['full', 6, 'cpu', 0, 5],
      ['full', 7, 'riscv_mtimer', 0, 1],
      ['full', 8, 'riscv_sifive_plic', 0, 1],
      ['full', 9, '0000:00:00.0/gpex_root', 0, 1],
      ['full', 10, 'PCIHost', 0, 1],
      ['full', 11, 'PCIBUS', 0, 1],
      ['full', 12, 'serial', 0, 3],
      ['full', 13, 'goldfish_rtc', 0, 3],
      ['full', 14, 'pflash_cfi01', 0, 1],
      ['full', 15, 'pflash_cfi01', 1, 1],
      ['full', 16, 'fw_cfg', 0, 2],
      ['full', 17, 'globalstate', 0, 1],
      ['eof', null, null, null, null],
      ['vmdesc', null, null, null, null],
    ]);
    expect(r.records.filter((x) => x.kind === 'full').every((x) => x.decodedBy === 'vmdesc')).toBe(true);
    expect(r.records.filter((x) => x.kind === 'command')).toEqual([]); // 7.2 sends no SWITCHOVER_START
  });

  test('vmdesc: no configuration key (7.2); the configuration is read as length + name', () => {
    expect(r.vmdesc!.configuration).toBeUndefined();
    expect(r.vmdesc!.page_size).toBe(4096);
    expect(r.vmdesc!.devices.map((d) => [d.name, (d as { vmsd_name?: string }).vmsd_name, d.version])).toContainEqual(['cpu', 'cpu', 5]);
    expect(r.configuration).toEqual({ machineType: 'virt', capabilities: [], fromVmdesc: false });
  });

  test('RAM: blocks, and page counts equal to query-migrate\'s', () => {
    const ram = r.ram!;
    const q = sidecar.migrate.ram;
    expect(ram.blocks.map((b) => [b.idstr, b.size])).toEqual([
      ['virt.flash0', 32 * MiB],
      ['virt.flash1', 32 * MiB],
      ['riscv_virt_board.ram', 16 * MiB],
      ['riscv_virt_board.mrom', 0xf000],
    ]);
    expect(ram.totalBytes).toBe(q.total);
    const normal = ram.blocks.reduce((n, b) => n + b.normal, 0);
    const zero = ram.blocks.reduce((n, b) => n + b.zero, 0);
    expect(normal).toBe(q.normal);
    expect(zero).toBe(q.duplicate);
    expect(normal * ram.pageSize).toBe(q['normal-bytes']);
    expect([normal, zero]).toEqual([13, 20482]);
    expect(ram.blocks.every((b) => b.resent === 0 && b.received === b.pages)).toBe(true);
    // The two flash banks are nothing but zero pages.
    expect(ram.blocks.slice(0, 2).map((b) => b.zero)).toEqual([8192, 8192]);
    expect([ram.starts, ram.parts, ram.ends]).toEqual([1, 1, 1]);
  });

  test('device state: the values QEMU\'s default rv64 hart and devices have', () => {
    const cpu = state['cpu (6)'];
    expect(cpu['env.gpr']).toHaveLength(32);
    expect(cpu['env.misa_mxl']).toBe('0x00000002');
    expect(cpu['env.misa_ext']).toBe('0x001411ad');
    expect(cpu['env.priv_ver']).toBe('0x0000000000000002');
    expect(cpu['env.features']).toBe('0x00000013');
    expect(cpu['env.resetvec']).toBe('0x0000000000001000');
    expect(cpu['env.pmu_ctrs']).toHaveLength(32);
    expect(Object.keys(cpu['env.pmu_ctrs'][0])).toEqual(['mhpmcounter_val', 'mhpmcounterh_val', 'mhpmcounter_prev', 'mhpmcounterh_prev', 'started']);
    expect(cpu['env.pmu_ctrs'][0].started).toBe(false);
    expect(Object.keys(cpu).filter((k) => k.startsWith('cpu/'))).toEqual(['cpu/pmp', 'cpu/hyper', 'cpu/envcfg', 'cpu/debug']);
    expect(cpu['cpu/pmp']['env.pmp_state.pmp']).toHaveLength(16);
    expect(cpu['cpu/debug']['env.tdata1']).toEqual(['0x2000000000000000', '0x2000000000000000']);
    expect(state['cpu_common (5)']).toEqual({ halted: '0x00000001', interrupt_request: '0x00000000' });
    expect(Object.keys(state['timer (0)'])).toEqual(['cpu_ticks_offset', 'unused', 'cpu_clock_offset']);
    expect(Object.keys(state['riscv_mtimer (7)'])).toEqual(['timecmp']);
    expect(typeof state['riscv_mtimer (7)'].timecmp).toBe('string'); // one hart: no list
    const plic = state['riscv_sifive_plic (8)'];
    expect([plic.source_priority.length, plic.target_priority.length, plic.pending.length, plic.claimed.length, plic.enable.length]).toEqual([96, 2, 3, 3, 6]);
    expect(state['serial (12)'].serial).toMatchObject({ divider: '0x000c', iir: '0x01', lsr: '0x60', msr: '0xb0', mcr: '0x08' });
    expect(state['PCIBUS (11)'].nirq).toBe('0x00000004');
    expect(state['fw_cfg (16)']['fw_cfg/dma']).toBeDefined();
    expect(state['globalstate (17)'].size).toBe('0x00000007');
    expect(state['globalstate (17)'].runstate.startsWith('70 61 75 73 65 64 00')).toBe(true); // "paused"
    expect(state['ram (2)']).toEqual({
      'section sizes': {
        'virt.flash0': '0x0000000002000000',
        'virt.flash1': '0x0000000002000000',
        'riscv_virt_board.ram': '0x0000000001000000',
        'riscv_virt_board.mrom': '0x000000000000f000',
      },
    });
  });

  test('-x: the extracted RAM holds the guest, its fill intact; flash is all zero', () => {
    const ram = fs.readFileSync(path.join(dir, 'riscv_virt_board.ram.bin'));
    expect(ram.length).toBe(16 * MiB);
    const elf = fs.readFileSync(path.join(__dirname, '../../guests/idle.elf'));
    const text = parseElf(elf).blobs.find((b) => b.addr === RAM_BASE)!;
    expect(ram.subarray(0, 256).equals(Buffer.from(text.data.subarray(0, 256)))).toBe(true);
    expect(checkFill(ram, RAM_BASE).errors).toEqual([]);
    const flash = fs.readFileSync(path.join(dir, 'virt.flash0.bin'));
    expect(flash.length).toBe(32 * MiB);
    expect(flash.every((b) => b === 0)).toBe(true);
    const mrom = fs.readFileSync(path.join(dir, 'riscv_virt_board.mrom.bin'));
    expect(mrom.readUInt32LE(0)).toBe(0x00000297); // auipc t0, 0: the reset vector
  });
});

const qemu = findQemu();
const SKIP_REASON = 'skipped: qemu-system-riscv64 not installed (apt-get install qemu-system-misc, or set LIVEMIG_QEMU)';
if (!qemu) {
  process.stderr.write(`analyze-qemu.test.ts: ${SKIP_REASON}\n`);
  test.skip(`a fresh QEMU stream: ${SKIP_REASON}`, () => {});
}

(qemu ? describe : describe.skip)('a fresh QEMU stream (two harts, ab guest)', () => {
  test('sections per hart, and extracted RAM equal to the guest\'s memory', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'livemig-analyze-qemu-'));
    const g = new QemuGuest({ elf: 'ab', mem: '16M', smp: 2, append: 'size=1M seed=5', qmp: true });
    try {
      await g.waitFor((out) => /^AB{3}/.test(out.toString()), 20000);
      await g.qmp('stop');
      const file = path.join(dir, 'ab.mig');
      await g.migrateToFile(file);
      const mem = await g.pmem(RAM_BASE, 16 * MiB);
      const r = await analyzeFile(file, { extractDir: path.join(dir, 'x') });
      const fulls = r.records.filter((x) => x.kind === 'full').map((x) => `${x.sectionId} ${x.idstr} ${x.instanceId}`);
      expect(fulls.slice(0, 6)).toEqual(['0 timer 0', '4 slirp 0', '5 cpu_common 0', '6 cpu 0', '7 cpu_common 1', '8 cpu 1']);
      const state = JSON.parse(renderStateJson(r));
      expect(state['riscv_mtimer (9)'].timecmp).toHaveLength(2);
      const ram = fs.readFileSync(path.join(dir, 'x', 'riscv_virt_board.ram.bin'));
      expect(ram.equals(mem)).toBe(true);
      expect(checkAb(ram).errors).toEqual([]);
    } finally {
      await g.kill();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 60000);
});
