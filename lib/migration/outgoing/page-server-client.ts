/**
 * The main thread's side of the postcopy page server (page-server.ts): it starts the worker,
 * hands it channels, and turns what the worker forwards into the ReturnPath the outgoing
 * migration reads (SHUT, PONG, SWITCHOVER_ACK, RECV_BITMAP, RESUME_ACK).
 */
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { native } from '../../host';
import { MigrationError } from '../errors';
import { PageRing } from '../postcopy/shared';
import type { RamSaverShare } from '../ram-save';
import { be32At, type RpMessage } from '../return-path';
import { MIG_RP_MSG } from '../wire';
import type { FromPageServer, PageServerData, ToPageServer } from './page-server';
import { PongWaiters, type ReturnPath, type RpHandler } from './return-path';

export class PageServerClient implements ReturnPath {
  readonly requests = new PageRing();
  /** the page server's counters (single writer; see PageServerData) */
  private readonly counters = new Float64Array(new SharedArrayBuffer(3 * 8));
  private readonly worker: Worker;
  private readonly gone: Promise<void>;
  private readonly handlers = new Map<number, RpHandler>();
  private readonly pongs = new PongWaiters();
  private shutResolve!: (s: number) => void;
  private shutReject!: (e: Error) => void;
  private shutPromise!: Promise<number>;
  private preemptEnded: (() => void) | null = null;
  /** SHUT arrived: the return path's end after it is no break. */
  private shutReceived = false;
  /** The current return path's generation (see ToPageServer). */
  private generation = 0;
  /** Called when the return path breaks (postcopy pauses instead of failing). */
  onBroken: ((err: Error) => void) | null = null;

  constructor(rpFd: number, ram: RamSaverShare, releaseRam: boolean) {
    this.resetShut();
    const data: PageServerData = { rpFd: native.dup(rpFd), ram, requests: this.requests.buffer, counters: this.counters.buffer, releaseRam };
    this.worker = new Worker(workerPath(), { workerData: data, name: 'postcopy-page-server' });
    this.gone = new Promise((resolve) => this.worker.once('exit', () => resolve()));
    this.worker.on('message', (m: FromPageServer) => this.onMessage(m));
    this.worker.on('error', (e) => this.broken(e));
  }

  get shut(): Promise<number> {
    return this.shutPromise;
  }

  /** Page requests received so far (postcopy-requests). */
  get requestCount(): number {
    return this.counters[0];
  }

  /** Pages and bytes sent on the preempt channel. */
  get preemptPages(): number {
    return this.counters[1];
  }

  get preemptBytes(): number {
    return this.counters[2];
  }

  on(type: number, handler: RpHandler): void {
    this.handlers.set(type, handler);
  }

  pong(value: number): Promise<void> {
    return this.pongs.wait(value);
  }

  /** Requested pages go out on this socket from now on (the worker takes `fd`). */
  usePreempt(fd: number): void {
    this.post({ type: 'preempt', fd });
  }

  /** Nothing is left to send: the preempt channel ends with EOS (resolves once written, or at
   * once when there is no preempt channel or the page server is gone). */
  endPreempt(): Promise<void> {
    const ended = new Promise<void>((resolve) => {
      this.preemptEnded = resolve;
      this.post({ type: 'end-preempt' });
    });
    return Promise.race([ended, this.gone]);
  }

  /** The migration paused: the preempt channel is gone; queue requests until a new one comes. */
  dropPreempt(): void {
    this.post({ type: 'no-preempt' });
  }

  /** Recovery: the return path is the read side of this socket now (a dup is taken). */
  useReturnPath(fd: number): void {
    this.resetShut();
    this.post({ type: 'return-path', fd: native.dup(fd), generation: ++this.generation });
  }

  async stop(): Promise<void> {
    this.post({ type: 'stop' });
    await this.gone;
  }

  private resetShut(): void {
    this.shutReceived = false;
    this.shutPromise = new Promise<number>((resolve, reject) => {
      this.shutResolve = resolve;
      this.shutReject = reject;
    });
    this.shutPromise.catch(() => undefined);
  }

  private onMessage(m: FromPageServer): void {
    // A return path a recovery replaced: its end, or a late message, says nothing of this one.
    if ((m.type === 'rp' || m.type === 'rp-ended') && m.generation !== this.generation) return;
    if (m.type === 'rp-ended') {
      const e = m.error;
      this.broken(
        e
          ? new MigrationError(e.code, e.detail, { section: e.section, field: e.field, position: e.position })
          : new MigrationError('EMIG_PEER', 'return path closed before SHUT', { section: 'return-path' }),
      );
      return;
    }
    if (m.type === 'preempt-ended') {
      this.preemptEnded?.();
      this.preemptEnded = null;
      return;
    }
    if (m.type !== 'rp') return;
    const msg: RpMessage = { type: m.msgType, payload: new Uint8Array(m.payload), extra: m.extra && new Uint8Array(m.extra) };
    if (msg.type === MIG_RP_MSG.SHUT) {
      this.shutReceived = true;
      return this.shutResolve(be32At(msg.payload));
    }
    if (msg.type === MIG_RP_MSG.PONG) return this.pongs.arrived(be32At(msg.payload));
    const h = this.handlers.get(msg.type);
    if (!h) return this.broken(new MigrationError('EMIG_RETURN_PATH', `unexpected return-path message ${msg.type}`, { section: 'return-path' }));
    Promise.resolve()
      .then(() => h(msg))
      .catch((e) => this.broken(e as Error));
  }

  private broken(err: Error): void {
    this.preemptEnded?.();
    this.preemptEnded = null;
    if (this.shutReceived) return;
    this.shutReject(err);
    this.onBroken?.(err);
  }

  private post(m: ToPageServer): void {
    this.worker.postMessage(m);
  }
}

function workerPath(): string {
  if (__filename.endsWith('.ts')) return path.resolve(__dirname, '../../../dist/lib/migration/outgoing/page-server.js');
  return path.join(__dirname, 'page-server.js');
}
