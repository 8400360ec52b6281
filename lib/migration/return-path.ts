/**
 * The return path: destination → source messages on the reverse direction of the main channel
 * (QEMU migration.c source_return_path_thread / migrate_send_rp_message).
 *
 *   be16 type │ be16 len │ payload[len]
 *
 *   1 SHUT      be32 status (0 ok)          2 PONG   be32 echo of PING
 *   3 REQ_PAGES_ID  be64 start, be32 len, cstr8 block     4 REQ_PAGES  be64 start, be32 len
 *   5 RECV_BITMAP   cstr8 block (+ bitmap outside the frame)  6 RESUME_ACK be32 1
 *   7 SWITCHOVER_ACK
 *
 * The source checks every message: known type, the fixed length where there is one, and no
 * message over 512 bytes.
 */
import { native } from '../host';
import type { ByteSink, QemuFileReader } from '../stream';
import { RP_MSG_MAX } from '../stream';
import { MigrationError } from './errors';
import { MIG_RP_MSG, MIG_RP_MSG_LEN } from './wire';

export interface RpMessage {
  type: number;
  payload: Uint8Array;
  /** RECV_BITMAP: the bitmap that follows the frame (size and end mark checked) */
  extra?: Uint8Array;
}

/** RAMBLOCK_RECV_BITMAP_ENDING */
const RECV_BITMAP_ENDING = 0x0123456789abcdefn;
/** A received bitmap is at most this long: 1 bit per 4 KiB page of the 64 GiB RAM maximum. */
export const RECV_BITMAP_MAX = (64 * 2 ** 30) / 4096 / 8;

/** How long a return-path message may wait for room in the socket before the write fails. */
const LOCKED_WRITE_TIMEOUT_MS = 10000;

/** Destination side: frames and sends messages. */
export class ReturnPathWriter {
  private readonly out: (bytes: Uint8Array) => void;

  /**
   * `lockedFd`: write through the addon's per-socket lock instead of the channel, because
   * another thread (postcopy's fault worker) writes page requests on the same socket and a
   * message must never be split by another.
   */
  constructor(sink: ByteSink, lockedFd?: number) {
    this.out = lockedFd === undefined ? (b) => void sink.write(b) : (b) => void native.lockedWriteAll(lockedFd, b, LOCKED_WRITE_TIMEOUT_MS);
  }

  send(type: number, payload: Uint8Array = new Uint8Array(0), trailer?: Uint8Array): void {
    const msg = Buffer.alloc(4 + payload.length + (trailer?.length ?? 0));
    msg.writeUInt16BE(type, 0);
    msg.writeUInt16BE(payload.length, 2);
    msg.set(payload, 4);
    // RECV_BITMAP's bitmap follows its frame; one write keeps it in one piece.
    if (trailer) msg.set(trailer, 4 + payload.length);
    this.out(msg);
  }

  shut(status: number): void {
    const p = Buffer.alloc(4);
    p.writeUInt32BE(status >>> 0);
    this.send(MIG_RP_MSG.SHUT, p);
  }

  pong(value: number): void {
    const p = Buffer.alloc(4);
    p.writeUInt32BE(value >>> 0);
    this.send(MIG_RP_MSG.PONG, p);
  }

  /** switchover-ack: no device here needs to finish anything before the switchover. */
  switchoverAck(): void {
    this.send(MIG_RP_MSG.SWITCHOVER_ACK);
  }

  /** Recovery: block `name`'s received bitmap (`bits`: 1 bit per page, `pages` pages) in the
   * wire's order — page i = byte i/8, bit i%8 — then the end mark. */
  recvBitmap(name: string, bits: Int32Array, pages: number): void {
    const nameBytes = Buffer.from(name, 'latin1');
    const payload = Buffer.alloc(1 + nameBytes.length);
    payload[0] = nameBytes.length;
    nameBytes.copy(payload, 1);
    const size = Math.ceil(Math.ceil(pages / 8) / 8) * 8;
    const trailer = Buffer.alloc(8 + size + 8);
    trailer.writeBigUInt64BE(BigInt(size), 0);
    for (let w = 0; w < bits.length && w * 4 < size; w++) trailer.writeUInt32LE(Atomics.load(bits, w) >>> 0, 8 + w * 4);
    trailer.writeBigUInt64BE(RECV_BITMAP_ENDING, 8 + size);
    this.send(MIG_RP_MSG.RECV_BITMAP, payload, trailer);
  }

  resumeAck(): void {
    const p = Buffer.alloc(4);
    p.writeUInt32BE(1);
    this.send(MIG_RP_MSG.RESUME_ACK, p);
  }
}

/** Source side: reads the next message, or null at a clean end of the channel. */
export async function readRpMessage(f: QemuFileReader): Promise<RpMessage | null> {
  if (!(await f.fill(4)) || !f.has(4)) {
    if (f.buffered === 0 && f.sourceEnded) return null;
    if (f.error && f.buffered === 0) return null;
    throw new MigrationError('EMIG_RETURN_PATH', 'return path ended inside a message header', { section: 'return-path', position: f.position });
  }
  const at = f.position;
  const type = f.getBe16();
  const len = f.getBe16();
  if (type === MIG_RP_MSG.INVALID || type >= MIG_RP_MSG.MAX) {
    throw new MigrationError('EMIG_RETURN_PATH', `Received invalid message 0x${type.toString(16)} length 0x${len.toString(16)}`, { section: 'return-path', position: at });
  }
  const fixed = MIG_RP_MSG_LEN[type];
  if ((fixed !== undefined && fixed >= 0 && len !== fixed) || len > RP_MSG_MAX) {
    throw new MigrationError('EMIG_RETURN_PATH', `Received '${type}' message (0x${type.toString(16)}) with bad length 0x${len.toString(16)}`, {
      section: 'return-path',
      position: at,
    });
  }
  if (!(await f.ensure(len))) {
    throw new MigrationError('EMIG_RETURN_PATH', 'return path ended inside a message', { section: 'return-path', position: f.position });
  }
  const msg: RpMessage = { type, payload: new Uint8Array(f.getBytes(len)) };
  if (type === MIG_RP_MSG.RECV_BITMAP) msg.extra = await readRecvBitmap(f);
  return msg;
}

/** The bitmap after RP RECV_BITMAP: be64 size, the bytes, be64 end mark (ram_dirty_bitmap_reload). */
async function readRecvBitmap(f: QemuFileReader): Promise<Uint8Array> {
  const at = f.position;
  const fail = (detail: string) => new MigrationError('EMIG_RETURN_PATH', detail, { section: 'return-path', field: 'RECV_BITMAP', position: at });
  if (!(await f.ensure(8))) throw fail('return path ended before the received bitmap');
  // As a bigint: a size of 2^53 or more must be refused as a size, not read as 0.
  const size = f.getBe64();
  if (size > BigInt(RECV_BITMAP_MAX) || size % 8n !== 0n) throw fail(`received bitmap of ${size} bytes`);
  const bits = new Uint8Array(Number(size));
  if (!(await f.readInto(bits)) || !(await f.ensure(8))) throw fail('return path ended inside the received bitmap');
  if (f.getBe64() !== RECV_BITMAP_ENDING) throw fail('received bitmap end mark is wrong');
  return bits;
}

export function be32At(p: Uint8Array, off = 0): number {
  return ((p[off] << 24) | (p[off + 1] << 16) | (p[off + 2] << 8) | p[off + 3]) >>> 0;
}
