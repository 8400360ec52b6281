/**
 * Host-layer micro-benchmarks. Run: `node dist/bench/host.js [--quick]`.
 * Each result is one JSON line: {bench, params, figures, ceiling, ratio}; the ceiling is a
 * physical limit measured in this same run, ratio = figure / ceiling:
 *   fault round trip  → the same loop in C (poll thread + UFFDIO_COPY), compiled if cc exists
 *   COPY, alias write + CONTINUE → memcpy into warm shared memory (moving the bytes only)
 *   CONTINUE alone, PAGEMAP_SCAN → none: they move no bytes (reported as rates and times)
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';

import { HOST_PAGE_SIZE, MemfdMapping, Userfaultfd, WpDirtyTracker } from '../lib/host';

const PAGE = HOST_PAGE_SIZE;
const QUICK = process.argv.includes('--quick');

function emit(bench: string, params: object, figures: object, ceiling: object, ratio: number | null): void {
  const round = (o: object) =>
    Object.fromEntries(
      Object.entries(o).map(([k, v]) => [k, typeof v === 'number' && !Number.isInteger(v) ? +v.toPrecision(4) : v]),
    );
  const r = ratio === null ? null : +ratio.toPrecision(3);
  const p = { ...params, loadavg1: +os.loadavg()[0].toFixed(2) }; // the machine may be shared
  console.log(JSON.stringify({ bench, params: p, figures: round(figures), ceiling: round(ceiling), ratio: r }));
}

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))];
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const nowMs = () => performance.now();

/** The C round-trip ceiling, compiled into a temp dir when a C compiler is at hand. */
function cCeiling(pages: number): { p50_us: number; p99_us: number; mean_us: number } | null {
  const src = path.resolve(__dirname, '../../bench/ceiling/uffd-rtt.c');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'livemig-bench-'));
  try {
    const exe = path.join(dir, 'uffd-rtt');
    execFileSync('cc', ['-O2', '-pthread', src, '-o', exe], { stdio: 'ignore' });
    return JSON.parse(execFileSync(exe, [String(pages)], { encoding: 'utf8' }));
  } catch {
    return null;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

interface RttRun {
  p50: number;
  p99: number;
  mean: number;
  faultsPerS: number;
  eventsPerBatch: number;
}

/** A vCPU worker faults on `pages` pages; the main loop resolves each with UFFDIO_COPY. */
async function faultRun(pages: number): Promise<RttRun> {
  const ram = MemfdMapping.create({ name: 'bench-rtt', size: pages * PAGE });
  const uffd = Userfaultfd.open();
  const src = new Uint8Array(PAGE).fill(0x5a);
  let batches = 0;
  let events = 0;
  uffd.register(ram.addr, ram.size, ['missing']);
  uffd.onEvents((evs) => {
    batches++;
    for (const e of evs) {
      if (e.kind !== 'pagefault') continue;
      events++;
      uffd.copy(e.address - (e.address % PAGE), src, PAGE);
    }
  });
  const w = new Worker(path.join(__dirname, 'host-fault-worker.js'), {
    workerData: { addr: ram.addr, pages, stride: PAGE },
  });
  await new Promise((r) => w.once('message', r));
  const done = new Promise<{ lat: Float64Array }>((r) => w.once('message', r));
  const t0 = nowMs();
  w.postMessage('go');
  const { lat } = await done;
  const wall = nowMs() - t0;
  await w.terminate();
  uffd.close();
  ram.close();
  const sorted = Float64Array.from(lat).sort();
  return {
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    mean: lat.reduce((a, b) => a + b, 0) / lat.length,
    faultsPerS: pages / (wall / 1000),
    eventsPerBatch: events / batches,
  };
}

/** Three alternating runs of the JS path and the C ceiling (the machine is shared and noisy);
 * each side reports its median-p50 run. */
async function faultRoundTrip(pages: number, runs: number): Promise<void> {
  const js: RttRun[] = [];
  const c: NonNullable<ReturnType<typeof cCeiling>>[] = [];
  for (let r = 0; r < runs; r++) {
    js.push(await faultRun(pages));
    const cr = cCeiling(pages);
    if (cr) c.push(cr);
  }
  const mid = <T>(xs: T[], key: (x: T) => number) => [...xs].sort((a, b) => key(a) - key(b))[xs.length >> 1];
  const j = mid(js, (x) => x.p50);
  const cm = c.length ? mid(c, (x) => x.p50_us) : undefined;
  emit(
    'uffd-fault-round-trip',
    { pages, runs, resolver: 'main loop uv_poll + UFFDIO_COPY', faulter: 'worker_thread' },
    { p50_us: j.p50, p99_us: j.p99, mean_us: j.mean, faults_per_s: j.faultsPerS, events_per_batch: j.eventsPerBatch },
    cm ? { c_poll_thread_p50_us: cm.p50_us, c_p99_us: cm.p99_us } : {},
    cm ? cm.p50_us / j.p50 : null,
  );
}

/** GB/s of a function that moves `bytes`, best of `runs` fresh setups. */
function gbps(bytes: number, ms: number): number {
  return bytes / (ms / 1000) / 1e9;
}

/** memcpy into warm (already populated) shared memory: moving the bytes and nothing else,
 * the limit for any way of placing pages. */
function memcpyCeiling(bytes: number, src: Uint8Array, runs: number): number {
  const out: number[] = [];
  const m = MemfdMapping.create({ name: 'bench-memcpy', size: bytes });
  m.populate();
  const dst = new Uint8Array(m.window());
  for (let r = 0; r < runs; r++) {
    const t0 = nowMs();
    for (let off = 0; off < bytes; off += src.length) dst.set(src, off);
    out.push(gbps(bytes, nowMs() - t0));
  }
  m.close();
  return median(out);
}

/** Runs `place(dst, mapping)` on a fresh MISSING- or MINOR-registered mapping, `runs` times,
 * and returns the median GB/s. */
function placeRuns(bytes: number, runs: number, setup: (m: MemfdMapping) => MemfdMapping,
  mode: 'missing' | 'minor', place: (uffd: Userfaultfd, target: MemfdMapping, m: MemfdMapping) => void): number {
  const out: number[] = [];
  for (let r = 0; r < runs; r++) {
    const m = MemfdMapping.create({ name: 'bench-place', size: bytes });
    const target = setup(m);
    const uffd = Userfaultfd.open();
    uffd.register(target.addr, bytes, [mode]);
    const t0 = nowMs();
    place(uffd, target, m);
    out.push(gbps(bytes, nowMs() - t0));
    uffd.close();
    if (target !== m) target.close();
    m.close();
  }
  return median(out);
}

function placementThroughput(bytes: number, runs: number): void {
  const src64 = new Uint8Array(64 * PAGE).fill(0x77);
  const ceiling = memcpyCeiling(bytes, src64, runs);
  for (const perIoctl of [1, 64]) {
    const len = perIoctl * PAGE;
    const src = src64.subarray(0, len);
    // COPY: allocate + copy + map in one ioctl.
    const copy = placeRuns(bytes, runs, (m) => m, 'missing', (uffd, t) => {
      for (let off = 0; off < bytes; off += len) uffd.copy(t.addr + off, src, len);
    });
    emit('uffdio-copy-throughput', { bytes, pages_per_ioctl: perIoctl, source: 'Buffer', runs },
      { gb_per_s: copy }, { memcpy_warm_gb_per_s: ceiling }, copy / ceiling);
    // CONTINUE alone: the page cache is already full (populated through m); map it in a
    // second mapping that has no PTEs yet.
    const cont = placeRuns(bytes, runs, (m) => (m.populate(), m.alias()), 'minor', (uffd, t) => {
      for (let off = 0; off < bytes; off += len) uffd.continue(t.addr + off, len);
    });
    // CONTINUE moves no bytes (it only maps), so no byte-moving ceiling bounds it.
    emit('uffdio-continue-throughput', { bytes, pages_per_ioctl: perIoctl, page_cache: 'full', runs },
      { gb_per_s: cont }, {}, null);
    // The MINOR way to place received pages: write through the alias, then CONTINUE.
    const minor = placeRuns(bytes, runs, (m) => m.alias(), 'minor', (uffd, t, m) => {
      const via = new Uint8Array(m.window());
      for (let off = 0; off < bytes; off += len) {
        via.set(src, off);
        uffd.continue(t.addr + off, len);
      }
    });
    emit('uffd-place-write-alias-then-continue', { bytes, pages_per_ioctl: perIoctl, runs },
      { gb_per_s: minor }, { memcpy_warm_gb_per_s: ceiling }, minor / ceiling);
  }
}

function pagemapScan(bytes: number, runs: number): void {
  const pages = bytes / PAGE;
  const m = MemfdMapping.create({ name: 'bench-scan', size: bytes });
  m.populate();
  let t0 = nowMs();
  const t = WpDirtyTracker.arm(m);
  const armMs = nowMs() - t0;
  const u8 = new Uint8Array(m.window(0, Math.min(bytes, 2 ** 30)));
  const cases: [string, number][] = [['none', 0], ['100k', Math.min(100_000, pages)], ['all', pages]];
  for (const [label, n] of cases) {
    // Distinct pages spread over the range (a stride coprime with the page count).
    const stride = n === pages ? 1 : 7919;
    const times: number[] = [];
    let reported = 0;
    let runsReported = 0;
    for (let r = 0; r < runs; r++) {
      for (let i = 0, p = 0; i < n; i++, p = (p + stride) % pages) u8[p * PAGE] ^= 1;
      t0 = nowMs();
      const pairs = t.scan();
      times.push(nowMs() - t0);
      reported = WpDirtyTracker.pageCount(pairs);
      runsReported = pairs.length / 2;
    }
    emit('pagemap-scan', { bytes, written: label, pages_written: n, runs },
      { scan_ms: median(times), first_scan_ms: times[0], pages_reported: reported, runs_reported: runsReported,
        arm_ms: armMs }, {}, null);
  }
  t.close();
  m.close();
}

async function main(): Promise<void> {
  await faultRoundTrip(QUICK ? 2000 : 20000, QUICK ? 1 : 3);
  placementThroughput(QUICK ? 32 << 20 : 256 << 20, QUICK ? 1 : 3);
  pagemapScan(QUICK ? 64 << 20 : 2 ** 30, QUICK ? 1 : 5);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
