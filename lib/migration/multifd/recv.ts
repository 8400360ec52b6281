/**
 * The destination's multifd channels (QEMU multifd_recv_setup, multifd_recv_new_channel,
 * multifd_recv_sync_main), on the main thread:
 *
 *   adopt(ch)   a connection whose first bytes are MULTIFD_MAGIC: its initial packet is read
 *               and checked (magic, version, uuid, id, not seen twice), then the socket goes
 *               to its own worker thread (recv-worker.ts), which places pages in guest RAM
 *   flush()     MULTIFD_FLUSH on the main stream: wait (without blocking the event loop) until
 *               every channel has placed everything before its next SYNC packet, then let them
 *               all go on. The main stream is read no further meanwhile, so nothing after the
 *               flush (the next pass, device state, the guest starting) can overtake a page
 *   close()     the load is over: workers stop, sockets close
 *
 * Any failure (a bad packet, a broken channel, one that ended before the SYNC it owed, a
 * channel that never came) goes once to `onFailure`, which fails the load as a broken main
 * stream would.
 */
import { Worker } from 'node:worker_threads';
import { native } from '../../host';
import type { RamBlock } from '../../machine/ram';
import type { FdChannel } from '../../transport/fd-channel';
import { peekSocket } from '../../transport/peek';
import { MigrationError } from '../errors';
import type { FromRecvWorker, RecvWorkerData } from './recv-worker';
import { workerPath } from './send';
import { ALL, ChannelShare, CTL, newAll, STAT, waitChange } from './shared';
import { decodeInit, MULTIFD_INIT_BYTES } from './wire';

/** How long a flush waits for a channel that has not connected at all. The source opens every
 * channel before it sends the block list, so only a broken source leaves one out. */
export const MISSING_CHANNEL_MS = 30_000;

export interface MultifdReceiverOptions {
  channels: number;
  /** our qemu_uuid (-uuid, or all zeros): the initial packets must carry the same */
  uuid: Uint8Array;
  /** the blocks pages may arrive for */
  blocks: readonly RamBlock[];
  /** per block, the pages known zero (ram-load.ts knownZeroPages, shared memory) or null */
  knownZero: ReadonlyArray<Uint32Array | null>;
  /** the populate worker's cursor and its block, when one runs */
  populate(): { shared: SharedArrayBuffer; block: RamBlock } | null;
  onFailure(err: MigrationError): void;
}

interface Channel {
  readonly share: ChannelShare;
  readonly worker: Worker;
  readonly gone: Promise<void>;
  /** our own descriptor, to shut the socket down (the worker owns and closes its own); -1
   * until the channel connected */
  fd: number;
  ended: boolean;
}

export class MultifdReceiver {
  private readonly chans: Channel[];
  private readonly all = newAll();
  private flushes = 0;
  private failure: MigrationError | null = null;
  private closed = false;
  private closing: Promise<void> | null = null;

  /** Starts every channel's thread now, before any connection: a thread takes tens of
   * milliseconds to start, which should not come out of the migration's time. */
  constructor(private readonly o: MultifdReceiverOptions) {
    this.chans = Array.from({ length: o.channels }, (_, id) => this.spawn(id));
  }

  /** Bytes read on every channel so far. */
  get bytes(): number {
    let n = 0;
    for (const c of this.chans) if (c.fd >= 0) n += c.share.stats[STAT.BYTES] + MULTIFD_INIT_BYTES;
    return n;
  }

  /** A new connection that starts with MULTIFD_MAGIC (peeked, nothing read yet). */
  async adopt(ch: FdChannel): Promise<void> {
    try {
      const init = await peekSocket(ch.fd!, MULTIFD_INIT_BYTES, MISSING_CHANNEL_MS, 'multifd');
      if (init.length < MULTIFD_INIT_BYTES) {
        throw new MigrationError('EMIG_MULTIFD', `the channel ended after ${init.length} of the ${MULTIFD_INIT_BYTES} bytes of its initial packet`, { section: 'multifd', field: 'initial packet' });
      }
      const id = decodeInit(init, this.o.channels, this.o.uuid);
      const c = this.chans[id];
      if (c.fd >= 0) throw new MigrationError('EMIG_MULTIFD', `multifd: channel ${id} connected twice`, { section: 'multifd', field: 'id' });
      if (this.closed || this.failure) return ch.destroy();
      // The initial packet is there (peeked): take exactly it, so nothing is read ahead.
      native.read(ch.fd!, Buffer.alloc(MULTIFD_INIT_BYTES), 0, MULTIFD_INIT_BYTES);
      const fd = ch.detach();
      c.fd = native.dup(fd);
      c.share.handOver(fd);
      this.wake();
    } catch (e) {
      ch.destroy();
      this.fail(e instanceof MigrationError ? e : new MigrationError('EMIG_MULTIFD', (e as Error).message, { section: 'multifd', cause: e }));
    }
  }

