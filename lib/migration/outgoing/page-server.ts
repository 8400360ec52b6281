/**
 * The postcopy source's return-path thread (QEMU source_return_path_thread with the preempt
 * channel's sender), a worker_thread with its own event loop, so a page request is answered
 * while the main thread is busy writing the background stream:
 *
 *   return path readable ──▶ REQ_PAGES(_ID): checked against the block; each page still dirty
 *                            is claimed (its bit cleared atomically) and, with a preempt
 *                            channel, written there at once; without one, queued in the
 *                            request ring for the main thread's stream
 *                          ─▶ anything else (SHUT, PONG, SWITCHOVER_ACK, RECV_BITMAP,
 *                            RESUME_ACK): forwarded to the main thread
 *
 * Messages from the main thread: 'preempt' {fd} (send requested pages there from now on; the
 * worker owns the fd), 'no-preempt' (the migration paused: queue requests until a new preempt
 * channel comes), 'end-preempt' (nothing is left to send: end the preempt channel with EOS),
 * 'return-path' {fd} (a recovery's new channel), 'stop'.
 * To it: 'rp' {type, payload, extra?}, 'rp-ended' {error?}, 'preempt-ended', 'stopped'.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { native, windowAt } from '../../host';
import { QemuFileReader } from '../../stream';
import { FdChannel } from '../../transport/fd-channel';
import { MigrationError, type MigrationErrorCode } from '../errors';
import { pageRecordHeader } from '../postcopy/preempt';
import { PageRing, pageKey } from '../postcopy/shared';
import { decodeReqPages } from '../postcopy/wire';
import { readRpMessage } from '../return-path';
import type { RamSaverShare } from '../ram-save';
import { MIG_RP_MSG, RAM_SAVE_FLAG } from '../wire';

export interface PageServerData {
  /** a dup of the main channel's socket: the return path is its read side; the worker owns it */
  rpFd: number;
  ram: RamSaverShare;
  /** requests for the main thread's stream when there is no preempt channel */
  requests: SharedArrayBuffer;
  /** Float64 [0] page requests received (postcopy-requests), [1] pages and [2] bytes sent on
   * the preempt channel (they count in query-migrate's normal and transferred) */
  counters: SharedArrayBuffer;
  /** release-ram: free each page sent */
  releaseRam: boolean;
}

/** Each return path has a generation (0 the first, one more per recovery): what an old one
 * reported can reach the main thread after a new one is in place, and must not count for it. */
export type ToPageServer =
  | { type: 'preempt'; fd: number }
  | { type: 'no-preempt' }
  | { type: 'end-preempt' }
  | { type: 'return-path'; fd: number; generation: number }
  | { type: 'stop' };
/** A MigrationError as it crosses to the main thread (an Error loses its fields there). */
export interface PageServerError {
  code: MigrationErrorCode;
  detail: string;
  section?: string;
  field?: string;
  position?: number;
}

export type FromPageServer =
  | { type: 'rp'; generation: number; msgType: number; payload: Uint8Array; extra?: Uint8Array }
  | { type: 'rp-ended'; generation: number; error?: PageServerError }
  | { type: 'preempt-ended' }
  | { type: 'stopped' };

const PAGE_SIZE = 4096;

class PageServer {
  private readonly ring: PageRing;
  private readonly counters: Float64Array;
  private readonly pages: Uint8Array[];
  private rp: FdChannel;
  private generation = 0;
  private preempt: FdChannel | null = null;
  /** The block of the last REQ_PAGES_ID: REQ_PAGES refers to it. */
  private reqBlock = -1;
  /** The block named last on the preempt channel (its own CONTINUE state). */
  private preemptBlock = -1;
  private stopped = false;

  constructor(private readonly d: PageServerData) {
    this.ring = new PageRing(d.requests);
    this.counters = new Float64Array(d.counters);
    this.pages = d.ram.blocks.map((b) => new Uint8Array(windowAt(b.addr, 0, b.size)));
    this.rp = new FdChannel(d.rpFd, { label: 'return path', writable: false });
  }

  start(): void {
    parentPort!.on('message', (m: ToPageServer) => this.onMessage(m));
    void this.read(this.rp);
  }

  private async read(ch: FdChannel): Promise<void> {
    const generation = this.generation;
    const f = new QemuFileReader(ch);
    let error: PageServerError | undefined;
    try {
      for (;;) {
        const msg = await readRpMessage(f);
        if (!msg) break;
        if (msg.type === MIG_RP_MSG.REQ_PAGES_ID || msg.type === MIG_RP_MSG.REQ_PAGES) this.request(msg.type, msg.payload);
        else this.forward({ type: 'rp', generation, msgType: msg.type, payload: msg.payload, extra: msg.extra });
        if (msg.type === MIG_RP_MSG.SHUT) break;
      }
    } catch (e) {
      error =
        e instanceof MigrationError
          ? { code: e.code, detail: e.detail, section: e.section, field: e.field, position: e.position }
          : { code: 'EMIG_RETURN_PATH', detail: (e as Error).message, section: 'return-path' };
    }
    if (ch === this.rp && !this.stopped) this.forward({ type: 'rp-ended', generation, error });
  }

