/**
 * Kernel dirty tracking (userfaultfd WP_ASYNC + PAGEMAP_SCAN): a scan reports exactly the pages
 * written since the previous one, whoever wrote them.
 */
import { HOST_PAGE_SIZE, MemfdMapping, WpDirtyTracker, native } from '../../lib/host';
import { hostErrorOf, hostWorker, nextMessage } from './helpers';

const PAGE = HOST_PAGE_SIZE;
const PAGES = 1024;

/** Expands [first, count] pairs to page indices. */
function pages(pairs: Uint32Array): number[] {
  const out: number[] = [];
  for (let i = 0; i < pairs.length; i += 2) for (let p = 0; p < pairs[i + 1]; p++) out.push(pairs[i] + p);
  return out;
}

const WRITER = `
  const u8 = new Uint8Array(host.windowAt(workerData.addr, 0, workerData.size));
  parentPort.on('message', (list) => {
    for (const p of list) u8[p * 4096 + (p % 4096)] = (p & 0xff) | 1;
    parentPort.postMessage('written');
  });`;

describe('WpDirtyTracker', () => {
  let m: MemfdMapping;
  let tracker: WpDirtyTracker | undefined;
  beforeEach(() => {
    m = MemfdMapping.create({ name: 'dirty-ram', size: PAGES * PAGE });
  });
  afterEach(() => {
    tracker?.close();
    tracker = undefined;
    m.close();
  });

  test('the kernel offers WP_ASYNC here', () => {
    expect(WpDirtyTracker.supported()).toBe(true);
  });

  test('reports exactly the pages a worker wrote, then only those written since', async () => {
    // Some pages were populated before arming: arming must protect them too.
    new Uint8Array(m.window()).fill(1, 0, 64 * PAGE);
    tracker = WpDirtyTracker.arm(m);
    expect(pages(tracker.scan())).toEqual([]);

    const w = hostWorker(WRITER, { addr: m.addr, size: m.size });
    try {
      const first = [3, 10, 11, 12, 63, 64, 200, 1023];
      w.postMessage(first);
      await nextMessage(w);
      const scan1 = tracker.scan();
      expect(pages(scan1)).toEqual(first);
      expect(Array.from(scan1)).toEqual([3, 1, 10, 3, 63, 2, 200, 1, 1023, 1]);
      expect(WpDirtyTracker.pageCount(scan1)).toBe(first.length);

      const second = [11, 500];
      w.postMessage(second);
      await nextMessage(w);
      expect(pages(tracker.scan())).toEqual(second);
      expect(pages(tracker.scan())).toEqual([]);
    } finally {
      await w.terminate();
    }
  });

  test('sees writes made by the kernel (a read(2) into guest RAM)', () => {
    tracker = WpDirtyTracker.arm(m);
    const fs = require('node:fs') as typeof import('node:fs');
    const fd = fs.openSync('/proc/self/stat', 'r');
    try {
      fs.readSync(fd, new Uint8Array(m.window(7 * PAGE, 64)));
    } finally {
      fs.closeSync(fd);
    }
    expect(pages(tracker.scan())).toEqual([7]);
  });

  test('a scan whose output fills continues from walk_end (8192 separate runs)', () => {
    const big = MemfdMapping.create({ name: 'dirty-big', size: 16384 * PAGE });
    const t = WpDirtyTracker.arm(big);
    try {
      const u8 = new Uint8Array(big.window());
      const written: number[] = [];
      for (let p = 0; p < 16384; p += 2) {
        u8[p * PAGE] = 1;
        written.push(p);
      }
      // One PAGEMAP_SCAN call returns at most 4096 regions: this needs two.
      expect(pages(t.scan())).toEqual(written);
      expect(pages(t.scan())).toEqual([]);
    } finally {
      t.close();
      big.close();
    }
  });

  test('scanning a range that is not armed fails (PM_SCAN_CHECK_WPASYNC), typed', () => {
    const fd = native.pagemapOpen();
    try {
      const out = new Float64Array(30);
      const e = hostErrorOf(() => native.pagemapScan(fd, m.addr, m.addr + m.size, 3, 2, 0, 0, 2, 0, out));
      expect(e.code).toBe('EPERM');
      expect(e.syscall).toBe('ioctl(PAGEMAP_SCAN)');
    } finally {
      native.close(fd);
    }
  });
});
