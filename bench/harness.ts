/**
 * Shared pieces of the process-level benchmarks: start livemig processes with a QMP socket,
 * print one JSON line per result, measure a raw unix-socket stream as a ceiling.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { QmpClient } from '../lib/monitor/qmp-client';

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

  constructor(
    readonly qmpPath: string,
    args: string[],
  ) {
    // LIVEMIG_NODE_ARGS: extra node flags for the livemig processes (e.g. --cpu-prof).
    const nodeArgs = process.env.LIVEMIG_NODE_ARGS ? process.env.LIVEMIG_NODE_ARGS.split(' ') : [];
    this.proc = spawn(process.execPath, [...nodeArgs, LIVEMIG, ...args, '-qmp', `unix:${qmpPath},server=on,wait=off`], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
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
 * process layout: a writer child sends `bytes` from a buffer of `bufferBytes` into a unix
 * socket, a reader child copies them into a preallocated buffer of `bufferBytes` (see
 * raw-socket-peer.ts). GB/s over the reader's time from accept to the last byte.
 */
export async function rawUnixStream(bytes: number, dir: string, bufferBytes = bytes): Promise<number> {
  const peer = path.join(__dirname, 'raw-socket-peer.js');
  const sock = path.join(dir, 'raw.sock');
  const size = String(Math.min(bufferBytes, RAW_BUFFER_MAX));
  const reader = spawn(process.execPath, [peer, 'read', sock, String(bytes), size], { stdio: ['ignore', 'pipe', 'inherit'] });
  let writer: ChildProcess | null = null;
  try {
    const lines = linesOf(reader);
    if ((await lines.next()).value !== 'ready') throw new Error('raw socket reader did not start');
    writer = spawn(process.execPath, [peer, 'write', sock, String(bytes), size], { stdio: ['ignore', 'ignore', 'inherit'] });
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
