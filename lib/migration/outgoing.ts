/**
 * Outgoing precopy migration (QEMU migration/migration.c migration_thread, ram.c).
 *
 *   setup:    connect, header + configuration, [OPEN_RETURN_PATH, PING 1], RAM START
 *             (every page dirty, block list)                         status setup → active
 *   iterate:  RAM PART sections under the rate limit; every 100 ms re-estimate bandwidth and
 *             threshold = bandwidth × downtime-limit; at the end of each pass over the bitmap,
 *             sync the dirty log for the exact figure and compare
 *   complete: pending ≤ threshold → [pre-switchover pause] → device: stop the guest,
 *             SWITCHOVER_START, RAM END (final sync + last pages), device FULL sections,
 *             EOF, vmdesc; with a return path wait for the destination's SHUT
 *                                                                    device → completed
 *
 * Any failure or cancel before completion leaves the source guest as it was: running again
 * if it was running (QEMU migration_iteration_finish / migrate_fd_cleanup).
 */
import { performance } from 'node:perf_hooks';
import type { VirtMachine } from '../machine/virt';
import { QemuFileReader, QemuFileWriter, RateLimiter, type ByteChannel } from '../stream';
import type { MigrationAddress } from '../transport/uri';
import { MigrationError } from './errors';
import type { RunState } from './globalstate';
import { RamSaver, type ZeroPageDetection } from './ram-save';
import { be32At, readRpMessage } from './return-path';
import { SaveVm } from './savevm';
import { configurationFor, globalStateFor, machineRegistry, numParam, type MigrationSettings } from './settings';
import type { MigrationState, MigrationStatus } from './state';
import { MIG_CMD, MIG_RP_MSG } from './wire';
import { Throttle } from './throttle';

/** LIVEMIG_DEBUG_MIGRATION=1: one stderr line per dirty sync (pass, dirty pages, rates). */
const DEBUG = !!process.env.LIVEMIG_DEBUG_MIGRATION;

/**
 * What a switchover costs besides sending pages: parking the vCPUs, the final sync, device
 * state, the destination's resume and its SHUT on the return path (measured at 10–25 ms here).
 */
export const SWITCHOVER_OVERHEAD_MS = 15;

/** Bytes that may still be dirty at switchover: QEMU's bandwidth × downtime-limit, less the
 * fixed cost of switching over, so the limit bounds the whole downtime and not only the
 * transfer. */
export function switchoverThreshold(bandwidth: number, downtimeLimit: number): number {
  return bandwidth * Math.max(0, downtimeLimit - SWITCHOVER_OVERHEAD_MS);
}

/** QEMU's BUFFER_DELAY: bandwidth is re-estimated every 100 ms. */
const BUFFER_DELAY_MS = 100;

export interface OutgoingDeps {
  machine: VirtMachine;
  settings: MigrationSettings;
  state: MigrationState;
  connect(addr: MigrationAddress): Promise<ByteChannel>;
  /** MIGRATION_PASS (with the events capability). */
  onPass?(pass: number): void;
  now?(): number;
}

export interface OutgoingStats {
  startTime: number;
  setupTime: number;
  totalTime: number;
  downtime: number;
  expectedDowntime: number;
  transferred: number;
  remaining: number;
  total: number;
  duplicate: number;
  normal: number;
  dirtyPagesRate: number;
  mbps: number;
  dirtySyncCount: number;
  pagesPerSecond: number;
  precopyBytes: number;
  downtimeBytes: number;
  throttlePercentage: number;
  errorDesc?: string;
}

export class OutgoingMigration {
  private f: QemuFileWriter | null = null;
  private channel: ByteChannel | null = null;
  private saver: RamSaver | null = null;
  private cancelled = false;
  private readonly now: () => number;
  private continueResolve: (() => void) | null = null;
  private unsubscribe: (() => void) | null = null;
  private readonly throttle: Throttle;
  // bandwidth window (QEMU's iteration_start_time / iteration_initial_bytes)
  private winStart = 0;
  private winBytes = 0;
  private winPages = 0;
  private bandwidth = 0; // bytes per ms
  private threshold = 0;
  private stopTime = 0;
  private dirtyAtLastSync = -1;
  private dirtyRate = 0; // distinct pages dirtied per ms over the last pass
  private passStart = 0;
  private passBytes = 0;
  private lastSyncAt = 0;
  private bytesAtStop = 0;
  readonly stats: OutgoingStats;

