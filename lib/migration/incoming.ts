/**
 * Incoming migration (QEMU migration.c process_incoming_migration_co, savevm.c
 * qemu_loadvm_state). The stream is loaded into a machine whose vCPUs are parked
 * (run state inmigrate):
 *
 *   status none → setup (listening) → active (connection accepted, loading) → completed | failed
 *   postcopy:  active → postcopy-device (LISTEN) → postcopy-active (RUN) → completed
 *              postcopy-active ⇄ postcopy-paused → postcopy-recover → postcopy-active
 *
 * Commands: OPEN_RETURN_PATH opens the reverse direction of the channel (and, with
 * switchover-ack, acknowledges at once: no device here has anything to finish first), PING is
 * answered with PONG, SWITCHOVER_START needs nothing; the postcopy commands drive
 * postcopy/destination.ts. After EOF the vmdesc is read and discarded; then the guest runs if
 * the source was running (or sent no run state) and the destination was not started with -S.
 * A SHUT (0 ok, 1 failed) goes back on the return path when there is one, SHUT 0 before the
 * guest runs here: until the source has it, the source may still resume, and with cpr-transfer
 * both would then run on the same RAM.
 *
 * Once the guest runs here in postcopy there is no going back: a broken or bad stream pauses
 * (postcopy-paused) until `migrate-recover` brings a new channel; before that, any failure
 * fails the load and the source keeps the guest.
 *
 * cpr-transfer (a cpr channel brought the RAM, cpr/destination.ts): every block is ignored, so
 * a page record is an error; nothing is populated; the serial is adopted once the guest runs.
 */
import { performance } from 'node:perf_hooks';
import type { RamBlock } from '../machine/ram';
import type { VirtMachine } from '../machine/virt';
import { QemuFileReader, VMDESC_JSON_MAX, type ByteChannel } from '../stream';
import { MigrationError } from './errors';
import type { GlobalState } from './globalstate';
import { LoadVm } from './loadvm';
import type { CprIncomingHooks } from './cpr/destination';
import { MultifdReceiver } from './multifd';
import type { MigrationOptions } from './options';
import { PostcopyDestination, type PostcopyState } from './postcopy/destination';
import { abortChannel, type PostcopyDestinationStats } from './postcopy/shared';
import { decodeCounted } from './postcopy/wire';
import { ramBlockIgnored } from './ram-pages';
import { knownZeroPages, RamLoader } from './ram-load';
import { be32At, ReturnPathWriter } from './return-path';
import type { MigrationRunState } from './run-state';
import { configurationFor, globalStateFor, machineRegistry, streamFormat } from './sections';
import type { MigrationState } from './state';
import { MIG_CMD, MIG_CMD_NAMES } from './wire';

const PAGE_SIZE = 4096;

export interface IncomingDeps {
  machine: VirtMachine;
  options: MigrationOptions;
  state: MigrationState;
  /** The run-state owner (the manager's). */
  vm: MigrationRunState;
  /** -S: stay paused after loading even if the source was running. */
  startPaused: boolean;
  now?(): number;
  /** cpr-transfer: RAM came by the cpr channel (cpr/destination.ts). */
  cpr?: CprIncomingHooks;
}

export interface IncomingResult {
  ok: boolean;
  error?: MigrationError;
  /** Load time, ms (from the first byte to the guest resuming). */
  loadTime: number;
  bytes: number;
}

export class IncomingMigration {
  private rp: ReturnPathWriter | null = null;
  private channel: ByteChannel | null = null;
  private loader: LoadVm | null = null;
  private ram: RamLoader | null = null;
  private global: GlobalState | null = null;
  private postcopy: PostcopyDestination | null = null;
  private recovered: ((ch: ByteChannel) => void) | null = null;
  private recoveryAborted: ((err: Error) => void) | null = null;
  /** Set when the machine is destroyed under the load (see abort). */
  private aborted: MigrationError | null = null;
  private loading: Promise<IncomingResult> | null = null;
  /** multifd: the page channels, accepted beside the main one (manager.ts) */
  readonly multifd: MultifdReceiver | null = null;
  private multifdFailure: MigrationError | null = null;
  private readonly knownZero = new Map<RamBlock, Uint32Array | null>();
  errorDesc: string | undefined;
  private readonly now: () => number;

