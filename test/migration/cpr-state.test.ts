/**
 * The CPR state over a real socket pair: QEMU's wire form, and a hostile sender — bad magic or
 * version, cut short anywhere, too many descriptors, bad names — each refused with an error
 * that names the field, and no descriptor left open afterwards.
 */
import * as fs from 'node:fs';
import { FdSocket, MemfdMapping, native } from '../../lib/host';
import { CPR_FDS_MAX, CprState, loadCprState, saveCprState, type CprFd } from '../../lib/migration/cpr';
import { MigrationError } from '../../lib/migration';
import { QemuFileReader, QemuFileWriter } from '../../lib/stream';
import { CprChannel } from '../../lib/transport';

const openFds = () => fs.readdirSync('/proc/self/fd').length;

let mem: MemfdMapping;
beforeAll(() => {
  mem = MemfdMapping.create({ name: 'ram', size: 8192 });
});
afterAll(() => mem.close());

function pair(): [CprChannel, CprChannel] {
  const [a, b] = FdSocket.pair();
  return [new CprChannel(a), new CprChannel(b)];
}

/** Writes with `write`, then loads on the other end; both channels closed afterwards. */
async function exchange(write: (f: QemuFileWriter) => void): Promise<CprFd[]> {
  const [out, inn] = pair();
  try {
    const f = new QemuFileWriter(out);
    write(f);
    expect(await f.close()).toBeNull();
    return await loadCprState(new QemuFileReader(inn));
  } finally {
    out.destroy();
    inn.destroy();
  }
}

async function refused(write: (f: QemuFileWriter) => void): Promise<MigrationError> {
  const before = openFds();
  let err: unknown;
  try {
    const got = await exchange(write);
    for (const g of got) native.close(g.fd);
  } catch (e) {
    err = e;
  }
  expect(openFds()).toBe(before);
  expect(err).toBeInstanceOf(MigrationError);
  return err as MigrationError;
}

/** One list element, as QEMU's vmstate_cpr_fd writes it. */
function element(f: QemuFileWriter, name: Uint8Array, id: number, fd: number, namelen = name.length): void {
  f.putU8(1);
  f.putBe32(namelen);
  f.putBuffer(name);
  f.putBe32(id >>> 0);
  f.putFd(fd);
}
const cstr = (s: string) => Buffer.from(`${s}\0`, 'latin1');
const header = (f: QemuFileWriter, magic = 0x51435052, version = 1) => {
  f.putBe32(magic);
  f.putBe32(version);
};

test('QEMU wire form: QCPR, version 1, a qlist of (namelen, name with NUL, id, fd)', async () => {
  const got = await exchange((f) => saveCprState(f, [{ name: 'riscv_virt_board.ram', id: 0, fd: mem.fd }, { name: 'serial0/conn', id: 3, fd: mem.fd }]));
  expect(got.map(({ name, id }) => ({ name, id }))).toEqual([
    { name: 'riscv_virt_board.ram', id: 0 },
    { name: 'serial0/conn', id: 3 },
  ]);
  const theirs = MemfdMapping.fromFd(got[0].fd, { ownsFd: true });
  new Uint8Array(mem.window())[9] = 99;
  expect(new Uint8Array(theirs.window())[9]).toBe(99);
  theirs.close();
  native.close(got[1].fd);

  // The bytes, as a capture of what a QEMU 10 source writes.
  const sink: number[] = [];
  const f = new QemuFileWriter({ write: (c) => (sink.push(...c), true), writeFds: (c) => (sink.push(...c), true), drain: async () => {}, end: async () => {} });
  saveCprState(f, [{ name: 'pc.ram', id: 0, fd: 5 }]);
  f.flush();
  expect(Buffer.from(sink).toString('hex')).toBe('51435052' + '00000001' + '01' + '00000007' + Buffer.from('pc.ram\0').toString('hex') + '00000000' + '20' + '00');
});

test('bad magic and version name the field', async () => {
  let e = await refused((f) => header(f, 0x5145564d));
  expect(e.code).toBe('EMIG_HEADER');
  expect(e.field).toBe('magic');
  expect(e.message).toMatch(/bad magic 5145564d/);
  e = await refused((f) => header(f, undefined, 2));
  expect(e.code).toBe('EMIG_VERSION');
  expect(e.field).toBe('version');
  expect(e.message).toMatch(/Unsupported migration stream version 2/);
});

