/**
 * native/page-io.cc: runs of RAM records sent straight from a mapping (and the part a full
 * socket did not take copied aside), runs placed from a received buffer that stop at the first
 * record needing a decision, and the multifd channel calls (whole packets, blocking, cancelled
 * by shutting the socket down from another thread).
 */
import { HOST_PAGE_SIZE, MemfdMapping, native, Userfaultfd } from '../../lib/host';
import { hostErrorOf, hostWorker, nextMessage } from './helpers';

const PAGE = HOST_PAGE_SIZE;
const PAGES = 64;
const F = { ZERO: 0x02, PAGE: 0x08, EOS: 0x10, CONTINUE: 0x20 };

function scratchFor(pages: number): Uint8Array {
  return new Uint8Array(pages * 9 + 320 + pages * (PAGE + 9) + 256);
}

/** Records in `bytes`: [offset, flags, name?, payload length]. */
function parse(bytes: Uint8Array): Array<{ offset: number; flags: number; name?: string; page?: Uint8Array }> {
  const out = [];
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let at = 0; at < bytes.length; ) {
    const v = dv.getUint32(at + 4) + dv.getUint32(at) * 2 ** 32;
    const flags = v % PAGE;
    at += 8;
    let name: string | undefined;
    if (!(flags & F.CONTINUE)) {
      name = Buffer.from(bytes.subarray(at + 1, at + 1 + bytes[at])).toString('latin1');
      at += 1 + bytes[at];
    }
    if (flags & F.ZERO) {
      out.push({ offset: v - flags, flags, name });
      at += 1;
    } else {
      out.push({ offset: v - flags, flags, name, page: bytes.subarray(at, at + PAGE) });
      at += PAGE;
    }
  }
  return out;
}

function readAll(fd: number, n: number): Uint8Array {
  const buf = new Uint8Array(n);
  expect(native.readFull(fd, buf, 0, n)).toBe(n);
  return buf;
}

