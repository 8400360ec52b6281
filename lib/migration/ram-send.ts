/**
 * How a run of claimed dirty pages reaches the main stream as RAM records (QEMU ram.c
 * ram_save_target_page_legacy + save_zero_page), one native call per run rather than a
 * JavaScript call per page:
 *
 *   socket sink (FdChannel), nothing queued in it
 *     native.ramSendRecords(fd, …)  records built in `scratch`, sent with sendmsg straight
 *                                   from guest RAM: header │ page │ header │ page …
 *                                   the part the kernel did not take is copied to the spill
 *                                   area of scratch and queued in the channel (putBufferRef)
 *   any other sink (file:, exec:, an in-memory pipe)
 *     native.ramSendRecords(-1, …)  every record copied to scratch, queued as one chunk
 *
 * A queued chunk belongs to the channel until written: a socket's spill has been written by
 * the time the next run goes directly (that waits for an empty queue), so scratch is reused;
 * for any other sink scratch is replaced once handed over.
 * Page bytes are read while the guest runs: the dirty bit was cleared first, so a page that
 * changes under the send is dirty again and goes again next pass (as in QEMU).
 */
import type { RamBlock } from '../machine/ram';
import { native } from '../host';
import type { QemuFileWriter } from '../stream';

/** Pages per run with multifd: QEMU's packet (MULTIFD_PACKET_SIZE 512 KiB of 4 KiB pages). */
export const RUN_PAGES = 128;
/** Pages per run on the main stream: 1 MiB per sendmsg. */
export const RUN_PAGES_MAIN = 256;

import type { ZeroPageDetection } from './options';

export type { ZeroPageDetection };

/** Where runs go instead of the main stream when multifd is on (multifd/send.ts). */
export interface RunChannels {
  /** Hands pages run[0, n) of `s` to a channel (waiting for one to be free); with
   * zero-page-detection legacy the zero pages among them go as records through `records`. */
  queue(f: QemuFileWriter, s: SendBlock, run: Int32Array, n: number, zero: ZeroPageDetection, records: RecordSender): Promise<void>;
  /** Every channel sends what it holds and a SYNC packet (multifd_ram_flush_and_sync). */
  flushAndSync(): Promise<void>;
  readonly normalPages: number;
  readonly zeroPages: number;
}

/** What the senders need of a block being migrated. */
export interface SendBlock {
  readonly block: RamBlock;
  /** index among the migrated blocks (multifd jobs and postcopy keys name it) */
  readonly index: number;
  /** the idstr as bytes, for the record that names the block */
  readonly name: Uint8Array;
  /** pages never written when the migration started and not sent since (zero, unread) */
  holes: Uint32Array | null;
}

/** Bytes a run of `pages` records may take: headers (8 + fill byte), one naming header, pages. */
function scratchBytes(pages: number): number {
  const hdr = pages * 9 + 256;
  return ((hdr + 63) & ~63) + hdr + pages * 4096;
}

export class RecordSender {
  private scratch: Uint8Array;
  private readonly out = new Float64Array(5);
  /** scratch holds a spill that is queued in the sink and not yet written */
  private spillQueued = false;
  /** The block the last record on this stream named (CONTINUE after it). */
  last: SendBlock | null = null;
  normal = 0;
  duplicate = 0;

  constructor(private readonly maxRun = RUN_PAGES) {
    this.scratch = Buffer.allocUnsafeSlow(scratchBytes(maxRun));
  }

  /** True when the sink has bytes queued and a direct send must wait: await f.sinkIdle(). */
  mustWait(f: QemuFileWriter): boolean {
    return f.directCapable && f.directFd() < 0 && !f.error;
  }

  /** Pages run[0, n) of block `s` (claimed, n ≤ maxRun) as records on `f`. */
  send(f: QemuFileWriter, s: SendBlock, run: Int32Array, n: number, detectZero: boolean): void {
    if (f.error || n === 0) return;
    const fd = f.directFd();
    const out = this.out;
    const b = s.block;
    // A spill still queued lives in scratch: a run that cannot go directly (the queue is not
    // empty) must not build its records over it.
    if (fd < 0 && this.spillQueued) this.scratch = Buffer.allocUnsafeSlow(this.scratch.length);
    this.spillQueued = false;
    try {
      native.ramSendRecords(fd, b.mapping.addr, b.size, run, n, detectZero, this.last === s ? null : s.name, s.holes, this.scratch, out);
    } catch (e) {
      f.directFailed(e);
      return;
    }
    this.last = s;
    this.normal += out[0];
    this.duplicate += out[1];
    if (fd >= 0) f.accountDirect(out[2]);
    if (out[4] > 0) {
      f.putBufferRef(this.scratch.subarray(out[3], out[3] + out[4]));
      f.flush();
      // A socket sink is written directly again only once its queue is empty, so the spill
      // is gone by then and scratch can be used again (sending again before that gets a new
      // scratch, above); any other sink may keep it for good.
      if (fd < 0) this.scratch = Buffer.allocUnsafeSlow(this.scratch.length);
      else this.spillQueued = true;
    }
  }
}
