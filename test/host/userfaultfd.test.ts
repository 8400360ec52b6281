/**
 * userfaultfd end to end: a worker_thread touching a registered page blocks in the kernel; the
 * main thread gets the fault through uv_poll, resolves it late, and its loop keeps running.
 * Every test resolves or unregisters before terminating a worker: a worker blocked on a fault
 * cannot be terminated.
 */
import {
  HOST_PAGE_SIZE,
  MemfdMapping,
  Userfaultfd,
  gettid,
  type UffdMode,
  type UffdPagefault,
} from '../../lib/host';
import { hostWorker, nextMessage, sleep, withRescue } from './helpers';

const PAGE = HOST_PAGE_SIZE;

// The worker reports its tid, then on 'go' reads one byte (blocking until the page is placed)
// and reports the value and how long the read took.
const READER = `
  const u8 = new Uint8Array(host.windowAt(workerData.addr, 0, workerData.size));
  parentPort.postMessage({ tid: host.gettid() });
  parentPort.once('message', () => {
    const t0 = performance.now();
    const value = workerData.write ? (u8[workerData.offset] = 0xee) : u8[workerData.offset];
    parentPort.postMessage({ value, waited: performance.now() - t0 });
  });`;

interface FaultRun {
  faults: UffdPagefault[];
  batches: number;
  tid: number;
  value: number;
  waited: number;
  ticks: number;
  /** The resolver never woke the worker: the safety net did. */
  rescued: boolean;
}

/** Registers `m` in `mode`, lets a worker touch `offset`, and resolves each fault with
 * `resolve` 50 ms after it arrives. Counts 5 ms timer ticks meanwhile. */
async function faultRun(
  m: MemfdMapping,
  mode: UffdMode,
  offset: number,
  resolve: (uffd: Userfaultfd, f: UffdPagefault) => void,
  write = false,
  prepare: (uffd: Userfaultfd) => void = () => {},
): Promise<FaultRun> {
  const uffd = Userfaultfd.open(['THREAD_ID']);
  const w = hostWorker(READER, { addr: m.addr, size: m.size, offset, write });
  const faults: UffdPagefault[] = [];
  let batches = 0;
  let ticks = 0;
  let rescued = false;
  const ticker = setInterval(() => ticks++, 5);
  try {
    uffd.register(m.addr, m.size, [mode]);
    prepare(uffd);
    uffd.onEvents((events) => {
      batches++;
      for (const e of events) {
        if (e.kind !== 'pagefault') continue;
        faults.push(e);
        setTimeout(() => resolve(uffd, e), 50);
      }
    });
    const { tid } = await nextMessage<{ tid: number }>(w);
    ticks = 0;
    w.postMessage('go');
    // If resolution is broken, unregistering after 5 s wakes the worker: the test then fails
    // on its checks instead of hanging on a thread nobody can terminate.
    const r = await withRescue(nextMessage<{ value: number; waited: number }>(w), 5000, () => {
      rescued = true;
      uffd.unregister(m.addr, m.size);
    });
    return { faults, batches, tid, ticks, rescued, ...r };
  } finally {
    clearInterval(ticker);
    uffd.close();
    await w.terminate();
  }
}

