/**
 * worker_thread that faults a RAM block's pages in ahead of use (MADV_POPULATE_WRITE), off the
 * main thread. An incoming migration's destination runs it while it waits for the stream: the
 * first write to a never-touched shmem page costs a page allocation and zeroing (measured here
 * at well under 1 GB/s when it happens during the load, against ~13 GB/s into populated pages).
 * Populating concurrently with the load is safe: a page already present is left as it is.
 */
import * as os from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { gettid, native } from '../host';

// Lowest priority for this thread only (setpriority on a tid): populating is worth doing with
// spare CPU, never at the expense of the thread receiving the stream.
try {
  os.setPriority(gettid(), 19);
} catch {
  /* not permitted: populate at normal priority */
}

const CHUNK = 64 * 2 ** 20;
const { addr, size } = workerData as { addr: number; size: number };
for (let off = 0; off < size; off += CHUNK) native.populateWrite(addr + off, Math.min(CHUNK, size - off));
parentPort?.postMessage('done');
