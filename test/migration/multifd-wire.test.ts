/**
 * QEMU's multifd initial packet and packet header against a hostile corpus: every field QEMU
 * checks (magic, version, uuid, channel id, flags, page counts, ramblock, offsets) is refused
 * with an EMIG_MULTIFD error naming it, mutations of a valid header never fail any other way,
 * and a receiving channel thread fed such packets over a real socket fails the load through
 * the main thread, naming the field, without taking the process down.
 */
import { RamBlock } from '../../lib/machine/ram';
import { native } from '../../lib/host';
import { MigrationError } from '../../lib/migration/errors';
import { MultifdReceiver } from '../../lib/migration/multifd/recv';
import {
  decodeHeader, decodeInit, decodeOffsets, encodeHeader, encodeInit, encodeOffsets, MULTIFD_FLAG, MULTIFD_HEADER_BYTES,
  MULTIFD_PACKET_PAGES, type PacketHeader,
} from '../../lib/migration/multifd/wire';
import { FdChannel } from '../../lib/transport/fd-channel';

const UUID = Uint8Array.from(Buffer.from('0123456789abcdef0123456789abcdef', 'hex'));
const GOOD: PacketHeader = { flags: 0, pagesAlloc: 128, normal: 3, zero: 2, nextPacketSize: 3 * 4096, packetNum: 7, ramblock: 'riscv_virt_board.ram' };

function header(h: Partial<PacketHeader> = {}): Buffer {
  const b = Buffer.alloc(MULTIFD_HEADER_BYTES);
  encodeHeader(b, { ...GOOD, ...h });
  return b;
}

function fieldOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(MigrationError);
    expect((e as MigrationError).code).toBe('EMIG_MULTIFD');
    return (e as MigrationError).field;
  }
  throw new Error('accepted');
}

describe('multifd initial packet', () => {
  test('round trip; QEMU layout: magic, version, uuid at 8, id at 24, 64 bytes', () => {
    const b = encodeInit(UUID, 3);
    expect(b.length).toBe(64);
    expect(Buffer.from(b.subarray(0, 8)).toString('hex')).toBe('1122334400000001');
    expect(b[24]).toBe(3);
    expect(decodeInit(b, 4, UUID)).toBe(3);
  });

  test.each([
    ['magic', (b: Buffer) => b.writeUInt32BE(0x5145564d, 0)],
    ['version', (b: Buffer) => b.writeUInt32BE(2, 4)],
    ['uuid', (b: Buffer) => (b[8] ^= 1)],
    ['id', (b: Buffer) => (b[24] = 4)],
    ['id', (b: Buffer) => (b[24] = 255)],
    ['initial packet', (b: Buffer) => b.fill(0, 0)],
  ])('bad %s', (field, mutate) => {
    const b = Buffer.from(encodeInit(UUID, 1));
    mutate(b);
    const expected = field === 'initial packet' ? 'magic' : field;
    expect(fieldOf(() => decodeInit(b, 4, UUID))).toBe(expected);
    expect(fieldOf(() => decodeInit(b.subarray(0, 30), 4, UUID))).toBe('initial packet');
  });
});

