/**
 * Incoming migration (QEMU migration.c process_incoming_migration_co, savevm.c
 * qemu_loadvm_state). The stream is loaded into a machine whose vCPUs are parked
 * (run state inmigrate):
 *
 *   status none → setup (listening) → active (connection accepted, loading) → completed | failed
 *
 * Commands: OPEN_RETURN_PATH opens the reverse direction of the channel (and, with
 * switchover-ack, acknowledges at once: no device here has anything to finish first), PING is
 * answered with PONG, SWITCHOVER_START needs nothing. Postcopy commands are refused (this
 * engine migrates by precopy). After EOF the vmdesc is read and discarded; then the guest runs
 * if the source was running (or sent no run state) and the destination was not started with
 * -S. A SHUT (0 ok, 1 failed) goes back on the return path when there is one, SHUT 0 before
 * the guest runs here: until the source has it, the source may still resume, and with
 * cpr-transfer both would then run on the same RAM.
 *
 * cpr-transfer (a cpr channel brought the RAM, cpr/destination.ts): every block is ignored, so
 * a page record is an error; nothing is populated; the serial is adopted once the guest runs.
 */
import { performance } from 'node:perf_hooks';
import type { VirtMachine } from '../machine/virt';
import { QemuFileReader, VMDESC_JSON_MAX, type ByteChannel } from '../stream';
import { MigrationError } from './errors';
import { LoadVm } from './loadvm';
import type { CprIncomingHooks } from './cpr/destination';
import type { MigrationOptions } from './options';
import { RamLoader } from './ram-load';
import { be32At, ReturnPathWriter } from './return-path';
import type { MigrationRunState } from './run-state';
import { configurationFor, globalStateFor, machineRegistry, streamFormat } from './sections';
import type { MigrationState } from './state';
import { MIG_CMD, MIG_CMD_NAMES } from './wire';

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
  errorDesc: string | undefined;
  private readonly now: () => number;

  constructor(private readonly deps: IncomingDeps) {
    this.now = deps.now ?? (() => performance.now());
  }

  /** Load one stream from `channel`. Never rejects; the outcome is in the result and status. */
  async run(channel: ByteChannel): Promise<IncomingResult> {
    const { machine, state, vm, options } = this.deps;
    const t0 = this.now();
    state.cas('none', 'setup');
    state.cas('setup', 'active');
    vm.incomingStarted();
    const f = new QemuFileReader(channel);
    const ignoreShared = options.caps['x-ignore-shared'];
    const cpr = this.deps.cpr;
    // Take the destination's page faults in a helper thread just ahead of the load (the
    // process may have started it already, while it waited for the stream). Under
    // x-ignore-shared a shared file-backed RAM is already there, and under cpr-transfer all of
    // it: nothing to populate.
    const populate = cpr || (ignoreShared && machine.ram.shared && machine.ram.memPath) ? null : machine.populateAhead();
    populate?.gate();
    const ram = new RamLoader(machine.ramBlocks, { pristine: !machine.hasRun, populate, ignoreShared, mode: cpr ? 'cpr-transfer' : 'normal' });
    const global = globalStateFor(() => 'inmigrate');
    const reg = machineRegistry(machine, ram, global, options);
    const format = streamFormat(options);
    const loader = new LoadVm(f, reg, configurationFor(machine, options), {
      onCommand: (cmd, payload) => this.command(channel, cmd, payload),
      expectConfiguration: format.sendConfiguration,
      expectSectionFooter: format.sendSectionFooter,
    });
    try {
      try {
        await loader.loadHeader();
        await loader.loadMain();
        await loader.readVmdesc(VMDESC_JSON_MAX);
      } finally {
        populate?.stop();
      }
      if (!ram.blockListSeen) throw new MigrationError('EMIG_RAM', 'stream carried no RAM section', { section: 'ram' });
      // QEMU process_incoming_migration_bh: run if the source ran (or sent no run state) and
      // we were not told -S; completed once the guest runs.
      const sourceRan = global.received === null || global.received === 'running';
      this.rp?.shut(0);
      vm.incomingCompleted(sourceRan && !this.deps.startPaused);
      cpr?.resumed?.();
      state.cas('active', 'completed');
      await channel.end().catch(() => {});
      return { ok: true, loadTime: this.now() - t0, bytes: f.position };
    } catch (e) {
      const err = e instanceof MigrationError ? e : new MigrationError('EMIG_DEVICE', e instanceof Error ? e.message : String(e), { cause: e });
      this.errorDesc = err.message;
      state.reset('failed');
      vm.incomingFailed();
      try {
        this.rp?.shut(1);
        await channel.end();
      } catch {
        /* the source may be gone */
      }
      channel.destroy();
      return { ok: false, error: err, loadTime: this.now() - t0, bytes: f.position };
    }
  }

  private command(channel: ByteChannel, cmd: number, payload: Uint8Array): void {
    switch (cmd) {
      case MIG_CMD.OPEN_RETURN_PATH:
        // A second one is ignored (QEMU: "already open").
        if (this.rp) return;
        this.rp = new ReturnPathWriter(channel);
        if (this.deps.options.caps['switchover-ack']) this.rp.switchoverAck();
        return;
      case MIG_CMD.PING:
        if (!this.rp) throw new MigrationError('EMIG_COMMAND', 'PING received with no return path', { section: 'command', field: 'PING' });
        this.rp.pong(be32At(payload));
        return;
      default:
        throw new MigrationError('EMIG_COMMAND', `command ${MIG_CMD_NAMES[cmd] ?? cmd} is not supported (postcopy is not enabled)`, {
          section: 'command',
          field: MIG_CMD_NAMES[cmd],
        });
    }
  }
}
