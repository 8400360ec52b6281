/**
 * livemig-analyze on streams livemig writes: every mode on a small synthetic stream (exact
 * output), input split at every size, and streams saved from a running virt machine — with
 * and without their vmdesc, plain and gzip, one and two harts.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { VirtMachine } from '../../lib/machine/virt';
import {
  LIVEMIG_SECTION_VMSDS,
  analyzeFile,
  analyzeStream,
  blockFileName,
  bytesInput,
  renderDescJson,
  renderRamReport,
  renderStateJson,
  type AnalyzeResult,
} from '../../lib/migration/analyze';
import { MiB, machineStream, smallStream, type MachineStream, type SmallStream } from './analyze-helpers';

const analyze = (b: Uint8Array, split?: number) => analyzeStream(bytesInput(b, split));
const eofCut = (r: AnalyzeResult, b: Buffer) => b.subarray(0, r.eofOffset! + 1);
const summary = (r: AnalyzeResult) => r.records.map((x) => [x.kind, x.sectionId, x.idstr, x.instanceId, x.versionId, x.name].filter((v) => v !== undefined).join(' '));

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'livemig-analyze-'));
}

const SMALL_STATE = `{
    "ram (0)": {
        "section sizes": {
            "blk.a": "0x0000000000010000",
            "dir/blk.b": "0x0000000000004000"
        }
    },
    "toy (1)": {
        "a[0]": "0x00001234",
        "b": "0xfffffffffffffffe (-2)",
        "flag": true,
        "regs": [
            "0x0001",
            "0x0002",
            "0xffff"
        ],
        "blob": "01 02 03 04 05",
        "unused": "00 00",
        "a[1]": "0x09",
        "toy/extra": {
            "extra": "0xfffffff9 (-7)"
        }
    }
}`;

describe('a small synthetic stream', () => {
  let s: SmallStream;
  let r: AnalyzeResult;
  beforeAll(async () => {
    s = await smallStream();
    r = await analyze(s.bytes);
  });

  test('-d state: device state as analyze-migration.py prints it', () => {
    expect(renderStateJson(r)).toBe(SMALL_STATE);
  });

  test('-d desc: the vmdesc, pretty', () => {
    const at = r.vmdescOffset!;
    const raw = JSON.parse(s.bytes.subarray(at + 5).toString('latin1'));
    expect(JSON.parse(renderDescJson(r))).toEqual(raw);
    expect(renderDescJson(r)).toBe(JSON.stringify(raw, null, 4));
    expect(raw.configuration.vmsd_name).toBe('configuration');
  });

  test('-d ram: pages per block, resent pages, iterations, commands', () => {
    const [a, b] = r.ram!.blocks;
    expect(a).toMatchObject({ idstr: 'blk.a', size: 64 * 1024, pages: 16, normal: 11, zero: 7, resent: 2, received: 16 });
    expect(b).toMatchObject({ idstr: 'dir/blk.b', size: 16 * 1024, pages: 4, normal: 2, zero: 2, resent: 0, received: 4 });
    expect(a.normal + b.normal).toBe(s.saver.counters.normal);
    expect(a.zero + b.zero).toBe(s.saver.counters.duplicate);
    expect(r.ram).toMatchObject({ totalBytes: 80 * 1024, starts: 1, ends: 1, pageSize: 4096, flushes: 0 });
    expect(r.ram!.eos).toBe(2 + r.ram!.parts);
    const text = renderRamReport(r);
    expect(text).toContain('pages sent more than once 2');
    expect(text).toContain('commands: OPEN_RETURN_PATH, PING (0x1), SWITCHOVER_START');
  });

  test('-d sections: every record in stream order, lengths adding up to the stream', () => {
    expect(summary(r)).toEqual([
      'header',
      'configuration virt-2.0',
      'command OPEN_RETURN_PATH',
      'command PING',
      'start 0 ram 0 4',
      ...Array(r.ram!.parts).fill('part 0 ram 0 4'),
      'command SWITCHOVER_START',
      'end 0 ram 0 4',
      'full 1 toy 0 2',
      'eof',
      'vmdesc',
    ]);
    let at = 0;
    for (const x of r.records) {
      expect(x.offset).toBe(at);
      at += x.length;
    }
    expect(at).toBe(s.bytes.length);
    expect(r.streamBytes).toBe(s.bytes.length);
    expect(r.trailingBytes).toBe(0);
    expect(r.records.find((x) => x.kind === 'full')!.decodedBy).toBe('vmdesc');
  });

  test('-x: each block\'s final contents, names made safe', async () => {
    const dir = tmp();
    const x = await analyzeStream(bytesInput(s.bytes), { extractDir: dir });
    expect(x.extracted.map((f) => path.basename(f))).toEqual(['blk.a.bin', 'dir_blk.b.bin']);
    for (const [name, bytes] of s.blocks) expect(fs.readFileSync(path.join(dir, blockFileName(name))).equals(bytes)).toBe(true);
    fs.rmSync(dir, { recursive: true });
  });

  test.each([1, 7, 4096, 65536])('input split every %i bytes gives the same analysis', async (split) => {
    const small = split === 1 ? await smallStream({ kib: 16 }) : s;
    const whole = split === 1 ? await analyze(small.bytes) : r;
    const cut = await analyze(small.bytes, split);
    expect(renderStateJson(cut)).toBe(renderStateJson(whole));
    expect(cut.ram).toEqual(whole.ram);
    expect(cut.records).toEqual(whole.records);
  });

  test('without a vmdesc, a section livemig does not know stops the analysis', async () => {
    const plain = await smallStream({ vmdesc: false });
    await expect(analyze(plain.bytes)).rejects.toMatchObject({ code: 'EANALYZE_UNKNOWN', section: 'toy', sectionId: 1 });
    await expect(analyze(plain.bytes)).rejects.toThrow(/the stream has no vmdesc/);
  });

  test('-d desc without a vmdesc fails cleanly', async () => {
    const plain = await smallStream({ vmdesc: false });
    await expect(analyzeStream(bytesInput(plain.bytes), { descOnly: true })).rejects.toMatchObject({ code: 'EANALYZE_VMDESC' });
  });
});

describe('streams saved from a running virt machine', () => {
  let one: MachineStream;
  let r: AnalyzeResult;
  beforeAll(async () => {
    one = await machineStream({ guest: 'ab', append: 'size=1M', until: 'AB', iterations: 3 });
    r = await analyze(one.bytes);
  }, 60000);

  test('sections, instances and versions are the board\'s, in save order', () => {
    const parts = r.ram!.parts;
    expect(summary(r)).toEqual([
      'header',
      'configuration virt-2.0',
      'start 0 ram 0 4',
      ...Array(parts).fill('part 0 ram 0 4'),
      'command SWITCHOVER_START',
      'end 0 ram 0 4',
      'full 1 cpu_common 0 1',
      'full 2 cpu 0 1',
      'full 3 riscv_mtimer 0 1',
      'full 4 riscv_sifive_plic 0 1',
      'full 5 serial 0 3',
      'full 6 globalstate 0 1',
      'eof',
      'vmdesc',
    ]);
    expect(parts).toBe(3);
  });

  test('our vmdesc has a configuration entry, and it is used', () => {
    expect(r.vmdesc!.configuration).toBeDefined();
    expect(r.configuration).toEqual({ machineType: 'virt-2.0', capabilities: [], fromVmdesc: true });
  });

  test('RAM counts agree with the sender, and pages the guest dirtied were sent again', () => {
    const [ram, mrom] = r.ram!.blocks;
    expect(ram).toMatchObject({ idstr: 'riscv_virt_board.ram', size: 16 * MiB, pages: 4096, received: 4096 });
    expect(mrom).toMatchObject({ idstr: 'riscv_virt_board.mrom', size: 0xf000, pages: 15, received: 15 });
    expect(ram.normal + mrom.normal).toBe(one.saver.counters.normal);
    expect(ram.zero + mrom.zero).toBe(one.saver.counters.duplicate);
    expect(ram.resent).toBeGreaterThan(0);
    expect(ram.normal + ram.zero - ram.resent).toBe(4096);
  });

  test('device state: values as saved', () => {
    const state = JSON.parse(renderStateJson(r));
    expect(Object.keys(state)).toEqual(['ram (0)', 'cpu_common (1)', 'cpu (2)', 'riscv_mtimer (3)', 'riscv_sifive_plic (4)', 'serial (5)', 'globalstate (6)']);
    expect(state['cpu (2)']['env.gpr']).toHaveLength(32);
    expect(state['cpu (2)']['env.priv']).toBe('0x0000000000000003');
    expect(state['cpu (2)']['env.resetvec']).toBe('0x0000000000001000');
    expect(state['riscv_mtimer (3)']['riscv_mtimer/time']).toBeDefined();
    expect(state['riscv_sifive_plic (4)'].source_priority).toHaveLength(96);
    expect(state['globalstate (6)'].size).toBe('0x00000008');
    expect(state['globalstate (6)'].runstate.startsWith('72 75 6e 6e 69 6e 67 00')).toBe(true); // "running"
  });

  test('without the vmdesc, livemig\'s descriptions decode the same state', async () => {
    const bare = eofCut(r, one.bytes);
    const b = await analyze(bare);
    expect(b.vmdesc).toBeNull();
    expect(b.configuration!.fromVmdesc).toBe(false);
    expect(b.records.filter((x) => x.kind === 'full').every((x) => x.decodedBy === 'livemig')).toBe(true);
    expect(renderStateJson(b)).toBe(renderStateJson(r));
    expect(b.ram).toEqual(r.ram);
  });

  test('-x: extracted blocks are the machine\'s RAM', async () => {
    const dir = tmp();
    await analyzeStream(bytesInput(one.bytes), { extractDir: dir });
    for (const [name, bytes] of one.ram) expect(fs.readFileSync(path.join(dir, `${name}.bin`)).equals(bytes)).toBe(true);
    fs.rmSync(dir, { recursive: true });
  });

  test('a gzip file analyses as the plain one, with or without vmdesc', async () => {
    const dir = tmp();
    for (const [name, bytes] of [['full.mig.gz', one.bytes], ['bare.mig.gz', eofCut(r, one.bytes)]] as const) {
      const file = path.join(dir, name);
      fs.writeFileSync(file, zlib.gzipSync(bytes));
      const g = await analyzeFile(file);
      const p = await analyze(bytes);
      expect(renderStateJson(g)).toBe(renderStateJson(p));
      expect(g.records).toEqual(p.records);
    }
    fs.rmSync(dir, { recursive: true });
  });

  test('two harts: cpu sections per hart; counts follow the hart number without a vmdesc', async () => {
    const two = await machineStream({ guest: 'ab', smp: 2, append: 'size=256K', until: 'AB', iterations: 1 });
    const v = await analyze(two.bytes);
    const b = await analyze(eofCut(v, two.bytes));
    const fulls = (x: AnalyzeResult) => x.records.filter((y) => y.kind === 'full').map((y) => `${y.idstr} ${y.instanceId}`);
    expect(fulls(v)).toEqual(['cpu_common 0', 'cpu 0', 'cpu_common 1', 'cpu 1', 'riscv_mtimer 0', 'riscv_sifive_plic 0', 'serial 0', 'globalstate 0']);
    expect(renderStateJson(b)).toBe(renderStateJson(v));
    const state = JSON.parse(renderStateJson(b));
    expect(state['riscv_mtimer (5)'].timecmp).toHaveLength(2);
    expect(state['riscv_sifive_plic (6)'].enable).toHaveLength(12);
  }, 60000);
});

test("livemig's description table is the board's section list", async () => {
  const m = await VirtMachine.create({ memSize: 16 * MiB, smp: 2 });
  try {
    const board = m.vmstateSections().map((s) => [s.idstr, s.vmsd] as const);
    for (const [idstr, vmsd] of board) expect(LIVEMIG_SECTION_VMSDS.get(idstr)).toBe(vmsd);
    const names = new Set(board.map(([i]) => i));
    expect([...LIVEMIG_SECTION_VMSDS.keys()].filter((k) => !names.has(k))).toEqual(['globalstate']);
  } finally {
    await m.destroy();
  }
});