describe('multifd packet header', () => {
  test('round trip of the fixed part and the offsets', () => {
    const b = Buffer.alloc(MULTIFD_HEADER_BYTES + 8 * 5);
    encodeHeader(b, GOOD);
    encodeOffsets(b, MULTIFD_HEADER_BYTES, Int32Array.of(1, 2, 9, 10, 11), 5);
    expect(decodeHeader(b)).toEqual(GOOD);
    const pages = new Int32Array(5);
    decodeOffsets(b, MULTIFD_HEADER_BYTES, 5, 64 * 4096, pages, 'ram');
    expect([...pages]).toEqual([1, 2, 9, 10, 11]);
    // A SYNC packet carries no page fields (QEMU multifd_send_fill_packet).
    expect(decodeHeader(header({ flags: MULTIFD_FLAG.SYNC, pagesAlloc: 0, normal: 0, zero: 0, nextPacketSize: 0, ramblock: '' })).ramblock).toBe('');
  });

  test.each([
    ['magic', { raw: (b: Buffer) => b.writeUInt32BE(0xdeadbeef, 0) }],
    ['version', { raw: (b: Buffer) => b.writeUInt32BE(0, 4) }],
    ['flags', { flags: MULTIFD_FLAG.ZLIB }],
    ['flags', { flags: MULTIFD_FLAG.ZSTD | MULTIFD_FLAG.SYNC }],
    ['flags', { flags: MULTIFD_FLAG.QATZIP }],
    ['flags', { flags: MULTIFD_FLAG.DEVICE_STATE }],
    ['pages_alloc', { pagesAlloc: MULTIFD_PACKET_PAGES + 1 }],
    ['pages_alloc', { pagesAlloc: 0xffffffff }],
    ['normal_pages', { pagesAlloc: 4, normal: 5, nextPacketSize: 5 * 4096 }],
    ['zero_pages', { pagesAlloc: 4, normal: 3, zero: 2 }],
    ['zero_pages', { zero: 0xffffffff }],
    ['next_packet_size', { nextPacketSize: 4096 }],
    ['next_packet_size', { nextPacketSize: 0xffffffff }],
  ])('bad %s', (field, h) => {
    const b = 'raw' in h ? header() : header(h as Partial<PacketHeader>);
    if ('raw' in h) (h as { raw: (b: Buffer) => void }).raw(b);
    expect(fieldOf(() => decodeHeader(b))).toBe(field);
  });

  test('a ramblock name with no NUL in 256 bytes is cut at 255, as QEMU forces ramblock[255] = 0', () => {
    const b = header();
    b.fill(0x41, 64, 320);
    expect(decodeHeader(b).ramblock).toBe('A'.repeat(255));
  });

  test('offsets past the block, at its end, unaligned, or above 2^53', () => {
    const b = Buffer.alloc(MULTIFD_HEADER_BYTES + 8);
    const into = new Int32Array(1);
    const at = (hi: number, lo: number) => {
      b.writeUInt32BE(hi, MULTIFD_HEADER_BYTES);
      b.writeUInt32BE(lo, MULTIFD_HEADER_BYTES + 4);
      return fieldOf(() => decodeOffsets(b, MULTIFD_HEADER_BYTES, 1, 16 * 4096, into, 'ram'));
    };
    expect(at(0, 16 * 4096)).toBe('offset');
    expect(at(0, 15 * 4096 + 8)).toBe('offset');
    expect(at(1, 0)).toBe('offset');
    expect(at(0xffffffff, 0)).toBe('offset');
    b.writeUInt32BE(0, MULTIFD_HEADER_BYTES);
    b.writeUInt32BE(15 * 4096, MULTIFD_HEADER_BYTES + 4);
    decodeOffsets(b, MULTIFD_HEADER_BYTES, 1, 16 * 4096, into, 'ram');
    expect(into[0]).toBe(15);
  });

  test('10,000 mutated headers: each is refused naming a field, or decodes within the limits', () => {
    let seed = 12345;
    const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) >>> 0) % n);
    let refused = 0;
    for (let i = 0; i < 10000; i++) {
      const b = header();
      for (let k = rnd(4) + 1; k > 0; k--) {
        const at = rnd(64);
        b[at] = rnd(3) === 0 ? 0xff : rnd(256);
      }
      let h: PacketHeader;
      try {
        h = decodeHeader(b);
      } catch (e) {
        expect(e).toBeInstanceOf(MigrationError);
        expect((e as MigrationError).field).toMatch(/^(magic|version|flags|pages_alloc|normal_pages|zero_pages|next_packet_size)$/);
        refused++;
        continue;
      }
      expect(h.pagesAlloc).toBeLessThanOrEqual(MULTIFD_PACKET_PAGES);
      expect(h.normal + h.zero).toBeLessThanOrEqual(h.pagesAlloc);
      expect(h.nextPacketSize).toBe(h.normal * 4096);
      expect(h.flags & MULTIFD_FLAG.COMPRESSION_MASK).toBe(0);
    }
    expect(refused).toBeGreaterThan(5000);
  });
});