  /** migrate_handle_rp_req_pages(): checked like QEMU, then served. */
  private request(type: number, payload: Uint8Array): void {
    const r = decodeReqPages(payload, type === MIG_RP_MSG.REQ_PAGES_ID);
    const blocks = this.d.ram.blocks;
    if (r.block !== undefined) {
      this.reqBlock = blocks.findIndex((b) => b.name === r.block);
      if (this.reqBlock < 0) throw new MigrationError('EMIG_RETURN_PATH', `page request for unknown block '${r.block}'`, { section: 'return-path', field: 'REQ_PAGES_ID' });
    } else if (this.reqBlock < 0) {
      throw new MigrationError('EMIG_RETURN_PATH', 'REQ_PAGES before any REQ_PAGES_ID', { section: 'return-path', field: 'REQ_PAGES' });
    }
    const b = blocks[this.reqBlock];
    if (r.start % PAGE_SIZE || r.len % PAGE_SIZE || r.len === 0 || r.start + r.len > b.size) {
      throw new MigrationError('EMIG_RETURN_PATH', `page request 0x${r.start.toString(16)}+0x${r.len.toString(16)} outside '${b.name}' or not page aligned`, {
        section: 'return-path',
        field: r.block !== undefined ? 'REQ_PAGES_ID' : 'REQ_PAGES',
      });
    }
    this.counters[0]++;
    for (let p = r.start / PAGE_SIZE; p < (r.start + r.len) / PAGE_SIZE; p++) {
      if (this.preempt) this.sendNow(this.reqBlock, p);
      else this.ring.push(pageKey(this.reqBlock, p), 0);
    }
  }

  /** Claim the page (it may already be on its way in the background stream) and send it. */
  private sendNow(bi: number, page: number): void {
    const b = this.d.ram.blocks[bi];
    const m = 1 << (page & 31);
    if ((Atomics.and(b.bitmap, page >>> 5, ~m) & m) === 0) return;
    Atomics.sub(this.d.ram.dirty, bi, 1);
    const cont = this.preemptBlock === bi;
    const header = pageRecordHeader(page * PAGE_SIZE, RAM_SAVE_FLAG.PAGE, b.name, cont);
    // One buffer: the page's bytes are taken now, so release-ram may free the page at once.
    const rec = Buffer.allocUnsafe(header.length + PAGE_SIZE);
    rec.set(header, 0);
    rec.set(this.pages[bi].subarray(page * PAGE_SIZE, (page + 1) * PAGE_SIZE), header.length);
    this.preempt!.write(rec);
    this.preemptBlock = bi;
    this.counters[1]++;
    this.counters[2] += rec.length;
    if (this.d.releaseRam) native.punchHole(b.fd, page * PAGE_SIZE, PAGE_SIZE);
  }

  private onMessage(m: ToPageServer): void {
    switch (m.type) {
      case 'preempt':
        this.preempt?.destroy();
        this.preempt = new FdChannel(m.fd, { label: 'preempt', readable: false });
        this.preemptBlock = -1;
        return;
      case 'no-preempt':
        // A page claimed and written into a broken channel is lost: once the recovery has
        // applied the destination's received bitmap, nothing would send it again.
        this.preempt?.destroy();
        this.preempt = null;
        return;
      case 'end-preempt':
        this.endPreempt();
        return;
      case 'return-path':
        this.rp.destroy();
        this.rp = new FdChannel(m.fd, { label: 'return path', writable: false });
        this.generation = m.generation;
        this.reqBlock = -1;
        void this.read(this.rp);
        return;
      case 'stop':
        this.stopped = true;
        this.rp.destroy();
        void (this.preempt?.end() ?? Promise.resolve())
          .catch(() => undefined)
          .finally(() => {
            this.preempt?.destroy();
            this.forward({ type: 'stopped' });
            parentPort!.close();
          });
    }
  }

  /**
   * QEMU postcopy_preempt_shutdown_file: EOS after the last page this thread sent, before the
   * main stream's EOF. The destination finishes only once it has read up to the EOS, so a page
   * still on its way here when the main stream ends is placed, not missed. Any later request
   * finds every page sent already.
   */
  private endPreempt(): void {
    const ch = this.preempt;
    this.preempt = null;
    if (!ch) return this.forward({ type: 'preempt-ended' });
    const eos = Buffer.alloc(8);
    eos.writeUInt32BE(RAM_SAVE_FLAG.EOS, 4);
    ch.write(eos);
    void ch
      .end()
      .catch(() => undefined)
      .finally(() => {
        ch.destroy();
        this.forward({ type: 'preempt-ended' });
      });
  }

  private forward(m: FromPageServer): void {
    parentPort!.postMessage(m);
  }
}

new PageServer(workerData as PageServerData).start();