  private spawn(id: number): Channel {
    const share = ChannelShare.create();
    const pop = this.o.populate();
    const data: RecvWorkerData = {
      id,
      blocks: this.o.blocks.map((b) => ({ name: b.name, addr: b.mapping.addr, size: b.size })),
      share: share.buffer,
      all: this.all.buffer as SharedArrayBuffer,
      populate: pop ? { shared: pop.shared, block: this.o.blocks.indexOf(pop.block) } : null,
      knownZero: this.o.knownZero.map((z) => (z ? (z.buffer as SharedArrayBuffer) : null)),
    };
    const worker = new Worker(workerPath('recv-worker'), { workerData: data, name: `multifdrecv_${id}` });
    // The migration's own handles keep the process alive while it runs; a thread never handed
    // a socket must not keep it alive after.
    worker.unref();
    const c: Channel = { share, worker, gone: new Promise((resolve) => worker.once('exit', () => resolve())), fd: -1, ended: false };
    worker.on('message', (m: FromRecvWorker) => {
      if (m.type === 'ended') return this.ended(c);
      this.fail(new MigrationError(m.code === 'EMIG_TRUNCATED' ? 'EMIG_TRUNCATED' : 'EMIG_MULTIFD', `channel ${id}: ${m.detail}`, { section: 'multifd', field: m.field }));
    });
    worker.on('error', (e) => this.fail(new MigrationError('EMIG_MULTIFD', `channel ${id}: ${e.message}`, { section: 'multifd', cause: e })));
    return c;
  }

  /** MULTIFD_FLUSH (QEMU multifd_recv_sync_main). Throws the channels' failure. */
  async flush(): Promise<void> {
    const k = ++this.flushes;
    const t0 = performance.now();
    for (;;) {
      this.check();
      const seen = Atomics.load(this.all, ALL.ARRIVED);
      const waiting = this.chans.findIndex((c) => Atomics.load(c.share.ctl, CTL.SYNCS) < k);
      if (waiting < 0) break;
      const c = this.chans[waiting];
      if (c.ended) this.fail(new MigrationError('EMIG_MULTIFD', `channel ${waiting} ended before its SYNC packet`, { section: 'multifd' }));
      if (c.fd < 0 && performance.now() - t0 > MISSING_CHANNEL_MS) {
        this.fail(new MigrationError('EMIG_MULTIFD', `channel ${waiting} of ${this.o.channels} never connected`, { section: 'multifd', field: 'id' }));
      }
      await waitChange(this.all, ALL.ARRIVED, seen, 100);
    }
    for (const c of this.chans) {
      Atomics.store(c.share.ctl, CTL.RELEASE, k);
      Atomics.notify(c.share.ctl, CTL.RELEASE);
    }
  }

  /** The load is over (or failed): every channel thread is told to stop and its socket shut
   * down, so none reads another byte. Resolves once the threads are gone; the guest need not
   * wait for that (they no longer touch RAM). */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closed = true;
    for (const c of this.chans) {
      c.share.quit();
      if (c.fd < 0) continue;
      try {
        native.shutdown(c.fd);
      } catch {
        /* already gone */
      }
    }
    this.closing = Promise.all(this.chans.map((c) => c.gone)).then(() => {
      for (const c of this.chans) if (c.fd >= 0) native.close(c.fd);
    });
    return this.closing;
  }

  private ended(c: Channel): void {
    c.ended = true;
    this.wake();
  }

  private check(): void {
    if (this.failure) throw this.failure;
  }

  private fail(err: MigrationError): void {
    if (this.failure || this.closed) return;
    this.failure = err;
    this.wake();
    this.o.onFailure(err);
  }

  private wake(): void {
    Atomics.add(this.all, ALL.ARRIVED, 1);
    Atomics.notify(this.all, ALL.ARRIVED);
  }
}