test('cut short at every byte: truncated, every descriptor closed', async () => {
  const full: number[] = [];
  const fdAt: number[] = [];
  const f = new QemuFileWriter({
    write: (c) => (full.push(...c), true),
    writeFds: (c) => (fdAt.push(full.length), full.push(...c), true),
    drain: async () => {},
    end: async () => {},
  });
  saveCprState(f, [{ name: 'a', id: 0, fd: mem.fd }, { name: 'b', id: 0, fd: mem.fd }]);
  f.flush();
  for (let cut = 0; cut < full.length; cut++) {
    const e = await refused((w) => {
      for (let i = 0; i < cut; i++) {
        if (fdAt.includes(i)) w.putFd(mem.fd);
        else w.putU8(full[i]);
      }
    });
    expect(e.code).toBe('EMIG_TRUNCATED');
    expect(e.section).toBe('CprState');
  }
});

test('too many descriptors', async () => {
  const e = await refused((f) => {
    header(f);
    for (let i = 0; i <= CPR_FDS_MAX; i++) element(f, cstr(`n${i}`), 0, mem.fd);
    f.putU8(0);
  });
  expect(e.code).toBe('EMIG_LIMIT');
  expect(e.field).toBe(`CprState/fds[${CPR_FDS_MAX}]`);
});

test.each([
  ['no NUL at the end', Buffer.from('abc'), 3, /not NUL-terminated/, 'fds[0]/name'],
  ['a NUL inside', Buffer.from('ab\0c\0'), 5, /NUL inside/, 'fds[0]/name'],
  ['bytes that are not printable', cstr('a\nb'), 4, /printable/, 'fds[0]/name'],
  ['an empty name', Buffer.alloc(0), 0, /name length 0/, 'CprState/fds[0]/name'],
  ['a name length over the limit', Buffer.alloc(0), 100000, /name length 100000/, 'CprState/fds[0]/name'],
])('a name with %s', async (_what, name, namelen, text, field) => {
  const e = await refused((f) => {
    header(f);
    element(f, name, 0, mem.fd, namelen);
    f.putU8(0);
  });
  expect(e.message).toMatch(text);
  expect(e.field).toBe(field);
});

test('the same name twice, and a subsection livemig does not know (QEMU VFIO records)', async () => {
  let e = await refused((f) => {
    header(f);
    element(f, cstr('x'), 0, mem.fd);
    element(f, cstr('x'), 0, mem.fd);
    f.putU8(0);
  });
  expect(e.message).toMatch(/'x' \(id 0\) appears twice/);
  e = await refused((f) => {
    header(f);
    f.putU8(0);
    f.putU8(5);
    f.putCounted('CprState/vfio devices');
    f.putBe32(1);
  });
  expect(e.code).toBe('EMIG_CPR');
  expect(e.message).toMatch(/unknown subsection 'CprState\/vfio devices'/);
});

test('a descriptor promised but not sent', async () => {
  const e = await refused((f) => {
    header(f);
    f.putU8(1);
    f.putBe32(2);
    f.putBuffer(cstr('x'));
    f.putBe32(0);
    f.putU8(0x20);
    f.putU8(0);
  });
  expect(e.field).toBe('CprState/fds[0]/fd');
  expect(e.message).toMatch(/no descriptor came/);
});

test('claims: names nobody takes are refused by name, and every descriptor is closed once', async () => {
  const before = openFds();
  const [out, inn] = pair();
  const f = new QemuFileWriter(out);
  saveCprState(f, [
    { name: 'riscv_virt_board.ram', id: 0, fd: mem.fd },
    { name: 'serial0/listen', id: 0, fd: mem.fd },
    { name: 'serial0/conn', id: 0, fd: mem.fd },
    { name: 'vfio_group', id: 7, fd: mem.fd },
  ]);
  await f.close();
  const state = new CprState(inn, await loadCprState(new QemuFileReader(inn)));
  const ram = state.take('riscv_virt_board.ram')!;
  expect(state.take('riscv_virt_board.ram')).toBeUndefined(); // taken once
  const serial = state.takeGroup('serial0/');
  expect(serial.map((x) => x.name)).toEqual(['serial0/listen', 'serial0/conn']);
  expect(() => state.checkAllClaimed()).toThrow("hands over 'vfio_group (id 7)', which nothing here uses");
  state.dispose(); // closes vfio_group's copy and the channel
  out.destroy();
  expect(openFds()).toBe(before + 3); // what was taken is the taker's to close
  for (const fd of [ram, ...serial.map((x) => x.fd)]) native.close(fd);
  expect(openFds()).toBe(before);
});
