/**
 * One multifd receive channel's thread (QEMU multifd_recv_thread). It starts when the incoming
 * migration does, before its connection exists; then it owns the channel's socket (handed over
 * in ctl[FD] once the main thread has read and checked the initial packet) and reads packets:
 *
 *   header (320 bytes)  checked (wire.ts decodeHeader): magic, version, flags, page counts,
 *                       next_packet_size; then the offsets, each checked against the block
 *   normal pages        native.recvPages: read straight into guest RAM, one vector
 *   zero pages          nothing for a page still known zero (never written: looking would
 *                       allocate it); else native.zeroPages, which writes only where RAM is
 *                       not already zero
 *   SYNC                counted (ctl[SYNCS]); the thread then waits until the main thread,
 *                       at MULTIFD_FLUSH on the main stream, has seen every channel's SYNC
 *                       and releases them (ctl[RELEASE]): no page of the next pass is placed
 *                       before every page of this one
 *
 * A bad packet or a broken socket is a message to the main thread, which fails the load.
 * End of stream between packets is the source closing the channel after its last SYNC: the
 * thread ends quietly, and the main thread fails the load only if it still needed a SYNC.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { advancePopulate } from '../../machine/populate-cursor';
import { native } from '../../host';
import { MigrationError } from '../errors';
import { ALL, channelThreadState, CTL, STAT, type ChannelBlock } from './shared';
import { decodeHeader, decodeOffsets, MULTIFD_FLAG, MULTIFD_HEADER_BYTES, MULTIFD_PACKET_PAGES } from './wire';

export interface RecvWorkerData {
  id: number;
  blocks: ChannelBlock[];
  share: SharedArrayBuffer;
  all: SharedArrayBuffer;
  /** the populate worker's cursor for block `block` (virt.ts advancePopulate) */
  populate: { shared: SharedArrayBuffer; block: number } | null;
  /** per block, one bit per page known zero (ram-load.ts knownZeroPages), shared with the
   * loader and the other channels; cleared (atomically) before a page's data is written */
  knownZero: Array<SharedArrayBuffer | null>;
}

export type FromRecvWorker = { type: 'error'; code: string; field?: string; detail: string } | { type: 'ended' };

const PAGE = 4096;
const d = workerData as RecvWorkerData;
const { share, ctl, all, head, normal, zero } = channelThreadState(d);
const byName = new Map(d.blocks.map((b, i) => [b.name, i]));
const knownZero = d.knownZero.map((z) => (z ? new Uint32Array(z) : null));

const quitting = () => Atomics.load(ctl, CTL.QUIT) !== 0;

function truncated(what: string): never {
  throw new MigrationError('EMIG_TRUNCATED', `the channel ended inside ${what}`, { section: 'multifd' });
}

/** One packet; false at end of stream before its first byte. */
function readPacket(): boolean {
  const got = native.readFull(fd, head, 0, MULTIFD_HEADER_BYTES);
  if (got === 0) return false;
  if (got < MULTIFD_HEADER_BYTES) truncated('a packet header');
  const h = decodeHeader(head);
  const count = h.normal + h.zero;
  if (count > 0) {
    const bi = byName.get(h.ramblock);
    if (bi === undefined) throw new MigrationError('EMIG_MULTIFD', `multifd: unknown ram block ${h.ramblock}`, { section: 'multifd', field: 'ramblock' });
    const b = d.blocks[bi];
    if (native.readFull(fd, head, MULTIFD_HEADER_BYTES, 8 * count) < 8 * count) truncated('the page offsets');
    decodeOffsets(head, MULTIFD_HEADER_BYTES, h.normal, b.size, normal, b.name);
    decodeOffsets(head, MULTIFD_HEADER_BYTES + 8 * h.normal, h.zero, b.size, zero, b.name);
    const kz = knownZero[bi];
    if (kz) for (let k = 0; k < h.normal; k++) Atomics.and(kz, normal[k] >>> 5, ~(1 << (normal[k] & 31)));
    if (h.normal > 0 && native.recvPages(fd, b.addr, b.size, normal, h.normal) < h.normal * PAGE) truncated('the pages');
    let nz = h.zero;
    if (kz) {
      nz = 0;
      for (let k = 0; k < h.zero; k++) if ((Atomics.load(kz, zero[k] >>> 5) & (1 << (zero[k] & 31))) === 0) zero[nz++] = zero[k];
    }
    if (nz > 0) native.zeroPages(b.addr, b.size, zero, nz);
    if (d.populate && d.populate.block === bi && h.normal > 0) advancePopulate(d.populate.shared, normal[h.normal - 1] * PAGE);
  }
  const st = share.stats;
  st[STAT.BYTES] += MULTIFD_HEADER_BYTES + 8 * count + h.normal * PAGE;
  st[STAT.NORMAL] += h.normal;
  st[STAT.ZERO] += h.zero;
  st[STAT.PACKETS]++;
  if (h.flags & MULTIFD_FLAG.SYNC) sync();
  return true;
}

/** multifd_recv_thread after a SYNC packet: tell the main thread, wait to be released. */
function sync(): void {
  const n = Atomics.add(ctl, CTL.SYNCS, 1) + 1;
  Atomics.add(all, ALL.ARRIVED, 1);
  Atomics.notify(all, ALL.ARRIVED);
  for (let r = Atomics.load(ctl, CTL.RELEASE); r < n && !quitting(); r = Atomics.load(ctl, CTL.RELEASE)) {
    Atomics.wait(ctl, CTL.RELEASE, r, 1000);
  }
}

let fd = -1;

// QEMU's thread names (with -name debug-threads=on).
native.setThreadName(`multifdrecv_${d.id}`);

function run(): void {
  fd = share.awaitFd();
  if (fd < 0) return;
  try {
    while (!quitting() && readPacket()) {
      /* next packet */
    }
    parentPort!.postMessage({ type: 'ended' } satisfies FromRecvWorker);
  } catch (e) {
    // After QUIT the socket was shut down under us: whatever that broke is expected.
    if (!quitting()) {
      const m = e instanceof MigrationError ? { code: e.code, field: e.field, detail: e.detail } : { code: (e as { code?: string }).code ?? 'EMIG_MULTIFD', detail: (e as Error).message };
      parentPort!.postMessage({ type: 'error', ...m } satisfies FromRecvWorker);
    }
  } finally {
    native.close(fd);
  }
}

run();
