/**
 * LR/SC and AMOs between harts running in different threads on the same memory: two
 * worker_threads, each running a hart over one SharedArrayBuffer RAM window, increment shared
 * counters three ways. Any lost update shows up in the totals.
 */
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { HartLines, PAGE_SIZE } from '../../../lib/machine/bus';
import { HartState } from '../../../lib/machine/cpu';
import { Asm, enc, REG, RAM_BASE } from './helpers';

const { a0, a1, t0, t1, t2, s0, s1, s2, s3, s4, s5 } = REG;
const RAM_SIZE = 1 << 20;
const DATA = RAM_BASE + 0x10000;
const AMO_COUNTER = DATA;
const LRSC_COUNTER = DATA + 64;
const LOCK = DATA + 128;
const LOCKED_COUNTER = DATA + 192;
const START = DATA + 256;
const RETRIES = DATA + 320; // per hart, 8 bytes each

function program(iterations: number): Uint32Array {
  const a = new Asm(RAM_BASE);
  a.li(s0, AMO_COUNTER).li(s1, LRSC_COUNTER).li(s2, LOCK).li(s3, LOCKED_COUNTER).li(t1, 1).li(t2, iterations).li(s5, 0);
  // Wait for the start flag so both harts overlap.
  a.li(s4, START).label('wait').i(enc.lw(t0, s4, 0)).beq(t0, 0, 'wait');
  a.label('loop');
  // 1. amoadd.d
  a.i(enc.amoaddD(0, t1, s0));
  // 2. LR/SC increment with retry
  a.label('retry').i(enc.lrD(a0, s1), enc.addi(a0, a0, 1), enc.scD(a1, a0, s1)).beq(a1, 0, 'ok').i(enc.addi(s5, s5, 1)).j('retry');
  a.label('ok');
  // 3. spinlock (amoswap.w acquire) around a plain load/add/store
  a.label('acquire').i(enc.amoswapW(t0, t1, s2, 1, 0)).bne(t0, 0, 'acquire');
  a.i(enc.ld(a0, s3, 0), enc.addi(a0, a0, 1), enc.sd(a0, s3, 0));
  a.i(enc.amoswapW(0, 0, s2, 0, 1)); // release
  a.i(enc.addi(t2, t2, -1)).bne(t2, 0, 'loop');
  // record retries at RETRIES + 8 × mhartid, then halt
  a.i(enc.csrrs(t0, 0xf14, 0), enc.slli(t0, t0, 3)).li(a0, RETRIES).i(enc.add(a0, a0, t0), enc.sd(s5, a0, 0), enc.wfi());
  return a.words();
}

test('two harts in two threads: amoadd, LR/SC and an AMO spinlock lose no update', async () => {
  const N = 100_000;
  const ram = new SharedArrayBuffer(RAM_SIZE);
  const dirty = new SharedArrayBuffer(RAM_SIZE / PAGE_SIZE);
  const words = program(N);
  new Uint32Array(ram).set(words);
  const lines = new HartLines(2);
  const states = [0, 1].map((h) => HartState.create(h, { resetVector: BigInt(RAM_BASE) }));
  const workers = states.map(
    (st, h) =>
      new Worker(path.join(__dirname, 'hart-worker.js'), {
        workerData: { ram, dirty, state: st.buffer, lines: lines.buffer, harts: 2, hartId: h, base: RAM_BASE },
      }),
  );
  const done = workers.map(
    (w) =>
      new Promise<{ reason: string; executed: number }>((resolve, reject) => {
        w.on('message', (m) => { if (m.done) resolve(m); });
        w.on('error', reject);
      }),
  );
  await Promise.all(workers.map((w) => new Promise((r) => w.once('message', r)))); // ready
  new Int32Array(ram)[(START - RAM_BASE) / 4] = 1;
  const results = await Promise.all(done);
  await Promise.all(workers.map((w) => w.terminate()));

  expect(results.map((r) => r.reason)).toEqual(['wfi', 'wfi']);
  const view = new DataView(ram);
  const at = (p: number) => view.getBigUint64(p - RAM_BASE, true);
  expect(at(AMO_COUNTER)).toBe(BigInt(2 * N));
  expect(at(LRSC_COUNTER)).toBe(BigInt(2 * N));
  expect(at(LOCKED_COUNTER)).toBe(BigInt(2 * N));
  expect(view.getUint32(LOCK - RAM_BASE, true)).toBe(0);
  // The counters' page was dirtied by both harts' stores.
  expect(new Uint8Array(dirty)[(DATA - RAM_BASE) / PAGE_SIZE]).toBe(1);
  // Informational: SC failures show the harts really raced.
  console.log(`SC retries: hart0 ${at(RETRIES)}, hart1 ${at(RETRIES + 8)}; executed ${results.map((r) => r.executed).join(', ')}`);
}, 60_000);
