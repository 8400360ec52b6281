/**
 * Postcopy on the destination (QEMU postcopy-ram.c + savevm.c loadvm_postcopy_handle_*): the
 * incoming side's postcopy state machine, its RAM and its fault worker.
 *
 *   NONE ──ADVISE──▶ ADVISE ──DISCARD──▶ DISCARD ──LISTEN──▶ LISTENING ──RUN──▶ RUNNING ──EOF──▶ END
 *          check page sizes and            punch the       register RAM     start the
 *          userfaultfd, stop populating,   ranges out      with uffd,       guest
 *          discard all RAM                                 start the worker
 *
 * From ADVISE until LISTEN pages load as in precopy and are recorded as received; ZERO pages
 * stay holes and are filled in at LISTEN, before the RAM is registered (a hole would fault).
 * From LISTEN on, every page is placed atomically (placement.ts) and the main thread never
 * touches guest RAM itself: the vCPUs fault on what is missing, and the fault worker
 * (fault-worker.ts) asks the source for it.
 */
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { MemfdMapping, native, Userfaultfd, type UffdFeature } from '../../host';
import type { VirtMachine } from '../../machine/virt';
import type { ByteChannel } from '../../stream';
import { MigrationError } from '../errors';
import type { RamLoader } from '../ram-load';
import type { FaultWorkerData, FromFaultWorker, ToFaultWorker } from './fault-worker';
import { PagePlacer, type PlacementMode } from './placement';
import { PageRing, SharedStats, clearBit, newBitmap, pageKey, testBit, type PostcopyDestinationStats, type SharedBlock } from './shared';
import { decodeAdvise, decodeDiscard } from './wire';

export type PostcopyState = 'none' | 'advise' | 'discard' | 'listening' | 'running' | 'end';

const PAGE_SIZE = 4096;

const cmdError = (field: string, detail: string) => new MigrationError('EMIG_COMMAND', detail, { section: 'command', field });

/** Why userfaultfd postcopy cannot run here, or undefined when it can. */
export function postcopyUnsupportedReason(mode: PlacementMode = 'copy'): string | undefined {
  try {
    const probe = Userfaultfd.probe();
    if (!probe.ioctls.has('REGISTER') || !probe.ioctls.has('UNREGISTER')) return 'Userfaultfd lacks REGISTER/UNREGISTER';
    if (mode === 'minor' && !probe.features.has('MINOR_SHMEM')) return 'Userfaultfd has no MINOR_SHMEM (needed by minor placement)';
    return undefined;
  } catch (e) {
    return `Userfaultfd not available: ${(e as Error).message}`;
  }
}

export interface PostcopyDestinationDeps {
  machine: VirtMachine;
  ram: RamLoader;
  mode: PlacementMode;
  /** the main channel: its socket carries the return path the worker writes page requests on */
  channel: ByteChannel;
  /** a channel failure the worker saw (preempt stream hostile, placement failed) */
  onWorkerError(message: string): void;
}

export class PostcopyDestination {
  state: PostcopyState = 'none';
  private blocks: SharedBlock[] = [];
  private uffd: Userfaultfd | null = null;
  private aliases: MemfdMapping[] = [];
  private worker: Worker | null = null;
  private workerGone: Promise<void> | null = null;
  private readonly ring = new PageRing();
  readonly stats: SharedStats;
  private placer: PagePlacer | null = null;
  private pendingPreempt: number[] = [];
  /** preempt channels adopted, and the last of them the worker has read to its end */
  private preemptGen = 0;
  private preemptEndedGen = 0;
  private preemptWaiters: Array<() => void> = [];

  constructor(private readonly deps: PostcopyDestinationDeps) {
    this.stats = new SharedStats(deps.machine.harts);
  }

  get active(): boolean {
    return this.state === 'listening' || this.state === 'running';
  }