  constructor(private readonly deps: OutgoingDeps) {
    this.now = deps.now ?? (() => performance.now());
    this.stats = {
      startTime: this.now(),
      setupTime: 0,
      totalTime: 0,
      downtime: 0,
      expectedDowntime: numParam(deps.settings, 'downtime-limit'),
      transferred: 0,
      remaining: 0,
      total: 0,
      duplicate: 0,
      normal: 0,
      dirtyPagesRate: 0,
      mbps: 0,
      dirtySyncCount: 0,
      pagesPerSecond: 0,
      precopyBytes: 0,
      downtimeBytes: 0,
      throttlePercentage: 0,
    };
    this.throttle = new Throttle(deps.settings, deps.machine, this.now);
  }

  get status(): MigrationStatus {
    return this.deps.state.status;
  }

  /** Run the whole migration. Never rejects: the outcome is the final status. */
  async run(addr: MigrationAddress): Promise<void> {
    const { state, machine } = this.deps;
    const wasRunning = machine.running;
    try {
      await this.migrate(addr);
      state.cas('device', 'completed');
      machine.runState = 'postmigrate';
    } catch (e) {
      this.stats.errorDesc = e instanceof Error ? e.message : String(e);
      this.channel?.destroy(e instanceof Error ? e : undefined);
      if (this.cancelled) state.cas('cancelling', 'cancelled') || state.reset('cancelled');
      else state.reset('failed');
      if (machine.runState !== 'shutdown' && wasRunning && !machine.running) machine.cont();
      else if (!wasRunning && machine.runState === 'finish-migrate') machine.runState = 'paused';
    } finally {
      this.throttle.stop();
      this.saver?.saveCleanup();
      this.unsubscribe?.();
      this.refreshStats();
      this.stats.totalTime = this.now() - this.stats.startTime;
    }
  }

  /** migrate_cancel. */
  cancel(): boolean {
    const s = this.deps.state;
    for (const from of ['setup', 'active', 'pre-switchover', 'device'] as const) {
      if (s.cas(from, 'cancelling')) {
        this.cancelled = true;
        this.continueResolve?.();
        this.channel?.destroy(new MigrationError('EMIG_CANCELLED', 'migration cancelled'));
        return true;
      }
    }
    return false;
  }

  /** migrate-continue from pre-switchover. */
  continueFrom(status: MigrationStatus): void {
    if (this.deps.state.status !== status || status !== 'pre-switchover' || !this.continueResolve) {
      throw new MigrationError('EMIG_STATE', `Migration not in expected state: ${this.deps.state.status}`);
    }
    this.continueResolve();
  }

  private checkCancel(): void {
    if (this.cancelled) throw new MigrationError('EMIG_CANCELLED', 'migration cancelled');
    const err = this.f?.error;
    if (err) throw err instanceof MigrationError ? err : new MigrationError('EMIG_PEER', err.message, { cause: err });
  }

  private async migrate(addr: MigrationAddress): Promise<void> {
    const { machine, settings, state } = this.deps;
    state.reset('setup');
    const channel = await this.deps.connect(addr);
    this.channel = channel;
    this.checkCancel();

    const limiter = new RateLimiter(undefined, numParam(settings, 'max-bandwidth'));
    const f = new QemuFileWriter(channel, { rateLimiter: limiter });
    this.f = f;
    this.unsubscribe =
      settings.subscribe?.((c) => {
        if (c.kind === 'parameters' && c.changed.includes('max-bandwidth') && this.stopTime === 0) {
          limiter.setMaxBandwidth(numParam(settings, 'max-bandwidth'));
        }
      }) ?? null;

    const saver = new RamSaver(machine.ramBlocks, {
      makeLog: (b) => machine.makeDirtyLog(b),
      zeroPageDetection: () => (settings.parameter('zero-page-detection') as ZeroPageDetection) ?? 'multifd',
      onSync: (pass, newly) => this.onSync(pass, newly),
      now: this.now,
    });
    this.saver = saver;
    const runStateAtStart: RunState = machine.running ? 'running' : 'paused';
    const global = globalStateFor(() => runStateAtStart);
    const sv = new SaveVm(f, machineRegistry(machine, saver, global), configurationFor(machine));

    sv.writeHeader();
    const returnPath = settings.capability('return-path') || settings.capability('postcopy-ram');
    let shut: Promise<number> | null = null;
    if (returnPath) {
      sv.command(MIG_CMD.OPEN_RETURN_PATH);
      sv.ping(1);
      shut = this.readReturnPath(channel);
      shut.catch(() => {});
    }
    await sv.setup();
    await f.drain();
    this.checkCancel();
    this.stats.setupTime = this.now() - this.stats.startTime;
    if (!state.cas('setup', 'active')) this.checkCancel();
    this.winStart = this.now();
    this.winBytes = f.position;
    this.winPages = this.pagesSent();

    await this.iterate(sv, f);
    await this.switchover(sv, f, shut);
  }

