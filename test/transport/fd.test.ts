/** fd: specifics: name resolution, the socket-or-pipe check, pipes' one direction, and a
 * socket inherited by another process (the way a management tool hands one over). */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Socket } from 'node:net';
import { connectAddress, listenAddress, parseUri, resolveFd, TransportError } from '../../lib/transport';
import { readAll } from '../stream/channel-contract';
import { pipeFds, tempDir, uniquePath } from './helpers';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

function codeOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    return (e as TransportError).code;
  }
  return undefined;
}

async function rejection(p: Promise<unknown>): Promise<TransportError> {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(TransportError);
  return e as TransportError;
}

describe('fd: names', () => {
  test('a name starting with a digit is a descriptor number (QEMU monitor_fd_param)', () => {
    expect(resolveFd('7')).toBe(7);
    expect(codeOf(() => resolveFd('7x'))).toBe('EFD_INVALID');
    expect(codeOf(() => resolveFd('99999999999'))).toBe('EFD_INVALID');
  });

  test('other names go through the monitor lookup; unknown ones are EFD_NOT_FOUND', () => {
    const lookup = (n: string) => (n === 'migfd' ? 12 : undefined);
    expect(resolveFd('migfd', lookup)).toBe(12);
    expect(codeOf(() => resolveFd('other', lookup))).toBe('EFD_NOT_FOUND');
    expect(codeOf(() => resolveFd('migfd'))).toBe('EFD_NOT_FOUND');
  });

  test('a named pipe descriptor works end to end', async () => {
    const { r, w } = pipeFds(tmp.dir);
    const fds: Record<string, number> = { 'mig-out': w, 'mig-in': r };
    const lookupFd = (n: string) => fds[n];
    const out = await connectAddress(parseUri('fd:mig-out'), { lookupFd });
    const inc = await (await listenAddress(parseUri('fd:mig-in'), { lookupFd })).accept();
    expect(out.fd).toBe(w);
    expect(inc.fd).toBe(r);
    out.write(Buffer.from('via getfd'));
    await out.end();
    expect((await readAll(inc)).toString()).toBe('via getfd');
    inc.destroy();
  });
});

describe('fd: checks', () => {
  test('a plain file is refused like QEMU 11 (use file:), and the descriptor stays open', async () => {
    const file = uniquePath(tmp.dir, 'plain');
    fs.writeFileSync(file, 'x');
    const fd = fs.openSync(file, 'r+');
    expect((await rejection(connectAddress(parseUri(`fd:${fd}`)))).code).toBe('EFD_NOT_SOCKET');
    expect((await rejection(listenAddress(parseUri(`fd:${fd}`)))).code).toBe('EFD_NOT_SOCKET');
    expect(fs.fstatSync(fd).isFile()).toBe(true);
    fs.closeSync(fd);
  });

  test('a descriptor that is not open is the OS error EBADF from fstat', async () => {
    const fd = fs.openSync(uniquePath(tmp.dir, 'gone'), 'w');
    fs.closeSync(fd);
    const e = await rejection(connectAddress(parseUri(`fd:${fd}`)));
    expect(e.code).toBe('EBADF');
    expect(e.syscall).toBe('fstat');
  });

  test('a pipe has one direction: no return path outgoing, no writes incoming', async () => {
    const { r, w } = pipeFds(tmp.dir);
    const out = await connectAddress(parseUri(`fd:${w}`));
    const inc = await (await listenAddress(parseUri(`fd:${r}`))).accept();
    expect(await out.read()).toBeNull();
    expect(codeOf(() => inc.write(Buffer.from('back')))).toBe('ENOT_WRITABLE');
    out.write(Buffer.from('one way'));
    await out.end();
    expect((await readAll(inc)).toString()).toBe('one way');
    inc.destroy();
  });

  test('the wrong end of a pipe fails at first use with an OS error (never hangs)', async () => {
    const { r, w } = pipeFds(tmp.dir);
    const out = await connectAddress(parseUri(`fd:${r}`)); // a read end, used for writing
    out.write(Buffer.from('x'));
    await rejection(out.end());
    const inc = await (await listenAddress(parseUri(`fd:${w}`))).accept(); // a write end, read
    await rejection(inc.read());
    out.destroy();
    inc.destroy();
  });

  test('the fd listener yields its one channel once', async () => {
    const { r, w } = pipeFds(tmp.dir);
    const l = await listenAddress(parseUri(`fd:${r}`));
    expect(l.multiChannel).toBe(false);
    expect(l.addresses).toEqual([]);
    const ch = await l.accept();
    expect((await rejection(l.accept())).code).toBe('ENOT_MULTICHANNEL');
    await l.close();
    ch.destroy();
    fs.closeSync(w);
  });
});

describe('fd: a socket inherited by another process', () => {
  // The child is a destination started as `-incoming fd:3`: it reads the stream to its end,
  // then answers on the return path of the same socket with the length and digest it saw.
  const destination = `
    const t = require(process.argv[1]);
    const { createHash } = require('crypto');
    (async () => {
      const ch = await (await t.listenAddress(t.parseUri('fd:3'))).accept();
      const h = createHash('sha256');
      let n = 0;
      for (let c = await ch.read(); c; c = await ch.read()) { h.update(c); n += c.length; }
      ch.write(Buffer.from(n + ' ' + h.digest('hex')));
      await ch.end();
      ch.destroy();
    })().catch((e) => { console.error(e); process.exit(1); });`;

  test('stream in, half-close, answer on the return path', async () => {
    const dist = path.resolve(__dirname, '../../dist/lib/transport');
    const child = spawn(process.execPath, ['-e', destination, dist], { stdio: ['ignore', 'inherit', 'inherit', 'pipe'] });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const sock = child.stdio[3] as Socket; // one end of a socketpair; the child has the other as fd 3
    const stream = Buffer.alloc(3 * 1024 * 1024 + 17);
    for (let i = 0; i < stream.length; i++) stream[i] = (i * 7) & 0xff;
    const reply: Buffer[] = [];
    sock.on('data', (d: Buffer) => reply.push(d));
    const ended = new Promise<void>((resolve) => sock.once('end', () => resolve()));
    sock.end(stream);
    await ended;
    const want = `${stream.length} ${createHash('sha256').update(stream).digest('hex')}`;
    expect(Buffer.concat(reply).toString()).toBe(want);
    expect(await exited).toBe(0);
  });
});