describe('a receiving channel fed a hostile peer over a socket', () => {
  const blocks: RamBlock[] = [];
  beforeAll(() => blocks.push(RamBlock.create({ name: 'riscv_virt_board.ram', base: 0x8000_0000, size: 64 * 4096 })));
  afterAll(() => blocks.forEach((b) => b.close()));

  /** Connects one channel, sends `init` then `packet`; resolves with the failure (or null). */
  async function feed(init: Uint8Array, packet: Uint8Array | null): Promise<MigrationError | null> {
    const [mine, theirs] = native.socketPair(1);
    let failed: (e: MigrationError | null) => void = () => undefined;
    const failure = new Promise<MigrationError | null>((r) => (failed = r));
    const rx = new MultifdReceiver({ channels: 2, uuid: UUID, blocks, knownZero: [null], populate: () => null, onFailure: (e) => failed(e) });
    try {
      native.lockedWriteAll(mine, init, 1000);
      if (packet) native.lockedWriteAll(mine, packet, 1000);
      native.shutdownWrite(mine);
      await rx.adopt(new FdChannel(theirs, { label: 'unix' }));
      const timer = setTimeout(() => failed(null), 1500);
      const r = await failure;
      clearTimeout(timer);
      return r;
    } finally {
      native.close(mine);
      await rx.close();
    }
  }

  const packet = (h: Partial<PacketHeader>, offsets: number[]) => {
    const b = Buffer.alloc(MULTIFD_HEADER_BYTES + 8 * offsets.length);
    encodeHeader(b, { ...GOOD, ...h });
    offsets.forEach((o, k) => b.writeUInt32BE(o, MULTIFD_HEADER_BYTES + 8 * k + 4));
    return b;
  };

  test.each([
    ['magic', encodeInit(UUID, 0).fill(0x51, 0, 4), null],
    ['uuid', encodeInit(new Uint8Array(16), 0), null],
    ['id', encodeInit(UUID, 2), null],
    ['magic', encodeInit(UUID, 0), Buffer.from(header()).fill(0, 0, 4)],
    ['flags', encodeInit(UUID, 0), header({ flags: MULTIFD_FLAG.ZSTD })],
    ['ramblock', encodeInit(UUID, 0), packet({ ramblock: 'nope', normal: 0, zero: 1, nextPacketSize: 0 }, [0])],
    ['offset', encodeInit(UUID, 0), packet({ normal: 0, zero: 1, nextPacketSize: 0 }, [64 * 4096])],
  ])('%s: the load fails naming it, the process lives', async (field, init, pkt) => {
    const e = await feed(init, pkt);
    expect(e).toBeInstanceOf(MigrationError);
    expect(e!.field).toBe(field);
    expect(e!.message).toMatch(/multifd/);
  });

  test('a channel cut inside a packet is a truncated stream', async () => {
    const e = await feed(encodeInit(UUID, 1), packet({ normal: 1, zero: 0, nextPacketSize: 4096 }, [0]).subarray(0, 100));
    // The peer's end closes after writing: the thread reads 100 bytes, then end of stream.
    expect(e?.code).toBe('EMIG_TRUNCATED');
  });

  test('a good packet is placed, and ends quietly at a clean end of stream', async () => {
    const b = blocks[0];
    const page = Buffer.alloc(4096, 0x5a);
    const e = await feed(encodeInit(UUID, 0), Buffer.concat([packet({ normal: 1, zero: 0, nextPacketSize: 4096 }, [5 * 4096]), page]));
    expect(e).toBeNull();
    expect(new Uint8Array(b.windows[0])[5 * 4096 + 17]).toBe(0x5a);
  });
});