  private async iterate(sv: SaveVm, f: QemuFileWriter): Promise<void> {
    for (;;) {
      this.checkCancel();
      // Switch over only at the end of a pass (nothing left in the bitmap): QEMU also allows it
      // mid-pass once the estimate drops under the threshold, which sends up to a whole
      // downtime-limit's worth of pages with the guest stopped. Finishing the pass first
      // costs nothing extra and leaves only what the guest dirtied meanwhile for the downtime.
      if (sv.pending(false) === 0 && sv.pending(true) <= this.threshold) return;
      await sv.iterate();
      if (f.needsDrain) await f.drain();
      if (f.rateLimitExceeded()) await f.waitRateLimit();
      this.updateBandwidth(f);
      // Let the monitor, timers and the return path run between iterations.
      await new Promise<void>((r) => setImmediate(r));
    }
  }

  private async switchover(sv: SaveVm, f: QemuFileWriter, shut: Promise<number> | null): Promise<void> {
    const { machine, settings, state } = this.deps;
    if (settings.capability('pause-before-switchover')) {
      if (!state.cas('active', 'pre-switchover')) this.checkCancel();
      await new Promise<void>((r) => (this.continueResolve = r));
      this.continueResolve = null;
      this.checkCancel();
      if (!state.cas('pre-switchover', 'device')) this.checkCancel();
    } else if (!state.cas('active', 'device')) {
      this.checkCancel();
    }
    this.stopTime = this.now();
    this.bytesAtStop = f.position;
    await machine.stop('finish-migrate');
    this.throttle.stop();
    f.rateLimiter?.setMaxBandwidth(0);
    await sv.complete();
    sv.saveDevices();
    sv.finish();
    const err = await f.close();
    if (err) throw err instanceof MigrationError ? err : new MigrationError('EMIG_PEER', err.message, { cause: err });
    this.checkCancel();
    if (shut) {
      const status = await shut;
      if (status !== 0) throw new MigrationError('EMIG_PEER', `destination reported failure (SHUT status ${status})`);
    }
    this.stats.downtime = this.now() - this.stopTime;
    if (DEBUG) process.stderr.write(`migration: downtime ${Math.round(this.stats.downtime)} ms, ${f.position - this.bytesAtStop} bytes after stop\n`);
    this.stats.downtimeBytes = f.position - this.bytesAtStop;
    this.stats.precopyBytes = this.bytesAtStop;
  }

  /** Reads the return path until SHUT; resolves with its status. */
  private async readReturnPath(channel: ByteChannel): Promise<number> {
    const rp = new QemuFileReader(channel);
    for (;;) {
      const msg = await readRpMessage(rp);
      if (!msg) throw new MigrationError('EMIG_PEER', 'return path closed before SHUT');
      if (msg.type === MIG_RP_MSG.SHUT) return be32At(msg.payload);
      if (msg.type === MIG_RP_MSG.PONG) continue;
      throw new MigrationError('EMIG_RETURN_PATH', `unexpected return-path message ${msg.type} in precopy`, { section: 'return-path' });
    }
  }

  private pagesSent(): number {
    const c = this.saver?.counters;
    return c ? c.normal + c.duplicate : 0;
  }

  /** QEMU migration_update_counters: every ≥100 ms. */
  private updateBandwidth(f: QemuFileWriter): void {
    const now = this.now();
    const spent = now - this.winStart;
    if (spent < BUFFER_DELAY_MS) return;
    const bytes = f.position - this.winBytes;
    this.stats.mbps = (bytes * 8) / (spent / 1000) / 1e6;
    this.stats.pagesPerSecond = ((this.pagesSent() - this.winPages) * 1000) / spent;
    // The switchover bandwidth: the lower of this window's rate and the rate over the current
    // pass. A single fast window (pages the destination had already faulted in, a burst into
    // socket buffers) would otherwise promise more than the final pass gets.
    const passSpent = now - this.passStart;
    const passBw = passSpent >= BUFFER_DELAY_MS ? (f.position - this.passBytes) / passSpent : Infinity;
    const avail = numParam(this.deps.settings, 'avail-switchover-bandwidth');
    this.bandwidth = avail > 0 ? avail / 1000 : Math.min(bytes / spent, passBw);
    this.threshold = switchoverThreshold(this.bandwidth, numParam(this.deps.settings, 'downtime-limit'));
    this.updateExpected();
    this.winStart = now;
    this.winBytes = f.position;
    this.winPages = this.pagesSent();
  }

