/**
 * RecordSender (ram-send.ts) on a real socket: what a full socket did not take waits in the
 * sender's scratch, queued in the channel; runs sent before that queue is written must not be
 * built over it (postcopy serves several requested pages back to back without waiting).
 */
import { HOST_PAGE_SIZE, MemfdMapping, native } from '../../lib/host';
import type { RamBlock } from '../../lib/machine/ram';
import { RecordSender, type SendBlock } from '../../lib/migration/ram-send';
import { QemuFileWriter } from '../../lib/stream';
import { FdChannel } from '../../lib/transport/fd-channel';

const PAGE = HOST_PAGE_SIZE;
const PAGES = 256;
const CONTINUE = 0x20;

test('runs sent while a spill is still queued arrive whole and in order', async () => {
  const m = MemfdMapping.create({ name: 'ram-send', size: PAGES * PAGE });
  const ram = new Uint8Array(m.window());
  for (let p = 0; p < PAGES; p++) ram.fill(p & 0xff, p * PAGE, (p + 1) * PAGE);
  ram[0] = 1; // page 0 is not zero either
  const [a, b] = native.socketPair(1);
  native.setSocketBuffers(a, 16 * 1024, 16 * 1024);
  native.setSocketBuffers(b, 16 * 1024, 16 * 1024);
  const ch = new FdChannel(a, { label: 'unix' });
  try {
    const f = new QemuFileWriter(ch);
    const block = { name: 'ram', mapping: m, size: m.size, pages: PAGES } as unknown as RamBlock;
    const s: SendBlock = { block, index: 0, name: Buffer.from('ram'), holes: null };
    const sender = new RecordSender(64);
    // The first run fills the socket and spills; the ones after it go while the spill is queued
    // (the direct path is closed until the queue is empty), single pages as postcopy sends them.
    const order = [...Array.from({ length: 48 }, (_, i) => i), 200, 201, 202, 100, 150];
    sender.send(f, s, Int32Array.from(order.slice(0, 48)), 48, false);
    for (const p of order.slice(48)) sender.send(f, s, Int32Array.of(p), 1, false);
    // Read everything the other end gets.
    const expected = order.length * (8 + PAGE) + 1 + 3;
    const got = Buffer.alloc(expected);
    let have = 0;
    const reader = new FdChannel(b, { label: 'unix' });
    while (have < expected) {
      const c = await reader.read();
      if (!c) break;
      Buffer.from(c).copy(got, have);
      have += c.length;
    }
    reader.destroy();
    expect(have).toBe(expected);
    const seen: number[] = [];
    for (let at = 0; at < have; ) {
      const v = got.readUInt32BE(at) * 2 ** 32 + got.readUInt32BE(at + 4);
      const flags = v % PAGE;
      at += 8;
      if (!(flags & CONTINUE)) at += 1 + got[at];
      const page = (v - flags) / PAGE;
      seen.push(page);
      expect(got.subarray(at, at + PAGE).equals(Buffer.from(ram.subarray(page * PAGE, (page + 1) * PAGE)))).toBe(true);
      at += PAGE;
    }
    expect(seen).toEqual(order);
  } finally {
    ch.destroy();
    m.close();
  }
});
