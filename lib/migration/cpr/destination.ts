/**
 * cpr-transfer, new process (QEMU vl.c cpr_state_load before any device exists;
 * migration.c qemu_start_incoming_migration → cpr_state_close):
 *
 *   start-up, before the machine and the monitor:
 *     CprReceiver.listen(cpr address) → receive(): accept one connection, read the QCPR state
 *   machine built on the RAM descriptors (`take`), nothing written into RAM
 *   monitor up; -incoming main listens → `listening()` closes the cpr channel: the old
 *     process sees the hang-up and connects main
 *   stream loaded (RAM block list, no pages, devices) → SHUT 0 → guest runs → serial adopted
 *
 * With `-incoming defer` the channel stays open until migrate-incoming, so the old process's
 * `migrate` must come first: the new process's monitor is not up until the state is read.
 * Descriptors nobody claims are an error (the two sides disagree about the machine) and are
 * closed; so is everything on any failure.
 */
import { QemuFileReader } from '../../stream';
import { CprListener, type CprChannel, type MigrationAddress } from '../../transport';
import { MigrationError } from '../errors';
import { loadCprState, type CprFd } from './state';
import { closeQuietly } from '../../host';

/** What the incoming migration calls at each step (manager.ts, incoming.ts). */
export interface CprIncomingHooks {
  /** The main channel listens: tell the old process (close the cpr channel). */
  listening(): void;
  /** The guest runs here (SHUT 0 is out): take over the devices' descriptors (serial). */
  resumed?(): void;
}

/** Waits for the old process on the cpr channel. */
export class CprReceiver {
  private constructor(private readonly listener: CprListener) {}

  /** Listens now (so a `migrate` on the old process can connect right after). */
  static listen(addr: MigrationAddress): CprReceiver {
    try {
      return new CprReceiver(CprListener.listen(addr));
    } catch (e) {
      throw new MigrationError('EMIG_SETTING', e instanceof Error ? e.message : String(e), { section: 'cpr', cause: e });
    }
  }

  /** Accepts the old process and reads its state. The channel stays open (see listening()). */
  async receive(): Promise<CprState> {
    let channel: CprChannel;
    try {
      channel = await this.listener.accept();
    } catch (e) {
      throw new MigrationError('EMIG_PEER', e instanceof Error ? e.message : String(e), { section: 'cpr', cause: e });
    }
    try {
      return new CprState(channel, await loadCprState(new QemuFileReader(channel)));
    } catch (e) {
      channel.destroy();
      throw e;
    }
  }

  close(): void {
    this.listener.close();
  }
}

/** The descriptors received, claimed one by one by whoever builds on them. */
export class CprState {
  private readonly left = new Map<string, CprFd>();

  constructor(
    private readonly channel: CprChannel,
    fds: readonly CprFd[],
  ) {
    for (const f of fds) this.left.set(`${f.name}#${f.id}`, f);
  }

  /** The descriptor named `name` (id 0), now owned by the caller; undefined if none came. */
  take(name: string, id = 0): number | undefined {
    const key = `${name}#${id}`;
    const f = this.left.get(key);
    this.left.delete(key);
    return f?.fd;
  }

  /** Every descriptor whose name starts with `prefix` (a chardev's `serial0/`), in order. */
  takeGroup(prefix: string): Array<{ name: string; fd: number }> {
    const out: Array<{ name: string; fd: number }> = [];
    for (const [key, f] of this.left) {
      if (!f.name.startsWith(prefix)) continue;
      out.push({ name: f.name, fd: f.fd });
      this.left.delete(key);
    }
    return out;
  }

  /** The names that arrived and nobody took. */
  get unclaimed(): string[] {
    return [...this.left.values()].map((f) => (f.id === 0 ? f.name : `${f.name} (id ${f.id})`));
  }

  /** Refuses leftovers: the two sides disagree about the machine. */
  checkAllClaimed(): void {
    const names = this.unclaimed;
    if (names.length) {
      throw new MigrationError('EMIG_CPR', `the cpr state hands over ${names.map((n) => `'${n}'`).join(', ')}, which nothing here uses`, {
        section: 'CprState',
        field: 'fds',
      });
    }
  }

  /** Closes the channel: the old process's signal to connect main. Idempotent. */
  listening(): void {
    this.channel.destroy();
  }

  /** Closes what nobody took, and the channel. */
  dispose(): void {
    for (const f of this.left.values()) closeQuietly(f.fd);
    this.left.clear();
    this.channel.destroy();
  }
}
