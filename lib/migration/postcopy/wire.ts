/**
 * Postcopy's payloads (QEMU savevm.c qemu_savevm_send_postcopy_*, migration.c
 * migrate_send_rp_*), all big-endian:
 *
 *   CMD POSTCOPY_ADVISE (16)   be64 page-size summary (OR of every block's page size)
 *                              be64 target page size
 *   CMD POSTCOPY_RAM_DISCARD   u8 version 0 │ u8 len │ block idstr │ u8 0 │ n × (be64 start,
 *                              be64 length)   byte offsets in the block; QEMU sends ≤ 12 ranges
 *   CMD PACKAGED (4)           be32 size — then `size` bytes of nested stream, outside the frame
 *   CMD RECV_BITMAP            u8 len │ block idstr
 *   RP  REQ_PAGES_ID           be64 start │ be32 len │ u8 len │ block idstr
 *   RP  REQ_PAGES (12)         be64 start │ be32 len  (the block of the last REQ_PAGES_ID)
 *   RP  RECV_BITMAP            u8 len │ block idstr — then, outside the frame: be64 size,
 *                              `size` bytes of bitmap (page i = byte i/8, bit i%8), be64 end mark
 *   RP  RESUME_ACK (4)         be32 1
 *
 * Every decoder checks lengths against the payload before reading; a bad payload throws a
 * MigrationError naming the command and field.
 */
import { MigrationError } from '../errors';

/** PING value meaning "the device package has loaded" (QEMU_VM_PING_PACKAGED_LOADED). */
export const PING_PACKAGED_LOADED = 0x42;
/** MIGRATION_RESUME_ACK_VALUE. */
export const RESUME_ACK_VALUE = 1;
/** RAMBLOCK_RECV_BITMAP_ENDING: closes a received bitmap on the return path. */
export const RECV_BITMAP_ENDING = 0x0123456789abcdefn;
/** postcopy_ram_discard_version. */
export const DISCARD_VERSION = 0;
/** QEMU's MAX_DISCARDS_PER_COMMAND. */
export const MAX_DISCARDS_PER_COMMAND = 12;

const cmdError = (field: string, detail: string) => new MigrationError('EMIG_COMMAND', detail, { section: 'command', field });

/** A be64 of command `what`'s payload; the error names the command, as every other check does. */
function be64(b: Buffer, at: number, what: string): number {
  const v = b.readBigUInt64BE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw cmdError(what, `value 0x${v.toString(16)} at byte ${at} is out of range`);
  return Number(v);
}

export function encodeAdvise(pageSizeSummary: number, targetPageSize: number): Uint8Array {
  const b = Buffer.alloc(16);
  b.writeBigUInt64BE(BigInt(pageSizeSummary), 0);
  b.writeBigUInt64BE(BigInt(targetPageSize), 8);
  return b;
}

export function decodeAdvise(p: Uint8Array): { pageSizeSummary: number; targetPageSize: number } {
  if (p.length !== 16) throw cmdError('POSTCOPY_ADVISE', `advise of ${p.length} bytes (this destination migrates RAM by postcopy: 16 expected)`);
  const b = Buffer.from(p.buffer, p.byteOffset, p.length);
  return { pageSizeSummary: be64(b, 0, 'POSTCOPY_ADVISE'), targetPageSize: be64(b, 8, 'POSTCOPY_ADVISE') };
}

export interface DiscardRange {
  start: number;
  length: number;
}

export function encodeDiscard(block: string, ranges: readonly DiscardRange[]): Uint8Array {
  const name = Buffer.from(block, 'latin1');
  const b = Buffer.alloc(3 + name.length + 16 * ranges.length);
  b[0] = DISCARD_VERSION;
  b[1] = name.length;
  name.copy(b, 2);
  b[2 + name.length] = 0;
  let at = 3 + name.length;
  for (const r of ranges) {
    b.writeBigUInt64BE(BigInt(r.start), at);
    b.writeBigUInt64BE(BigInt(r.length), at + 8);
    at += 16;
  }
  return b;
}

/** loadvm_postcopy_ram_handle_discard()'s checks. */
export function decodeDiscard(p: Uint8Array): { block: string; ranges: DiscardRange[] } {
  const b = Buffer.from(p.buffer, p.byteOffset, p.length);
  if (b.length < 2 + 1 + 16 + 1) throw cmdError('POSTCOPY_RAM_DISCARD', `discard command of ${b.length} bytes is too short`);
  if (b[0] !== DISCARD_VERSION) throw cmdError('POSTCOPY_RAM_DISCARD', `Expected version ${DISCARD_VERSION}, got ${b[0]}`);
  const len = b[1];
  if (3 + len > b.length || (b.length - 3 - len) % 16 !== 0) {
    throw cmdError('POSTCOPY_RAM_DISCARD', `discard command length ${b.length} does not fit a ${len}-byte name and whole ranges`);
  }
  const block = b.toString('latin1', 2, 2 + len);
  if (b[2 + len] !== 0) throw cmdError('POSTCOPY_RAM_DISCARD', 'block name not terminated');
  const ranges: DiscardRange[] = [];
  for (let at = 3 + len; at < b.length; at += 16) ranges.push({ start: be64(b, at, 'POSTCOPY_RAM_DISCARD'), length: be64(b, at + 8, 'POSTCOPY_RAM_DISCARD') });
  return { block, ranges };
}

export function encodeCounted(name: string): Uint8Array {
  const n = Buffer.from(name, 'latin1');
  const b = Buffer.alloc(1 + n.length);
  b[0] = n.length;
  n.copy(b, 1);
  return b;
}

/** RECV_BITMAP (command and RP message share the payload: a counted block name). */
export function decodeCounted(p: Uint8Array, what: string): string {
  if (p.length < 1 || p[0] + 1 !== p.length) throw cmdError(what, `block name of ${p.length} bytes is malformed`);
  return Buffer.from(p.buffer, p.byteOffset + 1, p[0]).toString('latin1');
}

export function encodeReqPages(start: number, len: number, block?: string): Uint8Array {
  const name = block === undefined ? null : Buffer.from(block, 'latin1');
  const b = Buffer.alloc(12 + (name ? 1 + name.length : 0));
  b.writeBigUInt64BE(BigInt(start), 0);
  b.writeUInt32BE(len, 8);
  if (name) {
    b[12] = name.length;
    name.copy(b, 13);
  }
  return b;
}

/** REQ_PAGES / REQ_PAGES_ID; the caller checks alignment and range against the block. */
export function decodeReqPages(p: Uint8Array, withId: boolean): { start: number; len: number; block?: string } {
  const b = Buffer.from(p.buffer, p.byteOffset, p.length);
  const rp = (detail: string) => new MigrationError('EMIG_RETURN_PATH', detail, { section: 'return-path', field: withId ? 'REQ_PAGES_ID' : 'REQ_PAGES' });
  if (b.length < 12) throw rp(`page request of ${b.length} bytes`);
  const start = Number(b.readBigUInt64BE(0));
  const len = b.readUInt32BE(8);
  if (!withId) {
    if (b.length !== 12) throw rp(`page request of ${b.length} bytes (12 expected)`);
    return { start, len };
  }
  if (b.length < 13 || 13 + b[12] !== b.length) throw rp('page request with a malformed block name');
  return { start, len, block: b.toString('latin1', 13, 13 + b[12]) };
}

/** The received bitmap of a block as it travels: little-endian bit order, rounded up to 8 bytes. */
export function bitmapWireBytes(pages: number): number {
  return Math.ceil(Math.ceil(pages / 8) / 8) * 8;
}
