/**
 * cpr-transfer, old process (QEMU migration.c qmp_migrate → cpr_state_save, migrate_hup_add,
 * qmp_migrate_finish_cb):
 *
 *   migrate {channels: [main, cpr]}, mode cpr-transfer                         guest
 *     refused up front: a RAM block not shared (QEMU's CPR blocker), postcopy,   runs
 *       background snapshot or COLO, a file: main channel
 *     status setup; connect cpr; QCPR state: RAM and serial descriptors;         runs
 *       shutdown(SHUT_WR)
 *     ... the new process maps RAM, builds devices, listens on main, closes cpr ...
 *     hang-up → connect main → header, configuration, RAM block list, no pages,  runs
 *       PING → PONG
 *     vCPUs park → serial input paused → END, devices → serial let go → EOF     paused
 *     SHUT 0 from the new process → completed, postmigrate; our copies closed    gone
 *   any failure before SHUT 0 → failed; serial taken back; the guest runs again on RAM the
 *   new process never ran on (it starts only after sending SHUT 0)
 *
 * The return path is always opened: without the new process's SHUT 0 the old one cannot know
 * the guest lives on, and must not end in postmigrate. The guest stops after the block list,
 * not before the header as in QEMU: nothing sent before then depends on guest state, and the
 * new process digests it while the guest still runs.
 */
import type { RamBlock } from '../../machine/ram';
import { QemuFileWriter } from '../../stream';
import { connectCpr, type CprChannel, type MigrationAddress } from '../../transport';
import { MigrationError } from '../errors';
import type { CapabilitySet, MigMode } from '../options';
import type { OutgoingContext } from '../outgoing/context';
import { saveCprState, type CprFd } from './state';

/** Descriptors other than RAM that keep guest I/O alive (the serial backend), handed over
 * beside RAM. livemig's addition: QEMU passes no chardev. */
export interface CprHandover {
  /** What to send; this process keeps its own descriptors. */
  fds(): Array<{ name: string; fd: number }>;
  /** The guest stopped for the switchover: deliver its pending output, stop reading input and
   * accepting (before the device state is saved), keep everything else. Synchronous: it is
   * part of the pause. */
  quiesce(): void;
  /** The device state is out: whatever must reach the kernel before the new process writes
   * does so now (the stream's end follows). */
  release(): Promise<void>;
  /** The migration failed: read and accept again (before the guest runs). */
  reclaim(): Promise<void>;
  /** The new process has the guest: let go of this process's descriptors. */
  finish(): void;
}

/** What the outgoing migration calls at each step of a cpr-transfer (outgoing.ts). */
export interface CprSourceHooks {
  /** Resolves once the new process hung up the cpr channel: it listens on main, or died. */
  readonly listening: Promise<void>;
  stopped(): void;
  devicesSent(): Promise<void>;
  failed(): Promise<void>;
  completed(): void;
  /** migrate_cancel while waiting: `listening` resolves at once. */
  cancel(): void;
}

const setting = (text: string) => new MigrationError('EMIG_SETTING', text);

/** PING/PONG value after the block list (1 follows OPEN_RETURN_PATH, as in QEMU). */
const SETTLED_PING = 2;

/**
 * Before the stop: a PING after the RAM block list, and its PONG. Once it is back, the new
 * process has read the header, configuration and block list while the guest still ran here,
 * so the pause holds only the device state.
 */
export async function settleBeforeStop(ctx: OutgoingContext): Promise<void> {
  ctx.sv!.ping(SETTLED_PING);
  await ctx.f!.drain();
  ctx.checkCancel();
  await Promise.race([ctx.rp!.pong(SETTLED_PING), ctx.rp!.shut.then(() => undefined)]);
  ctx.checkCancel();
}

/** migrate_prepare()'s CPR conflicts, QEMU's text. */
export function cprConflict(caps: Readonly<CapabilitySet>): string | undefined {
  const conflict = caps['postcopy-ram'] ? 'postcopy' : caps['background-snapshot'] ? 'background snapshot' : caps['x-colo'] ? 'COLO' : undefined;
  return conflict && `Cannot use ${conflict} with CPR`;
}

