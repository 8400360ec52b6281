/**
 * Shared pieces of the process-level benchmarks: start livemig processes with a QMP socket,
 * print one JSON line per result, measure a raw unix-socket stream as a ceiling.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { QmpClient } from '../lib/monitor/qmp-client';
import { SOCKET_BUFFER_BYTES } from '../lib/transport/socket';

export const ROOT = path.resolve(__dirname, '../..');
export const LIVEMIG = path.join(ROOT, 'dist/lib/cli/livemig.js');

export function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}

export function flag(name: string): boolean {
  return process.argv.includes(`--${name}`);
}

export interface BenchResult {
  bench: string;
  params: Record<string, unknown>;
  figures: Record<string, unknown>;
  ceiling: Record<string, unknown> | null;
  ratio: number | null;
  /** A limit the figures are held against that is a setting, not a property of the machine
   * (downtime-limit): kept apart from `ceiling`, which is always measured. */
  limit?: Record<string, unknown>;
}

export function report(r: BenchResult): void {
  process.stdout.write(JSON.stringify({ ...r, load: os.loadavg()[0], time: new Date().toISOString() }) + '\n');
}

export function tmpdir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'livemig-bench-'));
}

export class VmProcess {
  output = '';
  readonly proc: ChildProcess;
  qmp!: QmpClient;

  /** A livemig process (this build's, or the livemig.js `script` of another build), or with
   * `binary` another program taking QEMU's options (QEMU). */
  constructor(
    readonly qmpPath: string,
    args: string[],
    binary?: string,
    script = LIVEMIG,
  ) {
    // LIVEMIG_NODE_ARGS: extra node flags for the livemig processes (e.g. --cpu-prof).
    const nodeArgs = process.env.LIVEMIG_NODE_ARGS ? process.env.LIVEMIG_NODE_ARGS.split(' ') : [];
    const qmp = ['-qmp', `unix:${qmpPath},server=on,wait=off`];
    const [cmd, argv] = binary ? [binary, [...args, ...qmp]] : [process.execPath, [...nodeArgs, script, ...args, ...qmp]];
    this.proc = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc.stdout!.on('data', (d: Buffer) => (this.output += d.toString('latin1')));
    this.proc.stderr!.on('data', (d: Buffer) => process.stderr.write(d));
  }

  async connect(): Promise<this> {
    this.qmp = await QmpClient.connect(this.qmpPath, 30000);
    return this;
  }

  async waitOutput(re: RegExp, ms = 300000): Promise<void> {
    const t0 = Date.now();
    while (!re.test(this.output)) {
      if (Date.now() - t0 > ms) throw new Error(`output ${re} not seen`);
      if (this.proc.exitCode !== null) throw new Error(`livemig exited with ${this.proc.exitCode}`);
      await sleep(20);
    }
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  kill(): void {
    if (this.proc.exitCode === null) this.proc.kill('SIGKILL');
  }

  /** QMP `quit`, then SIGKILL if the process is still there after `ms`: a process that exits
   * by itself writes what node flags ask for at exit (--cpu-prof), a killed one does not. */
  async stop(ms = 3000): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const exited = new Promise<void>((r) => this.proc.once('exit', () => r()));
    this.qmp?.execute('quit').catch(() => undefined);
    await Promise.race([exited, sleep(ms)]);
    this.kill();
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** CPU seconds (user + system) of each thread of a process so far, by thread name
 * (/proc/PID/task/TID/comm; the main thread is 'main'). Threads that share a name add up.
 * Unlike wall time this does not grow when other work on a busy machine takes the cores. */
export function threadCpu(pid: number | undefined): Map<string, number> {
  const out = new Map<string, number>();
  if (!pid) return out;
  // The whole process, threads that have ended included (the kernel keeps their time).
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    out.set(PROCESS, (Number(f[11]) + Number(f[12])) / CLOCK_TICKS);
  } catch {
    return out;
  }
  let tids: string[];
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const name = Number(tid) === pid ? 'main' : fs.readFileSync(`/proc/${pid}/task/${tid}/comm`, 'latin1').trim();
      const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'latin1');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(name, (out.get(name) ?? 0) + (Number(f[11]) + Number(f[12])) / CLOCK_TICKS);
    } catch {
      /* the thread ended meanwhile */
    }
  }
  return out;
}

/** USER_HZ: what /proc counts CPU time in. */
const CLOCK_TICKS = 100;
const PROCESS = '(process)';

/** CPU seconds spent between two threadCpu() samples, per thread name; `(ended)` is what
 * threads that ended in between spent (the process's total less the live threads'). */
export function cpuSpent(before: Map<string, number>, after: Map<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  let live = 0;
  for (const [name, t] of after) {
    if (name === PROCESS) continue;
    const d = Math.max(0, t - (before.get(name) ?? 0));
    out[name] = +d.toFixed(2);
    live += d;
  }
  const total = (after.get(PROCESS) ?? 0) - (before.get(PROCESS) ?? 0);
  out['(ended)'] = +Math.max(0, total - live).toFixed(2);
  return out;
}

