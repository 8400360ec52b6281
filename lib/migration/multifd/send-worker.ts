/**
 * One multifd send channel's thread (QEMU multifd_send_thread). It starts before its connection
 * exists, then owns the channel's socket (handed over in ctl[FD] once the initial packet is on
 * it) and turns each job the main thread posts into one packet:
 *
 *   job (up to 128 pages of one block)  → zero pages found (zero-page-detection multifd:
 *                                          native.zeroScan) or known (never-written pages,
 *                                          hinted by the main thread, never read)
 *                                       → header: counts, packet_num, block name, offsets of
 *                                          the normal pages then the zero pages
 *                                       → native.sendPages: header + normal pages straight
 *                                          from guest RAM, one vector, blocking
 *   SYNC job                            → a SYNC packet (no pages)
 *
 * It stops when told (QUIT, after the jobs posted before it) or when the socket fails; a
 * failure goes to the main thread as a message and fails the migration there. The main thread
 * cancels a channel by shutting its socket down, which ends a blocked send with EPIPE.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { native } from '../../host';
import { ALL, channelThreadState, CTL, JOB, STAT, type ChannelBlock } from './shared';
import { encodeHeader, encodeOffsets, MULTIFD_FLAG, MULTIFD_HEADER_BYTES, MULTIFD_PACKET_PAGES } from './wire';

export interface SendWorkerData {
  id: number;
  blocks: ChannelBlock[];
  share: SharedArrayBuffer;
  all: SharedArrayBuffer;
}

export type FromSendWorker = { type: 'error'; message: string; code?: string };

const PAGE = 4096;
const d = workerData as SendWorkerData;
const { share, ctl, all, head, normal, zero } = channelThreadState(d);
const scan = new Int32Array(MULTIFD_PACKET_PAGES);
const isZero = new Uint8Array(MULTIFD_PACKET_PAGES);

/** Waits for the next job; false once told to quit with nothing left. */
function nextJob(done: number): boolean {
  for (;;) {
    if (Atomics.load(ctl, CTL.POSTED) !== done) return true;
    if (Atomics.load(ctl, CTL.QUIT)) return false;
    Atomics.wait(ctl, CTL.POSTED, done, 1000);
  }
}

function sendJob(k: number): void {
  const job = share.slot(k);
  const flags = job.head[2];
  let nn = 0;
  let nz = 0;
  let block: ChannelBlock | null = null;
  if (!(flags & JOB.SYNC)) {
    block = d.blocks[job.head[0]];
    const n = job.head[1];
    // Hinted pages are zero without a look; the others are scanned when detection is on.
    let ns = 0;
    for (let i = 0; i < n; i++) if (!job.hints[i]) scan[ns++] = job.pages[i];
    if (flags & JOB.DETECT_ZERO && ns > 0) native.zeroScan(block.addr, block.size, scan, 0, ns, isZero);
    else isZero.fill(0, 0, ns);
    for (let i = 0, s = 0; i < n; i++) {
      if (job.hints[i]) zero[nz++] = job.pages[i];
      else if (isZero[s++]) zero[nz++] = job.pages[i];
      else normal[nn++] = job.pages[i];
    }
  }
  encodeHeader(head, {
    flags: flags & JOB.SYNC ? MULTIFD_FLAG.SYNC : MULTIFD_FLAG.NOCOMP,
    // QEMU's SYNC packet carries no page fields at all.
    pagesAlloc: block ? MULTIFD_PACKET_PAGES : 0,
    normal: nn,
    zero: nz,
    nextPacketSize: nn * PAGE,
    packetNum: Atomics.add(all, ALL.PACKET_NUM, 1) >>> 0,
    ramblock: block ? block.name : '',
  });
  encodeOffsets(head, MULTIFD_HEADER_BYTES, normal, nn);
  encodeOffsets(head, MULTIFD_HEADER_BYTES + 8 * nn, zero, nz);
  const headLen = MULTIFD_HEADER_BYTES + 8 * (nn + nz);
  const b = block ?? d.blocks[0];
  const sent = native.sendPages(fd, head, headLen, b.addr, b.size, normal, nn);
  const st = share.stats;
  st[STAT.BYTES] += sent;
  st[STAT.NORMAL] += nn;
  st[STAT.ZERO] += nz;
  st[STAT.PACKETS]++;
}

let fd = -1;

// QEMU's thread names (with -name debug-threads=on).
native.setThreadName(`multifdsend_${d.id}`);

function run(): void {
  let done = 0;
  fd = share.awaitFd();
  if (fd < 0) return;
  try {
    while (nextJob(done)) {
      sendJob(done);
      Atomics.store(ctl, CTL.DONE, ++done);
      Atomics.add(all, ALL.DONE_ANY, 1);
      Atomics.notify(all, ALL.DONE_ANY);
    }
  } catch (e) {
    const err = e as Error & { code?: string };
    parentPort!.postMessage({ type: 'error', message: err.message, code: err.code } satisfies FromSendWorker);
  } finally {
    native.close(fd);
  }
}

run();
