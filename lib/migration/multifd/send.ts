/**
 * The source's multifd channels (QEMU multifd_send_setup, multifd_queue_page, multifd_send,
 * multifd_send_sync_main), driven from the main thread:
 *
 *   open()          connect `multifd-channels` sockets to the migration address, write each
 *                   one's initial packet (magic, version, uuid, id), hand the socket to its
 *                   own worker thread (send-worker.ts)
 *   queue(run)      a run of claimed pages of one block → the next channel with a free job
 *                   slot (round robin; waits without blocking the event loop when every
 *                   channel is busy). zero-page-detection: multifd → the channel scans;
 *                   legacy → zero pages are found here and go as ZERO records on the main
 *                   stream; none → every page is a normal page
 *   flushAndSync()  every channel sends a SYNC packet after what it holds; resolves once all
 *                   have (the main stream then carries MULTIFD_FLUSH)
 *   abort(err)      shut every socket down: blocked sends end, workers exit
 *   close()         after completion: workers stop, sockets close (the peer reads EOF)
 *
 * A channel's failure (its socket broke, the peer went away) is reported once through
 * `onFailure`; the outgoing migration fails as for the main channel and the guest keeps
 * running. Statistics come from the workers' shared counters: multifd-bytes, pages.
 */
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { native } from '../../host';
import type { RamBlock } from '../../machine/ram';
import type { ByteChannel, QemuFileWriter } from '../../stream';
import { MigrationError } from '../errors';
import type { ZeroPageDetection } from '../ram-send';
import type { RecordSender, SendBlock } from '../ram-send';
import { ALL, ChannelShare, CTL, JOB, newAll, SLOTS, STAT, waitChange } from './shared';
import type { FromSendWorker, SendWorkerData } from './send-worker';
import { encodeInit, MULTIFD_INIT_BYTES, MULTIFD_PACKET_PAGES } from './wire';

export interface MultifdSenderOptions {
  channels: number;
  /** QEMU's qemu_uuid: -uuid, or all zeros */
  uuid: Uint8Array;
  /** the migrated blocks, in SendBlock.index order (RamSaver.migratedBlocks) */
  blocks: readonly RamBlock[];
  /** a new connection to the migration address */
  connect(): Promise<ByteChannel>;
  /** the first failure of any channel */
  onFailure(err: MigrationError): void;
}

interface Channel {
  readonly id: number;
  readonly share: ChannelShare;
  readonly worker: Worker;
  readonly gone: Promise<void>;
  /** our own descriptor of the socket, to shut it down (the worker owns and closes its own);
   * -1 until connected */
  fd: number;
  posted: number;
}

export class MultifdSender {
  private readonly all = newAll();
  private chans: Channel[] = [];
  private next = 0;
  private failure: MigrationError | null = null;
  private closed = false;
  /** sockets closed: nothing left to shut down (their numbers may be someone else's now) */
  private released = false;
  private readonly isZero = new Uint8Array(MULTIFD_PACKET_PAGES);
  private readonly normalRun = new Int32Array(MULTIFD_PACKET_PAGES);
  private readonly scanRun = new Int32Array(MULTIFD_PACKET_PAGES);

  private constructor(private readonly o: MultifdSenderOptions) {}

  /** Starts every channel's thread and connects its socket (in parallel: a thread takes tens
   * of milliseconds to start). Throws, and closes what it opened, when a connection fails. */
  static async open(o: MultifdSenderOptions): Promise<MultifdSender> {
    const s = new MultifdSender(o);
    for (let id = 0; id < o.channels; id++) s.chans.push(s.spawn(id));
    const opened = await Promise.allSettled(s.chans.map((c) => s.connect(c)));
    const bad = opened.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (bad) {
      s.abort();
      await s.close();
      const e = bad.reason as Error;
      throw e instanceof MigrationError ? e : new MigrationError('EMIG_MULTIFD', `multifd: cannot open a channel: ${e.message}`, { section: 'multifd', cause: e });
    }
    return s;
  }

