/**
 * Named file descriptors of one monitor (QEMU monitor/fds.c: getfd, closefd,
 * monitor_get_fd). A client sends a descriptor with SCM_RIGHTS alongside the getfd command
 * on a unix socket; getfd names it; a later "fd:NAME" migration URI takes it out of the
 * table (the taker then owns it).
 *
 * Receiving the descriptor is not possible with Node's net.Socket: libuv reads a non-IPC
 * pipe with read(2), so the kernel discards the ancillary data and closes the passed
 * descriptors. The native addon's SCM_RIGHTS receiver plugs in through FdReceiver; without
 * it getfd answers "No file descriptor supplied via SCM_RIGHTS", as QEMU does when none
 * arrived.
 */

import * as fs from 'node:fs';
import { QERR, genericError } from './errors';

/** Source of descriptors received on a connection, most recent last. */
export interface FdReceiver {
  /** Take the most recently received descriptor not yet claimed, if any. */
  takeFd(): number | undefined;
  /** Close anything received but never claimed (connection closed). */
  dispose?(): void;
}

/** Creates the receiver for an accepted unix-socket connection (the native addon's hook). */
export type FdReceiverFactory = (socket: import('node:net').Socket) => FdReceiver | undefined;

export class NamedFdTable {
  private readonly fds = new Map<string, number>();

  constructor(private readonly close: (fd: number) => void = (fd) => fs.closeSync(fd)) {}

  /** getfd: name a descriptor; a previous one of that name is closed (monitor_add_fd). */
  add(name: string, fd: number): void {
    if (/^[0-9]/.test(name)) {
      this.safeClose(fd);
      throw genericError("Parameter 'fdname' expects a name not starting with a digit");
    }
    const old = this.fds.get(name);
    if (old !== undefined) this.safeClose(old);
    this.fds.set(name, fd);
  }

  /** closefd */
  remove(name: string): void {
    const fd = this.fds.get(name);
    if (fd === undefined) throw genericError(QERR.fdNotFound(name));
    this.fds.delete(name);
    this.safeClose(fd);
  }

  /** monitor_get_fd(): hand the descriptor over; the caller now owns (and closes) it. */
  take(name: string): number {
    const fd = this.fds.get(name);
    if (fd === undefined) throw genericError(`File descriptor named '${name}' has not been found`);
    this.fds.delete(name);
    return fd;
  }

  has(name: string): boolean {
    return this.fds.has(name);
  }

  get size(): number {
    return this.fds.size;
  }

  closeAll(): void {
    for (const fd of this.fds.values()) this.safeClose(fd);
    this.fds.clear();
  }

  private safeClose(fd: number): void {
    try {
      this.close(fd);
    } catch {
      // already closed elsewhere: nothing to undo
    }
  }
}
