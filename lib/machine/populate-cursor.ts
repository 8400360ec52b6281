/**
 * The populate worker's cursor (populate-worker.ts), in shared memory:
 *
 *   Float64Array [0]  highest byte offset a data page was written at (the loader's position)
 *   Int32Array   [2]  wake word: bumped and notified as the cursor moves on; -1 stops
 *                [3]  gated: 0 before the stream, 1 once the loader runs
 */

/** Tell the populate worker (populate-worker.ts) that data pages were written up to `offset`:
 * it keeps faulting RAM in just ahead. Any thread may call it; a lost race only moves the
 * cursor back a little, and the worker looks again within a second. */
export function advancePopulate(shared: SharedArrayBuffer, offset: number): void {
  const cursor = new Float64Array(shared, 0, 1);
  if (offset <= cursor[0]) return;
  const before = cursor[0];
  cursor[0] = offset;
  // Wake the worker once per 16 MiB crossed, not per page.
  if (Math.floor(offset / 2 ** 24) !== Math.floor(before / 2 ** 24)) {
    const word = new Int32Array(shared, 8, 2);
    Atomics.add(word, 0, 1);
    Atomics.notify(word, 0);
  }
}
