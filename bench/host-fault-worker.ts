/**
 * Worker for bench/host.ts: reads the first byte of `pages` consecutive pages of a mapping that
 * the main thread registered MISSING, timing each read (= one fault round trip through the
 * main loop), and posts the latencies in µs back as a Float64Array.
 */
import { parentPort, workerData } from 'node:worker_threads';

import { windowAt } from '../lib/host';

const { addr, pages, stride } = workerData as { addr: number; pages: number; stride: number };
const u8 = new Uint8Array(windowAt(addr, 0, pages * stride));
const lat = new Float64Array(pages);
let sink = 0;
parentPort!.once('message', () => {
  for (let i = 0; i < pages; i++) {
    const t0 = performance.now();
    sink += u8[i * stride];
    lat[i] = (performance.now() - t0) * 1000;
  }
  parentPort!.postMessage({ lat, sink }, [lat.buffer]);
});
parentPort!.postMessage('ready');
