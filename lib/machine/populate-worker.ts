/**
 * worker_thread that faults a RAM block's pages in ahead of an incoming stream
 * (MADV_POPULATE_WRITE), off the main thread. The first write to a never-touched shmem page costs
 * a page allocation and zeroing (well under 1 GB/s when it happens during the load, against
 * ~13 GB/s into pages already there), so the destination takes those faults here, just ahead of
 * where the loader writes.
 *
 * Until the stream begins it populates freely (the destination is idle). Once the loader has
 * gated it, it stays at most AHEAD bytes beyond the loader's highest data page (`cursor`): the
 * first pass of a precopy stream runs in address order, pages that only ever receive zero
 * records need no page at all, and work beyond that would compete with the load (and with the
 * switchover) for the CPU. Populating concurrently with the load is safe: a page already
 * present is left as it is.
 *
 *   shared Float64Array [0] cursor (byte offset, written by the loader)
 *   shared Int32Array   [2] wake/stop word: bumped when the cursor moves; -1 stops
 *                       [3] gated: 0 before the stream, 1 once the loader runs
 */
import * as os from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { gettid, native } from '../host';

const CHUNK = 32 * 2 ** 20;
const AHEAD = 512 * 2 ** 20;

// Lowest priority for this thread only (setpriority on a tid): spare CPU only, never at the
// expense of the thread receiving the stream.
native.setThreadName('populate');
try {
  os.setPriority(gettid(), 19);
} catch {
  /* not permitted: populate at normal priority */
}

const { addr, size, shared } = workerData as { addr: number; size: number; shared: SharedArrayBuffer };
const cursor = new Float64Array(shared, 0, 1);
const word = new Int32Array(shared, 8, 2);
let done = 0;
while (done < size) {
  const seen = Atomics.load(word, 0);
  if (seen < 0) break;
  const target = Atomics.load(word, 1) === 0 ? size : Math.min(size, cursor[0] + AHEAD);
  if (done < target) {
    const n = Math.min(CHUNK, size - done);
    native.populateWrite(addr + done, n);
    done += n;
    continue;
  }
  Atomics.wait(word, 0, seen, 1000);
}
parentPort?.postMessage('done');