/**
 * QEMU's CPR blocker (ram_block_add_cpr_blocker): a block the new process could not map —
 * neither a shared memfd nor a shared named file — would come up empty there.
 */
export function cprTransferBlocker(blocks: readonly RamBlock[]): string | undefined {
  const b = blocks.find((blk) => !blk.shared);
  if (!b) return undefined;
  return `Memory region ${b.cprName} is not compatible with CPR. share=on is required for memory-backend objects, and aux-ram-share=on is required.`;
}

/** The RAM descriptors to hand over: every block except those a named file backs, which the
 * new process opens again by path (QEMU's memory-backend-file registers no fd either). */
export function cprRamFds(blocks: readonly RamBlock[]): CprFd[] {
  return blocks.filter((b) => b.memPath === undefined).map((b) => ({ name: b.cprName, id: 0, fd: b.fd }));
}

/** Refusals before anything happens, in QEMU's order (qmp_migrate, migrate_prepare). */
export function checkCprTransfer(main: MigrationAddress, cpr: MigrationAddress | undefined, blocks: readonly RamBlock[], caps: Readonly<CapabilitySet>): void {
  if (main.transport === 'file') throw setting('Migration requires streamable transport (eg unix)');
  if (!cpr) throw setting("missing 'cpr' migration channel");
  const blocked = cprTransferBlocker(blocks);
  if (blocked) throw setting(blocked);
  const conflict = cprConflict(caps);
  if (conflict) throw setting(conflict);
}

/** Checks for the modes that stop the guest first (cpr-reboot): the conflicts only. */
export function checkCprMode(mode: MigMode, caps: Readonly<CapabilitySet>): void {
  if (mode === 'normal') return;
  const conflict = cprConflict(caps);
  if (conflict) throw setting(conflict);
}

/** The old process's side of one cpr-transfer. */
export class CprSource implements CprSourceHooks {
  readonly listening: Promise<void>;
  private released = false;
  private abort!: () => void;

  private constructor(
    private readonly channel: CprChannel,
    private readonly handover: CprHandover | undefined,
    warmUp: () => Promise<unknown>,
  ) {
    const aborted = new Promise<void>((resolve) => (this.abort = resolve));
    // While the new process builds its machine, run the code of the pause once (warmup.ts).
    const hangup = channel.hangup();
    const ready = warmUp().then(
      () => hangup,
      () => hangup,
    );
    this.listening = Promise.race([ready, aborted]);
  }

  cancel(): void {
    this.abort();
  }

  /** Connects the cpr channel and sends the state; rejects (nothing left open) if either fails. */
  static async start(
    addr: MigrationAddress,
    blocks: readonly RamBlock[],
    handover: CprHandover | undefined,
    warmUp: () => Promise<unknown> = async () => undefined,
  ): Promise<CprSource> {
    let channel: CprChannel;
    try {
      channel = connectCpr(addr);
    } catch (e) {
      throw new MigrationError('EMIG_PEER', e instanceof Error ? e.message : String(e), { section: 'cpr', cause: e });
    }
    try {
      const f = new QemuFileWriter(channel);
      const extra = (handover?.fds() ?? []).map(({ name, fd }) => ({ name, id: 0, fd }));
      saveCprState(f, [...cprRamFds(blocks), ...extra]);
      // Half-closed: the new process reads EOF after the state, and its close is our HUP.
      const err = await f.close();
      if (err) throw new MigrationError('EMIG_PEER', `sending the cpr state failed: ${err.message}`, { section: 'cpr', cause: err });
    } catch (e) {
      channel.destroy();
      throw e;
    }
    return new CprSource(channel, handover, warmUp);
  }

  stopped(): void {
    this.released = true;
    this.handover?.quiesce();
  }

  async devicesSent(): Promise<void> {
    await this.handover?.release();
  }

  async failed(): Promise<void> {
    this.channel.destroy();
    if (this.released) await this.handover?.reclaim();
    this.released = false;
  }

  completed(): void {
    this.channel.destroy();
    this.handover?.finish();
  }
}
