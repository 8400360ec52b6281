// Worker side of cross-thread.test.ts: builds devices from their shares, as a vCPU worker
// does, and drives them. Runs the compiled tree (dist/), which jest's globalSetup builds.
const path = require('node:path');
const { parentPort, workerData } = require('node:worker_threads');
const root = path.resolve(__dirname, '../../../..');
const dev = require(path.join(root, 'dist/lib/machine/devices'));
const { HartLines } = require(path.join(root, 'dist/lib/machine/bus'));

const d = workerData;
switch (d.mode) {
  case 'uart-writer': {
    const lines = new HartLines(d.harts, d.lines);
    const effects = new dev.EffectQueue(d.effects);
    const plic = new dev.Plic(d.plic, { lines });
    const uart = new dev.Uart16550(d.uart, { effects, irq: plic.line(dev.UART0_IRQ) });
    for (let i = 0; i < d.count; i++) uart.write(dev.UART_THR, 1, d.tag | (i % 128));
    parentPort.postMessage({ done: true, dropped: effects.dropped() });
    break;
  }
  case 'msip': {
    const lines = new HartLines(d.harts, d.lines);
    const clint = new dev.Clint(d.clint, { lines });
    clint.write(4 * d.target, 4, 1);
    parentPort.postMessage({ done: true });
    break;
  }
  case 'mtime': {
    const lines = new HartLines(d.harts, d.lines);
    const clint = new dev.Clint(d.clint, { lines });
    parentPort.on('message', (m) => {
      if (m === 'read') parentPort.postMessage({ mtime: clint.mtime() });
      else parentPort.close();
    });
    parentPort.postMessage({ ready: true });
    break;
  }
  case 'lock': {
    const struct = dev.defineStruct({ lock: 'i32', counter: 'f64' });
    const s = struct.view(d.state);
    const lock = new dev.AtomicLock(s.$i32, struct.wordIndex('lock'));
    for (let i = 0; i < d.count; i++) {
      lock.acquire();
      s.counter = s.counter + 1; // plain read-modify-write: only the lock keeps it exact
      lock.release();
    }
    parentPort.postMessage({ done: true });
    break;
  }
  default:
    throw new Error(`unknown mode ${d.mode}`);
}