  private updateExpected(): void {
    if (this.bandwidth > 0 && this.dirtyAtLastSync < 0 && this.saver) {
      // Still in the first pass: what the guest has dirtied so far, scaled to the whole pass,
      // is the best guess at what the first switchover check will find.
      const dirtied = this.saver.peekDirtied();
      const elapsed = this.now() - this.lastSyncAt;
      if (dirtied >= 0 && elapsed > 0) {
        const passMs = elapsed + (this.saver.dirtyPages * 4096) / this.bandwidth;
        this.dirtyRate = dirtied / elapsed;
        const pages = this.saver.totalBytes / 4096;
        const atPassEnd = pages * (1 - Math.exp((-this.dirtyRate * passMs) / pages));
        this.stats.expectedDowntime =
          SWITCHOVER_OVERHEAD_MS +
          predictDowntime({ dirtyPages: atPassEnd, dirtyRate: this.dirtyRate, bandwidth: this.bandwidth, threshold: this.threshold, pages });
      }
      return;
    }
    if (this.bandwidth > 0 && this.dirtyAtLastSync >= 0) {
      this.stats.expectedDowntime =
        SWITCHOVER_OVERHEAD_MS +
        predictDowntime({
          dirtyPages: this.dirtyAtLastSync,
          dirtyRate: this.dirtyRate,
          bandwidth: this.bandwidth,
          threshold: this.threshold,
          pages: this.saver?.totalBytes ? this.saver.totalBytes / 4096 : 1,
        });
    }
  }

  private onSync(pass: number, newlyDirty: number): void {
    // After the first pass a sync at the end of a pass finds what the guest dirtied during it.
    const now = this.now();
    // A sync at the end of a pass (not the final one, with the guest stopped) tells how much
    // the guest dirtied while that pass was sent.
    if (pass >= 2 && this.stopTime === 0 && this.lastSyncAt > 0 && now - this.lastSyncAt >= BUFFER_DELAY_MS) {
      this.dirtyAtLastSync = this.saver?.dirtyPages ?? 0;
      this.dirtyRate = this.dirtyAtLastSync / (now - this.lastSyncAt);
      this.updateExpected();
    }
    this.lastSyncAt = now;
    this.passStart = now;
    this.passBytes = this.f?.position ?? 0;
    if (DEBUG) {
      process.stderr.write(`migration: pass ${pass} at ${Math.round(now - this.stats.startTime)} ms: dirty ${this.saver?.dirtyPages} pages (+${newlyDirty}), rate ${this.dirtyRate.toFixed(1)} pages/ms, bandwidth ${(this.bandwidth / 1e3).toFixed(0)} MB/s, threshold ${Math.round(this.threshold / 4096)} pages, expected ${Math.round(this.stats.expectedDowntime)} ms\n`);
    }
    this.stats.dirtySyncCount = pass;
    this.deps.onPass?.(pass);
    const r = this.throttle.onSync(newlyDirty, this.f?.position ?? 0);
    if (r !== null) this.stats.dirtyPagesRate = r;
  }

  refreshStats(): OutgoingStats {
    const s = this.stats;
    const c = this.saver?.counters;
    s.transferred = this.f?.position ?? 0;
    s.remaining = this.status === 'completed' ? 0 : (this.saver?.dirtyPages ?? 0) * 4096;
    s.total = this.saver?.totalBytes ?? this.deps.machine.ramBlocks.reduce((n, b) => n + b.size, 0);
    s.duplicate = c?.duplicate ?? 0;
    s.normal = c?.normal ?? 0;
    s.throttlePercentage = this.throttle.percentage;
    if (this.stopTime === 0) s.precopyBytes = s.transferred;
    if (this.status === 'completed') s.dirtyPagesRate = 0;
    if (!['completed', 'failed', 'cancelled'].includes(this.status)) s.totalTime = this.now() - s.startTime;
    return s;
  }
}

/**
 * expected-downtime: how long the guest will be stopped if the migration goes on as it goes.
 * Each pass sends what the previous one left dirty (d pages at `bandwidth`), during which the
 * guest dirties distinct pages at `dirtyRate` (saturating at the RAM's page count); the
 * switchover comes at the first pass end where d fits under the threshold, and the downtime is
 * sending that d. QEMU reports dirty-bytes-rate ÷ bandwidth, which ignores the threshold and
 * how passes shrink; this follows the switchover rule the engine actually applies.
 */
export function predictDowntime(p: { dirtyPages: number; dirtyRate: number; bandwidth: number; threshold: number; pages: number }): number {
  const bwPages = p.bandwidth / 4096; // pages per ms
  const limit = p.threshold / 4096;
  let d = p.dirtyPages;
  for (let i = 0; i < 32 && d > limit; i++) {
    const t = d / bwPages;
    const next = p.pages * (1 - Math.exp((-p.dirtyRate * t) / p.pages));
    if (next >= d) break; // not converging: report what a stop now would cost
    d = next;
  }
  return d / bwPages;
}
