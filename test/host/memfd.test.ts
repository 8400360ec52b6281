/**
 * memfd RAM: shared mappings, windows from any thread by address, and whether Atomics on an
 * external (non-shared) ArrayBuffer window are really atomic across threads.
 */
import { HOST_PAGE_SIZE, MemfdMapping, findMapping, windowAt } from '../../lib/host';
import { hostWorker, nextMessage } from './helpers';

const PAGE = HOST_PAGE_SIZE;

describe('MemfdMapping', () => {
  let m: MemfdMapping;
  beforeEach(() => {
    m = MemfdMapping.create({ name: 'test-ram', size: 64 * PAGE });
  });
  afterEach(() => m.close());

  test('a window and an alias mapping see the same bytes', () => {
    const a = new Uint8Array(m.window());
    const alias = m.alias();
    try {
      expect(alias.addr).not.toBe(m.addr);
      const b = new Uint8Array(alias.window());
      a[3 * PAGE + 7] = 0xab;
      expect(b[3 * PAGE + 7]).toBe(0xab);
      b[9] = 0x5a;
      expect(a[9]).toBe(0x5a);
    } finally {
      alias.close();
    }
  });

  test('windowAt wraps a live mapping by address; findMapping reports it', () => {
    const w = new Uint32Array(windowAt(m.addr, 2 * PAGE, PAGE));
    w[1] = 0xdeadbeef;
    expect(new DataView(m.window()).getUint32(2 * PAGE + 4, true)).toBe(0xdeadbeef);
    expect(findMapping(m.addr + 5 * PAGE + 1)).toEqual({ start: m.addr, length: 64 * PAGE });
    expect(findMapping(m.addr + 64 * PAGE)).toBeUndefined();
  });

  test('windows() covers the mapping in pieces of the given size', () => {
    const ws = m.windows(24 * PAGE);
    expect(ws.map((w) => w.byteLength)).toEqual([24 * PAGE, 24 * PAGE, 16 * PAGE]);
    new Uint8Array(ws[2])[0] = 42;
    expect(new Uint8Array(m.window())[48 * PAGE]).toBe(42);
  });

  test('punchHole frees the pages in the file; dontNeed keeps shmem data', () => {
    const a = new Uint8Array(m.window());
    a[4 * PAGE] = 1;
    a[5 * PAGE] = 2;
    m.dontNeed(4 * PAGE, PAGE);
    expect(a[4 * PAGE]).toBe(1); // shmem: the page cache still holds it
    m.punchHole(5 * PAGE, PAGE);
    expect(a[5 * PAGE]).toBe(0); // gone from the file, so from every mapping
  });

  test('populate prefaults; fromFd maps a memfd again with its size from fstat', () => {
    m.populate();
    new Uint8Array(m.window())[100] = 9;
    const again = MemfdMapping.fromFd(m.fd);
    try {
      expect(again.size).toBe(64 * PAGE);
      expect(new Uint8Array(again.window())[100]).toBe(9);
    } finally {
      again.close();
    }
  });

  test('fromFd maps part of a memfd (offset + length)', () => {
    new Uint8Array(m.window())[4 * PAGE + 5] = 0x21;
    const part = MemfdMapping.fromFd(m.fd, { offset: 4 * PAGE, length: 2 * PAGE });
    try {
      expect(part.size).toBe(2 * PAGE);
      expect(part.offset).toBe(4 * PAGE);
      expect(new Uint8Array(part.window())[5]).toBe(0x21);
      part.punchHole(0, PAGE); // offsets are relative to the mapping: file page 4
      expect(new Uint8Array(m.window())[4 * PAGE + 5]).toBe(0);
    } finally {
      part.close();
    }
  });

  test('a 4 GiB window is the largest one (sparse 5 GiB memfd)', () => {
    const big = MemfdMapping.create({ name: 'big', size: 5 * 2 ** 30 });
    try {
      const w = big.window(2 ** 30, 2 ** 32);
      expect(w.byteLength).toBe(2 ** 32);
      expect(() => big.window(0, 2 ** 32 + PAGE)).toThrow(expect.objectContaining({ code: 'ERANGE' }));
    } finally {
      big.close();
    }
  });
});