describe('native page I/O', () => {
  let m: MemfdMapping;
  let ram: Uint8Array;
  const fds: number[] = [];
  beforeEach(() => {
    m = MemfdMapping.create({ name: 'page-io', size: PAGES * PAGE });
    ram = new Uint8Array(m.window());
    for (let p = 0; p < PAGES; p++) if (p % 4 !== 0) ram.fill(p, p * PAGE, (p + 1) * PAGE);
  });
  afterEach(() => {
    for (const fd of fds.splice(0)) native.close(fd);
    m.close();
  });
  const pair = () => {
    const [a, b] = native.socketPair(1);
    fds.push(a, b);
    return [a, b];
  };

  test('ramSendRecords: a named first record, CONTINUE after it, zero pages found or known from holes', () => {
    const [a, b] = pair();
    const pages = Int32Array.of(0, 1, 2, 5, 8);
    const holes = new Uint32Array(2);
    holes[0] = 1 << 1; // page 1 "was never written": zero without being read
    const out = new Float64Array(5);
    const total = native.ramSendRecords(a, m.addr, m.size, pages, 5, true, Buffer.from('ram'), holes, scratchFor(5), out);
    expect(out[0]).toBe(2); // pages 2 and 5
    expect(out[1]).toBe(3); // 0 and 8 are zero, 1 is a hole
    expect(out[2]).toBe(total);
    expect(out[4]).toBe(0);
    expect(holes[0]).toBe(0);
    const recs = parse(readAll(b, total));
    expect(recs.map((r) => [r.offset / PAGE, r.flags])).toEqual([
      [0, F.ZERO], [1, F.ZERO | F.CONTINUE], [2, F.PAGE | F.CONTINUE], [5, F.PAGE | F.CONTINUE], [8, F.ZERO | F.CONTINUE],
    ]);
    expect(recs[0].name).toBe('ram');
    expect(Buffer.from(recs[3].page!).equals(Buffer.alloc(PAGE, 5))).toBe(true);
  });

  test('ramSendRecords without zero detection sends every page, holes too; fd -1 encodes into scratch', () => {
    const pages = Int32Array.of(0, 3);
    const out = new Float64Array(5);
    const scratch = scratchFor(2);
    const holes = Uint32Array.of(1, 0);
    const total = native.ramSendRecords(-1, m.addr, m.size, pages, 2, false, null, holes, scratch, out);
    expect([out[0], out[1], out[2], out[4]]).toEqual([2, 0, 0, total]);
    const recs = parse(scratch.subarray(out[3], out[3] + out[4]));
    expect(recs.map((r) => r.flags)).toEqual([F.PAGE | F.CONTINUE, F.PAGE | F.CONTINUE]);
    expect(holes[0]).toBe(0);
  });

  test('ramSendRecords: what a full socket does not take is copied aside, in order', () => {
    const [a, b] = pair();
    native.setSocketBuffers(a, 16 * 1024, 16 * 1024);
    const pages = Int32Array.from({ length: 48 }, (_, i) => i + 1);
    const out = new Float64Array(5);
    const scratch = scratchFor(48);
    const total = native.ramSendRecords(a, m.addr, m.size, pages, 48, false, Buffer.from('ram'), null, scratch, out);
    expect(out[2]).toBeGreaterThan(0);
    expect(out[4]).toBeGreaterThan(0);
    expect(out[2] + out[4]).toBe(total);
    const got = Buffer.concat([readAll(b, out[2]), scratch.subarray(out[3], out[3] + out[4])]);
    const recs = parse(got);
    expect(recs.map((r) => r.offset / PAGE)).toEqual([...pages]);
    for (const r of recs) expect(r.page![0]).toBe(r.offset / PAGE % 4 ? r.offset / PAGE : 0);
  });

  test('ramLoadRecords places CONTINUE pages and zero pages, and stops at whatever needs a decision', () => {
    const src = new Float64Array(5);
    const scratch = scratchFor(4);
    const total = native.ramSendRecords(-1, m.addr, m.size, Int32Array.of(2, 4, 5, 6), 4, true, null, null, scratch, src);
    const recs = Buffer.from(scratch.subarray(src[3], src[3] + total));
    const dst = MemfdMapping.create({ name: 'dst', size: PAGES * PAGE });
    try {
      const d = new Uint8Array(dst.window());
      d.fill(0xee, 4 * PAGE, 5 * PAGE); // not zero: the zero record must clear it
      const out = new Float64Array(3);
      const eos = Buffer.alloc(8);
      eos.writeUInt32BE(F.EOS, 4);
      const buf = Buffer.concat([recs, eos]);
      expect(native.ramLoadRecords(buf, 0, buf.length, dst.addr, dst.size, null, out)).toBe(total);
      expect([...out]).toEqual([3, 1, 6 * PAGE]);
      expect(d[2 * PAGE]).toBe(2);
      expect(d[4 * PAGE] + d[5 * PAGE - 1]).toBe(0);
      expect(d[6 * PAGE + 100]).toBe(6);
      // A record cut short, a named record, an offset past the block, a bad fill byte: not placed.
      expect(native.ramLoadRecords(buf, 0, PAGE, dst.addr, dst.size, null, out)).toBe(0);
      const named = Buffer.from(recs);
      named[7] &= ~F.CONTINUE;
      expect(native.ramLoadRecords(named, 0, named.length, dst.addr, dst.size, null, out)).toBe(0);
      const far = Buffer.from(recs);
      far.writeUInt32BE(PAGES, 2); // offset PAGES × 2^16 pages
      expect(native.ramLoadRecords(far, 0, far.length, dst.addr, dst.size, null, out)).toBe(0);
      const zero = Buffer.alloc(9);
      zero.writeUInt32BE(3 * PAGE + F.ZERO + F.CONTINUE, 4);
      zero[8] = 1;
      expect(native.ramLoadRecords(zero, 0, 9, dst.addr, dst.size, null, out)).toBe(0);
      // A hole stays untouched by a zero record (reading it would allocate it).
      zero[8] = 0;
      d.fill(9, 3 * PAGE, 4 * PAGE);
      expect(native.ramLoadRecords(zero, 0, 9, dst.addr, dst.size, Uint32Array.of(1 << 3, 0), out)).toBe(9);
      expect(d[3 * PAGE]).toBe(9);
    } finally {
      dst.close();
    }
  });

  test('multifd calls: zeroScan, sendPages → readFull + recvPages straight into RAM, zeroPages', () => {
    const [a, b] = pair();
    const pages = Int32Array.of(1, 4, 7);
    const isZero = new Uint8Array(3);
    expect(native.zeroScan(m.addr, m.size, pages, 0, 3, isZero)).toBe(1);
    expect([...isZero]).toEqual([0, 1, 0]);
    const head = Buffer.from('packet header');
    expect(native.sendPages(a, head, head.length, m.addr, m.size, Int32Array.of(1, 7), 2)).toBe(head.length + 2 * PAGE);
    expect(Buffer.from(readAll(b, head.length)).toString()).toBe('packet header');
    const dst = MemfdMapping.create({ name: 'dst', size: PAGES * PAGE });
    try {
      const d = new Uint8Array(dst.window());
      expect(native.recvPages(b, dst.addr, dst.size, Int32Array.of(10, 11), 2)).toBe(2 * PAGE);
      expect([d[10 * PAGE], d[11 * PAGE + PAGE - 1]]).toEqual([1, 7]);
      expect(native.zeroPages(dst.addr, dst.size, Int32Array.of(9, 10, 11), 3)).toBe(2);
      expect(d[10 * PAGE] + d[11 * PAGE]).toBe(0);
      // End of stream: readFull and recvPages report what they got.
      native.shutdownWrite(a);
      expect(native.readFull(b, new Uint8Array(8), 0, 8)).toBe(0);
      expect(native.recvPages(b, dst.addr, dst.size, Int32Array.of(1), 1)).toBe(0);
    } finally {
      dst.close();
    }
  });

  test('a thread blocked in sendPages on a full socket is released by shutdown from another thread', async () => {
    const [a] = pair();
    native.setSocketBuffers(a, 16 * 1024, 16 * 1024);
    const w = hostWorker(
      `const { native } = host;
       parentPort.postMessage('start');
       try { native.sendPages(workerData.fd, new Uint8Array(0), 0, workerData.addr, workerData.size, Int32Array.from({ length: 60 }, (_, i) => i), 60); parentPort.postMessage('sent'); }
       catch (e) { parentPort.postMessage(e.code); }`,
      { fd: a, addr: m.addr, size: m.size },
    );
    expect(await nextMessage(w)).toBe('start');
    await new Promise((r) => setTimeout(r, 200));
    const done = nextMessage(w);
    native.shutdown(a);
    expect(await done).toBe('EPIPE');
    await w.terminate();
  });

  test('misuse is a typed error: RAM outside a live mapping, pages outside the block, short buffers', () => {
    const out = new Float64Array(5);
    expect(hostErrorOf(() => native.zeroPages(m.addr + PAGE, m.size, Int32Array.of(0), 1)).code).toBe('EFAULT');
    expect(hostErrorOf(() => native.zeroPages(m.addr, m.size, Int32Array.of(PAGES), 1)).code).toBe('ERANGE');
    expect(hostErrorOf(() => native.zeroPages(m.addr, m.size, Int32Array.of(-1), 1)).code).toBe('ERANGE');
    expect(hostErrorOf(() => native.zeroPages(m.addr, m.size, Int32Array.of(1), 2)).code).toBe('ERANGE');
    expect(hostErrorOf(() => native.zeroPages(m.addr, m.size, new Uint32Array(1) as unknown as Int32Array, 1)).code).toBe('EINVAL');
    expect(hostErrorOf(() => native.ramSendRecords(-1, m.addr, m.size, Int32Array.of(1), 1, true, null, null, new Uint8Array(100), out)).code).toBe('ERANGE');
    expect(hostErrorOf(() => native.ramSendRecords(-1, m.addr, m.size, Int32Array.of(1), 1, true, null, new Uint32Array(1), scratchFor(1), out)).code).toBe('ERANGE');
    expect(hostErrorOf(() => native.ramLoadRecords(new Uint8Array(8), 0, 9, m.addr, m.size, null, new Float64Array(3))).code).toBe('ERANGE');
    expect(hostErrorOf(() => native.readFull(987654, new Uint8Array(8), 0, 8)).code).toBe('EBADF');
  });

  test('ramPlaceRecords: postcopy placement through userfaultfd, received bits, requested pages, EEXIST, limits', () => {
    const dst = MemfdMapping.create({ name: 'pc-dst', size: PAGES * PAGE });
    const uffd = Userfaultfd.open();
    try {
      uffd.register(dst.addr, dst.size, ['missing']);
      const sent = new Float64Array(5);
      const scratch = scratchFor(4);
      // Pages 2, 5, 6 hold data; 4 is zero (a ZERO record). Then an EOS the call must stop at.
      const total = native.ramSendRecords(-1, m.addr, m.size, Int32Array.of(2, 4, 5, 6), 4, true, null, null, scratch, sent);
      const recs = Buffer.concat([scratch.subarray(sent[3], sent[3] + total), Buffer.from([0, 0, 0, 0, 0, 0, 0, F.EOS])]);
      const words = Math.ceil(PAGES / 32);
      const received = new Int32Array(words);
      const requested = Int32Array.of(1 << 5, 0);
      const out = new Float64Array(4);
      const req = new Int32Array(8);
      const place = (end: number, max: number) =>
        native.ramPlaceRecords(recs, 0, end, uffd.fd, dst.addr, dst.size, 0, 0, false, false, received, requested, null, out, req, max);
      expect(place(recs.length, 100)).toBe(total);
      expect([...out]).toEqual([3, 1, 4, 1]);
      expect(req[0]).toBe(5);
      expect(received[0]).toBe((1 << 2) | (1 << 4) | (1 << 5) | (1 << 6));
      // Every page is there already: EEXIST is not an error, and nothing counts as placed.
      expect(place(total, 100)).toBe(total);
      expect(out[2]).toBe(0);
      // At most maxRecords records; a record cut short is left for the caller.
      expect(place(total, 1)).toBe(8 + PAGE);
      expect(place(8 + PAGE + 5, 100)).toBe(8 + PAGE);
      uffd.unregister(dst.addr, dst.size);
      const d = new Uint8Array(dst.window());
      for (const p of [2, 5, 6]) expect(Buffer.from(d.subarray(p * PAGE, (p + 1) * PAGE)).equals(Buffer.from(ram.subarray(p * PAGE, (p + 1) * PAGE)))).toBe(true);
      expect(d[4 * PAGE + 7]).toBe(0);
    } finally {
      uffd.close();
      dst.close();
    }
  });
});
