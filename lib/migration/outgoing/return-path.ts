/**
 * The source's return-path reader (QEMU migration.c source_return_path_thread): reads
 * messages from the destination until SHUT or the end of the channel, and hands each to the
 * handler registered for its type. Message framing and checks: ../return-path.ts.
 *
 *   SHUT            ends the reader; `shut` resolves with the status
 *   PONG            answers PING; handlers may wait for a value (postcopy's 0x42)
 *   anything else   its registered handler, or a failure naming the message
 *
 * A handler that throws fails the reader, which rejects `shut`: the migration treats a broken
 * return path like a broken stream.
 */
import type { QemuFileReader } from '../../stream';
import { MigrationError } from '../errors';
import { be32At, readRpMessage, type RpMessage } from '../return-path';
import { MIG_RP_MSG } from '../wire';

export type RpHandler = (msg: RpMessage) => void | Promise<void>;

/** What the outgoing migration needs of its return path, whichever thread reads it (this
 * reader on the main thread, or the postcopy page server's forwarding, page-server-client.ts). */
export interface ReturnPath {
  /** The status the destination reported in SHUT; rejects if the return path broke first. */
  readonly shut: Promise<number>;
  /** Resolves once a PONG with `value` has arrived. */
  pong(value: number): Promise<void>;
  /** Route messages of `type` to `handler`. */
  on(type: number, handler: RpHandler): void;
}

const NAMES = Object.fromEntries(Object.entries(MIG_RP_MSG).map(([k, v]) => [v, k])) as Record<number, string>;

/** PONG values seen, and who waits for which: both return-path readers keep one. */
export class PongWaiters {
  private readonly seen = new Set<number>();
  private readonly waiters = new Map<number, Array<() => void>>();

  wait(value: number): Promise<void> {
    if (this.seen.has(value)) return Promise.resolve();
    return new Promise((resolve) => {
      const list = this.waiters.get(value) ?? [];
      list.push(resolve);
      this.waiters.set(value, list);
    });
  }

  arrived(value: number): void {
    this.seen.add(value);
    for (const w of this.waiters.get(value) ?? []) w();
    this.waiters.delete(value);
  }
}

export class ReturnPathReader implements ReturnPath {
  /** The status the destination reported in SHUT. Rejects if the return path broke first. */
  readonly shut: Promise<number>;
  private readonly handlers = new Map<number, RpHandler>();
  private readonly pongs = new PongWaiters();
  private resolveShut!: (status: number) => void;
  private rejectShut!: (e: Error) => void;

  constructor(private readonly rp: QemuFileReader) {
    this.shut = new Promise<number>((resolve, reject) => {
      this.resolveShut = resolve;
      this.rejectShut = reject;
    });
    // A migration that fails before anyone awaits `shut` must not leave an unhandled rejection.
    this.shut.catch(() => undefined);
  }

  /** Route messages of `type` to `handler` (one handler per type). */
  on(type: number, handler: RpHandler): void {
    this.handlers.set(type, handler);
  }

  /** Resolves once a PONG with `value` has arrived (at once if it already has). */
  pong(value: number): Promise<void> {
    return this.pongs.wait(value);
  }

  /** Read until SHUT or the end; never throws (the outcome is `shut`). */
  async run(): Promise<void> {
    try {
      for (;;) {
        const msg = await readRpMessage(this.rp);
        if (!msg) throw new MigrationError('EMIG_PEER', 'return path closed before SHUT', { section: 'return-path' });
        if (msg.type === MIG_RP_MSG.SHUT) return this.resolveShut(be32At(msg.payload));
        if (msg.type === MIG_RP_MSG.PONG) {
          this.pongs.arrived(be32At(msg.payload));
          continue;
        }
        const h = this.handlers.get(msg.type);
        if (!h) {
          throw new MigrationError('EMIG_RETURN_PATH', `unexpected return-path message ${NAMES[msg.type] ?? msg.type}`, { section: 'return-path', field: NAMES[msg.type] });
        }
        await h(msg);
      }
    } catch (e) {
      this.rejectShut(e instanceof Error ? e : new Error(String(e)));
    }
  }
}