describe('windows across worker threads', () => {
  let m: MemfdMapping;
  beforeEach(() => {
    m = MemfdMapping.create({ name: 'shared-ram', size: 16 * PAGE });
  });
  afterEach(() => m.close());

  test('main thread and a worker wrap the same mapping and see each other\'s writes', async () => {
    const main = new Uint8Array(m.window());
    main[PAGE + 1] = 77;
    const w = hostWorker(
      `const u8 = new Uint8Array(host.windowAt(workerData.addr, 0, workerData.size));
       parentPort.on('message', (msg) => {
         if (msg === 'read') parentPort.postMessage(u8[workerData.size - 1]);
       });
       parentPort.postMessage(u8[4096 + 1]);
       u8[workerData.size - 2] = 99;
       parentPort.postMessage('wrote');`,
      { addr: m.addr, size: m.size },
    );
    try {
      expect(await nextMessage(w)).toBe(77);
      expect(await nextMessage(w)).toBe('wrote');
      expect(main[m.size - 2]).toBe(99);
      main[m.size - 1] = 55;
      w.postMessage('read');
      expect(await nextMessage(w)).toBe(55);
    } finally {
      await w.terminate();
    }
  });

  // The question behind the design: Atomics on a typed array over an external ArrayBuffer
  // that is not a SharedArrayBuffer. If V8 lowered them to plain loads and stores, two
  // threads would lose increments and guest LR/SC and AMOs could not use them.
  test('Atomics.add and compareExchange on an external window are atomic across two workers', async () => {
    const N = 2_000_000;
    const go = new Int32Array(new SharedArrayBuffer(4));
    const body = `
      const i32 = new Int32Array(host.windowAt(workerData.addr, 0, 64));
      const i64 = new BigInt64Array(host.windowAt(workerData.addr, 64, 64));
      const go = new Int32Array(workerData.go);
      Atomics.add(go, 0, 1); Atomics.notify(go, 0);
      while (Atomics.load(go, 0) < 2) Atomics.wait(go, 0, 1, 5);   // start together
      // "seen" counts adds whose previous value came from the other thread: proof that the
      // two loops really interleaved. i32[1] is a plain read-modify-write: the control.
      let last = -2, seen = 0;
      for (let k = 0; k < workerData.n; k++) {
        const v = Atomics.add(i32, 0, 1);
        if (v !== last + 1) seen++;
        last = v;
        i32[1] = i32[1] + 1;
      }
      let mine = -2n, seen64 = 0;
      for (let k = 0; k < workerData.n; k++) {
        for (;;) {
          const old = i64[0];
          if (Atomics.compareExchange(i64, 0, old, old + 1n) !== old) continue;
          if (old !== mine + 1n) seen64++;
          mine = old;
          break;
        }
      }
      parentPort.postMessage([seen, seen64]);`;
    const data = { addr: m.addr, n: N, go: go.buffer };
    const workers = [hostWorker(body, data), hostWorker(body, data)];
    let seen: [number, number][] = [];
    try {
      seen = await Promise.all(workers.map((w) => nextMessage<[number, number]>(w)));
    } finally {
      await Promise.all(workers.map((w) => w.terminate()));
    }
    const i32 = new Int32Array(m.window(0, 64));
    const i64 = new BigInt64Array(m.window(64, 64));
    expect(i32[0]).toBe(2 * N);
    expect(i64[0]).toBe(BigInt(2 * N));
    // The threads did run at once (else exactness would prove nothing)...
    expect(seen[0][0] + seen[1][0]).toBeGreaterThan(0);
    expect(seen[0][1] + seen[1][1]).toBeGreaterThan(0);
    // ...and the plain increments beside the atomic ones lost updates (logged, not asserted:
    // how many depends on scheduling).
    console.log(`interleavings seen (add, cas) ${JSON.stringify(seen)}; non-atomic control lost ${2 * N - i32[1]} of ${2 * N}`);
  });
});
