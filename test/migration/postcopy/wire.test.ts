/**
 * Postcopy's payloads (lib/migration/postcopy/wire.ts): every encoder's output decodes to what
 * went in, and every decoder refuses a payload that is short, long or malformed with a
 * MigrationError whose code and field say which command or message it was.
 */
import { MigrationError } from '../../../lib/migration/errors';
import {
  bitmapWireBytes, decodeAdvise, decodeCounted, decodeDiscard, decodeReqPages, DISCARD_VERSION, encodeAdvise, encodeCounted, encodeDiscard,
  encodeReqPages,
} from '../../../lib/migration/postcopy/wire';

const BLOCK = 'riscv_virt_board.ram';

function refused(fn: () => unknown, code: string, field: string, section: string): MigrationError {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(MigrationError);
  const m = err as MigrationError;
  expect({ code: m.code, field: m.field, section: m.section }).toEqual({ code, field, section });
  return m;
}

const cmd = (fn: () => unknown, field: string) => refused(fn, 'EMIG_COMMAND', field, 'command');
const rp = (fn: () => unknown, field: string) => refused(fn, 'EMIG_RETURN_PATH', field, 'return-path');

describe('POSTCOPY_ADVISE', () => {
  test('round-trips, big-endian', () => {
    const p = encodeAdvise(4096 | 2 ** 21, 4096);
    expect(Buffer.from(p).toString('hex')).toBe('0000000000201000' + '0000000000001000');
    expect(decodeAdvise(p)).toEqual({ pageSizeSummary: 4096 | 2 ** 21, targetPageSize: 4096 });
  });

  test('anything but 16 bytes is refused', () => {
    for (const n of [0, 8, 15, 17, 32]) cmd(() => decodeAdvise(new Uint8Array(n)), 'POSTCOPY_ADVISE');
  });

  test('a page size of 2^53 or more is refused as the command, not as some offset', () => {
    const p = Buffer.from(encodeAdvise(4096, 4096));
    p.writeBigUInt64BE(2n ** 63n, 0);
    expect(cmd(() => decodeAdvise(p), 'POSTCOPY_ADVISE').message).toMatch(/out of range/);
    const q = Buffer.from(encodeAdvise(4096, 4096));
    q.writeBigUInt64BE(2n ** 53n, 8);
    cmd(() => decodeAdvise(q), 'POSTCOPY_ADVISE');
  });
});

describe('POSTCOPY_RAM_DISCARD', () => {
  test('round-trips with 1 and 12 ranges, and the layout is QEMU\'s', () => {
    const one = encodeDiscard(BLOCK, [{ start: 0x1000, length: 0x3000 }]);
    expect(one[0]).toBe(DISCARD_VERSION);
    expect(one[1]).toBe(BLOCK.length);
    expect(Buffer.from(one.subarray(2, 2 + BLOCK.length)).toString('latin1')).toBe(BLOCK);
    expect(one[2 + BLOCK.length]).toBe(0);
    expect(one.length).toBe(3 + BLOCK.length + 16);
    expect(decodeDiscard(one)).toEqual({ block: BLOCK, ranges: [{ start: 0x1000, length: 0x3000 }] });
    const many = Array.from({ length: 12 }, (_, i) => ({ start: i * 0x10000 + 2 ** 40, length: 0x1000 * (i + 1) }));
    expect(decodeDiscard(encodeDiscard('b', many))).toEqual({ block: 'b', ranges: many });
  });

  test('a name that leaves room for no range is a command with no ranges (QEMU allows it)', () => {
    const name = 'x'.repeat(17); // 3 + 17 = 20: QEMU's minimum length
    expect(decodeDiscard(encodeDiscard(name, []))).toEqual({ block: name, ranges: [] });
  });

  test('short, partial range, wrong version, name past the end, unterminated name, huge range', () => {
    const good = Buffer.from(encodeDiscard(BLOCK, [{ start: 0, length: 0x1000 }]));
    cmd(() => decodeDiscard(new Uint8Array(0)), 'POSTCOPY_RAM_DISCARD');
    cmd(() => decodeDiscard(good.subarray(0, 19)), 'POSTCOPY_RAM_DISCARD');
    cmd(() => decodeDiscard(good.subarray(0, good.length - 1)), 'POSTCOPY_RAM_DISCARD');
    cmd(() => decodeDiscard(Buffer.concat([good, Buffer.alloc(8)])), 'POSTCOPY_RAM_DISCARD');
    const v1 = Buffer.from(good);
    v1[0] = 1;
    expect(cmd(() => decodeDiscard(v1), 'POSTCOPY_RAM_DISCARD').message).toMatch(/version/);
    const longName = Buffer.from(good);
    longName[1] = 200;
    cmd(() => decodeDiscard(longName), 'POSTCOPY_RAM_DISCARD');
    const unterminated = Buffer.from(good);
    unterminated[2 + BLOCK.length] = 0x41;
    expect(cmd(() => decodeDiscard(unterminated), 'POSTCOPY_RAM_DISCARD').message).toMatch(/not terminated/);
    const huge = Buffer.from(good);
    huge.writeBigUInt64BE(2n ** 60n, 3 + BLOCK.length);
    cmd(() => decodeDiscard(huge), 'POSTCOPY_RAM_DISCARD');
    const hugeLen = Buffer.from(good);
    hugeLen.writeBigUInt64BE(2n ** 64n - 1n, 3 + BLOCK.length + 8);
    cmd(() => decodeDiscard(hugeLen), 'POSTCOPY_RAM_DISCARD');
  });
});

