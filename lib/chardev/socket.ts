/**
 * The socket under every chardev that is one: the -serial backend (backends.ts) and the
 * -qmp/-monitor endpoints (lib/monitor/endpoint.ts). QEMU's chardev-socket, as far as we
 * follow it:
 *
 *   unix:PATH,server=on        listen; a stale socket file is removed before bind
 *                              (unix_listen_saddr) and PATH is removed on close
 *   tcp:HOST:PORT,server=on    listen; port 0 picks a free port
 *   unix:PATH / tcp:HOST:PORT  server=off: connect out, one connection
 *
 * The user decides how many clients a listener serves at once (QEMU's chardev: one; our
 * monitors: several) and what wait=on means for it: `open()` resolves once listening or
 * connected, `connected` once the first client is here. A peer that resets or vanishes only
 * ends its own connection: no socket error is ever left without a listener.
 *
 * Handover (cpr-transfer). Every descriptor has a name (`fds()`); `detach()` lets go of them
 * without shutting a connection down or removing the path; `open(adopt)` rebuilds the socket
 * on descriptors received from the old process instead of binding or connecting:
 *
 *   old process A                                  new process B
 *   ─────────────                                  ─────────────
 *   guest stopped: no more output                  FdListener.listen(cprPath); accept()
 *   fds = chardev.detach()    duplicates; A's
 *     handles closed: A reads and accepts no more
 *   fdSocket.send(names, fds) ──── SCM_RIGHTS ───▶ msg = fdSocket.recv()
 *   close each of fds; exit                        openChardev(spec, { id, adopt })
 *        meanwhile input and new connections wait in the kernel (socket buffer, backlog)
 *
 * Unix listeners are bound by the native addon and given to libuv as a descriptor: libuv
 * unlinks a path it bound itself whenever the handle closes, which would remove the socket
 * from under the process it was handed to. close() unlinks explicitly instead.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';

import { HostError, isHostError, native } from '../host';
import { Adoption, handleFd, type NamedFd } from './fds';
import type { SocketSpec } from './spec';

export interface ChardevSocketOptions {
  /** The chardev id; descriptors are named `<id>/listen`, `<id>/conn`, `<id>/conn.1`, … */
  id: string;
  /** Clients a listener serves at once; a client beyond that is disconnected at once. */
  maxClients: number;
  /** Keep our side writable after the peer half-closes (a monitor still owes replies). */
  allowHalfOpen?: boolean;
  /** Each client: accepted, connected out, or adopted. Errors are already handled. */
  onClient(sock: net.Socket): void;
}

const CONN_ROLE = /^conn(\.\d+)?$/;

export class ChardevSocket {
  private server: net.Server | undefined;
  /** In arrival order, which is also the order of their names. */
  private readonly clients: net.Socket[] = [];
  private released = false;
  /** A listener set aside while accepting is off (setAccepting): its duplicate. */
  private parkedListen: number | undefined;
  private firstClient!: () => void;
  private noClient!: (e: Error) => void;
  /** Resolves when the first client is here (accepted, connected or adopted). */
  readonly connected: Promise<void>;

  constructor(
    readonly spec: SocketSpec,
    private readonly opts: ChardevSocketOptions,
  ) {
    this.connected = new Promise((resolve, reject) => {
      this.firstClient = resolve;
      this.noClient = reject;
    });
    this.connected.catch(() => undefined);
  }

  /** Listens or connects; with `adopt`, takes over descriptors from another process instead. */
  async open(adopt?: readonly NamedFd[]): Promise<void> {
    if (adopt) return this.adopt(new Adoption(this.opts.id, adopt));
    if (this.spec.server) return this.listen();
    this.addClient(await connectOut(this.spec, this.opts.allowHalfOpen ?? false));
  }

  /** The listening address: tcp {address, port}; unix the path; null when not listening. */
  address(): net.AddressInfo | string | null {
    if (!this.server) return null;
    if (this.spec.kind === 'unix') return this.spec.path;
    return this.server.address();
  }

  get clientCount(): number {
    return this.liveClients().length;
  }

  /**
   * Stops or restarts accepting. Off: the listening descriptor is set aside (a duplicate) and
   * the handle closed, so this process accepts nothing while the socket keeps listening —
   * for another process holding a copy (cpr-transfer), or for later. On: listening resumes
   * on it.
   */
  async setAccepting(on: boolean): Promise<void> {
    if (!on) {
      const fd = this.server && handleFd(this.server);
      if (fd === undefined || this.parkedListen !== undefined) return;
      this.parkedListen = native.dup(fd);
      this.server!.close();
      this.server = undefined;
      return;
    }
    const fd = this.parkedListen;
    if (fd === undefined) return;
    this.parkedListen = undefined;
    const server = this.createServer();
    await listenOn(server, { fd });
    this.server = server;
  }

  /** The descriptors that keep this chardev alive now: the listener, then each connection. */
  fds(): NamedFd[] {
    const out: NamedFd[] = [];
    const listen = this.parkedListen ?? (this.server && handleFd(this.server));
    if (listen !== undefined) out.push({ name: `${this.opts.id}/listen`, fd: listen });
    this.liveClients().forEach((sock, i) => {
      const fd = handleFd(sock);
      if (fd !== undefined) out.push({ name: `${this.opts.id}/${i === 0 ? 'conn' : `conn.${i}`}`, fd });
    });
    return out;
  }

