/**
 * The compiled `livemig-analyze` program (dist/lib/cli/analyze.js), run as a user runs it: on
 * the QEMU fixture in every mode, and on garbage, truncated and missing files — exit status 1
 * and exactly one line on stderr, no stack trace.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { analyzeFile, analyzeStream, bytesInput, renderStateJson } from '../../lib/migration/analyze';
import { machineStream } from '../migration/analyze-helpers';
import { ANALYZE, ROOT, tmpdir } from './helpers';

const FIXTURE = path.join(ROOT, 'test/fixtures/qemu-7.2-virt-idle.mig.gz');

function run(args: string[], opts: { shell?: string } = {}) {
  const r = opts.shell
    ? spawnSync('sh', ['-c', opts.shell], { encoding: 'utf8', maxBuffer: 64 << 20 })
    : spawnSync(process.execPath, [ANALYZE, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function expectOneLineError(r: ReturnType<typeof run>, file: string, pattern: RegExp): void {
  expect(r.code).toBe(1);
  expect(r.out).toBe('');
  const lines = r.err.split('\n').filter(Boolean);
  expect(lines).toHaveLength(1);
  expect(lines[0].startsWith(`livemig-analyze: ${file}: `)).toBe(true);
  expect(lines[0]).toMatch(pattern);
  expect(r.err).not.toMatch(/^\s+at /m);
}

describe('livemig-analyze on the QEMU fixture', () => {
  let dir: string;
  beforeAll(() => {
    dir = tmpdir('livemig-analyze-e2e-');
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('-d state (the default) prints the library\'s JSON', async () => {
    const r = run([FIXTURE]);
    expect(r.code).toBe(0);
    expect(r.err).toBe('');
    expect(r.out).toBe(renderStateJson(await analyzeFile(FIXTURE)) + '\n');
    expect(Object.keys(JSON.parse(r.out))).toEqual([
      'ram (2)', 'timer (0)', 'slirp (4)', 'cpu_common (5)', 'cpu (6)', 'riscv_mtimer (7)', 'riscv_sifive_plic (8)',
      '0000:00:00.0/gpex_root (9)', 'PCIHost (10)', 'PCIBUS (11)', 'serial (12)', 'goldfish_rtc (13)',
      'pflash_cfi01 (14)', 'pflash_cfi01 (15)', 'fw_cfg (16)', 'globalstate (17)',
    ]);
  });

  test('-d desc prints the vmdesc', () => {
    const r = run(['-d', 'desc', FIXTURE]);
    expect(r.code).toBe(0);
    const raw = zlib.gunzipSync(fs.readFileSync(FIXTURE));
    const json = raw.subarray(raw.lastIndexOf(Buffer.from('{"page_size"')));
    expect(JSON.parse(r.out)).toEqual(JSON.parse(json.toString('latin1')));
  });

  test('--ram prints the page counts', () => {
    const r = run(['--ram', FIXTURE]);
    expect(r.code).toBe(0);
    expect(r.out).toContain("RAM: section 'ram' (id 2), version 4, page size 4096");
    expect(r.out).toContain('normal pages 13 (53248 bytes of page data), zero pages 20482, pages sent more than once 0');
    expect(r.out).toMatch(/riscv_virt_board\.ram\s+0x01000000\s+4096\s+12\s+4084\s+0\s+0\s+0\s+\d+/);
    expect(r.out).toContain('sections: START 1, PART 1 (iterations), END 1');
    expect(r.out).toContain('commands: none');
  });

  test('-d sections prints one line per section', () => {
    const r = run(['-f', FIXTURE, '-d', 'sections']);
    expect(r.code).toBe(0);
    const lines = r.out.trimEnd().split('\n');
    expect(lines).toHaveLength(1 + 22);
    expect(lines[0]).toMatch(/^\s+offset\s+length\s+type\s+id\s+idstr\s+inst\s+ver\s+note$/);
    expect(lines[3]).toMatch(/^\s+17\s+137\s+SECTION_START\s+2\s+ram\s+0\s+4$/);
    expect(lines[9]).toMatch(/^\s+238187\s+3125\s+SECTION_FULL\s+6\s+cpu\s+0\s+5\s+decoded by vmdesc$/);
    expect(lines[22]).toMatch(/^\s+242600\s+9950\s+VMDESCRIPTION$/);
  });

  test('-x DIR writes the blocks, state.json and desc.json', () => {
    const x = path.join(dir, 'x');
    const r = run(['-x', x, FIXTURE]);
    expect(r.code).toBe(0);
    const names = ['virt.flash0.bin', 'virt.flash1.bin', 'riscv_virt_board.ram.bin', 'riscv_virt_board.mrom.bin', 'desc.json', 'state.json'];
    expect(r.out.trimEnd().split('\n')).toEqual(names.map((n) => path.join(x, n)));
    expect(fs.statSync(path.join(x, 'riscv_virt_board.ram.bin')).size).toBe(16 << 20);
    expect(JSON.parse(fs.readFileSync(path.join(x, 'state.json'), 'utf8'))).toEqual(JSON.parse(run([FIXTURE]).out));
  });

  test('output into a closed pipe ends quietly', () => {
    const r = run([], { shell: `"${process.execPath}" "${ANALYZE}" "${FIXTURE}" | head -c 10` });
    expect(r.out).toBe('{\n    "ram');
    expect(r.err).toBe('');
  });
});

describe('livemig-analyze on bad input', () => {
  let dir: string;
  beforeAll(() => {
    dir = tmpdir('livemig-analyze-e2e-');
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('garbage', () => {
    const f = path.join(dir, 'garbage.bin');
    fs.writeFileSync(f, Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 131 + 7) & 0xff)));
    expectOneLineError(run([f]), f, /offset 0: invalid file magic 0x78a0d90 /);
  });

  test('a QEMU stream cut before its vmdesc: its first device section cannot be decoded', () => {
    const f = path.join(dir, 'cut.mig');
    fs.writeFileSync(f, zlib.gunzipSync(fs.readFileSync(FIXTURE)).subarray(0, 239000));
    expectOneLineError(run([f]), f, /section 'timer' \(id 0\), offset 237947: cannot decode instance 0: the stream has no vmdesc/);
  });

  test('a livemig stream cut inside a hart\'s state names the field', async () => {
    const m = await machineStream({ guest: 'idle', append: 'size=64K', until: 'idle:', iterations: 1 });
    const r = await analyzeStream(bytesInput(m.bytes));
    const cpu = r.records.find((x) => x.idstr === 'cpu')!;
    const f = path.join(dir, 'cut-cpu.mig');
    fs.writeFileSync(f, m.bytes.subarray(0, cpu.offset + 200));
    expectOneLineError(run(['--ram', f]), f, new RegExp(`section 'cpu' \\(id ${cpu.sectionId}\\), field 'cpu/env\\.gpr\\[\\d+\\]', offset \\d+: stream ended: needed 8 bytes`));
  }, 30000);

  test('a gzip file cut short', () => {
    const f = path.join(dir, 'cut.mig.gz');
    fs.writeFileSync(f, fs.readFileSync(FIXTURE).subarray(0, 30000));
    expectOneLineError(run(['--ram', f]), f, /read failed: unexpected end of file/);
  });

  test('a missing file', () => {
    const f = path.join(dir, 'none.mig');
    expectOneLineError(run([f]), f, /cannot read '.*none\.mig': ENOENT/);
  });

  test('a name with control bytes stays on one line', () => {
    const f = path.join(dir, 'ctl.mig');
    const b = Buffer.concat([Buffer.from('QEVM\0\0\0\x03\x07\0\0\0\x04virt\x04\0\0\0\x01\x03a\nb\0\0\0\0\0\0\0\x01', 'latin1')]);
    fs.writeFileSync(f, b);
    expectOneLineError(run([f]), f, /section 'a\\x0ab' \(id 1\), offset 17: cannot decode instance 0/);
  });

  test('usage errors exit 2 with the usage text; --help exits 0', () => {
    for (const args of [[], ['-d', 'bogus', FIXTURE], ['--frobnicate', FIXTURE], [FIXTURE, FIXTURE]]) {
      const r = run(args);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(/^livemig-analyze: .*\nusage: livemig-analyze/);
    }
    const h = run(['--help']);
    expect(h.code).toBe(0);
    expect(h.out).toMatch(/^usage: livemig-analyze/);
  });
});
