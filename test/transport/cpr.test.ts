/**
 * The cpr channel over real unix sockets: bytes and memfds (SCM_RIGHTS) arrive in order, the
 * new process's close is the old one's hang-up, the listener's path goes once it accepted, and
 * addresses that cannot pass descriptors are refused with QEMU's texts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MemfdMapping, native } from '../../lib/host';
import { QemuFileReader, QemuFileWriter } from '../../lib/stream';
import { CprListener, connectCpr, isTransportError, type MigrationAddress } from '../../lib/transport';
import { tempDir } from './helpers';

const { dir, cleanup } = tempDir();
afterAll(cleanup);

const unix = (name: string): MigrationAddress => ({ transport: 'socket', type: 'unix', path: path.join(dir, name) });

function openFds(): number {
  return fs.readdirSync('/proc/self/fd').length;
}

test('state and memfds arrive in order; the receiver maps the same pages', async () => {
  const addr = unix('cpr.sock');
  const listener = CprListener.listen(addr);
  const accepted = listener.accept();
  const out = connectCpr(addr);
  const inn = await accepted;
  expect(fs.existsSync((addr as { path: string }).path)).toBe(false); // gone once accepted

  const a = MemfdMapping.create({ name: 'a', size: 8192 });
  const b = MemfdMapping.create({ name: 'b', size: 4096 });
  new Uint8Array(a.window())[5] = 0xa5;
  const w = new QemuFileWriter(out);
  w.putBe32(0x51435052);
  w.putFd(a.fd);
  w.putU8(7);
  w.putFd(b.fd);
  expect(await w.close()).toBeNull();

  const r = new QemuFileReader(inn);
  expect(await r.ensure(5)).toBe(true);
  expect(r.getBe32()).toBe(0x51435052);
  const fa = r.getFd();
  expect(await r.ensure(2)).toBe(true);
  expect(r.getU8()).toBe(7);
  const fb = r.getFd();
  expect(r.error).toBeNull();
  expect(await r.atEnd()).toBe(true);
  expect([fa, fb].every((fd) => fd >= 0 && fd !== a.fd && fd !== b.fd)).toBe(true);
  expect(native.fdSize(fa)).toBe(8192);
  expect(native.fdSize(fb)).toBe(4096);
  const theirs = MemfdMapping.fromFd(fa, { ownsFd: true });
  expect(new Uint8Array(theirs.window())[5]).toBe(0xa5);
  new Uint8Array(theirs.window())[6] = 0x5a;
  expect(new Uint8Array(a.window())[6]).toBe(0x5a);
  theirs.close();
  native.close(fb);

  // The new process's close is the old one's hang-up.
  const hup = out.hangup();
  inn.destroy();
  await hup;
  out.destroy();
  a.close();
  b.close();
});

test('a listener passed as a descriptor (QEMU addr.type=fd)', async () => {
  const p = path.join(dir, 'fd.sock');
  const fd = native.listen(p);
  const listener = CprListener.listen({ transport: 'socket', type: 'fd', str: String(fd) });
  const accepted = listener.accept();
  const out = connectCpr({ transport: 'socket', type: 'unix', path: p });
  const inn = await accepted;
  out.write(Uint8Array.of(1, 2, 3));
  await out.end();
  expect(await inn.read()).toEqual(Uint8Array.of(1, 2, 3));
  expect(await inn.read()).toBeNull();
  inn.destroy();
  out.destroy();
  fs.rmSync(p, { force: true });
});

test('descriptors nobody took are closed with the channel; a peer that dies is a hang-up', async () => {
  const before = openFds();
  const addr = unix('leak.sock');
  const listener = CprListener.listen(addr);
  const accepted = listener.accept();
  const out = connectCpr(addr);
  const inn = await accepted;
  const m = MemfdMapping.create({ name: 'x', size: 4096 });
  for (let i = 0; i < 5; i++) out.writeFds(Uint8Array.of(0x20), [m.fd]);
  await out.drain();
  for (let got = 0; got < 5; ) got += (await inn.read())!.length; // each fd rides on its byte
  inn.destroy();
  await out.hangup();
  out.destroy();
  m.close();
  expect(openFds()).toBe(before);
});

test('only unix sockets: QEMU texts for anything else', () => {
  const tcp: MigrationAddress = { transport: 'socket', type: 'inet', host: '127.0.0.1', port: '1' };
  expect(() => connectCpr(tcp)).toThrow('bad cpr channel address; must be unix');
  expect(() => CprListener.listen(tcp)).toThrow('bad cpr channel socket type; must be unix');
  expect(() => CprListener.listen({ transport: 'file', filename: 'x', offset: 0 })).toThrow('must be unix');
  let err: unknown;
  try {
    connectCpr(unix('nobody.sock'));
  } catch (e) {
    err = e;
  }
  expect(isTransportError(err, 'ENOENT')).toBe(true);
});
