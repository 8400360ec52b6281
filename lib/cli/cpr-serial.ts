/**
 * The serial backend across a cpr-transfer (livemig's addition: QEMU hands over no chardev).
 *
 *   old process                                   new process
 *   ───────────                                   ───────────
 *   cpr state: serial0/listen, serial0/conn …  ─▶ start-up: names checked against -serial,
 *     (this process's own fds, still in use)       kept unopened (the old one still serves)
 *   guest stopped: UART output delivered, input
 *     paused; device state out: output flushed,
 *     accepting stopped (listener set aside); EOF
 *                                                  stream loaded: SHUT 0, run; backend adopted
 *                                                    (guest output held until then)
 *   SHUT 0: our descriptors closed, no shutdown    the client never reconnects
 *   failure instead: reading and accepting resume, guest runs again
 *
 * A new process that gets no serial descriptors (the old one used stdio, or is QEMU) opens its
 * -serial as usual.
 */
import * as fs from 'node:fs';
import type { Chardev, ChardevSpec, NamedFd } from '../chardev';
import type { CprHandover } from '../migration/cpr';
import { closeQuietly } from '../host';

export const SERIAL_ID = 'serial0';
/** Output a console client has not read this long after the stop is dropped at the handover. */
const FLUSH_MS = 50;

/** Where the runtime keeps its serial backend. */
export interface SerialSlot {
  readonly spec: ChardevSpec | undefined;
  get(): Chardev | null;
  /** Installs a backend (wires its input to the UART), or clears the slot. */
  set(c: Chardev | null): void;
}

/** The old process's side. */
export class SerialHandover implements CprHandover {
  constructor(
    private readonly slot: SerialSlot,
    private readonly deliverGuestOutput: () => void,
  ) {}

  fds(): NamedFd[] {
    return this.slot.get()?.fds() ?? [];
  }

  quiesce(): void {
    this.deliverGuestOutput();
    this.slot.get()?.setInputPaused(true);
  }

  /** Output delivered at the stop reaches the kernel, and the listener stops accepting, before
   * the stream ends: so before the new process writes or accepts anything. */
  async release(): Promise<void> {
    const c = this.slot.get();
    await c?.flush(FLUSH_MS);
    await c?.setAccepting(false);
  }

  async reclaim(): Promise<void> {
    const c = this.slot.get();
    await c?.setAccepting(true);
    c?.setInputPaused(false);
  }

  /** The new process has the console: this one lets go without a shutdown or an unlink. */
  finish(): void {
    const c = this.slot.get();
    if (!c) return;
    for (const { fd } of c.detach()) closeQuietly(fd);
    this.slot.set(null);
  }
}

/** The roles a -serial spec takes over; stdio and null take none. */
function roles(spec: ChardevSpec | undefined): { need: string[]; allow: RegExp } {
  switch (spec?.kind) {
    case 'file':
      return { need: ['file'], allow: /^file$/ };
    case 'unix':
    case 'tcp':
      return spec.server ? { need: ['listen'], allow: /^(listen|conn(\.\d+)?)$/ } : { need: ['conn'], allow: /^conn$/ };
    default:
      return { need: [], allow: /^$/ };
  }
}

/**
 * The new process's check at start-up, before it listens on main: the descriptors that came
 * must be what its -serial would adopt, or the upgrade is refused while the old process still
 * runs the guest (closing them here would cut the console off).
 */
export function checkSerialFds(spec: ChardevSpec | undefined, fds: readonly NamedFd[]): void {
  if (fds.length === 0) return;
  const { need, allow } = roles(spec);
  const have = fds.map((f) => f.name.slice(SERIAL_ID.length + 1));
  const stray = have.filter((r) => !allow.test(r));
  const what = spec ? `-serial ${spec.kind}` : 'no -serial';
  if (stray.length) throw new Error(`cpr-transfer: the old process handed over ${stray.map((r) => `${SERIAL_ID}/${r}`).join(', ')}, which ${what} has no use for`);
  const missing = need.filter((r) => !have.includes(r));
  if (missing.length) throw new Error(`cpr-transfer: ${what} needs ${missing.map((r) => `${SERIAL_ID}/${r}`).join(', ')} from the old process`);
  // Adopted only once the guest runs here, when failing is no longer an option: check now.
  for (const { name, fd } of fds) {
    const st = fs.fstatSync(fd);
    const ok = name.endsWith('/file') ? !st.isSocket() && !st.isDirectory() : st.isSocket();
    if (!ok) throw new Error(`cpr-transfer: ${name} is not a ${name.endsWith('/file') ? 'file' : 'socket'}`);
  }
}

