/**
 * Interpreter speed: MIPS of one hart on
 *   (a) compute — a loop over an array in RAM: loads, arithmetic, a data-dependent branch,
 *       a multiply, stores;
 *   (b) ab — the A-B migration workload: fill RAM, then increment byte 0 of every 4 KiB page
 *       in order, forever (one store per page: the dirtiest possible pattern per instruction).
 *
 * Each prints one JSON line {"bench": "cpu", params, figures: {mips}, ceiling: {mips}, ratio}.
 * Figures are the median of 250 ms slices (the machine may be shared).
 * The ceiling is the same work written as a plain JavaScript loop over the same kind of
 * memory, run in the same process, counted in guest-instruction equivalents (the guest loop's
 * instruction count per iteration); ratio = figures.mips / ceiling.mips.
 *
 *   node dist/bench/cpu.js [--seconds 3] [--ram-mib 128] [--case compute|ab] [--region-threshold 32]
 *
 * --region-threshold 0 measures tier 1 alone (one function per basic block).
 */
import { HartLines, PAGE_SIZE, type HartEnv, type RamRegion } from '../lib/machine/bus';
import { Asm, enc, Hart, HartState, REG } from '../lib/machine/cpu';

const RAM_BASE = 0x8000_0000;
const { a0, a1, a2, a3, s0, s1, s2, s3, t0, t1 } = REG;

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}

function makeHart(ramBytes: number, program: Uint32Array, regionThreshold: number): { hart: Hart; ram: RamRegion } {
  const buf = new ArrayBuffer(ramBytes);
  new Uint32Array(buf).set(program);
  const ram: RamRegion = {
    name: 'riscv_virt_board.ram',
    base: RAM_BASE,
    size: ramBytes,
    windows: [buf],
    dirty: new Uint8Array(new SharedArrayBuffer(ramBytes / PAGE_SIZE)),
    readonly: false,
  };
  const t0ms = performance.now();
  const env: HartEnv = {
    hartId: 0,
    ram: [ram],
    mmio: () => undefined,
    lines: new HartLines(1),
    timebase: { mtime: () => Math.floor((performance.now() - t0ms) * 10_000), timecmp: () => 2 ** 64 },
  };
  const state = HartState.create(0, { resetVector: BigInt(RAM_BASE) });
  return { hart: new Hart(env, state, { regionThreshold }), ram };
}

const SLICE_NS = 250_000_000n;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/**
 * Run the hart for about `seconds` after `warmup` instructions, in 250 ms slices; returns the
 * median slice's MIPS (the machine is shared, so single slices can be disturbed).
 */
function measure(hart: Hart, seconds: number, warmup: number): number {
  for (let done = 0; done < warmup; ) done += hart.run(Math.min(1_000_000, warmup - done)).executed;
  const slices: number[] = [];
  const end = process.hrtime.bigint() + BigInt(Math.round(seconds * 1e9));
  while (process.hrtime.bigint() < end) {
    const t0 = process.hrtime.bigint();
    let executed = 0;
    let dt = 0n;
    while (dt < SLICE_NS) {
      const e = hart.run(1_000_000);
      if (e.reason !== 'budget') throw new Error(`benchmark guest stopped: ${e.reason}`);
      executed += e.executed;
      dt = process.hrtime.bigint() - t0;
    }
    slices.push(executed / (Number(dt) / 1e9) / 1e6);
  }
  return median(slices);
}

/** Iterations per second of `fn(iterations)`: median over ~250 ms slices for about `seconds`. */
function measureJs(seconds: number, fn: (n: number) => number): number {
  let n = 1000;
  let sink = 0;
  for (;;) {
    // calibrate a slice length (also warms the function up)
    const t = process.hrtime.bigint();
    sink ^= fn(n);
    if (process.hrtime.bigint() - t > SLICE_NS / 4n) break;
    n *= 2;
  }
  const rates: number[] = [];
  const end = process.hrtime.bigint() + BigInt(Math.round(seconds * 1e9));
  while (process.hrtime.bigint() < end) {
    const t = process.hrtime.bigint();
    sink ^= fn(n);
    rates.push(n / (Number(process.hrtime.bigint() - t) / 1e9));
  }
  if (sink === 0x12345678) console.error('');
  return median(rates);
}

// ── (a) compute ──────────────────────────────────────────────────────────────────────────────

const N = 4096; // 8-byte elements: 32 KiB of data
/** Guest instructions per inner iteration: 13 on the odd path, 12 on the even one (half each). */
const COMPUTE_INSNS_PER_ITER = 12.5;