  constructor(private readonly deps: IncomingDeps) {
    this.now = deps.now ?? (() => performance.now());
    const { machine, options } = deps;
    if (options.caps.multifd) {
      // Which pages are still zero, shared with the channel threads: a zero page there costs
      // nothing (reading a never-written page to check it would allocate it).
      const blocks = machine.ramBlocks.filter((b) => !ramBlockIgnored(b, options.caps['x-ignore-shared'], deps.cpr ? 'cpr-transfer' : 'normal'));
      for (const b of blocks) this.knownZero.set(b, knownZeroPages(b, !machine.hasRun));
      this.multifd = new MultifdReceiver({
        channels: options.params['multifd-channels'],
        uuid: machine.uuid ?? new Uint8Array(16),
        blocks,
        knownZero: blocks.map((b) => this.knownZero.get(b) ?? null),
        populate: () => {
          if (!this.populates()) return null;
          const p = machine.populateAhead();
          return { shared: p.shared, block: p.block };
        },
        // A broken channel fails the load as a broken main stream does.
        onFailure: (err) => {
          this.multifdFailure = err;
          abortChannel(this.channel, err);
        },
      });
    }
  }

  get postcopyState(): PostcopyState {
    return this.postcopy?.state ?? 'none';
  }

  /** Blocktime and latency figures (postcopy with postcopy-blocktime). */
  postcopyFigures(): PostcopyDestinationStats | null {
    return this.postcopy?.figures() ?? null;
  }

  /** Load one stream from `channel`. Never rejects; the outcome is in the result and status. */
  async run(channel: ByteChannel): Promise<IncomingResult> {
    const unhook = this.deps.machine.onDestroy(() => this.abort());
    try {
      this.loading = this.load(channel);
      return await this.loading;
    } finally {
      unhook();
    }
  }

  /**
   * The machine is being destroyed: end the load wherever it is, a postcopy pause included, and
   * wait until it has let go of guest RAM (the fault worker stopped, userfaultfd unregistered,
   * which wakes the vCPUs blocked on missing pages so that they can be stopped).
   */
  private async abort(): Promise<void> {
    this.aborted = new MigrationError('EMIG_CANCELLED', 'the machine was destroyed during the incoming migration');
    this.recoveryAborted?.(this.aborted);
    abortChannel(this.channel, this.aborted);
    await this.loading;
  }