describe('counted block name (RECV_BITMAP)', () => {
  test('round-trips, the empty name and 255 bytes included', () => {
    for (const n of ['', BLOCK, 'n'.repeat(255)]) expect(decodeCounted(encodeCounted(n), 'RECV_BITMAP')).toBe(n);
  });

  test('empty, short or long payloads are refused naming the caller\'s command', () => {
    const good = Buffer.from(encodeCounted(BLOCK));
    cmd(() => decodeCounted(new Uint8Array(0), 'RECV_BITMAP'), 'RECV_BITMAP');
    cmd(() => decodeCounted(good.subarray(0, good.length - 1), 'RECV_BITMAP'), 'RECV_BITMAP');
    cmd(() => decodeCounted(Buffer.concat([good, Buffer.from([0])]), 'RECV_BITMAP'), 'RECV_BITMAP');
  });
});

describe('REQ_PAGES / REQ_PAGES_ID', () => {
  test('round-trip with and without a block name', () => {
    const id = encodeReqPages(2 ** 40 + 0x3000, 0x1000, BLOCK);
    expect(id.length).toBe(13 + BLOCK.length);
    expect(decodeReqPages(id, true)).toEqual({ start: 2 ** 40 + 0x3000, len: 0x1000, block: BLOCK });
    const plain = encodeReqPages(0x5000, 0x1000);
    expect(plain.length).toBe(12);
    expect(decodeReqPages(plain, false)).toEqual({ start: 0x5000, len: 0x1000 });
  });

  test('short, long and malformed names are refused, naming the message', () => {
    const id = Buffer.from(encodeReqPages(0, 0x1000, BLOCK));
    const plain = Buffer.from(encodeReqPages(0, 0x1000));
    rp(() => decodeReqPages(plain.subarray(0, 11), false), 'REQ_PAGES');
    rp(() => decodeReqPages(Buffer.concat([plain, Buffer.from([0])]), false), 'REQ_PAGES');
    rp(() => decodeReqPages(plain, true), 'REQ_PAGES_ID');
    rp(() => decodeReqPages(id.subarray(0, 11), true), 'REQ_PAGES_ID');
    rp(() => decodeReqPages(id.subarray(0, id.length - 1), true), 'REQ_PAGES_ID');
    rp(() => decodeReqPages(Buffer.concat([id, Buffer.from([0])]), true), 'REQ_PAGES_ID');
  });
});

test('the received bitmap travels in whole be64 words', () => {
  expect([0, 1, 8, 63, 64, 65, 4096].map(bitmapWireBytes)).toEqual([0, 8, 8, 8, 8, 16, 512]);
});