  private spawn(id: number): Channel {
    const share = ChannelShare.create();
    share.stats[STAT.BYTES] = MULTIFD_INIT_BYTES;
    const data: SendWorkerData = {
      id,
      blocks: this.o.blocks.map((b) => ({ name: b.name, addr: b.mapping.addr, size: b.size })),
      share: share.buffer,
      all: this.all.buffer as SharedArrayBuffer,
    };
    const worker = new Worker(workerPath('send-worker'), { workerData: data, name: `multifdsend_${id}` });
    // The migration's own handles keep the process alive while it runs; a thread never handed
    // a socket must not keep it alive after.
    worker.unref();
    const gone = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    worker.on('message', (m: FromSendWorker) => this.fail(new MigrationError('EMIG_MULTIFD', `channel ${id}: ${m.message}`, { section: 'multifd' })));
    worker.on('error', (e) => this.fail(new MigrationError('EMIG_MULTIFD', `channel ${id}: ${e.message}`, { section: 'multifd', cause: e })));
    worker.on('exit', () => {
      if (!this.closed) this.fail(new MigrationError('EMIG_MULTIFD', `channel ${id}: its thread ended`, { section: 'multifd' }));
    });
    return { id, share, worker, gone, fd: -1, posted: 0 };
  }

  /** Connect, write the initial packet (multifd_send_initial_packet), hand the socket over. */
  private async connect(c: Channel): Promise<void> {
    const ch = await this.o.connect();
    const own = ch as ByteChannel & { detach?(): number; flushed?(): Promise<void> };
    if (ch.fd === undefined || !own.detach || !own.flushed) {
      ch.destroy();
      throw new MigrationError('EMIG_SETTING', 'Migration requires multi-channel URIs (e.g. tcp)');
    }
    ch.write(encodeInit(this.o.uuid, c.id));
    await own.flushed();
    const fd = own.detach();
    c.fd = native.dup(fd);
    c.share.handOver(fd);
  }

  /** Bytes written on every channel: initial packets, headers, pages (multifd-bytes). */
  get bytes(): number {
    let n = 0;
    for (const c of this.chans) n += c.share.stats[STAT.BYTES];
    return n;
  }

  get normalPages(): number {
    let n = 0;
    for (const c of this.chans) n += c.share.stats[STAT.NORMAL];
    return n;
  }

  get zeroPages(): number {
    let n = 0;
    for (const c of this.chans) n += c.share.stats[STAT.ZERO];
    return n;
  }

  async queue(f: QemuFileWriter, s: SendBlock, run: Int32Array, n: number, zero: ZeroPageDetection, records: RecordSender): Promise<void> {
    let pages = run;
    if (zero === 'legacy') {
      // QEMU's save_zero_page on the migration thread: zero pages are ZERO records on the
      // main stream; only the others go to a channel.
      n = this.splitZero(f, s, run, n, records);
      pages = this.normalRun;
      if (n === 0) return;
    }
    const c = await this.freeChannel();
    const job = c.share.slot(c.posted);
    job.head[0] = s.index;
    job.head[1] = n;
    job.head[2] = zero === 'multifd' ? JOB.DETECT_ZERO : 0;
    job.pages.set(pages.subarray(0, n));
    const holes = s.holes;
    const hint = zero === 'multifd' ? 1 : 0;
    for (let k = 0; k < n; k++) {
      const p = pages[k];
      const m = 1 << (p & 31);
      // A page never written is zero: the channel need not read it (reading allocates it).
      // Its bit goes whatever the detection: once sent, a write to it makes it a data page,
      // and a later pass (zero-page-detection may change meanwhile) must read it.
      if (holes !== null && (holes[p >>> 5] & m) !== 0) {
        holes[p >>> 5] &= ~m;
        job.hints[k] = hint;
      } else {
        job.hints[k] = 0;
      }
    }
    this.post(c);
  }