describe('Userfaultfd', () => {
  let m: MemfdMapping;
  beforeEach(() => {
    m = MemfdMapping.create({ name: 'uffd-ram', size: 16 * PAGE });
  });
  afterEach(() => m.close());

  test('probe reports the kernel features as names', () => {
    const { features, ioctls } = Userfaultfd.probe();
    expect(features.has('THREAD_ID')).toBe(true);
    expect(features.has('MISSING_SHMEM')).toBe(true);
    expect(ioctls.has('REGISTER')).toBe(true);
    expect(ioctls.has('API')).toBe(true);
  });

  test('MISSING: worker blocks, main gets the fault with its tid, COPY after 50 ms wakes it', async () => {
    const page = new Uint8Array(PAGE).map((_, i) => (i * 7 + 1) & 0xff);
    const r = await faultRun(m, 'missing', 3 * PAGE + 123, (u, f) => u.copy(f.address, page, PAGE));
    expect(r.rescued).toBe(false);
    expect(r.faults).toHaveLength(1);
    expect(r.faults[0]).toMatchObject({ address: m.addr + 3 * PAGE, tid: r.tid, write: false, minor: false });
    expect(r.tid).not.toBe(gettid());
    expect(r.value).toBe(page[123]);
    expect(r.waited).toBeGreaterThanOrEqual(45); // it really waited for the COPY
    expect(r.ticks).toBeGreaterThanOrEqual(5); // and the main loop ran timers meanwhile
    expect(new Uint8Array(m.window())[3 * PAGE + 123]).toBe(page[123]);
  });

  test('MISSING write fault: COPY of a zero page, then the worker\'s write lands', async () => {
    // A write fault on a zero page needs a writable page: COPY zeros instead of ZEROPAGE.
    const r = await faultRun(m, 'missing', 5 * PAGE + 8, (u, f) => u.copy(f.address, new Uint8Array(PAGE), PAGE), true);
    expect(r.rescued).toBe(false);
    expect(r.faults[0]).toMatchObject({ address: m.addr + 5 * PAGE, write: true, tid: r.tid });
    expect(new Uint8Array(m.window())[5 * PAGE + 8]).toBe(0xee);
  });

  test('MISSING read resolved with ZEROPAGE reads zero', async () => {
    const r = await faultRun(m, 'missing', 7 * PAGE, (u, f) => u.zeropage(f.address, PAGE));
    expect(r.rescued).toBe(false);
    expect(r.faults).toHaveLength(1);
    expect(r.value).toBe(0);
    expect(r.waited).toBeGreaterThanOrEqual(45);
  });

  test('MINOR: page cache filled through an alias, CONTINUE maps it for the worker', async () => {
    const alias = m.alias();
    try {
      new Uint8Array(alias.window())[6 * PAGE + 99] = 0x5c; // only the alias has a PTE
      const r = await faultRun(m, 'minor', 6 * PAGE + 99, (u, f) => u.continue(f.address, PAGE));
      expect(r.rescued).toBe(false);
    expect(r.faults).toHaveLength(1);
      expect(r.faults[0]).toMatchObject({ address: m.addr + 6 * PAGE, minor: true, tid: r.tid });
      expect(r.value).toBe(0x5c);
      expect(r.waited).toBeGreaterThanOrEqual(45);
      expect(r.ticks).toBeGreaterThanOrEqual(5);
    } finally {
      alias.close();
    }
  });

  test('WP (synchronous): a write to a protected page faults; clearing protection wakes it', async () => {
    new Uint8Array(m.window())[4 * PAGE] = 1; // present, so there is a PTE to protect
    const r = await faultRun(
      m,
      'wp',
      4 * PAGE + 16,
      (u, f) => u.writeProtect(f.address, PAGE, false),
      true,
      (u) => u.writeProtect(m.addr + 4 * PAGE, PAGE, true),
    );
    expect(r.rescued).toBe(false);
    expect(r.faults).toHaveLength(1);
    expect(r.faults[0]).toMatchObject({ address: m.addr + 4 * PAGE, wp: true, write: true, tid: r.tid });
    expect(r.waited).toBeGreaterThanOrEqual(45);
    expect(new Uint8Array(m.window())[4 * PAGE + 16]).toBe(0xee);
  });

  test('three faults pending at once come in one read; COPY with DONTWAKE, then one WAKE', async () => {
    const uffd = Userfaultfd.open(['THREAD_ID']);
    const offsets = [2 * PAGE, 9 * PAGE + 1, 12 * PAGE + 2];
    const workers = offsets.map((offset) => hostWorker(READER, { addr: m.addr, size: m.size, offset }));
    let rescued = false;
    try {
      uffd.register(m.addr, m.size, ['missing']);
      const tids = (await Promise.all(workers.map((w) => nextMessage<{ tid: number }>(w)))).map((r) => r.tid);
      const replies = workers.map((w) => nextMessage<{ value: number }>(w));
      workers.forEach((w) => w.postMessage('go'));
      await sleep(100); // all three are now blocked in the kernel
      const events = uffd.readEvents() as UffdPagefault[];
      const byNumber = (a: number, b: number) => a - b;
      const pageOf = (o: number) => m.addr + o - (o % PAGE);
      expect(events.map((e) => e.address).sort(byNumber)).toEqual(offsets.map(pageOf).sort(byNumber));
      expect(events.map((e) => e.tid).sort(byNumber)).toEqual([...tids].sort(byNumber));
      for (const o of offsets) {
        uffd.copy(pageOf(o), new Uint8Array(PAGE).fill((o % PAGE) + 1), PAGE, { dontWake: true });
      }
      let answered = 0;
      replies.forEach((r) => r.then(() => answered++));
      await sleep(50);
      expect(answered).toBe(0); // placed but not woken
      uffd.wake(m.addr, m.size);
      const values = await withRescue(Promise.all(replies), 5000, () => {
        rescued = true;
        uffd.unregister(m.addr, m.size);
      });
      expect(rescued).toBe(false);
      expect(values.map((v) => v.value)).toEqual([1, 2, 3]);
    } finally {
      uffd.close();
      await Promise.all(workers.map((w) => w.terminate()));
    }
  });

  test('COPY from an address inside a live mapping (a staging block)', () => {
    const staging = MemfdMapping.create({ name: 'staging', size: 4 * PAGE });
    const uffd = Userfaultfd.open();
    try {
      new Uint8Array(staging.window())[PAGE + 1] = 0x42;
      uffd.register(m.addr, m.size, ['missing']);
      expect(uffd.copy(m.addr + 2 * PAGE, staging.addr + PAGE, PAGE)).toBe(PAGE);
      uffd.unregister(m.addr, m.size);
      expect(new Uint8Array(m.window())[2 * PAGE + 1]).toBe(0x42);
    } finally {
      uffd.close();
      staging.close();
    }
  });

  test('a worker exiting with an active fault watcher does not crash the process', async () => {
    const w = hostWorker(
      `const u = host.Userfaultfd.open();
       u.onEvents(() => {});
       parentPort.postMessage('watching');`,
      {},
    );
    expect(await nextMessage(w)).toBe('watching');
    await w.terminate();
    await sleep(10);
    expect(Userfaultfd.probe().features.size).toBeGreaterThan(0);
  });
});
