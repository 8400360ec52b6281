/**
 * The preempt channel's reader (lib/migration/postcopy/preempt.ts): a stream of page records
 * as the page server writes them (pageRecordHeader + the page), fed whole, one byte at a time
 * and split at every byte boundary, places the same pages every time (STYLE 14); hostile
 * records are refused with EMIG_RAM naming the field before anything is placed.
 */
import { MigrationError } from '../../../lib/migration/errors';
import { pageRecordHeader, readPreemptRecords, type PreemptBlock } from '../../../lib/migration/postcopy/preempt';
import { RAM_SAVE_FLAG } from '../../../lib/migration/wire';
import { chunkSource, QemuFileReader } from '../../../lib/stream';

const PAGE = 4096;
const RAM = 'riscv_virt_board.ram';
const ROM = 'riscv_virt_board.mrom';
const BLOCKS: PreemptBlock[] = [
  { name: RAM, size: 16 * PAGE },
  { name: ROM, size: 0xf000 },
];

interface Placed {
  block: number;
  page: number;
  kind: number;
  first: number | null;
  last: number | null;
}

function page(fill: number): Buffer {
  const b = Buffer.alloc(PAGE, fill);
  b[0] = fill ^ 0x5a;
  return b;
}

function pageRecord(offset: number, block: string, cont: boolean, fill: number): Buffer {
  return Buffer.concat([pageRecordHeader(offset, RAM_SAVE_FLAG.PAGE, block, cont), page(fill)]);
}

function zeroRecord(offset: number, block: string, cont: boolean, fillByte = 0): Buffer {
  return Buffer.concat([pageRecordHeader(offset, RAM_SAVE_FLAG.ZERO, block, cont), Buffer.from([fillByte])]);
}

const EOS = Buffer.from([0, 0, 0, 0, 0, 0, 0, RAM_SAVE_FLAG.EOS]);

/** What the page server would write for a few requests, across both blocks. */
const RECORDED = Buffer.concat([
  pageRecord(3 * PAGE, RAM, false, 0x11),
  pageRecord(4 * PAGE, RAM, true, 0x22),
  zeroRecord(5 * PAGE, RAM, true),
  pageRecord(0, ROM, false, 0x33),
  pageRecord(15 * PAGE, RAM, false, 0x44),
  zeroRecord(0xe000, ROM, false),
  pageRecord(0xe000 - PAGE, ROM, true, 0x55),
]);

async function read(chunks: Uint8Array[]): Promise<{ placed: Placed[]; position: number }> {
  const placed: Placed[] = [];
  const f = new QemuFileReader(chunkSource(chunks));
  await readPreemptRecords(f, BLOCKS, (block, pg, kind, bytes) => {
    placed.push({ block, page: pg, kind, first: bytes ? bytes[0] : null, last: bytes ? bytes[PAGE - 1] : null });
  });
  return { placed, position: f.position };
}

