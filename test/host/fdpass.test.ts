/**
 * fd passing on the addon's unix sockets: memfds cross process boundaries with SCM_RIGHTS and
 * both processes then share the same pages.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { FdListener, FdSocket, HOST_PAGE_SIZE, MemfdMapping, native } from '../../lib/host';
import { DIST_HOST, hostErrorOf } from './helpers';

const PAGE = HOST_PAGE_SIZE;
const enc = new TextEncoder();
const dec = new TextDecoder();

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'livemig-fdpass-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('FdSocket', () => {
  test.each(['stream', 'seqpacket'] as const)('%s pair: payload and a memfd arrive together', async (type) => {
    const [a, b] = FdSocket.pair(type);
    const m = MemfdMapping.create({ name: 'pass-me', size: 4 * PAGE });
    try {
      new Uint8Array(m.window())[10] = 0x33;
      await a.send(enc.encode('ram'), [m.fd]);
      const msg = await b.recv();
      expect(msg).not.toBeNull();
      expect(dec.decode(msg!.payload)).toBe('ram');
      expect(msg!.fds).toHaveLength(1);
      expect(msg!.fds[0]).not.toBe(m.fd); // a new descriptor for the same file
      const theirs = MemfdMapping.fromFd(msg!.fds[0], { ownsFd: true });
      try {
        expect(theirs.size).toBe(4 * PAGE);
        expect(new Uint8Array(theirs.window())[10]).toBe(0x33);
        new Uint8Array(theirs.window())[11] = 0x44;
        expect(new Uint8Array(m.window())[11]).toBe(0x44);
      } finally {
        theirs.close();
      }
      a.shutdownWrite();
      expect(await b.recv()).toBeNull();
    } finally {
      m.close();
      a.close();
      b.close();
    }
  });

  test('recv waits on the loop until the peer sends', async () => {
    const [a, b] = FdSocket.pair();
    try {
      const pending = b.recv();
      setTimeout(() => void a.send(enc.encode('late')), 20);
      expect(dec.decode((await pending)!.payload)).toBe('late');
    } finally {
      a.close();
      b.close();
    }
  });

  test('a watcher may close itself from its own callback', async () => {
    const [a, b] = FdSocket.pair();
    try {
      let calls = 0;
      await new Promise<void>((resolve) => {
        const w = new native.FdWatcher(b.fd, () => {
          calls++;
          w.close();
          setTimeout(resolve, 20); // a level-triggered watcher left open would fire again
        });
        w.start(1);
        void a.send(enc.encode('x'));
      });
      expect(calls).toBe(1);
    } finally {
      a.close();
      b.close();
    }
  });

  test('a child process receives a memfd over listen/connect and shares its pages', async () => {
    const sock = path.join(dir, 'cpr.sock');
    const listener = FdListener.listen(sock);
    const m = MemfdMapping.create({ name: 'guest-ram', size: 8 * PAGE });
    const child = spawn(
      process.execPath,
      [
        '-e',
        `const host = require(${JSON.stringify(DIST_HOST)});
         (async () => {
           const s = host.FdSocket.connect(process.argv[1]);
           const msg = await s.recv();
           const ram = host.MemfdMapping.fromFd(msg.fds[0], { ownsFd: true });
           const u8 = new Uint8Array(ram.window());
           const seen = u8[3 * 4096];            // written by the parent before sending
           u8[5 * 4096 + 1] = seen + 1;          // the parent must see this
           await s.send(new TextEncoder().encode('done:' + seen));
           const bye = await s.recv();           // parent's reply after checking
           ram.close();
           s.close();
           process.exit(bye === null ? 0 : 3);
         })().catch((e) => { console.error(e); process.exit(2); });`,
        sock,
      ],
      { stdio: ['ignore', 'inherit', 'inherit'] },
    );
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    try {
      new Uint8Array(m.window())[3 * PAGE] = 0x61;
      const conn = await listener.accept();
      await conn.send(enc.encode('ram'), [m.fd]);
      const reply = await conn.recv();
      expect(dec.decode(reply!.payload)).toBe('done:97');
      expect(new Uint8Array(m.window())[5 * PAGE + 1]).toBe(0x62);
      conn.shutdownWrite();
      expect(await exited).toBe(0);
      conn.close();
    } finally {
      child.kill();
      listener.close();
      m.close();
    }
  });

  test('dup: a second descriptor for the same socket outlives closing the first', async () => {
    const [a, b] = FdSocket.pair();
    const dup = native.dup(a.fd);
    try {
      expect(dup).not.toBe(a.fd);
      a.close();
      const other = new FdSocket(dup);
      await other.send(enc.encode('still open'));
      expect(dec.decode((await b.recv())!.payload)).toBe('still open');
      other.close();
      expect(await b.recv()).toBeNull(); // the last descriptor closed: end of stream
    } finally {
      b.close();
    }
    expect(hostErrorOf(() => native.dup(987654)).code).toBe('EBADF');
  });

  test('errors are typed: no listener, path in use, path too long', () => {
    expect(hostErrorOf(() => FdSocket.connect(path.join(dir, 'nobody.sock'))).code).toBe('ENOENT');
    const p = path.join(dir, 'busy.sock');
    const l = FdListener.listen(p);
    try {
      expect(hostErrorOf(() => FdListener.listen(p)).code).toBe('EADDRINUSE');
    } finally {
      l.close();
    }
    expect(hostErrorOf(() => FdSocket.connect('/' + 'x'.repeat(200))).code).toBe('ENAMETOOLONG');
    expect(hostErrorOf(() => native.sendMsg(999999, new Uint8Array(1), [])).code).toBe('EBADF');
  });
});
