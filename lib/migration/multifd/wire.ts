/**
 * QEMU's multifd wire format (migration/multifd.c, multifd.h, multifd-nocomp.c), big-endian:
 *
 *   initial packet, once per channel (MultiFDInit_t, 64 bytes)
 *   ┌──────────┬──────────┬───────────┬────┬──────────┬──────────────┐
 *   │ magic 4  │ version 4│ uuid 16   │ id │ unused 7 │ unused 32    │
 *   │0x11223344│    1     │ qemu_uuid │ u8 │          │              │
 *   └──────────┴──────────┴───────────┴────┴──────────┴──────────────┘
 *
 *   packet (MultiFDPacket_t, 320 bytes + 8 per page), then the normal pages' bytes
 *    0 magic   4 version   8 flags   12 pages_alloc   16 normal_pages   20 next_packet_size
 *   24 packet_num (be64)  32 zero_pages  36 unused32  40 unused64[3]  64 ramblock[256]
 *  320 offset[normal_pages + zero_pages] (be64 byte offsets in the block: normal, then zero)
 *      then normal_pages × 4096 bytes, in offset order (next_packet_size of them)
 *
 *   flags: bit 0 SYNC; bits 1–5 compression (0 none, 1 zlib, 2 zstd, 4 qpl, 8 uadk, 16 qatzip,
 *   each << 1); bit 6 device-state packet. A SYNC packet carries no pages (QEMU before 9.0
 *   sent pages with it too; they are read either way).
 *
 * The receiver's checks follow QEMU's multifd_recv_initial_packet and
 * multifd_ram_unfill_packet, with QEMU's texts, and add what QEMU leaves to luck: channel ids
 * are below the channel count (QEMU compares with >, one past the end), offsets are page
 * aligned, next_packet_size matches the normal pages (QEMU reads normal_pages × page size
 * whatever it says), and the device-state flag is refused (no device here sends state over
 * multifd). Every failure is an EMIG_MULTIFD MigrationError naming the field.
 */
import { formatUuid } from '../../util/uuid';
import { MigrationError } from '../errors';

export const MULTIFD_MAGIC = 0x11223344;
export const MULTIFD_VERSION = 1;
export const MULTIFD_INIT_BYTES = 64;
/** The fixed part of a packet, before the offsets. */
export const MULTIFD_HEADER_BYTES = 320;
/** MULTIFD_PACKET_SIZE (512 KiB) of 4 KiB target pages: pages_alloc, and the most a packet holds. */
export const MULTIFD_PACKET_PAGES = 128;
export const MULTIFD_RAMBLOCK_BYTES = 256;

export const MULTIFD_FLAG = {
  SYNC: 1 << 0,
  COMPRESSION_MASK: 0x1f << 1,
  NOCOMP: 0,
  ZLIB: 1 << 1,
  ZSTD: 2 << 1,
  QPL: 4 << 1,
  UADK: 8 << 1,
  QATZIP: 16 << 1,
  DEVICE_STATE: 32 << 1,
} as const;

const PAGE = 4096;

const fail = (field: string, detail: string): never => {
  throw new MigrationError('EMIG_MULTIFD', detail, { section: 'multifd', field });
};

/** multifd_send_initial_packet. */
export function encodeInit(uuid: Uint8Array, id: number): Uint8Array {
  const b = Buffer.alloc(MULTIFD_INIT_BYTES);
  b.writeUInt32BE(MULTIFD_MAGIC, 0);
  b.writeUInt32BE(MULTIFD_VERSION, 4);
  b.set(uuid.subarray(0, 16), 8);
  b[24] = id;
  return b;
}

/** multifd_recv_initial_packet: checks magic, version, uuid (against ours: QEMU's qemu_uuid,
 * all zeros without -uuid) and the channel id; returns the id. */
export function decodeInit(b: Uint8Array, channels: number, uuid: Uint8Array): number {
  if (b.length < MULTIFD_INIT_BYTES) fail('initial packet', `received ${b.length} of ${MULTIFD_INIT_BYTES} bytes of the initial packet`);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const magic = dv.getUint32(0);
  if (magic !== MULTIFD_MAGIC) fail('magic', `multifd: received packet magic ${hex(magic)} expected ${hex(MULTIFD_MAGIC)}`);
  const version = dv.getUint32(4);
  if (version !== MULTIFD_VERSION) fail('version', `multifd: received packet version ${version} expected ${MULTIFD_VERSION}`);
  const id = b[24];
  const theirs = b.subarray(8, 24);
  if (!Buffer.from(theirs).equals(Buffer.from(uuid))) {
    fail('uuid', `multifd: received uuid '${formatUuid(theirs)}' and expected uuid '${formatUuid(uuid)}' for channel ${id}`);
  }
  if (id >= channels) fail('id', `multifd: received channel id ${id} is greater than number of channels ${channels}`);
  return id;
}

export interface PacketHeader {
  flags: number;
  pagesAlloc: number;
  normal: number;
  zero: number;
  nextPacketSize: number;
  packetNum: number;
  /** empty when the packet carries no pages */
  ramblock: string;
}

