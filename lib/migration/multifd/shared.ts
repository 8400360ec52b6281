/**
 * What the migration's main thread and one multifd channel thread share (one SharedArrayBuffer
 * per channel, plus one for all channels of a side), so a packet's worth of work costs no
 * message: the main thread writes a job and bumps a counter, the channel thread waits on it
 * with Atomics.wait; the main thread waits for room with Atomics.waitAsync, so its event loop
 * (monitor, return path) keeps running. Messages carry only failures.
 *
 *   both sides: threads start before their connection exists (a thread takes tens of
 *   milliseconds to start); ctl[FD] is -1 until the main thread hands the socket over.
 *
 *   source channel              main writes                  channel thread writes
 *   ctl[FD]      the socket     ✓ (+ notify)
 *   ctl[POSTED]  jobs posted    ✓ (+ notify)
 *   ctl[DONE]    jobs done                                     ✓ (+ notify all[DONE_ANY])
 *   ctl[QUIT]    stop after the posted jobs   ✓
 *   slot k % SLOTS: block, count, flags, pages[128], zero hints[128]   ✓ (before POSTED)
 *   stats: bytes, normal pages, zero pages, packets                      ✓ (single writer)
 *
 *   destination channel
 *   ctl[SYNCS]   SYNC packets placed                           ✓ (+ notify all[ARRIVED])
 *   ctl[RELEASE] SYNCs the main thread has let go   ✓ (+ notify)
 *   ctl[QUIT]    stop                            ✓
 *
 *   all channels: all[PACKET_NUM] packet_num (the source's global fetch-and-increment),
 *   all[DONE_ANY] / all[ARRIVED] bumped by any channel so the main thread waits on one word.
 */
import { MULTIFD_HEADER_BYTES, MULTIFD_PACKET_PAGES } from './wire';

/** Jobs (packets) a channel may have queued: 8 MiB, so the channel thread still has work while
 * the main thread waits tens of milliseconds for its event loop on a busy machine. */
export const SLOTS = 16;
export const CTL = { POSTED: 0, DONE: 1, QUIT: 2, SYNCS: 3, RELEASE: 4, FD: 5 } as const;
export const ALL = { PACKET_NUM: 0, DONE_ANY: 1, ARRIVED: 2 } as const;
export const STAT = { BYTES: 0, NORMAL: 1, ZERO: 2, PACKETS: 3 } as const;

/** Job flags. */
export const JOB = { SYNC: 1, DETECT_ZERO: 2 } as const;

const CTL_INTS = 8;
const JOB_INTS = 4 + MULTIFD_PACKET_PAGES;
const STAT_DOUBLES = 4;

export class ChannelShare {
  readonly ctl: Int32Array;
  readonly stats: Float64Array;
  private readonly jobs: Int32Array;
  private readonly hintBytes: Uint8Array;

  constructor(readonly buffer: SharedArrayBuffer = new SharedArrayBuffer(ChannelShare.bytes())) {
    let at = 0;
    this.stats = new Float64Array(buffer, at, STAT_DOUBLES);
    at += STAT_DOUBLES * 8;
    this.ctl = new Int32Array(buffer, at, CTL_INTS);
    at += CTL_INTS * 4;
    this.jobs = new Int32Array(buffer, at, SLOTS * JOB_INTS);
    at += SLOTS * JOB_INTS * 4;
    this.hintBytes = new Uint8Array(buffer, at, SLOTS * MULTIFD_PACKET_PAGES);
  }

  /** A fresh share: no socket yet. */
  static create(): ChannelShare {
    const s = new ChannelShare();
    s.ctl[CTL.FD] = -1;
    return s;
  }

  /** Main thread: the socket is there. */
  handOver(fd: number): void {
    Atomics.store(this.ctl, CTL.FD, fd);
    Atomics.notify(this.ctl, CTL.FD);
  }

  /** Channel thread: waits for the socket; -1 when told to quit first. */
  awaitFd(): number {
    for (;;) {
      const fd = Atomics.load(this.ctl, CTL.FD);
      if (fd >= 0) return fd;
      if (Atomics.load(this.ctl, CTL.QUIT)) return -1;
      Atomics.wait(this.ctl, CTL.FD, -1, 1000);
    }
  }

  /** Main thread: stop (after what was posted); wakes every wait of the thread. */
  quit(): void {
    Atomics.store(this.ctl, CTL.QUIT, 1);
    for (const i of [CTL.FD, CTL.POSTED, CTL.RELEASE]) Atomics.notify(this.ctl, i);
  }

  static bytes(): number {
    return STAT_DOUBLES * 8 + CTL_INTS * 4 + SLOTS * JOB_INTS * 4 + SLOTS * MULTIFD_PACKET_PAGES;
  }

  /** Job slot `k % SLOTS`: [block, count, flags] and views of its pages and zero hints. */
  slot(k: number): { head: Int32Array; pages: Int32Array; hints: Uint8Array } {
    const s = k % SLOTS;
    return {
      head: this.jobs.subarray(s * JOB_INTS, s * JOB_INTS + 4),
      pages: this.jobs.subarray(s * JOB_INTS + 4, (s + 1) * JOB_INTS),
      hints: this.hintBytes.subarray(s * MULTIFD_PACKET_PAGES, (s + 1) * MULTIFD_PACKET_PAGES),
    };
  }
}

export function newAll(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(4 * 4));
}

type WaitAsync = (a: Int32Array, i: number, v: number, ms?: number) => { async: boolean; value: Promise<string> | string };

/** Resolves once a[i] is no longer `v` (or after `ms`): Atomics.waitAsync, without blocking
 * the event loop. */
export function waitChange(a: Int32Array, i: number, v: number, ms: number): Promise<unknown> {
  const r = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync(a, i, v, ms);
  return r.async ? (r.value as Promise<string>) : Promise.resolve();
}

/** A RAM block as a channel thread needs it (plain data, postMessage-able). */
export interface ChannelBlock {
  name: string;
  addr: number;
  size: number;
}

/** What every channel thread (send-worker.ts, recv-worker.ts) works with: its control words,
 * the channels' common words, a packet header's buffer and the packet's page lists. */
export function channelThreadState(d: { share: SharedArrayBuffer; all: SharedArrayBuffer }) {
  const share = new ChannelShare(d.share);
  return {
    share,
    ctl: share.ctl,
    all: new Int32Array(d.all),
    head: Buffer.alloc(MULTIFD_HEADER_BYTES + 8 * MULTIFD_PACKET_PAGES),
    normal: new Int32Array(MULTIFD_PACKET_PAGES),
    zero: new Int32Array(MULTIFD_PACKET_PAGES),
  };
}