async function refused(bytes: Buffer, field: string | undefined, detail: RegExp, code = 'EMIG_RAM'): Promise<MigrationError> {
  const placed: number[] = [];
  let err: unknown;
  try {
    await readPreemptRecords(new QemuFileReader(chunkSource([bytes])), BLOCKS, (_b, pg) => placed.push(pg));
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(MigrationError);
  const m = err as MigrationError;
  expect({ code: m.code, section: m.section, field: m.field }).toEqual({ code, section: 'postcopy-preempt', field });
  expect(m.message).toMatch(detail);
  expect(m.position).toBeGreaterThanOrEqual(0);
  return m;
}

describe('a recorded preempt stream', () => {
  let whole: Placed[];

  beforeAll(async () => {
    const r = await read([RECORDED]);
    whole = r.placed;
    expect(r.position).toBe(RECORDED.length);
  });

  test('places every page once, in order, CONTINUE following the block last named', () => {
    expect(whole.map((p) => [p.block, p.page, p.kind])).toEqual([
      [0, 3, RAM_SAVE_FLAG.PAGE],
      [0, 4, RAM_SAVE_FLAG.PAGE],
      [0, 5, RAM_SAVE_FLAG.ZERO],
      [1, 0, RAM_SAVE_FLAG.PAGE],
      [0, 15, RAM_SAVE_FLAG.PAGE],
      [1, 14, RAM_SAVE_FLAG.ZERO],
      [1, 13, RAM_SAVE_FLAG.PAGE],
    ]);
    expect(whole[0]).toMatchObject({ first: 0x11 ^ 0x5a, last: 0x11 });
    expect(whole[6]).toMatchObject({ first: 0x55 ^ 0x5a, last: 0x55 });
  });

  test('one byte at a time', async () => {
    const bytes = Array.from(RECORDED, (b) => Uint8Array.of(b));
    expect((await read(bytes)).placed).toEqual(whole);
  });

  test('split at every byte boundary', async () => {
    // ~20k splits: compare a signature, and let expect() report only a mismatch.
    const sig = JSON.stringify(whole);
    for (let k = 1; k < RECORDED.length; k++) {
      const r = await read([RECORDED.subarray(0, k), RECORDED.subarray(k)]);
      if (JSON.stringify(r.placed) !== sig || r.position !== RECORDED.length) {
        expect({ k, placed: r.placed, position: r.position }).toEqual({ k, placed: whole, position: RECORDED.length });
      }
    }
  });

  test('EOS ends the reader even with bytes behind it', async () => {
    const r = await read([Buffer.concat([RECORDED, EOS, pageRecord(0, RAM, false, 1)])]);
    expect(r.placed).toEqual(whole);
    expect(r.position).toBe(RECORDED.length + EOS.length);
  });
});

describe('hostile records are refused before anything is placed', () => {
  const header = (offset: number, flags: number, block: string | null) => pageRecordHeader(offset, flags, block ?? '', block === null);

  test('flags other than PAGE and ZERO (with CONTINUE), and EOS with CONTINUE', async () => {
    for (const flags of [RAM_SAVE_FLAG.FULL, RAM_SAVE_FLAG.MEM_SIZE, RAM_SAVE_FLAG.XBZRLE, RAM_SAVE_FLAG.HOOK, RAM_SAVE_FLAG.MULTIFD_FLUSH, 0, RAM_SAVE_FLAG.PAGE | RAM_SAVE_FLAG.ZERO]) {
      await refused(Buffer.concat([header(0, flags, RAM), page(1)]), 'flags', /not allowed/);
    }
    await refused(Buffer.concat([header(0, RAM_SAVE_FLAG.EOS | RAM_SAVE_FLAG.CONTINUE, null)]), 'flags', /0x30/);
  });

  test('CONTINUE as the first record: no block has been named on this channel', async () => {
    await refused(pageRecord(0, RAM, true, 1), 'flags', /CONTINUE record without a previous block/);
    await refused(zeroRecord(0, RAM, true), 'flags', /CONTINUE record without a previous block/);
  });

  test('an unknown block', async () => {
    await refused(pageRecord(0, 'riscv_virt_board.ramX', false, 1), 'riscv_virt_board.ramX', /Unknown ramblock/);
    await refused(Buffer.concat([pageRecord(0, RAM, false, 1), pageRecord(0, '', false, 1)]), '', /Unknown ramblock ""/);
  });

  test('an offset outside the block, or whose low bits are not a page boundary', async () => {
    await refused(pageRecord(16 * PAGE, RAM, false, 1), RAM, /Illegal RAM offset 0x10000/);
    await refused(pageRecord(0xf000, ROM, false, 1), ROM, /Illegal RAM offset 0xf000/);
    await refused(zeroRecord(2 ** 40, RAM, false), RAM, /Illegal RAM offset/);
    // A misaligned offset cannot be written: its low bits are read as flags.
    const misaligned = Buffer.from(pageRecord(PAGE, RAM, false, 1));
    misaligned[7] |= 0x01;
    await refused(misaligned, 'flags', /0x9/);
  });

  test('a zero page whose fill byte is not 0', async () => {
    await refused(zeroRecord(0, RAM, false, 7), RAM, /zero page with value 7/);
  });

  test('the channel ending inside a record is a truncation, at every cut', async () => {
    const rec = pageRecord(PAGE, RAM, false, 9);
    for (const cut of [1, 7, 8, 9, 12, 8 + 1 + RAM.length, rec.length - 1]) {
      await refused(rec.subarray(0, cut), undefined, /ended inside/, 'EMIG_TRUNCATED');
    }
  });
});