/** Writes the fixed part of a packet into `b` (≥ 320 bytes; the rest of `b` is left alone). */
export function encodeHeader(b: Uint8Array, h: PacketHeader): void {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  dv.setUint32(0, MULTIFD_MAGIC);
  dv.setUint32(4, MULTIFD_VERSION);
  dv.setUint32(8, h.flags);
  dv.setUint32(12, h.pagesAlloc);
  dv.setUint32(16, h.normal);
  dv.setUint32(20, h.nextPacketSize);
  dv.setUint32(24, Math.floor(h.packetNum / 2 ** 32));
  dv.setUint32(28, h.packetNum >>> 0);
  dv.setUint32(32, h.zero);
  b.fill(0, 36, MULTIFD_HEADER_BYTES);
  for (let i = 0; i < h.ramblock.length && i < MULTIFD_RAMBLOCK_BYTES - 1; i++) b[64 + i] = h.ramblock.charCodeAt(i) & 0xff;
}

/** multifd_recv_unfill_packet_header + multifd_ram_unfill_packet, the fixed part. */
export function decodeHeader(b: Uint8Array): PacketHeader {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const magic = dv.getUint32(0);
  if (magic !== MULTIFD_MAGIC) fail('magic', `multifd: received packet magic ${hex(magic)}, expected ${hex(MULTIFD_MAGIC)}`);
  const version = dv.getUint32(4);
  if (version !== MULTIFD_VERSION) fail('version', `multifd: received packet version ${version}, expected ${MULTIFD_VERSION}`);
  const flags = dv.getUint32(8);
  if (flags & MULTIFD_FLAG.DEVICE_STATE) fail('flags', `multifd: received a device state packet (flags ${hex(flags)}); no device here migrates its state over multifd`);
  const comp = flags & MULTIFD_FLAG.COMPRESSION_MASK;
  if (comp !== MULTIFD_FLAG.NOCOMP) fail('flags', `multifd: flags received ${hex(comp)} flags expected ${hex(MULTIFD_FLAG.NOCOMP)}`);
  const pagesAlloc = dv.getUint32(12);
  if (pagesAlloc > MULTIFD_PACKET_PAGES) fail('pages_alloc', `multifd: received packet with ${pagesAlloc} pages, expected ${MULTIFD_PACKET_PAGES}`);
  const normal = dv.getUint32(16);
  if (normal > pagesAlloc) fail('normal_pages', `multifd: received packet with ${normal} non-zero pages, which exceeds maximum expected pages ${pagesAlloc}`);
  const zero = dv.getUint32(32);
  if (zero > pagesAlloc - normal) fail('zero_pages', `multifd: received packet with ${zero} zero pages, expected maximum ${pagesAlloc - normal}`);
  const nextPacketSize = dv.getUint32(20);
  if (nextPacketSize !== normal * PAGE) fail('next_packet_size', `multifd: next_packet_size ${nextPacketSize} does not match ${normal} pages of ${PAGE} bytes`);
  const packetNum = dv.getUint32(24) * 2 ** 32 + dv.getUint32(28);
  let ramblock = '';
  if (normal + zero > 0) {
    // QEMU forces ramblock[255] = 0: the name ends at the first NUL, at most 255 bytes.
    let end = 64;
    while (end < 64 + MULTIFD_RAMBLOCK_BYTES - 1 && b[end] !== 0) end++;
    ramblock = Buffer.from(b.subarray(64, end)).toString('latin1');
  }
  return { flags, pagesAlloc, normal, zero, nextPacketSize, packetNum, ramblock };
}

/** Writes `pages` (indices) as be64 byte offsets at b[at …]. */
export function encodeOffsets(b: Uint8Array, at: number, pages: Int32Array, n: number): void {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  for (let k = 0; k < n; k++) {
    const off = pages[k] * PAGE;
    dv.setUint32(at + 8 * k, Math.floor(off / 2 ** 32));
    dv.setUint32(at + 8 * k + 4, off >>> 0);
  }
}

/** Reads n be64 offsets from b[at …] into page indices, each checked against a block of
 * `blockBytes` ("multifd: offset too long") and for page alignment. */
export function decodeOffsets(b: Uint8Array, at: number, n: number, blockBytes: number, into: Int32Array, block: string): void {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  for (let k = 0; k < n; k++) {
    const hi = dv.getUint32(at + 8 * k);
    const lo = dv.getUint32(at + 8 * k + 4);
    const off = hi * 2 ** 32 + lo;
    if (hi > 0x1fffff || off > blockBytes - PAGE) fail('offset', `multifd: offset too long ${off} (max ${hex(blockBytes)}) in block '${block}'`);
    if (lo % PAGE !== 0) fail('offset', `multifd: offset ${hex(off)} in block '${block}' is not page aligned`);
    into[k] = off / PAGE;
  }
}

function hex(v: number): string {
  return v.toString(16);
}