  private async load(channel: ByteChannel): Promise<IncomingResult> {
    const { machine, state, vm, options } = this.deps;
    const t0 = this.now();
    state.cas('none', 'setup');
    state.cas('setup', 'active');
    vm.incomingStarted();
    this.channel = channel;
    let f = new QemuFileReader(channel);
    const ignoreShared = options.caps['x-ignore-shared'];
    const cpr = this.deps.cpr;
    // Take the destination's page faults in a helper thread just ahead of the load (the
    // process may have started it already, while it waited for the stream).
    const populate = this.populates() ? machine.populateAhead() : null;
    populate?.gate();
    const ram = new RamLoader(machine.ramBlocks, { pristine: !machine.hasRun, populate, ignoreShared, mode: cpr ? 'cpr-transfer' : 'normal' });
    ram.multifd = this.multifd;
    if (this.multifd) ram.knownZero = (b) => this.knownZero.get(b) ?? null;
    this.ram = ram;
    const global = globalStateFor(() => 'inmigrate');
    this.global = global;
    const reg = machineRegistry(machine, ram, global, options);
    const format = streamFormat(options);
    let postcopyRan = false;
    const loader = new LoadVm(f, reg, configurationFor(machine, options), {
      onCommand: (cmd, payload, at) => this.command(cmd, payload, at),
      expectConfiguration: format.sendConfiguration,
      expectSectionFooter: format.sendSectionFooter,
    });
    this.loader = loader;
    try {
      try {
        await loader.loadHeader();
        for (;;) {
          try {
            await loader.loadMain();
            // The guest runs on these pages: a stream that ended without them is as bad as a
            // broken one, and a recovery can still bring them. Pages still on the preempt
            // channel count once read: read it up to its end first.
            if (this.postcopy?.state === 'running') {
              await this.postcopy.preemptDrained();
              this.checkPostcopyPages();
            }
            break;
          } catch (e) {
            // The guest runs here now: wait for a new channel rather than lose it.
            if (this.postcopy?.state !== 'running' || this.aborted) throw e;
            f = await this.pause(e as Error);
          }
        }
        // ADVISE alone (postcopy-ram on, precopy completed) is a precopy: a vmdesc follows, and
        // the guest starts as after any precopy.
        postcopyRan = this.postcopy?.state === 'running';
        if (!postcopyRan) await loader.readVmdesc(VMDESC_JSON_MAX);
      } finally {
        populate?.stop();
        // The channels stop now; waiting for their threads to end is not the guest's business.
        void this.multifd?.close();
      }
      if (!ram.blockListSeen) throw new MigrationError('EMIG_RAM', 'stream carried no RAM section', { section: 'ram' });
      if (this.postcopy) await this.finishPostcopy();
      // QEMU process_incoming_migration_bh: run if the source ran (or sent no run state) and
      // we were not told -S (in postcopy the guest was started at RUN); completed once it runs.
      this.rp?.shut(0);
      if (!postcopyRan) vm.incomingCompleted(this.sourceRan() && !this.deps.startPaused);
      cpr?.resumed?.();
      if (!state.cas('active', 'completed')) state.cas('postcopy-active', 'completed');
      await this.channel.end().catch(() => {});
      await this.multifd?.close();
      return { ok: true, loadTime: this.now() - t0, bytes: f.position };
    } catch (thrown) {
      // A multifd channel's failure broke the main channel: report the channel's, not the
      // symptom on the main stream.
      const e = this.aborted ?? this.multifdFailure ?? thrown;
      const err = e instanceof MigrationError ? e : new MigrationError('EMIG_DEVICE', e instanceof Error ? e.message : String(e), { cause: e });
      this.errorDesc = err.message;
      state.reset('failed');
      await this.postcopy?.finish().catch(() => undefined);
      vm.incomingFailed();
      try {
        this.rp?.shut(1);
        await this.channel.end();
      } catch {
        /* the source may be gone */
      }
      this.channel.destroy();
      await this.multifd?.close();
      return { ok: false, error: err, loadTime: this.now() - t0, bytes: f.position };
    }
  }

  /** Whether the load takes its page faults in the populate thread. Not under x-ignore-shared
   * with shared file-backed RAM, nor in cpr-transfer (the RAM is there already), nor with
   * postcopy-ram (ADVISE discards all of RAM, manager.ts). */
  private populates(): boolean {
    const { machine, options, cpr } = this.deps;
    if (cpr || options.caps['postcopy-ram']) return false;
    return !(options.caps['x-ignore-shared'] && machine.ram.shared && machine.ram.memPath);
  }

  /**
   * Make guest-physical [addr, addr+len) present before the main thread reads it (pmemsave):
   * during postcopy a missing page would block this thread in the kernel, and without the
   * preempt channel the page it waits for arrives on the stream this very thread reads.
   */
  async ensurePresent(addr: number, len: number): Promise<void> {
    const pc = this.postcopy;
    if (!pc?.active) return;
    const blocks = this.deps.machine.ramBlocks;
    const bi = blocks.findIndex((b) => b.contains(addr, len));
    if (bi < 0) return; // not RAM: the reader refuses it
    const off = addr - blocks[bi].base;
    const first = Math.floor(off / PAGE_SIZE);
    await pc.ensurePresent(bi, first, Math.ceil((off + len) / PAGE_SIZE) - first);
  }

