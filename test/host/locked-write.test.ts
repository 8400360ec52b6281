/**
 * lockedWriteAll: whole messages from several threads on one socket. Two workers send at the
 * same time through tiny socket buffers, so every message needs several send(2) calls with
 * poll(2) waits between them — the moments another writer would slip in. One worker uses a
 * dup of the other's descriptor: the lock belongs to the socket, not to the number.
 */
import { FdSocket, native, SOCK_STREAM } from '../../lib/host';
import { hostErrorOf, hostWorker, nextMessage } from './helpers';

const MESSAGES = 150;

// [u32 length][u8 tag][u32 seq][length bytes, each (tag * 31 + seq + i) & 0xff]
const sender = `
  const { fd, tag, count, gate } = workerData;
  const go = new Int32Array(gate);
  Atomics.add(go, 0, 1);
  while (Atomics.load(go, 0) < 2) Atomics.wait(go, 0, Atomics.load(go, 0), 5);
  for (let seq = 0; seq < count; seq++) {
    const len = 1 + ((seq * 7919 + tag * 104729) % 24000);
    const msg = Buffer.alloc(9 + len);
    msg.writeUInt32BE(len, 0);
    msg[4] = tag;
    msg.writeUInt32BE(seq, 5);
    for (let i = 0; i < len; i++) msg[9 + i] = (tag * 31 + seq + i) & 0xff;
    host.native.lockedWriteAll(fd, msg, 10000);
  }
  parentPort.postMessage('done');`;

test('two threads sending at once never interleave their messages', async () => {
  const [w, r] = native.socketPair(SOCK_STREAM);
  native.setSocketBuffers(w, 4096, 4096);
  native.setSocketBuffers(r, 4096, 4096);
  const wDup = native.dup(w);
  const gate = new SharedArrayBuffer(4);
  const workers = [
    hostWorker(sender, { fd: w, tag: 1, count: MESSAGES, gate }),
    hostWorker(sender, { fd: wDup, tag: 2, count: MESSAGES, gate }),
  ];
  const finished = workers.map((wk) => nextMessage(wk));
  const ch = new FdSocket(r);
  const next = { 1: 0, 2: 0 } as Record<number, number>;
  let pending = Buffer.alloc(0);
  let switches = 0;
  let lastTag = 0;
  while (next[1] + next[2] < 2 * MESSAGES) {
    const m = await ch.recv(256 * 1024);
    expect(m).not.toBeNull();
    pending = Buffer.concat([pending, m!.payload]);
    while (pending.length >= 9 && pending.length >= 9 + pending.readUInt32BE(0)) {
      const len = pending.readUInt32BE(0);
      const tag = pending[4];
      const seq = pending.readUInt32BE(5);
      expect([1, 2]).toContain(tag);
      expect(seq).toBe(next[tag]++); // in order per sender, none lost, none torn
      expect(len).toBe(1 + ((seq * 7919 + tag * 104729) % 24000));
      for (let i = 0; i < len; i++) {
        if (pending[9 + i] !== ((tag * 31 + seq + i) & 0xff)) throw new Error(`message ${tag}/${seq} torn at byte ${i}`);
      }
      if (lastTag && tag !== lastTag) switches++;
      lastTag = tag;
      pending = pending.subarray(9 + len);
    }
  }
  await Promise.all(finished);
  expect(pending.length).toBe(0);
  // Both threads really sent while the other did (not one after the other).
  expect(switches).toBeGreaterThan(1);
  ch.close();
  native.close(w);
  native.close(wDup);
  await Promise.all(workers.map((wk) => wk.terminate()));
});

test('a socket that stays full is ETIMEDOUT after the timeout, not a hang', () => {
  const [w, r] = native.socketPair(SOCK_STREAM);
  try {
    const t0 = Date.now();
    const e = hostErrorOf(() => native.lockedWriteAll(w, new Uint8Array(4 << 20), 50));
    expect(e.code).toBe('ETIMEDOUT');
    expect(e.syscall).toBe('send');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(45);
    expect(native.lockedWriteAll(r, Buffer.from('other way'), 50)).toBe(9); // not stuck
  } finally {
    native.close(w);
    native.close(r);
  }
});

test('a vanished peer is EPIPE, and a bad descriptor EBADF', () => {
  const [w, r] = native.socketPair(SOCK_STREAM);
  native.close(r);
  expect(hostErrorOf(() => native.lockedWriteAll(w, Buffer.from('x'), 50)).code).toBe('EPIPE');
  native.close(w);
  expect(hostErrorOf(() => native.lockedWriteAll(w, Buffer.from('x'), 50)).code).toBe('EBADF');
});