function computeProgram(): Uint32Array {
  const a = new Asm(RAM_BASE);
  a.li(s0, RAM_BASE + 0x10000).li(s2, 0);
  a.label('outer').i(enc.addi(t0, s0, 0)).li(t1, N);
  a.label('inner');
  a.i(enc.ld(a0, t0, 0), enc.add(a1, a0, t1), enc.slli(a2, a1, 3), enc.xor(a1, a1, a2), enc.andi(a3, a1, 1));
  a.beq(a3, 0, 'even').i(enc.mul(a1, a1, t1));
  a.label('even').i(enc.sd(a1, t0, 0), enc.add(s2, s2, a1), enc.addi(t0, t0, 8), enc.addi(t1, t1, -1)).bne(t1, 0, 'inner');
  a.j('outer');
  return a.words();
}

/** The same loop in plain JS on 32-bit halves of the values (what V8 does with this work). */
function computeNative(iters: number): number {
  const data = new Int32Array(2 * N);
  let s = 0;
  let i = 0;
  let t = N;
  for (let k = 0; k < iters; k++) {
    const lo = data[2 * i];
    let x = (lo + t) | 0;
    x ^= x << 3;
    if (x & 1) x = Math.imul(x, t);
    data[2 * i] = x;
    s = (s + x) | 0;
    i++;
    if (--t === 0) {
      t = N;
      i = 0;
    }
  }
  return s;
}

// ── (b) ab ─────────────────────────────────────────────────────────────────────────────────

const AB_INSNS_PER_PAGE = 5;

function abProgram(ramBytes: number): Uint32Array {
  const a = new Asm(RAM_BASE);
  const start = RAM_BASE + 0x10000;
  const end = RAM_BASE + ramBytes;
  a.li(s0, start).li(s1, end).li(s3, PAGE_SIZE);
  // fill: one doubleword per 8 bytes with a pattern
  a.i(enc.addi(t0, s0, 0)).li(a1, 0x0101010101010101n);
  a.label('fill').i(enc.sd(a1, t0, 0), enc.addi(t0, t0, 8)).bltu(t0, s1, 'fill');
  // increment byte 0 of every page, in order, forever
  a.label('pass').i(enc.addi(t0, s0, 0));
  a.label('page').i(enc.lbu(a0, t0, 0), enc.addi(a0, a0, 1), enc.sb(a0, t0, 0), enc.add(t0, t0, s3)).bltu(t0, s1, 'page');
  a.j('pass');
  return a.words();
}

function abNative(ramBytes: number): (iters: number) => number {
  const mem = new Uint8Array(ramBytes);
  const dirty = new Uint8Array(new SharedArrayBuffer(ramBytes / PAGE_SIZE));
  const first = 0x10000;
  return (iters) => {
    let off = first;
    for (let k = 0; k < iters; k++) {
      mem[off] = (mem[off] + 1) & 0xff;
      dirty[off >>> 12] = 1;
      off += PAGE_SIZE;
      if (off >= ramBytes) off = first;
    }
    return mem[first];
  };
}

function report(name: string, params: object, mips: number, ceilingMips: number, ceilingWhat: string): void {
  const r = (v: number) => Math.round(v * 10) / 10;
  console.log(JSON.stringify({
    bench: 'cpu',
    params: { case: name, ...params, node: process.version },
    figures: { mips: r(mips) },
    ceiling: { mips: r(ceilingMips), what: ceilingWhat },
    ratio: Math.round((mips / ceilingMips) * 1000) / 1000,
  }));
}

function main(): void {
  const seconds = Number(arg('seconds', '3'));
  const ramMib = Number(arg('ram-mib', '128'));
  const which = arg('case', 'all');
  const regionThreshold = Number(arg('region-threshold', '32'));

  if (which === 'all' || which === 'compute') {
    const { hart } = makeHart(1 << 20, computeProgram(), regionThreshold);
    const mips = measure(hart, seconds, 5_000_000);
    const perSec = measureJs(seconds, computeNative);
    report('compute', { elements: N, seconds, regionThreshold }, mips, (perSec * COMPUTE_INSNS_PER_ITER) / 1e6, 'same loop as plain JS on int32, in guest-instruction equivalents');
  }
  if (which === 'all' || which === 'ab') {
    const ramBytes = ramMib * 2 ** 20;
    const { hart } = makeHart(ramBytes, abProgram(ramBytes), regionThreshold);
    // warm-up covers the fill (3 instructions per 8 bytes) and a few passes
    const fill = ((ramBytes - 0x10000) / 8) * 3;
    const mips = measure(hart, seconds, fill + 4 * AB_INSNS_PER_PAGE * (ramBytes / PAGE_SIZE));
    const perSec = measureJs(seconds, abNative(ramBytes));
    report('ab', { ramMib, seconds, regionThreshold }, mips, (perSec * AB_INSNS_PER_PAGE) / 1e6, 'page-increment loop as plain JS on a Uint8Array with the dirty mark, in guest-instruction equivalents');
  }
}

main();
