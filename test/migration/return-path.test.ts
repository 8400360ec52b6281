/**
 * The source's return-path framing (lib/migration/return-path.ts readRpMessage): messages as
 * ReturnPathWriter frames them, and RECV_BITMAP with the bitmap that follows its frame — good,
 * a wrong end mark, a size over RECV_BITMAP_MAX or not in whole words, and cut short anywhere.
 * Every refusal is EMIG_RETURN_PATH; the bitmap's name the field RECV_BITMAP.
 */
import { MigrationError } from '../../lib/migration/errors';
import { bitmapWireBytes, decodeCounted } from '../../lib/migration/postcopy/wire';
import { newBitmap, testAndSet } from '../../lib/migration/postcopy/shared';
import { readRpMessage, RECV_BITMAP_MAX, ReturnPathWriter } from '../../lib/migration/return-path';
import { MIG_RP_MSG } from '../../lib/migration/wire';
import { bytesSource, collectingSink, QemuFileReader } from '../../lib/stream';

const BLOCK = 'riscv_virt_board.ram';
const ENDING = Buffer.from('0123456789abcdef', 'hex');

function reader(bytes: Uint8Array, split?: number | number[]): QemuFileReader {
  return new QemuFileReader(bytesSource(bytes, split));
}

async function refused(bytes: Uint8Array, detail: RegExp, field?: string): Promise<MigrationError> {
  let err: unknown;
  try {
    await readRpMessage(reader(bytes));
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(MigrationError);
  const m = err as MigrationError;
  expect({ code: m.code, section: m.section, field: m.field }).toEqual({ code: 'EMIG_RETURN_PATH', section: 'return-path', field });
  expect(m.message).toMatch(detail);
  return m;
}

/** RECV_BITMAP of a 70-page block with pages 0, 9, 31, 32 and 69 received, as the destination sends it. */
function recvBitmap(): Buffer {
  const sink = collectingSink();
  const bits = newBitmap(70);
  for (const p of [0, 9, 31, 32, 69]) testAndSet(bits, p);
  new ReturnPathWriter(sink).recvBitmap(BLOCK, bits, 70);
  return sink.bytes();
}

/** Offset of the bitmap's be64 size: after the 4-byte frame header and the counted name. */
const SIZE_AT = 4 + 1 + BLOCK.length;

describe('RECV_BITMAP and its bitmap', () => {
  test('a good one: the name, then the bitmap in wire order (page i = byte i/8, bit i%8)', async () => {
    const bytes = recvBitmap();
    expect(bytes.length).toBe(SIZE_AT + 8 + bitmapWireBytes(70) + 8);
    for (const split of [undefined, 1, 5, SIZE_AT + 3]) {
      const f = reader(bytes, split);
      const msg = await readRpMessage(f);
      expect(msg!.type).toBe(MIG_RP_MSG.RECV_BITMAP);
      expect(decodeCounted(msg!.payload, 'RECV_BITMAP')).toBe(BLOCK);
      expect(Array.from(msg!.extra!)).toEqual([0x01, 0x02, 0, 0x80, 0x01, 0, 0, 0, 0x20, 0, 0, 0, 0, 0, 0, 0]);
      expect(await readRpMessage(f)).toBeNull();
    }
  });

  test('a wrong end mark', async () => {
    const bytes = recvBitmap();
    bytes[bytes.length - 1] ^= 1;
    await refused(bytes, /end mark/, 'RECV_BITMAP');
  });

  test('a size over RECV_BITMAP_MAX, not in whole be64 words, or past 2^53 is refused before allocating', async () => {
    for (const size of [BigInt(RECV_BITMAP_MAX) + 8n, 12n, 2n ** 63n, 2n ** 64n - 8n]) {
      const bytes = recvBitmap();
      bytes.writeBigUInt64BE(size, SIZE_AT);
      await refused(bytes, new RegExp(`received bitmap of ${size} bytes`), 'RECV_BITMAP');
    }
  });

  test('cut short anywhere after its frame', async () => {
    const bytes = recvBitmap();
    for (let cut = SIZE_AT; cut < bytes.length; cut++) {
      await refused(bytes.subarray(0, cut), /return path ended/, 'RECV_BITMAP');
    }
  });
});

describe('framing', () => {
  const frame = (type: number, payload: number[] | Buffer) => {
    const p = Buffer.from(payload);
    const h = Buffer.alloc(4);
    h.writeUInt16BE(type, 0);
    h.writeUInt16BE(p.length, 2);
    return Buffer.concat([h, p]);
  };

  test('messages as the destination writes them', async () => {
    const sink = collectingSink();
    const w = new ReturnPathWriter(sink);
    w.pong(0x42);
    w.switchoverAck();
    w.resumeAck();
    w.shut(1);
    const f = reader(sink.bytes(), 3);
    const types: number[] = [];
    for (let m = await readRpMessage(f); m; m = await readRpMessage(f)) types.push(m.type);
    expect(types).toEqual([MIG_RP_MSG.PONG, MIG_RP_MSG.SWITCHOVER_ACK, MIG_RP_MSG.RESUME_ACK, MIG_RP_MSG.SHUT]);
  });

  test('INVALID, unknown types, wrong fixed lengths, over 512 bytes, and cut short', async () => {
    await refused(frame(0, []), /invalid message 0x0/);
    await refused(frame(MIG_RP_MSG.MAX, []), /invalid message 0x8/);
    await refused(frame(0xffff, []), /invalid message 0xffff/);
    await refused(frame(MIG_RP_MSG.SHUT, [0, 0, 0]), /bad length 0x3/);
    await refused(frame(MIG_RP_MSG.REQ_PAGES, Buffer.alloc(13)), /bad length 0xd/);
    await refused(frame(MIG_RP_MSG.SWITCHOVER_ACK, [1]), /bad length/);
    await refused(frame(MIG_RP_MSG.REQ_PAGES_ID, Buffer.alloc(513)), /bad length 0x201/);
    await refused(frame(MIG_RP_MSG.PONG, [0, 0, 0, 1]).subarray(0, 2), /inside a message header/);
    await refused(frame(MIG_RP_MSG.PONG, [0, 0, 0, 1]).subarray(0, 6), /inside a message/);
  });
});
