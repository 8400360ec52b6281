// Worker for the cross-thread tests: runs one hart over shared RAM until it halts in WFI.
// Workers run the compiled tree (jest's globalSetup keeps dist/ up to date).
'use strict';
const { workerData, parentPort } = require('node:worker_threads');
const path = require('node:path');
const dist = path.resolve(__dirname, '../../../dist/lib/machine');
const { Hart, HartState } = require(path.join(dist, 'cpu/index.js'));
const { HartLines } = require(path.join(dist, 'bus.js'));

const { ram, dirty, state, lines, harts, hartId, base } = workerData;
const env = {
  hartId,
  ram: [{ name: 'riscv_virt_board.ram', base, size: ram.byteLength, windows: [ram], dirty: new Uint8Array(dirty), readonly: false }],
  mmio: () => undefined,
  lines: new HartLines(harts, lines),
  timebase: { mtime: () => 0, timecmp: () => Number.MAX_VALUE },
};
const hart = new Hart(env, new HartState(state));
parentPort.postMessage({ ready: true });
let executed = 0;
for (;;) {
  const exit = hart.run(100000);
  executed += exit.executed;
  if (exit.reason === 'wfi' || exit.reason === 'trap-loop') {
    parentPort.postMessage({ done: true, reason: exit.reason, executed });
    break;
  }
}