  /** A connection that starts with the multifd magic (peeked): one of the page channels. */
  adoptMultifd(ch: ByteChannel): void {
    const fdc = ch as ByteChannel & { detach?: unknown };
    if (!this.multifd || ch.fd === undefined || !fdc.detach) return ch.destroy();
    void this.multifd.adopt(ch as import('../transport/fd-channel').FdChannel);
  }

  /** A preempt channel was accepted (postcopy-preempt). */
  adoptPreempt(ch: ByteChannel): void {
    const detach = (ch as { detach?: () => number }).detach;
    if (!detach) {
      ch.destroy();
      return;
    }
    const fd = detach.call(ch);
    if (this.postcopy) this.postcopy.adoptPreempt(fd);
    else this.pendingPreempt = fd;
  }

  private pendingPreempt: number | null = null;

  /** migrate-recover's listener accepted the source's new main channel. */
  recover(ch: ByteChannel): void {
    if (!this.recovered) {
      ch.destroy();
      throw new MigrationError('EMIG_STATE', 'Migrate recover can only be run when postcopy is paused.');
    }
    this.recovered(ch);
  }

  /** migrate-pause on the destination: break the main channel (postcopy-active only). */
  pauseNow(): void {
    if (this.deps.state.status !== 'postcopy-active') {
      throw new MigrationError('EMIG_STATE', 'migrate-pause is currently only supported during postcopy-active or postcopy-recover state');
    }
    abortChannel(this.channel, new MigrationError('EMIG_PEER', 'migration paused (migrate-pause)'));
  }

  /** postcopy_pause_incoming(): hold everything, wait for a new main channel, read on from it. */
  private async pause(err: Error): Promise<QemuFileReader> {
    const { state } = this.deps;
    state.reset('postcopy-paused');
    this.errorDesc = err.message;
    process.stderr.write(`livemig: Detected IO failure for postcopy. Migration paused. (${err.message})\n`);
    this.postcopy!.pause();
    abortChannel(this.channel);
    const ch = await new Promise<ByteChannel>((resolve, reject) => {
      this.recovered = resolve;
      this.recoveryAborted = reject;
      if (this.aborted) reject(this.aborted);
    });
    this.recovered = null;
    this.recoveryAborted = null;
    state.cas('postcopy-paused', 'postcopy-recover');
    this.channel = ch;
    this.rp = this.returnPath(ch);
    this.postcopy!.resume(ch);
    this.ram!.forgetLastBlock();
    const f = new QemuFileReader(ch);
    this.loader!.useReader(f);
    return f;
  }

  private checkPostcopyPages(): void {
    const missing = this.postcopy!.missingPages();
    if (missing > 0) throw new MigrationError('EMIG_RAM', `postcopy ended with ${missing} pages never received`, { section: 'ram' });
  }

  private async finishPostcopy(): Promise<void> {
    await this.postcopy!.preemptDrained();
    await this.postcopy!.finish();
    this.checkPostcopyPages();
  }

  private sourceRan(): boolean {
    const r = this.global?.received ?? null;
    return r === null || r === 'running';
  }

  private returnPath(ch: ByteChannel): ReturnPathWriter {
    // With postcopy the fault worker writes page requests on the same socket.
    const locked = this.deps.options.caps['postcopy-ram'] && ch.fd !== undefined ? ch.fd : undefined;
    return new ReturnPathWriter(ch, locked);
  }

