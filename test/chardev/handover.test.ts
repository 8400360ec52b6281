/**
 * cpr-transfer's console: a serial chardev handed from one process to another over SCM_RIGHTS.
 * Process A (old) opens a unix server chardev; a client connects; A detaches and sends the
 * descriptors to B (new) and exits; only then does B receive and adopt them. The client's
 * connection is the same one throughout (no end, no close, no reconnect), bytes it sent while
 * nobody was reading reach B, and the path keeps working for new clients.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { Client, Collected, cleanupDirs, tmpDir } from './helpers';

const PEER = path.join(__dirname, 'handover-peer.js');

interface Peer {
  proc: ChildProcess;
  out: Collected;
  exited: Promise<number | null>;
  say(line: string): void;
}

const peers: Peer[] = [];
const clients: Client[] = [];

function peer(role: 'old' | 'new', spec: object, handover: string): Peer {
  const proc = spawn(process.execPath, [PEER, role, JSON.stringify(spec), handover], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const p: Peer = {
    proc,
    out: new Collected(proc.stdout!),
    exited: new Promise((r) => proc.on('exit', r)),
    say: (line) => proc.stdin!.write(`${line}\n`),
  };
  peers.push(p);
  return p;
}

afterEach(() => {
  for (const c of clients.splice(0)) c.close();
  for (const p of peers.splice(0)) p.proc.kill();
  cleanupDirs();
});

async function connect(to: string): Promise<Client> {
  const c = await Client.connectWhenThere(to);
  clients.push(c);
  return c;
}

/**
 * A new client exchanges bytes with B. One client at a time: until B has seen the previous
 * one go, a newcomer is let go, so try again then.
 */
async function served(to: string, text: string): Promise<void> {
  for (let i = 0; ; i++) {
    const c = await connect(to);
    c.sock.write(text);
    try {
      await c.out.waitFor(new RegExp(`B:${text}`), 500);
      return;
    } catch (e) {
      if (!c.out.ended || i === 20) throw e;
    }
  }
}

test('a connected client keeps its connection across the handover, bytes flow both ways with B', async () => {
  const dir = tmpDir();
  const spec = { kind: 'unix', path: path.join(dir, 'serial.sock'), server: true, wait: true };
  const handover = path.join(dir, 'cpr.sock');
  const b = peer('new', spec, handover);
  await b.out.waitFor(/ready/);
  const a = peer('old', spec, handover);

  const client = await connect(spec.path); // wait=on: A's open completes with this client
  await a.out.waitFor(/open/);
  client.sock.write('hello');
  await client.out.waitFor(/A:hello/);

  a.say('handover');
  expect(await a.exited).toBe(0);
  // A is gone; the descriptors live on in the message queued for B, and the path is intact.
  expect(fs.lstatSync(spec.path).isSocket()).toBe(true);
  client.sock.write('while nobody reads');

  b.say('adopt');
  await b.out.waitFor(/adopted \["serial0\/listen","serial0\/conn"\]/);
  await client.out.waitFor(/B is here\n/);
  await client.out.waitFor(/B:while nobody reads/);
  client.sock.write('again');
  await client.out.waitFor(/B:again/);
  expect(client.out.text).toBe('A:helloB is here\nB:while nobody readsB:again');
  expect(client.events).toEqual([]); // the same connection throughout

  // The listener came along too: after this client leaves, a new one is served by B.
  client.sock.end();
  await served(spec.path, 'next');

  b.say('quit');
  expect(await b.exited).toBe(0);
  expect(fs.existsSync(spec.path)).toBe(false); // B owns the path now and removes it on close
});

test('a listener with no client: a client connecting during the handover is served by B', async () => {
  const dir = tmpDir();
  const spec = { kind: 'unix', path: path.join(dir, 'serial.sock'), server: true, wait: false };
  const handover = path.join(dir, 'cpr.sock');
  const b = peer('new', spec, handover);
  await b.out.waitFor(/ready/);
  const a = peer('old', spec, handover);
  await a.out.waitFor(/open/);

  a.say('handover');
  expect(await a.exited).toBe(0);
  // Nobody accepts now; the kernel queues the connection on the handed-over socket.
  const client = await connect(spec.path);
  client.sock.write('early');

  b.say('adopt');
  await b.out.waitFor(/adopted \["serial0\/listen"\]/);
  await client.out.waitFor(/B:early/);
  client.sock.write('later');
  await client.out.waitFor(/B:later/);
  // "B is here" was written before B accepted the queued connection: dropped, or not.
  expect(client.out.text.replace('B is here\n', '')).toBe('B:earlyB:later');
  expect(client.events).toEqual([]);

  b.say('quit');
  expect(await b.exited).toBe(0);
});
