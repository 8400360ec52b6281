/**
 * Shared pieces of the process-level benchmarks: start livemig processes with a QMP socket,
 * print one JSON line per result, measure a raw unix-socket stream as a ceiling.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
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
 * The ceiling for a stream of `bytes` over a unix socket between two Node processes: a writer
 * child sends 256 KiB buffers as fast as the socket takes them, this process reads and
 * discards. GB/s.
 */
export async function rawUnixStream(bytes: number, dir: string): Promise<number> {
  const sock = path.join(dir, 'raw.sock');
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(sock, r));
  const writer = `
    const net = require('net');
    const s = net.connect(${JSON.stringify(sock)});
    const buf = Buffer.alloc(256 * 1024, 0x5a);
    let left = ${bytes};
    function pump() {
      while (left > 0) { left -= buf.length; if (!s.write(buf)) return s.once('drain', pump); }
      s.end();
    }
    s.on('connect', pump);`;
  const conn = new Promise<net.Socket>((r) => server.once('connection', r));
  const child = spawn(process.execPath, ['-e', writer], { stdio: 'ignore' });
  const c = await conn;
  const t0 = performance.now();
  let got = 0;
  await new Promise<void>((resolve) => {
    c.on('data', (d) => (got += d.length));
    c.on('end', resolve);
  });
  const gbps = got / ((performance.now() - t0) / 1000) / 1e9;
  server.close();
  child.kill();
  return gbps;
}
