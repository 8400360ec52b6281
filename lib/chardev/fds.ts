/**
 * Named descriptors: what a chardev hands to the next process (cpr-transfer) and is rebuilt
 * from there. QEMU's cpr keeps its fds in a list keyed by name and id (migration/cpr.c); ours
 * are named `<chardev id>/<role>`: `serial0/listen`, `serial0/conn`, `serial0/file`.
 */
import type * as net from 'node:net';
import { ChardevError } from './errors';

export interface NamedFd {
  readonly name: string;
  readonly fd: number;
}

/**
 * The descriptor under a Node socket or server. Node does not expose it; libuv's stream
 * handles carry it as `fd` (the same reading as socketFd in lib/transport/stream-channel.ts).
 * undefined once the handle is closed.
 */
export function handleFd(h: net.Socket | net.Server): number | undefined {
  const fd = (h as unknown as { _handle?: { fd?: number } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/**
 * The descriptors given to adopt, taken by role. A chardev takes what it uses and then calls
 * `finish()`, which refuses leftovers: a name it does not know means the sender and receiver
 * disagree about what was handed over, and guessing would leak or misuse a descriptor.
 */
export class Adoption {
  private readonly left = new Map<string, number>();

  constructor(
    private readonly id: string,
    fds: readonly NamedFd[],
  ) {
    for (const { name, fd } of fds) {
      if (this.left.has(name)) throw new ChardevError('ECHARDEV_ADOPT_UNEXPECTED', `'${name}' given twice`);
      this.left.set(name, fd);
    }
  }

  /** The descriptor for `<id>/<role>`, if given. */
  take(role: string): number | undefined {
    const name = `${this.id}/${role}`;
    const fd = this.left.get(name);
    this.left.delete(name);
    return fd;
  }

  /** The descriptor for `<id>/<role>`, which must have been given. */
  need(role: string): number {
    return this.take(role) ?? this.missing(role);
  }

  missing(role: string): never {
    throw new ChardevError('ECHARDEV_ADOPT_MISSING', `chardev '${this.id}': no '${this.id}/${role}' to adopt`);
  }

  /** Every given descriptor whose role matches, in the order given. */
  takeAll(role: RegExp): NamedFd[] {
    const out: NamedFd[] = [];
    for (const [name, fd] of this.left) {
      if (name.startsWith(`${this.id}/`) && role.test(name.slice(this.id.length + 1))) out.push({ name, fd });
    }
    for (const { name } of out) this.left.delete(name);
    return out;
  }

  finish(): void {
    const names = [...this.left.keys()];
    if (names.length) {
      throw new ChardevError('ECHARDEV_ADOPT_UNEXPECTED', `chardev '${this.id}' does not use ${names.join(', ')}`);
    }
  }
}
