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
import type { ByteSink, QemuFileReader } from '../stream';
import { RP_MSG_MAX } from '../stream';
import { MigrationError } from './errors';
import { MIG_RP_MSG, MIG_RP_MSG_LEN } from './wire';

export interface RpMessage {
  type: number;
  payload: Uint8Array;
}

/** Destination side: frames and sends messages. */
export class ReturnPathWriter {
  constructor(private readonly sink: ByteSink) {}

  send(type: number, payload: Uint8Array = new Uint8Array(0)): void {
    const msg = Buffer.alloc(4 + payload.length);
    msg.writeUInt16BE(type, 0);
    msg.writeUInt16BE(payload.length, 2);
    msg.set(payload, 4);
    this.sink.write(msg);
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
  return { type, payload: new Uint8Array(f.getBytes(len)) };
}

export function be32At(p: Uint8Array, off = 0): number {
  return ((p[off] << 24) | (p[off + 1] << 16) | (p[off + 2] << 8) | p[off + 3]) >>> 0;
}