  /** POSTCOPY_ADVISE (loadvm_postcopy_handle_advise). */
  async advise(payload: Uint8Array): Promise<void> {
    if (this.state !== 'none') throw cmdError('POSTCOPY_ADVISE', `POSTCOPY_ADVISE in postcopy state ${this.state}`);
    const { pageSizeSummary, targetPageSize } = decodeAdvise(payload);
    if (pageSizeSummary !== PAGE_SIZE) {
      throw cmdError('POSTCOPY_ADVISE', `Postcopy needs matching RAM page sizes (s=${pageSizeSummary} d=${PAGE_SIZE})`);
    }
    if (targetPageSize !== PAGE_SIZE) {
      throw cmdError('POSTCOPY_ADVISE', `Postcopy needs matching target page sizes (s=${targetPageSize} d=${PAGE_SIZE})`);
    }
    const why = postcopyUnsupportedReason(this.deps.mode);
    if (why) throw cmdError('POSTCOPY_ADVISE', `Postcopy is not supported: ${why}`);
    const m = this.deps.machine;
    // Nothing may fault RAM in behind our back from here on: a populated page would never
    // fault, and the guest would read zeros instead of the source's data.
    await m.stopPopulating();
    this.blocks = m.ramBlocks.map((b) => ({ name: b.name, addr: b.mapping.addr, size: b.size, received: newBitmap(b.pages), requested: newBitmap(b.pages) }));
    // QEMU discards all RAM at advise (ram_postcopy_incoming_init): what the destination wrote
    // before (boot images) must not survive where the source sends nothing.
    for (const b of m.ramBlocks) b.mapping.punchHole(0, b.size);
    this.deps.ram.startPostcopy({ received: this.blocks.map((b) => b.received), placer: null });
    this.state = 'advise';
  }

  /** POSTCOPY_RAM_DISCARD: the source dirtied these pages after sending them. */
  discard(payload: Uint8Array): void {
    if (this.state !== 'advise' && this.state !== 'discard') throw cmdError('POSTCOPY_RAM_DISCARD', `POSTCOPY_RAM_DISCARD in postcopy state ${this.state}`);
    const { block, ranges } = decodeDiscard(payload);
    const bi = this.blocks.findIndex((b) => b.name === block);
    if (bi < 0) throw cmdError('POSTCOPY_RAM_DISCARD', `discard for unknown block '${block}'`);
    const rb = this.deps.machine.ramBlocks[bi];
    for (const r of ranges) {
      if (r.start % PAGE_SIZE || r.length % PAGE_SIZE || r.length === 0 || r.start + r.length > rb.size) {
        throw cmdError('POSTCOPY_RAM_DISCARD', `discard range 0x${r.start.toString(16)}+0x${r.length.toString(16)} outside '${block}'`);
      }
      rb.mapping.punchHole(r.start, r.length);
      const first = r.start / PAGE_SIZE;
      for (let p = first; p < first + r.length / PAGE_SIZE; p++) clearBit(this.blocks[bi].received, p);
      this.deps.ram.discarded(rb, first, r.length / PAGE_SIZE);
    }
    this.state = 'discard';
  }

  /** POSTCOPY_LISTEN: RAM registered with userfaultfd, placement atomic, the worker serving
   * faults. Resolves once the worker reads faults (QEMU postcopy_ram_incoming_setup waits for
   * its fault thread too): RUN follows at once, and a vCPU faulting before then would wait
   * for the background stream, its page never asked for and its wait never counted. */
  async listen(): Promise<void> {
    if (this.state !== 'advise' && this.state !== 'discard') throw cmdError('POSTCOPY_LISTEN', `POSTCOPY_LISTEN in postcopy state ${this.state}`);
    const m = this.deps.machine;
    this.fillReceivedHoles();
    const probe = Userfaultfd.probe();
    const features: UffdFeature[] = [];
    if (probe.features.has('THREAD_ID')) features.push('THREAD_ID');
    if (this.deps.mode === 'minor') features.push('MINOR_SHMEM');
    const uffd = Userfaultfd.open(features);
    this.uffd = uffd;
    let zeropage = true;
    for (const [i, rb] of m.ramBlocks.entries()) {
      const ioctls = uffd.register(rb.mapping.addr, rb.size, this.deps.mode === 'minor' ? ['missing', 'minor'] : ['missing']);
      if (!ioctls.has(this.deps.mode === 'minor' ? 'CONTINUE' : 'COPY')) throw cmdError('POSTCOPY_LISTEN', `RAM block '${rb.name}' cannot be placed by ${this.deps.mode}`);
      if (!ioctls.has('ZEROPAGE')) zeropage = false;
      if (this.deps.mode === 'minor') {
        const alias = rb.mapping.alias();
        this.aliases.push(alias);
        const b = this.blocks[i];
        b.aliasAddr = alias.addr;
        b.claimed = newBitmap(rb.pages);
        for (let w = 0; w < b.claimed.length; w++) b.claimed[w] = b.received[w];
      }
    }
    this.placer = new PagePlacer(uffd, this.blocks, this.deps.mode, this.ring, zeropage);
    this.deps.ram.startPostcopy({ received: this.blocks.map((b) => b.received), placer: this.placer });
    this.state = 'listening';
    await this.startWorker(features, zeropage);
  }

