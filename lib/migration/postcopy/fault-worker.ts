/**
 * The postcopy destination's fault thread (QEMU postcopy_ram_fault_thread and
 * postcopy_preempt_thread in one worker_thread with its own event loop), so that serving a
 * fault never waits behind the main thread, which is busy loading the background stream:
 *
 *   uffd readable ──▶ read fault events ──▶ page requested? no → REQ_PAGES(_ID) on the return
 *                     (tid → vCPU)            path (locked write: the main thread writes PONG,
 *                                             SHUT… on the same socket)
 *   preempt readable ─▶ RAM records ─▶ place (COPY / CONTINUE) ─▶ waiters run, blocktime ends
 *   placement ring ──▶ pages the main thread placed that a fault waited for ─▶ blocktime ends
 *
 * Messages from the main thread: 'preempt' {fd, gen} (a preempt channel to read; the worker
 * owns the fd), 'return-path' {fd} (after a recovery: the new socket; outstanding requests are sent
 * again), 'pause' (the return path broke: hold requests), 'request' {keys} (the main thread needs
 * these pages present), 'stop'. To the main thread: 'ready' (serving faults: LISTEN may go on),
 * 'error' {message}, 'preempt-ended' {gen} (that channel ended: EOS, its end, or an error).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { native, Userfaultfd, type UffdEvent, type UffdFeature } from '../../host';
import { QemuFileReader } from '../../stream';
import { FdChannel } from '../../transport/fd-channel';
import { RAM_SAVE_FLAG, MIG_RP_MSG } from '../wire';
import { BlocktimeTracker } from './blocktime';
import { PagePlacer, type PlacementMode } from './placement';
import { readPreemptRecords } from './preempt';
import { PageRing, R_WAKE, SharedStats, monotonicMs, pageKey, splitKey, testAndSet, testBit, waitAsync, type SharedBlock } from './shared';
import { encodeReqPages } from './wire';

export interface FaultWorkerData {
  uffd: number;
  features: UffdFeature[];
  blocks: SharedBlock[];
  vcpuTids: number[];
  ring: SharedArrayBuffer;
  stats: SharedArrayBuffer;
  mode: PlacementMode;
  zeropage: boolean;
  /** a dup of the main channel's socket; the worker owns it */
  rpFd: number;
}

export type ToFaultWorker =
  | { type: 'preempt'; fd: number; gen: number }
  | { type: 'return-path'; fd: number }
  | { type: 'pause' }
  | { type: 'request'; keys: number[] }
  | { type: 'stop' };

export type FromFaultWorker = { type: 'ready' } | { type: 'error'; message: string } | { type: 'preempt-ended'; gen: number } | { type: 'stopped' };

const PAGE_SIZE = 4096;
const RP_WRITE_TIMEOUT_MS = 10000;

class FaultWorker {
  private readonly uffd: Userfaultfd;
  private readonly placer: PagePlacer;
  private readonly ring: PageRing;
  private readonly stats: SharedStats;
  private readonly tracker: BlocktimeTracker;
  private readonly vcpuOf = new Map<number, number>();
  private rpFd: number;
  private rpBroken = false;
  private lastRequestedBlock = -1;
  private requests = 0;
  private preemptPages = 0;
  private preempt: FdChannel | null = null;
  private stopped = false;

  constructor(private readonly d: FaultWorkerData) {
    this.uffd = Userfaultfd.adopt(d.uffd, d.features);
    this.ring = new PageRing(d.ring);
    this.stats = new SharedStats(d.vcpuTids.length, d.stats);
    this.tracker = new BlocktimeTracker(d.vcpuTids.length);
    d.vcpuTids.forEach((tid, i) => this.vcpuOf.set(tid, i));
    this.placer = new PagePlacer(this.uffd, d.blocks, d.mode, null, d.zeropage);
    this.rpFd = d.rpFd;
  }

  start(): void {
    this.uffd.onEvents((events) => this.onFaults(events));
    void this.watchRing();
    parentPort!.on('message', (m: ToFaultWorker) => this.onMessage(m));
    parentPort!.postMessage({ type: 'ready' } satisfies FromFaultWorker);
  }

  private onFaults(events: UffdEvent[]): void {
    const now = monotonicMs();
    for (const e of events) {
      if (e.kind !== 'pagefault') continue;
      const bi = this.d.blocks.findIndex((b) => e.address >= b.addr && e.address < b.addr + b.size);
      if (bi < 0) continue;
      const page = Math.floor((e.address - this.d.blocks[bi].addr) / PAGE_SIZE);
      this.want(bi, page, this.vcpuOf.get(e.tid) ?? -1, now);
    }
    this.publish();
  }