  /**
   * Stops using every descriptor and returns duplicates of them, which the caller owns: send
   * them to the next process, then close them. Nothing is shut down or unlinked, so the peer
   * notices nothing. Output still queued in this process is dropped: stop producing and let it
   * drain first. close() afterwards does nothing.
   */
  detach(): NamedFd[] {
    const out: NamedFd[] = [];
    try {
      for (const { name, fd } of this.fds()) out.push({ name, fd: native.dup(fd) });
    } catch (e) {
      for (const { fd } of out) native.close(fd);
      throw e;
    }
    this.released = true;
    this.closeParked();
    // destroy() only closes this process's descriptor: close(2) without shutdown(2), and the
    // duplicate keeps the open socket alive, so the peer sees neither FIN nor RST.
    for (const sock of this.clients.splice(0)) sock.destroy();
    // Bound by the addon (see the top), so closing the handle leaves the path in place.
    this.server?.close();
    this.server = undefined;
    this.noClient(new Error(`chardev '${this.opts.id}' detached`));
    return out;
  }

  /** Ends every connection (after what was written to it), stops listening, removes the path. */
  close(): Promise<void> {
    if (this.released) return Promise.resolve();
    this.released = true;
    this.closeParked();
    for (const sock of this.clients.splice(0)) if (!sock.destroyed) sock.end(() => sock.destroy());
    const server = this.server;
    this.server = undefined;
    const closed = server ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
    // Now, not after the server's 'close' (which waits for every connection to end): a caller
    // may exit right after close() without awaiting it.
    if (this.spec.kind === 'unix' && this.spec.server) removeStaleSocket(this.spec.path);
    this.noClient(new Error(`chardev '${this.opts.id}' closed`));
    return closed;
  }

  private closeParked(): void {
    if (this.parkedListen !== undefined) native.close(this.parkedListen);
    this.parkedListen = undefined;
  }

  private liveClients(): net.Socket[] {
    return this.clients.filter((s) => !s.destroyed);
  }

  private async listen(): Promise<void> {
    const spec = this.spec;
    const server = this.createServer();
    if (spec.kind === 'unix') {
      removeStaleSocket(spec.path);
      // Node's listen() re-issues listen(2) with its own backlog; the addon's default is moot.
      await listenOn(server, { fd: bindUnix(spec.path) });
    } else {
      await listenOn(server, { port: spec.port, host: spec.host === '' ? undefined : spec.host });
    }
    this.server = server;
  }

  private async adopt(adoption: Adoption): Promise<void> {
    const spec = this.spec;
    const listen = spec.server ? adoption.take('listen') : undefined;
    const conns = adoption.takeAll(spec.server ? CONN_ROLE : /^conn$/);
    // Names this chardev does not use first: they mean the wrong list altogether.
    adoption.finish();
    if (spec.server && listen === undefined) adoption.missing('listen');
    if (!spec.server && conns.length === 0) adoption.missing('conn');
    if (listen !== undefined) {
      // Already bound and listening in the old process: no stale-socket removal, no bind.
      const server = this.createServer();
      await listenOn(server, { fd: listen });
      this.server = server;
    }
    const allowHalfOpen = this.opts.allowHalfOpen ?? false;
    for (const { fd } of conns) this.addClient(new net.Socket({ fd, readable: true, writable: true, allowHalfOpen }));
  }

  private createServer(): net.Server {
    return net.createServer({ allowHalfOpen: this.opts.allowHalfOpen ?? false }, (sock) => {
      if (this.clientCount >= this.opts.maxClients) {
        // QEMU's chardev stops accepting while it has its client, so a second one waits in the
        // backlog. A Node server cannot stop accepting without closing, so it is let go.
        sock.destroy();
        return;
      }
      this.addClient(sock);
    });
  }

  private addClient(sock: net.Socket): void {
    // A reset by the peer (ECONNRESET, EPIPE on write) ends this connection, nothing else.
    sock.on('error', () => sock.destroy());
    this.clients.push(sock);
    sock.once('close', () => {
      const i = this.clients.indexOf(sock);
      if (i >= 0) this.clients.splice(i, 1);
    });
    this.firstClient();
    this.opts.onClient(sock);
  }
}

/**
 * Listens on an address or on a listening descriptor ({fd}: Node's "handle" form, which its
 * ListenOptions type leaves out); rejects on a bind error. Later errors (accept failing on
 * EMFILE) are ignored: the listener keeps going, as QEMU's does.
 */
function listenOn(server: net.Server, how: net.ListenOptions | { fd: number }): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(how as object, () => {
      server.off('error', reject);
      server.on('error', () => undefined);
      resolve();
    });
  });
}

/** A listening unix socket bound at `path`; a failure names the path, as Node's listen does. */
function bindUnix(path: string): number {
  try {
    return native.listen(path);
  } catch (e) {
    if (!isHostError(e)) throw e;
    throw new HostError(`${e.message} '${path}'`, e.errno, e.code, e.syscall);
  }
}

async function connectOut(spec: SocketSpec, allowHalfOpen: boolean): Promise<net.Socket> {
  const sock =
    spec.kind === 'unix'
      ? net.connect({ path: spec.path, allowHalfOpen })
      : net.connect({ port: spec.port, host: spec.host === '' ? 'localhost' : spec.host, allowHalfOpen });
  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.once('connect', () => {
      sock.off('error', reject);
      resolve();
    });
  });
  return sock;
}

/** Before binding a unix server socket QEMU unlinks whatever is at the path; we remove only a
 * socket, since anything else is somebody's data (bind then fails with EADDRINUSE). */
export function removeStaleSocket(path: string): void {
  try {
    if (fs.lstatSync(path).isSocket()) fs.unlinkSync(path);
  } catch {
    // not there
  }
}