  /** POSTCOPY_RUN: the caller starts the guest. */
  run(): void {
    if (this.state !== 'listening') throw cmdError('POSTCOPY_RUN', `POSTCOPY_RUN in postcopy state ${this.state}`);
    this.state = 'running';
  }

  /** A preempt channel connected: the worker reads it (now, or once LISTEN started it). */
  adoptPreempt(fd: number): void {
    this.preemptGen++;
    if (this.worker) this.post({ type: 'preempt', fd, gen: this.preemptGen });
    else this.pendingPreempt.push(fd);
  }

  /** The main stream ended: wait until the worker has read the preempt channel to its end too
   * (the source sends EOS there before its EOF), so that every page sent there is placed.
   * QEMU postcopy_ram_incoming_cleanup waits on postcopy_qemufile_dst_done the same way. */
  async preemptDrained(): Promise<void> {
    if (!this.worker) return;
    while (this.preemptEndedGen < this.preemptGen) await new Promise<void>((r) => this.preemptWaiters.push(r));
  }

  private preemptEnded(gen: number): void {
    this.preemptEndedGen = Math.max(this.preemptEndedGen, gen);
    for (const w of this.preemptWaiters.splice(0)) w();
  }

  /** The main channel broke: hold page requests until a new return path arrives. */
  pause(): void {
    this.post({ type: 'pause' });
  }

  /** Recovery: the new main channel's socket carries the return path from now on. */
  resume(channel: ByteChannel): void {
    const fd = channel.fd;
    if (fd === undefined) throw new MigrationError('EMIG_STATE', 'postcopy recovery needs a socket channel');
    this.post({ type: 'return-path', fd: native.dup(fd) });
  }

  /** The received bitmap of block `name` (RECV_BITMAP), or undefined for an unknown block. */
  receivedBitmap(name: string): { bits: Int32Array; pages: number } | undefined {
    const i = this.blocks.findIndex((b) => b.name === name);
    if (i < 0) return undefined;
    return { bits: this.blocks[i].received, pages: this.deps.machine.ramBlocks[i].pages };
  }

  /** Make [addr, addr+len) of guest-physical RAM present before the main thread reads it
   * (pmemsave during postcopy): ask for what is missing and wait for it. */
  async ensurePresent(block: number, first: number, count: number): Promise<void> {
    if (!this.active) return;
    const b = this.blocks[block];
    const missing: number[] = [];
    for (let p = first; p < first + count; p++) if (!testBit(b.received, p)) missing.push(pageKey(block, p));
    if (!missing.length) return;
    this.post({ type: 'request', keys: missing });
    for (const key of missing) {
      const page = key - block * 2 ** 40;
      while (!testBit(b.received, page) && this.active) await new Promise((r) => setTimeout(r, 1));
    }
  }

  /** Pages of every block not received (zero once the source has sent everything). */
  missingPages(): number {
    let n = 0;
    for (const [i, b] of this.blocks.entries()) {
      const pages = this.deps.machine.ramBlocks[i].pages;
      for (let p = 0; p < pages; p++) if (!testBit(b.received, p)) n++;
    }
    return n;
  }

