/**
 * What bench/postcopy.ts reads and computes besides driving migrations: the C ceiling of a
 * remote fault, the stride guest's own log of how long each touch took, and percentiles of
 * exact samples and of the destination's log2 histogram.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { VmProcess } from './harness';

/** µs per mtime tick: virt's timebase is 10 MHz. */
export const TICK_US = 0.1;

export interface RttCeiling {
  faults: number;
  p50_us: number;
  p99_us: number;
  mean_us: number;
}

/** bench/ceiling/uffd-remote-rtt.c compiled with the system cc into `dir` and run once; null
 * (with the reason on stderr) when there is no compiler or the run fails. */
export function remoteRttCeiling(dir: string, pages: number): RttCeiling | null {
  const src = path.resolve(__dirname, '../../bench/ceiling/uffd-remote-rtt.c');
  const exe = path.join(dir, 'uffd-remote-rtt');
  try {
    if (!fs.existsSync(exe)) execFileSync('cc', ['-O2', '-pthread', src, '-o', exe], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    process.stderr.write(`postcopy bench: no C ceiling, compiling uffd-remote-rtt.c failed (${(e as Error).message.split('\n')[0]})\n`);
    return null;
  }
  try {
    return JSON.parse(execFileSync(exe, [String(pages)], { encoding: 'utf8', timeout: 120000 }));
  } catch (e) {
    process.stderr.write(`postcopy bench: the C ceiling did not run (${(e as Error).message.split('\n')[0]})\n`);
    return null;
  }
}

/** Guest-physical bytes through QMP pmemsave (a postcopy destination fetches what is missing). */
export async function readGuest(vm: VmProcess, dir: string, addr: number, size: number): Promise<Buffer> {
  const file = path.join(dir, `pmem-${process.hrtime.bigint()}.bin`);
  await vm.qmp.execute('pmemsave', { val: addr, size, filename: file });
  const buf = fs.readFileSync(file);
  fs.rmSync(file);
  return buf;
}

const RAM_BASE = 0x8000_0000;
const INFO = 0x1000;
const KIND_STRIDE = 8;
/** guests/stride.c STRIDE_LOG_ENTRIES: the log is the first 16384 × 8 bytes of its range */
export const STRIDE_LOG_ENTRIES = 16384;

export interface StrideInfo {
  /** touches done so far */
  counter: number;
  /** guest-physical start of the range, where the log is */
  logAddr: number;
}

/** The stride guest's info block (docs/guests.md, "The info block"). */
export async function strideInfo(vm: VmProcess, dir: string): Promise<StrideInfo> {
  const b = await readGuest(vm, dir, RAM_BASE + INFO, 0x70);
  if (b.toString('latin1', 0, 8) !== 'LVMGINFO' || b.readUInt32LE(0x0c) !== KIND_STRIDE) throw new Error('no stride guest info block');
  return { counter: Number(b.readBigUInt64LE(0x30)), logAddr: Number(b.readBigUInt64LE(0x18)) };
}

/**
 * Where a background stream caught up with the stride guest in a span of first-touch times:
 * the start of the trailing part in which at least nine touches in ten found their page
 * present (under `presentUs`). The stream sends upwards and the guest walks down, so once they
 * meet every page the guest reaches is there already: those touches are no remote faults.
 * Returns the span's length when it never caught up.
 */
export function caughtUp(first: number[], presentUs: number): number {
  let cut = first.length;
  let present = 0;
  for (let i = first.length - 1; i >= 0; i--) {
    if (first[i] < presentUs) present++;
    if (present * 10 >= (first.length - i) * 9) cut = i;
  }
  // The part starts at a touch that found its page: a fault just before it stays in the span.
  while (cut < first.length && first[cut] >= presentUs) cut++;
  return cut;
}

/** The first-touch and second-touch times (µs) of touches [from, to), from the guest's log. */
export async function strideLog(vm: VmProcess, dir: string, info: StrideInfo, from: number, to: number): Promise<{ first: number[]; again: number[] }> {
  if (to - from > STRIDE_LOG_ENTRIES) from = to - STRIDE_LOG_ENTRIES;
  const log = await readGuest(vm, dir, info.logAddr, STRIDE_LOG_ENTRIES * 8);
  const first: number[] = [];
  const again: number[] = [];
  for (let i = from; i < to; i++) {
    const at = (i % STRIDE_LOG_ENTRIES) * 8;
    first.push(log.readUInt32LE(at) * TICK_US);
    again.push(log.readUInt32LE(at + 4) * TICK_US);
  }
  return { first, again };
}

/** p-th percentile (0..100) of exact samples, nearest rank. */
export function percentile(xs: number[], p: number): number | null {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((s.length * p) / 100))];
}

/**
 * The bucket of the destination's `postcopy-latency-dist` holding the p-th percentile, as its
 * bounds in µs: bucket n counts [2^n, 2^(n+1)) µs, bucket 0 everything under 2 µs, the last
 * everything from 2^23 µs on (hi null). Bucket resolution: the figure is somewhere inside.
 */
export function histogramPercentile(hist: number[], p: number): [number, number | null] | null {
  const total = hist.reduce((a, b) => a + b, 0);
  if (!total) return null;
  const want = (total * p) / 100;
  let seen = 0;
  for (let n = 0; n < hist.length; n++) {
    seen += hist[n];
    if (seen >= want && hist[n] > 0) return [n === 0 ? 0 : 2 ** n, n === hist.length - 1 ? null : 2 ** (n + 1)];
  }
  return null;
}

/** The histogram as {"[lo,hi)": count} for the buckets that counted anything. */
export function histogramObject(hist: number[]): Record<string, number> {
  const out: Record<string, number> = {};
  hist.forEach((v, n) => {
    if (v) out[`${n === 0 ? 0 : 2 ** n}-${n === hist.length - 1 ? 'inf' : 2 ** (n + 1)}us`] = v;
  });
  return out;
}

/** Differences of two histograms taken at two moments (faults between them). */
export function histogramDelta(after: number[], before: number[] | undefined): number[] {
  return after.map((v, i) => v - (before?.[i] ?? 0));
}

export const round = (x: number | null, digits = 1): number | null => (x === null ? null : +x.toFixed(digits));
