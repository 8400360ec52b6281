/**
 * A livemig process under test: spawned with a QMP socket, its UART output collected, driven
 * through QmpClient. Killed by `stopAll()` in afterEach.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkAb } from '../../guests/ram-check';
import { QmpClient } from '../../lib/monitor/qmp-client';
import { LIVEMIG, guest } from './helpers';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const live = new Set<Vm>();

export interface VmOptions {
  guest?: string;
  mem?: string;
  smp?: number;
  append?: string;
  extra?: string[];
  /** Extra stdio entries after stdin/stdout/stderr (fds the child inherits as 3, 4, ...). */
  fds?: number[];
  /** -serial (default stdio, whose output is `output`). */
  serial?: string;
  /** -M (default virt). */
  machine?: string;
}

export class Vm {
  output = '';
  stderr = '';
  readonly proc: ChildProcess;
  qmp!: QmpClient;
  readonly exited: Promise<number | null>;

  constructor(readonly dir: string, readonly name: string, o: VmOptions = {}) {
    const args = ['-M', o.machine ?? 'virt', '-m', o.mem ?? '64M', '-smp', String(o.smp ?? 1), '-bios', 'none', '-kernel', guest(o.guest ?? 'ab'),
      '-display', 'none', '-serial', o.serial ?? 'stdio', '-monitor', 'none', '-qmp', `unix:${this.qmpPath},server=on,wait=off`];
    if (o.append) args.push('-append', o.append);
    args.push(...(o.extra ?? []));
    this.proc = spawn(process.execPath, [LIVEMIG, ...args], { stdio: ['ignore', 'pipe', 'pipe', ...(o.fds ?? [])] });
    this.proc.stdout!.on('data', (d: Buffer) => (this.output += d.toString('latin1')));
    this.proc.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((r) => this.proc.on('exit', (code) => r(code)));
    live.add(this);
  }

  get qmpPath(): string {
    return path.join(this.dir, `${this.name}.qmp`);
  }

  async connect(): Promise<this> {
    this.qmp = await QmpClient.connect(this.qmpPath, 20000);
    return this;
  }

  async waitOutput(pred: RegExp | ((s: string) => boolean), ms = 30000): Promise<void> {
    const test = typeof pred === 'function' ? pred : (s: string) => pred.test(s);
    const t0 = Date.now();
    while (!test(this.output)) {
      if (Date.now() - t0 > ms) throw new Error(`${this.name}: output not seen; got ${JSON.stringify(this.output.slice(-80))}; stderr ${this.stderr}`);
      if (this.proc.exitCode !== null) throw new Error(`${this.name} exited (${this.proc.exitCode}): ${this.stderr}`);
      await sleep(20);
    }
  }

  /** More output appears (the guest is alive). */
  async printsMore(bytes = 3, ms = 30000): Promise<void> {
    const n = this.output.length;
    await this.waitOutput((s) => s.length >= n + bytes, ms);
  }

  async status(): Promise<string> {
    return (await this.qmp.execute('query-migrate')).status;
  }

  async waitStatus(want: string | string[], ms = 60000): Promise<any> {
    const set = Array.isArray(want) ? want : [want];
    const t0 = Date.now();
    for (;;) {
      const info = await this.qmp.execute('query-migrate');
      if (set.includes(info.status)) return info;
      if (Date.now() - t0 > ms) throw new Error(`${this.name}: status ${info.status}, waited for ${set.join('|')}: ${JSON.stringify(info)}`);
      await sleep(20);
    }
  }

  async setCaps(caps: Record<string, boolean>): Promise<void> {
    await this.qmp.execute('migrate-set-capabilities', {
      capabilities: Object.entries(caps).map(([capability, state]) => ({ capability, state })),
    });
  }

  kill(): void {
    this.qmp?.close();
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGKILL');
    live.delete(this);
  }
}

export async function stopAll(): Promise<void> {
  const all = [...live];
  for (const v of all) v.kill();
  await Promise.all(all.map((v) => v.exited));
}

/**
 * Stop the guest, dump its RAM (pmemsave) and check the ab guest's A/B invariant: every A/B
 * pair the guest wrote is consistent, so no page was lost or torn by a migration.
 */
export async function abRamOk(vm: Vm, dir: string, mem: number): Promise<void> {
  await vm.qmp.execute('stop');
  const file = path.join(dir, `${vm.name}-ram.bin`);
  await vm.qmp.execute('pmemsave', { val: 0x8000_0000, size: mem, filename: file });
  const r = checkAb(fs.readFileSync(file));
  expect(r.errors).toEqual([]);
  expect(r.ok).toBe(true);
}