  figures(): PostcopyDestinationStats {
    return this.stats.read();
  }

  /** END (or failure): stop the worker, release the guest's RAM from userfaultfd. */
  async finish(): Promise<void> {
    if (this.state === 'none') return;
    this.state = 'end';
    this.post({ type: 'stop' });
    await this.workerGone;
    this.worker = null;
    if (this.uffd) {
      // Unregistering wakes any thread still blocked: from now on a missing page is a hole.
      for (const rb of this.deps.machine.ramBlocks) {
        try {
          this.uffd.unregister(rb.mapping.addr, rb.size);
        } catch {
          /* not registered */
        }
      }
      this.uffd.close();
      this.uffd = null;
    }
    for (const a of this.aliases.splice(0)) a.close();
    for (const fd of this.pendingPreempt.splice(0)) native.close(fd);
  }

  /** Pages received as ZERO before LISTEN are still holes; fill them before registering. */
  private fillReceivedHoles(): void {
    for (const [i, rb] of this.deps.machine.ramBlocks.entries()) {
      const bits = this.blocks[i].received;
      const ext = rb.mapping.dataExtents();
      let e = 0;
      let runStart = -1;
      const flush = (end: number) => {
        if (runStart >= 0) rb.mapping.populate(runStart * PAGE_SIZE, (end - runStart) * PAGE_SIZE);
        runStart = -1;
      };
      for (let p = 0; p < rb.pages; p++) {
        const at = p * PAGE_SIZE;
        while (e < ext.length && ext[e + 1] <= at) e += 2;
        const isData = e < ext.length && ext[e] <= at;
        const want = !isData && testBit(bits, p);
        if (want && runStart < 0) runStart = p;
        else if (!want) flush(p);
      }
      flush(rb.pages);
    }
  }

  private startWorker(features: UffdFeature[], zeropage: boolean): Promise<void> {
    const fd = this.deps.channel.fd;
    if (fd === undefined) throw new MigrationError('EMIG_STATE', 'postcopy needs a socket channel (unix:, tcp:, or fd: of a socket)');
    const data: FaultWorkerData = {
      uffd: this.uffd!.fd,
      features,
      blocks: this.blocks,
      vcpuTids: this.deps.machine.vcpuThreadIds,
      ring: this.ring.buffer,
      stats: this.stats.buffer,
      mode: this.deps.mode,
      zeropage,
      rpFd: native.dup(fd),
    };
    const w = new Worker(workerPath(), { workerData: data, name: 'postcopy-fault' });
    this.worker = w;
    this.workerGone = new Promise<void>((resolve) => w.once('exit', () => resolve()));
    const ready = new Promise<void>((resolve, reject) => {
      w.on('message', (m: FromFaultWorker) => {
        if (m.type === 'ready') resolve();
        if (m.type === 'preempt-ended') this.preemptEnded(m.gen);
        if (m.type === 'error') this.deps.onWorkerError(m.message);
      });
      w.on('error', (e) => {
        reject(new MigrationError('EMIG_STATE', `postcopy fault thread failed: ${e.message}`));
        this.deps.onWorkerError(e.message);
      });
      w.once('exit', () => {
        reject(new MigrationError('EMIG_STATE', 'postcopy fault thread exited before it started'));
        this.preemptEnded(Infinity);
      });
    });
    const pending = this.pendingPreempt.splice(0);
    pending.forEach((pfd, i) => this.post({ type: 'preempt', fd: pfd, gen: this.preemptGen - pending.length + 1 + i }));
    return ready;
  }

  private post(m: ToFaultWorker): void {
    this.worker?.postMessage(m);
  }
}

function workerPath(): string {
  // Under ts-jest this module is loaded from lib/; the worker always runs compiled code.
  if (__filename.endsWith('.ts')) return path.resolve(__dirname, '../../../dist/lib/migration/postcopy/fault-worker.js');
  return path.join(__dirname, 'fault-worker.js');
}
