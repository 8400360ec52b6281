/**
 * Save and restore through file:, file: with an offset and exec:, into a new process: the
 * guest continues where it was (A/B invariant, the idle guest's timer heartbeat goes on), and a
 * stream saved by one machine-type version loads on the other.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkAb } from '../../guests/ram-check';
import { tmpdir } from './helpers';
import { stopAll, Vm } from './vm';

const MEM = 64 * 2 ** 20;
const AB = { guest: 'ab', mem: '64M', smp: 2, append: 'size=16M seed=9' };

function ticks(s: string): number[] {
  return [...s.matchAll(/tick (\d+)/g)].map((m) => Number(m[1]));
}

describe('save and restore', () => {
  let dir: string;
  beforeEach(() => (dir = tmpdir()));
  afterEach(async () => {
    await stopAll();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function save(vm: Vm, uri: string): Promise<void> {
    await vm.qmp.execute('migrate', { uri });
    const info = await vm.waitStatus(['completed', 'failed']);
    expect(info.status).toBe('completed');
  }

  async function abRamOk(vm: Vm): Promise<void> {
    await vm.qmp.execute('stop');
    const file = path.join(dir, `${vm.name}.ram`);
    await vm.qmp.execute('pmemsave', { val: 0x8000_0000, size: MEM, filename: file });
    expect(checkAb(fs.readFileSync(file)).errors).toEqual([]);
  }

  test('ab guest saved live to file: and restored in a new process', async () => {
    const file = path.join(dir, 'ab.mig');
    const src = await new Vm(dir, 'src', AB).connect();
    await src.waitOutput(/AB{5}/);
    await save(src, `file:${file}`);
    expect(fs.readFileSync(file).subarray(0, 4).toString('latin1')).toBe('QEVM');
    const dst = await new Vm(dir, 'dst', { ...AB, extra: ['-incoming', `file:${file}`] }).connect();
    await dst.waitStatus('completed');
    await dst.printsMore();
    await abRamOk(dst);
  });

  test('exec: out through "cat > FILE", back through "cat FILE"', async () => {
    const file = path.join(dir, 'ab.exec.mig');
    const src = await new Vm(dir, 'src', AB).connect();
    await src.waitOutput(/AB/);
    await save(src, `exec:cat > ${file}`);
    const dst = await new Vm(dir, 'dst', { ...AB, extra: ['-incoming', `exec:cat ${file}`] }).connect();
    await dst.printsMore();
    await abRamOk(dst);
  });

  test('file: with an offset leaves the bytes before it untouched', async () => {
    const file = path.join(dir, 'off.mig');
    fs.writeFileSync(file, Buffer.alloc(8192, 0xaa));
    const src = await new Vm(dir, 'src', AB).connect();
    await src.waitOutput(/AB/);
    await save(src, `file:${file},offset=4096`);
    const bytes = fs.readFileSync(file);
    expect(bytes.subarray(0, 4096).every((b) => b === 0xaa)).toBe(true);
    expect(bytes.subarray(4096, 4100).toString('latin1')).toBe('QEVM');
    const dst = await new Vm(dir, 'dst', { ...AB, extra: ['-incoming', `file:${file},offset=4096`] }).connect();
    await dst.printsMore();
  });

  test('the idle guest, saved stopped, keeps its timer heartbeat after restore', async () => {
    const file = path.join(dir, 'idle.mig');
    const idle = { guest: 'idle', mem: '64M', smp: 1, append: 'size=1M' };
    const src = await new Vm(dir, 'src', idle).connect();
    await src.waitOutput(/tick 2\n/, 20000);
    await src.qmp.execute('stop');
    const last = Math.max(...ticks(src.output));
    await save(src, `file:${file}`);
    const dst = await new Vm(dir, 'dst', { ...idle, extra: ['-incoming', `file:${file}`] }).connect();
    await dst.waitStatus('completed');
    // A stopped source saves "paused": the restored guest waits for cont, like QEMU's.
    expect((await dst.qmp.execute('query-status')).status).toBe('paused');
    await dst.qmp.execute('cont');
    await dst.waitOutput((s) => ticks(s).length >= 2, 5000);
    expect(ticks(dst.output)[0]).toBe(last + 1);
  });

  test.each([
    ['virt-1.0', 'virt-2.0'],
    ['virt-2.0', 'virt-1.0'],
  ])('a stream from -M %s loads on -M %s', async (from, to) => {
    const file = path.join(dir, `${from}.mig`);
    const src = await new Vm(dir, 'src', { ...AB, extra: ['-M', from] }).connect();
    await src.waitOutput(/AB/);
    await save(src, `file:${file}`);
    const dst = await new Vm(dir, 'dst', { ...AB, extra: ['-M', to, '-incoming', `file:${file}`] }).connect();
    await dst.waitStatus('completed');
    await dst.printsMore();
    await abRamOk(dst);
  });

  test('a corrupt file fails the load with a message naming where, and exits 1', async () => {
    const file = path.join(dir, 'bad.mig');
    const src = await new Vm(dir, 'src', AB).connect();
    await src.waitOutput(/AB/);
    await save(src, `file:${file}`);
    const b = fs.readFileSync(file);
    b.writeUInt8(0x09, b.length - 200); // somewhere in the device sections or vmdesc tail
    fs.writeFileSync(file, b.subarray(0, b.length >> 1)); // and truncated in the RAM pages
    const dst = new Vm(dir, 'dst', { ...AB, extra: ['-incoming', `file:${file}`] });
    expect(await dst.exited).toBe(1);
    expect(dst.stderr).toMatch(/load of migration failed: .*stream offset \d+/);
  });
});