  /** A thread needs the page: wait for it, asking the source unless already asked. */
  private want(bi: number, page: number, vcpu: number, now: number): void {
    const b = this.d.blocks[bi];
    const key = pageKey(bi, page);
    const asked = testAndSet(b.requested, page);
    if (testBit(b.received, page)) return; // placed meanwhile: the kernel has woken it
    this.tracker.fault(key, vcpu, now);
    if (!asked) this.sendRequest(bi, page);
  }

  private sendRequest(bi: number, page: number): void {
    if (this.rpBroken) return; // sent again once a new return path arrives
    const start = page * PAGE_SIZE;
    const same = this.lastRequestedBlock === bi;
    const payload = same ? encodeReqPages(start, PAGE_SIZE) : encodeReqPages(start, PAGE_SIZE, this.d.blocks[bi].name);
    const msg = Buffer.alloc(4 + payload.length);
    msg.writeUInt16BE(same ? MIG_RP_MSG.REQ_PAGES : MIG_RP_MSG.REQ_PAGES_ID, 0);
    msg.writeUInt16BE(payload.length, 2);
    msg.set(payload, 4);
    try {
      native.lockedWriteAll(this.rpFd, msg, RP_WRITE_TIMEOUT_MS);
      this.lastRequestedBlock = bi;
      this.requests++;
    } catch (e) {
      // The main thread sees the channel break too and pauses; requests go again on recovery.
      this.rpBroken = true;
    }
  }

  /** Pages the main thread placed that some fault waits for. */
  private async watchRing(): Promise<void> {
    const ctrl = this.ring.ctrl;
    while (!this.stopped) {
      const seen = Atomics.load(ctrl, R_WAKE);
      this.ring.drain((key, time) => this.tracker.placed(key, time));
      this.sweep();
      this.publish();
      await waitAsync(ctrl, R_WAKE, seen, 200);
    }
  }

  /** Faults whose page arrived while the ring was full: found by looking. */
  private sweep(): void {
    if (this.tracker.pending === 0) return;
    const now = monotonicMs();
    for (const key of this.tracker.waitingPages()) {
      const [bi, page] = splitKey(key);
      if (testBit(this.d.blocks[bi].received, page)) this.tracker.placed(key, now);
    }
  }

  private async readPreempt(ch: FdChannel, gen: number): Promise<void> {
    try {
      await readPreemptRecords(new QemuFileReader(ch), this.d.blocks, (bi, page, kind, bytes) => {
        if (kind === RAM_SAVE_FLAG.ZERO) this.placer.zero(bi, page);
        else this.placer.place(bi, page, bytes!);
        this.preemptPages++;
        this.tracker.placed(pageKey(bi, page), monotonicMs());
      });
    } catch (e) {
      // A channel a recovery replaced (its reader ends when it is destroyed, maybe inside a
      // record) says nothing about the main channel now in use.
      if (!this.stopped && this.preempt === ch) parentPort!.postMessage({ type: 'error', message: (e as Error).message } satisfies FromFaultWorker);
    } finally {
      ch.destroy();
      if (this.preempt === ch) this.preempt = null;
      this.publish();
      if (!this.stopped) parentPort!.postMessage({ type: 'preempt-ended', gen } satisfies FromFaultWorker);
    }
  }

  private onMessage(m: ToFaultWorker): void {
    switch (m.type) {
      case 'preempt':
        this.preempt?.destroy();
        this.preempt = new FdChannel(m.fd, { label: 'preempt' });
        void this.readPreempt(this.preempt, m.gen);
        return;
      case 'return-path':
        native.close(this.rpFd);
        this.rpFd = m.fd;
        this.rpBroken = false;
        this.lastRequestedBlock = -1;
        // QEMU postcopy_pause_incoming → resume: every page a fault still waits for is asked again.
        for (const key of this.tracker.waitingPages()) {
          const [bi, page] = splitKey(key);
          if (!testBit(this.d.blocks[bi].received, page)) this.sendRequest(bi, page);
        }
        return;
      case 'pause':
        this.rpBroken = true;
        return;
      case 'request': {
        const now = monotonicMs();
        for (const key of m.keys) {
          const [bi, page] = splitKey(key);
          this.want(bi, page, -1, now);
        }
        return;
      }
      case 'stop':
        this.stop();
    }
  }

  private publish(): void {
    this.stats.publish(this.tracker.stats, this.requests, this.preemptPages);
  }

  private stop(): void {
    this.stopped = true;
    this.uffd.stopEvents();
    this.preempt?.destroy();
    try {
      native.close(this.rpFd);
    } catch {
      /* already closed */
    }
    this.publish();
    parentPort!.postMessage({ type: 'stopped' } satisfies FromFaultWorker);
    parentPort!.close();
  }
}

new FaultWorker(workerData as FaultWorkerData).start();
