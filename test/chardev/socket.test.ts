/**
 * The chardev layer in one process: the serial backend's QEMU socket behaviour (one client at
 * a time, output dropped while none, wait=on), stale socket files, peer resets, the named
 * descriptors, and detach/adopt within a process. The handover between two processes is in
 * handover.test.ts.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';

import { ChardevError, ChardevSocket, openChardev, parseChardev, type Chardev, type ChardevSpec } from '../../lib/chardev';
import { Client, cleanupDirs, sleep, tmpDir } from './helpers';

const opened: Chardev[] = [];
const clients: Client[] = [];

/** A serial backend that echoes its input back with a prefix. */
async function echo(spec: ChardevSpec, prefix = '', adopt?: { name: string; fd: number }[]): Promise<Chardev> {
  const c = await openChardev(spec, { id: 'serial0', adopt });
  opened.push(c);
  c.onInput((b) => c.write(Buffer.from(prefix + Buffer.from(b).toString())));
  return c;
}

async function client(to: string | number): Promise<Client> {
  const c = await Client.connect(to);
  clients.push(c);
  return c;
}

afterEach(() => {
  for (const c of clients.splice(0)) c.close();
  for (const c of opened.splice(0)) c.close();
  cleanupDirs();
});

function unixServer(wait = false): Extract<ChardevSpec, { kind: 'unix' }> {
  return { kind: 'unix', path: path.join(tmpDir(), 'serial.sock'), server: true, wait };
}

describe('serial socket backend', () => {
  test('one client at a time; output is dropped while none is connected', async () => {
    const spec = unixServer();
    const serial = await echo(spec);
    serial.write(Buffer.from('nobody hears this'));
    const a = await client(spec.path);
    a.sock.write('one');
    await a.out.waitFor(/one/);
    const b = await client(spec.path);
    for (let i = 0; i < 100 && !b.events.includes('close'); i++) await sleep(10);
    expect(b.events).toContain('close'); // the second client is let go
    a.close();
    await sleep(50);
    serial.write(Buffer.from('dropped too'));
    const c = await client(spec.path);
    c.sock.write('three');
    await c.out.waitFor(/three/);
    expect(a.out.text).toBe('one');
    expect(c.out.text).toBe('three');
  });

  test('wait=on: open resolves only once a client is connected', async () => {
    const spec = unixServer(true);
    let done = false;
    const pending = openChardev(spec, { id: 'serial0' }).then((c) => {
      done = true;
      opened.push(c);
      return c;
    });
    const a = await Client.connectWhenThere(spec.path);
    clients.push(a);
    const serial = await pending;
    expect(done).toBe(true);
    serial.write(Buffer.from('hi'));
    await a.out.waitFor(/hi/);
  });

  test('a stale socket file is replaced; the path is removed on close; a regular file is kept', async () => {
    const spec = unixServer();
    const stale = net.createServer();
    await new Promise<void>((r) => stale.listen(spec.path, r));
    (stale as unknown as { _handle: { close(): void } })._handle.close(); // as a crashed process leaves it
    const serial = await echo(spec);
    const a = await client(spec.path);
    a.sock.write('x');
    await a.out.waitFor(/x/);
    serial.close();
    expect(fs.existsSync(spec.path)).toBe(false);

    fs.writeFileSync(spec.path, 'data');
    await expect(openChardev(spec, { id: 'serial0' })).rejects.toMatchObject({ code: 'EADDRINUSE' });
    expect(fs.readFileSync(spec.path, 'utf8')).toBe('data');
    const nowhere = { ...spec, path: path.join(tmpDir(), 'no', 'such.sock') };
    await expect(openChardev(nowhere, { id: 'serial0' })).rejects.toMatchObject({ code: 'ENOENT' });
  });

  test('a peer that vanishes while we write is no uncaught error (EPIPE)', async () => {
    const spec = unixServer();
    const serial = await echo(spec);
    const a = await client(spec.path);
    a.sock.write('x');
    await a.out.waitFor(/x/);
    a.close();
    for (let i = 0; i < 20; i++) serial.write(Buffer.alloc(64 * 1024, 1));
    await sleep(50);
    const b = await client(spec.path);
    b.sock.write('after');
    await b.out.waitFor(/after/);
  });

  test('a peer that resets (RST) is no uncaught error', async () => {
    const spec: ChardevSpec = { kind: 'tcp', host: '127.0.0.1', port: 0, server: true, wait: false };
    const sockets: net.Socket[] = [];
    const chr = new ChardevSocket(spec, { id: 'serial0', maxClients: 1, onClient: (s) => sockets.push(s) });
    await chr.open();
    try {
      const a = await client((chr.address() as net.AddressInfo).port);
      for (let i = 0; i < 100 && sockets.length === 0; i++) await sleep(10);
      a.sock.resetAndDestroy();
      for (let i = 0; i < 20; i++) sockets[0].write(Buffer.alloc(64 * 1024, 1));
      for (let i = 0; i < 100 && chr.clientCount > 0; i++) await sleep(10);
      expect(chr.clientCount).toBe(0);
      expect(sockets[0].destroyed).toBe(true);
    } finally {
      await chr.close();
    }
  });

  test('tcp client (server=off): bytes both ways on one connection', async () => {
    const peer = net.createServer();
    const accepted = new Promise<net.Socket>((r) => peer.once('connection', r));
    await new Promise<void>((r) => peer.listen(0, '127.0.0.1', r));
    const port = (peer.address() as net.AddressInfo).port;
    try {
      const serial = await echo(parseChardev(`tcp:127.0.0.1:${port}`)!, '>');
      const sock = await accepted;
      let got = '';
      sock.on('data', (d) => (got += d));
      sock.write('ping');
      for (let i = 0; i < 100 && got !== '>ping'; i++) await sleep(10);
      expect(got).toBe('>ping');
      expect(serial.fds().map((f) => f.name)).toEqual(['serial0/conn']);
      sock.destroy();
    } finally {
      peer.close();
    }
  });
});