  private async command(cmd: number, payload: Uint8Array, at: number): Promise<void | 'quit'> {
    const { state, vm } = this.deps;
    switch (cmd) {
      case MIG_CMD.OPEN_RETURN_PATH:
        // A second one is ignored (QEMU: "already open").
        if (this.rp) return;
        this.rp = this.returnPath(this.channel!);
        if (this.deps.options.caps['switchover-ack']) this.rp.switchoverAck();
        return;
      case MIG_CMD.PING:
        if (!this.rp) throw new MigrationError('EMIG_COMMAND', 'PING received with no return path', { section: 'command', field: 'PING' });
        this.rp.pong(be32At(payload));
        return;
      case MIG_CMD.POSTCOPY_ADVISE:
        if (!this.deps.options.caps['postcopy-ram']) {
          throw new MigrationError('EMIG_COMMAND', 'RAM postcopy is disabled but have 16 byte advise', { section: 'command', field: 'POSTCOPY_ADVISE' });
        }
        // One destination per load: a second ADVISE meets the first one's state and is refused.
        this.postcopy ??= new PostcopyDestination({
          machine: this.deps.machine,
          ram: this.ram!,
          mode: this.deps.options.params['x-postcopy-placement'],
          channel: this.channel!,
          onWorkerError: (m) => this.onWorkerError(m),
        });
        await this.postcopy.advise(payload);
        if (this.pendingPreempt !== null) this.postcopy.adoptPreempt(this.pendingPreempt);
        this.pendingPreempt = null;
        return;
      case MIG_CMD.POSTCOPY_RAM_DISCARD:
        return this.needPostcopy('POSTCOPY_RAM_DISCARD').discard(payload);
      case MIG_CMD.PACKAGED:
        await this.loader!.loadPackage(be32At(payload), at);
        return;
      case MIG_CMD.POSTCOPY_LISTEN:
        await this.needPostcopy('POSTCOPY_LISTEN').listen();
        state.cas('active', this.rp ? 'postcopy-device' : 'postcopy-active');
        return;
      case MIG_CMD.POSTCOPY_RUN:
        this.needPostcopy('POSTCOPY_RUN').run();
        state.cas('postcopy-device', 'postcopy-active');
        vm.incomingCompleted(this.sourceRan() && !this.deps.startPaused);
        return 'quit';
      case MIG_CMD.RECV_BITMAP: {
        if (state.status !== 'postcopy-recover') throw new MigrationError('EMIG_COMMAND', `RECV_BITMAP in state ${state.status}`, { section: 'command', field: 'RECV_BITMAP' });
        const name = decodeCounted(payload, 'RECV_BITMAP');
        const bm = this.needPostcopy('RECV_BITMAP').receivedBitmap(name);
        if (!bm) throw new MigrationError('EMIG_COMMAND', `RECV_BITMAP for unknown block '${name}'`, { section: 'command', field: 'RECV_BITMAP' });
        this.rp!.recvBitmap(name, bm.bits, bm.pages);
        return;
      }
      case MIG_CMD.POSTCOPY_RESUME:
        // QEMU ignores a RESUME that does not follow a recovery.
        if (!state.cas('postcopy-recover', 'postcopy-active')) return;
        this.rp!.resumeAck();
        return;
      default:
        throw new MigrationError('EMIG_COMMAND', `command ${MIG_CMD_NAMES[cmd] ?? cmd} is not supported`, {
          section: 'command',
          field: MIG_CMD_NAMES[cmd],
        });
    }
  }

  private needPostcopy(what: string): PostcopyDestination {
    if (!this.postcopy) throw new MigrationError('EMIG_COMMAND', `${what} without POSTCOPY_ADVISE`, { section: 'command', field: what });
    return this.postcopy;
  }

  /** The worker found the preempt stream bad or could not place a page: break the main channel
   * too, so the load pauses (running) or fails (before). */
  private onWorkerError(message: string): void {
    abortChannel(this.channel, new MigrationError('EMIG_RAM', message, { section: 'postcopy-preempt' }));
  }
}