/** Median, lowest and highest of a figure over repeated runs (nulls left out). */
export function spread(values: Array<number | null | undefined>): { median: number; min: number; max: number; n: number } | null {
  const v = values.filter((x): x is number => typeof x === 'number').sort((a, b) => a - b);
  if (v.length === 0) return null;
  const mid = v.length >> 1;
  const median = v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
  const r = (x: number) => +x.toFixed(3);
  return { median: r(median), min: r(v[0]), max: r(v[v.length - 1]), n: v.length };
}

/** Poll query-migrate until the migration ends; returns the last answer. */
export async function waitMigration(q: QmpClient, pollMs = 50): Promise<any> {
  for (;;) {
    const info = await q.execute('query-migrate');
    if (['completed', 'failed', 'cancelled'].includes(info.status)) return info;
    await sleep(pollMs);
  }
}

/**
 * The ceiling for a migration stream of `bytes` over a unix socket, in the migration's
 * process layout: a writer process sends `bytes` from a faulted-in buffer of `bufferBytes`, a
 * reader process lands them in another, through one unix socket with the migration sockets'
 * kernel buffers. GB/s over the reader's time from accept to the last byte.
 *
 * The pair is bench/ceiling/unix-stream.c, compiled with the system cc (write(2) and read(2)
 * of 1 MiB, straight into the reader's buffer: the least any receiver can do). Without a
 * compiler, two Node processes do it (raw-socket-peer.ts: 'data' chunks copied into the
 * buffer), which is slower than livemig's own native page path: RAW_CEILING.kind says which.
 */
export async function rawUnixStream(bytes: number, dir: string, bufferBytes = bytes): Promise<number> {
  const size = Math.min(bufferBytes, RAW_BUFFER_MAX);
  const exe = compiledCeiling();
  if (exe) {
    const sock = path.join(dir, 'raw-c.sock');
    const out = execFileSync(exe, [sock, String(bytes), String(size), String(SOCKET_BUFFER_BYTES)], { encoding: 'utf8' });
    const r = JSON.parse(out) as { bytes: number; ms: number };
    if (r.bytes !== bytes) throw new Error(`raw socket reader got ${r.bytes} of ${bytes} bytes`);
    RAW_CEILING.kind = 'c';
    return r.bytes / (r.ms / 1000) / 1e9;
  }
  RAW_CEILING.kind = 'node';
  return rawUnixStreamNode(bytes, dir, size);
}

/** Which pair measured the last raw-socket ceiling (see rawUnixStream). */
export const RAW_CEILING: { kind: 'c' | 'node' | null } = { kind: null };

let ceilingExe: string | null | undefined;

/** Compiled once per bench process, into a directory of its own (the callers' directories
 * go away with their runs). */
function compiledCeiling(): string | null {
  if (ceilingExe !== undefined && (ceilingExe === null || fs.existsSync(ceilingExe))) return ceilingExe;
  const src = path.join(ROOT, 'bench', 'ceiling', 'unix-stream.c');
  const exe = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'livemig-ceiling-')), 'unix-stream');
  try {
    execFileSync('cc', ['-O2', src, '-o', exe], { stdio: ['ignore', 'ignore', 'pipe'] });
    ceilingExe = exe;
  } catch (e) {
    process.stderr.write(`bench: compiling unix-stream.c failed, the raw-socket ceiling is two Node processes (${(e as Error).message.split('\n')[0]})\n`);
    ceilingExe = null;
  }
  return ceilingExe;
}

async function rawUnixStreamNode(bytes: number, dir: string, size: number): Promise<number> {
  const peer = path.join(__dirname, 'raw-socket-peer.js');
  const sock = path.join(dir, 'raw.sock');
  const reader = spawn(process.execPath, [peer, 'read', sock, String(bytes), String(size)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let writer: ChildProcess | null = null;
  try {
    const lines = linesOf(reader);
    if ((await lines.next()).value !== 'ready') throw new Error('raw socket reader did not start');
    writer = spawn(process.execPath, [peer, 'write', sock, String(bytes), String(size)], { stdio: ['ignore', 'ignore', 'inherit'] });
    const done = (await lines.next()).value;
    if (typeof done !== 'string') throw new Error('raw socket reader ended without a result');
    const r = JSON.parse(done) as { bytes: number; ms: number };
    if (r.bytes !== bytes) throw new Error(`raw socket reader got ${r.bytes} of ${bytes} bytes`);
    return r.bytes / (r.ms / 1000) / 1e9;
  } finally {
    writer?.kill();
    reader.kill();
  }
}

/** A longer stream wraps around in the peers' buffers: 2 GiB is far past any CPU cache, so
 * wrapping changes nothing about the copies, and spares the machine two 4 GiB buffers. */
const RAW_BUFFER_MAX = 2 ** 31;

async function* linesOf(child: ChildProcess): AsyncGenerator<string> {
  let pending = '';
  for await (const chunk of child.stdout!) {
    pending += chunk.toString();
    for (let i = pending.indexOf('\n'); i >= 0; i = pending.indexOf('\n')) {
      yield pending.slice(0, i);
      pending = pending.slice(i + 1);
    }
  }
}