  /** Sends the zero pages of run[0, n) as records; leaves the others in this.normalRun and
   * returns their count. Never-written pages are zero without a look. */
  private splitZero(f: QemuFileWriter, s: SendBlock, run: Int32Array, n: number, records: RecordSender): number {
    const b = s.block;
    const zeros = new Int32Array(n);
    let nz = 0;
    let ns = 0;
    for (let k = 0; k < n; k++) {
      const p = run[k];
      if (s.holes !== null && (s.holes[p >>> 5] & (1 << (p & 31))) !== 0) zeros[nz++] = p;
      else this.scanRun[ns++] = p;
    }
    if (ns > 0) native.zeroScan(b.mapping.addr, b.size, this.scanRun, 0, ns, this.isZero);
    let nn = 0;
    for (let k = 0; k < ns; k++) {
      if (this.isZero[k]) zeros[nz++] = this.scanRun[k];
      else this.normalRun[nn++] = this.scanRun[k];
    }
    // Records in address order, as the scan found them.
    if (nz > 0) records.send(f, s, zeros.subarray(0, nz).sort(), nz, true);
    return nn;
  }

  /** Every channel sends what it holds, then a SYNC packet; resolves once all have. */
  async flushAndSync(): Promise<void> {
    for (const c of this.chans) {
      const ready = await this.freeChannel(c);
      const job = ready.share.slot(ready.posted);
      job.head[1] = 0;
      job.head[2] = JOB.SYNC;
      this.post(ready);
    }
    for (const c of this.chans) {
      for (;;) {
        this.check();
        const seen = Atomics.load(this.all, ALL.DONE_ANY);
        if (Atomics.load(c.share.ctl, CTL.DONE) >= c.posted) break;
        await waitChange(this.all, ALL.DONE_ANY, seen, 100);
      }
    }
    this.check();
  }

  /** Shut every channel down now (cancel, or the migration failed elsewhere). */
  abort(err?: MigrationError): void {
    if (err && !this.failure) this.failure = err;
    if (this.released) return;
    for (const c of this.chans) {
      if (c.fd < 0) continue;
      try {
        native.shutdown(c.fd);
      } catch {
        /* already gone */
      }
    }
    this.wake();
  }

  /** Stop the threads (after the jobs they were given) and close the sockets. */
  async close(): Promise<void> {
    this.closed = true;
    for (const c of this.chans) c.share.quit();
    if (this.failure) this.abort();
    await Promise.all(this.chans.map((c) => c.gone));
    if (this.released) return;
    this.released = true;
    // The channels stay listed: their counters are the migration's statistics.
    for (const c of this.chans) if (c.fd >= 0) native.close(c.fd);
  }

  /** The channel `want` (or the next one round robin) once it has a free job slot. */
  private async freeChannel(want?: Channel): Promise<Channel> {
    for (;;) {
      this.check();
      const seen = Atomics.load(this.all, ALL.DONE_ANY);
      const n = this.chans.length;
      for (let i = 0; i < n; i++) {
        const c = want ?? this.chans[(this.next + i) % n];
        if (c.posted - Atomics.load(c.share.ctl, CTL.DONE) < SLOTS) {
          if (!want) this.next = (this.next + i + 1) % n;
          return c;
        }
        if (want) break;
      }
      await waitChange(this.all, ALL.DONE_ANY, seen, 100);
    }
  }

  private post(c: Channel): void {
    c.posted++;
    Atomics.store(c.share.ctl, CTL.POSTED, c.posted);
    Atomics.notify(c.share.ctl, CTL.POSTED);
  }

  private check(): void {
    if (this.failure) throw this.failure;
  }

  private fail(err: MigrationError): void {
    if (this.failure || this.closed) return;
    this.failure = err;
    this.abort();
    this.o.onFailure(err);
  }

  private wake(): void {
    Atomics.add(this.all, ALL.DONE_ANY, 1);
    Atomics.notify(this.all, ALL.DONE_ANY);
  }
}

export function workerPath(name: string): string {
  // Under ts-jest this module is loaded from lib/; worker threads always run compiled code.
  if (__filename.endsWith('.ts')) return path.resolve(__dirname, `../../../dist/lib/migration/multifd/${name}.js`);
  return path.join(__dirname, `${name}.js`);
}