describe('named descriptors', () => {
  test('fds(): the listener, then the client; the file', async () => {
    const spec = unixServer();
    const serial = await echo(spec);
    expect(serial.fds().map((f) => f.name)).toEqual(['serial0/listen']);
    const a = await client(spec.path);
    a.sock.write('x');
    await a.out.waitFor(/x/);
    const fds = serial.fds();
    expect(fds.map((f) => f.name)).toEqual(['serial0/listen', 'serial0/conn']);
    for (const { fd } of fds) expect(fs.fstatSync(fd).isSocket()).toBe(true);

    const file = await openChardev({ kind: 'file', path: path.join(tmpDir(), 'out.log') }, { id: 'serial1' });
    opened.push(file);
    expect(file.fds().map((f) => f.name)).toEqual(['serial1/file']);
    expect((await openChardev({ kind: 'null' }, { id: 'n' })).fds()).toEqual([]);
  });

  test('detach then adopt in one process: same connection, same path, nothing unlinked', async () => {
    const spec = unixServer();
    const first = await echo(spec, 'A:');
    const a = await client(spec.path);
    a.sock.write('1');
    await a.out.waitFor(/A:1/);
    const fds = first.detach();
    expect(fds.map((f) => f.name)).toEqual(['serial0/listen', 'serial0/conn']);
    expect(first.fds()).toEqual([]);
    first.close(); // does nothing now: the path stays
    expect(fs.lstatSync(spec.path).isSocket()).toBe(true);
    a.sock.write('2'); // waits in the kernel until someone reads
    await sleep(30);
    await echo(spec, 'B:', fds);
    await a.out.waitFor(/B:2/);
    a.sock.write('3');
    await a.out.waitFor(/B:3/);
    expect(a.out.text).toBe('A:1B:2B:3');
    expect(a.events).toEqual([]);
  });

  test('a file is adopted as is: not reopened, not truncated', async () => {
    const spec: ChardevSpec = { kind: 'file', path: path.join(tmpDir(), 'out.log') };
    const first = await openChardev(spec, { id: 'serial0' });
    first.write(Buffer.from('before '));
    const fds = first.detach();
    first.close();
    const second = await openChardev(spec, { id: 'serial0', adopt: fds });
    opened.push(second);
    second.write(Buffer.from('after'));
    expect(fs.readFileSync(spec.path, 'utf8')).toBe('before after');
  });

  test('a tcp listener and its client are adopted the same way', async () => {
    const spec: ChardevSpec = { kind: 'tcp', host: '127.0.0.1', port: 0, server: true, wait: false };
    const onClient: { what: string }[] = [];
    const mk = (what: string) =>
      new ChardevSocket(spec, {
        id: 'mon0',
        maxClients: Infinity,
        onClient: (s) => {
          onClient.push({ what });
          s.on('data', (d) => s.write(`${what}:${d}`));
        },
      });
    const first = mk('A');
    await first.open();
    const port = (first.address() as net.AddressInfo).port;
    const a = await client(port);
    const b = await client(port);
    a.sock.write('x');
    b.sock.write('y');
    await a.out.waitFor(/A:x/);
    await b.out.waitFor(/A:y/);
    const fds = first.detach();
    expect(fds.map((f) => f.name)).toEqual(['mon0/listen', 'mon0/conn', 'mon0/conn.1']);
    const second = mk('B');
    await second.open(fds);
    expect((second.address() as net.AddressInfo).port).toBe(port);
    a.sock.write('z');
    await a.out.waitFor(/B:z/);
    const c = await client(port);
    c.sock.write('new');
    await c.out.waitFor(/B:new/);
    expect(second.clientCount).toBe(3);
    await second.close();
  });

  test('adopt refuses missing and unknown descriptors, with a code', async () => {
    const spec = unixServer();
    const err = (p: Promise<unknown>) => p.then(() => null, (e: unknown) => e as ChardevError);
    expect(await err(openChardev(spec, { id: 'serial0', adopt: [] }))).toMatchObject({ code: 'ECHARDEV_ADOPT_MISSING' });
    expect(
      await err(openChardev(spec, { id: 'serial0', adopt: [{ name: 'serial1/listen', fd: 1 }] })),
    ).toMatchObject({ code: 'ECHARDEV_ADOPT_UNEXPECTED' });
    expect(
      await err(openChardev({ kind: 'file', path: 'unused' }, { id: 'serial0', adopt: [] })),
    ).toBeInstanceOf(ChardevError);
    expect(fs.existsSync(spec.path)).toBe(false); // nothing was bound on the way
  });

  test('paused input waits in the kernel, and arrives once resumed', async () => {
    const spec = unixServer();
    const serial = await echo(spec, 'A:');
    const a = await client(spec.path);
    a.sock.write('x');
    await a.out.waitFor(/A:x/);
    serial.setInputPaused(true);
    a.sock.write('y');
    await sleep(100);
    expect(a.out.text).toBe('A:x');
    serial.setInputPaused(false);
    await a.out.waitFor(/A:y/);
  });

  test('accepting stopped: a client waits in the backlog, the listener is set aside, not given up', async () => {
    const spec = unixServer();
    const serial = await echo(spec, 'A:');
    await serial.setAccepting(false);
    expect(serial.fds().map((f) => f.name)).toEqual(['serial0/listen']);
    const b = await client(spec.path);
    b.sock.write('queued');
    await sleep(100);
    expect(b.out.text).toBe('');
    await serial.setAccepting(true);
    await b.out.waitFor(/A:queued/);
    expect(fs.lstatSync(spec.path).isSocket()).toBe(true);
  });
});
