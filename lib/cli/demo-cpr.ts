/**
 * `npm start -- --cpr`: upgrade the livemig process under a running guest (cpr-transfer). An
 * old process runs the ab guest on shareable RAM with its console on a unix socket, and the
 * demo connects to that console as a client would. A new process starts with -incoming main
 * and cpr channels; `migrate` hands it the RAM and the console's descriptors, then the device
 * state. The demo shows the guest's pause, what was sent, both processes' memory, the console
 * connection carrying on, and checks the guest's RAM in the new process.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { QmpClient } from '../monitor/qmp-client';
import { formatSize } from '../util/size';

export interface CprDemoOptions {
  kernel: string;
  mem: string;
  memBytes: number;
  smp: number;
  append: string;
  dir: string;
  /** Starts a livemig process: its name (for stderr) and arguments. */
  spawn(name: string, args: string[]): { kill(): void; readonly pid: number };
  /** Stops the guest, dumps its RAM and checks the A/B invariant. */
  verify(q: QmpClient): Promise<boolean>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;

async function until(cond: () => boolean, what: string, ms = 120000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** kB lines of /proc/PID/status and smaps_rollup, in bytes. */
function memOf(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  const text = fs.readFileSync(`/proc/${pid}/status`, 'utf8') + fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  for (const m of text.matchAll(/^(VmRSS|RssShmem|Pss_Shmem):\s+(\d+) kB/gm)) out[m[1]] = Number(m[2]) * 1024;
  return out;
}

export async function cprDemo(o: CprDemoOptions): Promise<number> {
  const p = (name: string) => path.join(o.dir, name);
  const ch = (type: string, file: string) => ({ 'channel-type': type, addr: { transport: 'socket', type: 'unix', path: p(file) } });
  const serial = `unix:${p('serial.sock')},server=on,wait=off`;
  const common = ['-M', 'virt,aux-ram-share=on', '-m', o.mem, '-smp', String(o.smp), '-bios', 'none', '-kernel', o.kernel,
    '-display', 'none', '-monitor', 'none', '-serial', serial];
  if (o.append) common.push('-append', o.append);
  console.log(`livemig cpr-transfer demo: ab guest, ${formatSize(o.memBytes)} RAM (memfd, aux-ram-share=on), ${o.smp} vCPU(s)`);
  const oldVm = o.spawn('old', [...common, '-name', 'old', '-qmp', `unix:${p('old.qmp')},server=on,wait=off`]);
  let newVm: { kill(): void; readonly pid: number } | null = null;
  try {
    const oq = await QmpClient.connect(p('old.qmp'), 60000);
    await until(() => fs.existsSync(p('serial.sock')), 'the console socket');
    const console_ = net.connect(p('serial.sock'));
    let text = '';
    let closed = false;
    console_.on('data', (d) => (text += d.toString('latin1')));
    console_.on('close', () => (closed = true));
    process.stdout.write('old process: filling RAM and starting the A/B loop… ');
    await until(() => /AB/.test(text), 'the guest');
    console.log(`running; a console client is connected to ${p('serial.sock')}`);

    newVm = o.spawn('new', [...common, '-name', 'new', '-qmp', `unix:${p('new.qmp')},server=on,wait=off`,
      '-incoming', `unix:${p('main.sock')}`, '-incoming', JSON.stringify(ch('cpr', 'cpr.sock'))]);
    await until(() => fs.existsSync(p('cpr.sock')), 'the new process');
    console.log('new process: waiting on its cpr channel (its monitor comes up once it has the CPR state)');
    await oq.execute('migrate-set-parameters', { mode: 'cpr-transfer' });
    const atMigrate = text.length;
    await oq.execute('migrate', { channels: [ch('main', 'main.sock'), ch('cpr', 'cpr.sock')] });
    let info: any;
    for (;;) {
      info = await oq.execute('query-migrate');
      if (['completed', 'failed', 'cancelled'].includes(info.status)) break;
      await sleep(10);
    }
    if (info.status !== 'completed') throw new Error(`cpr-transfer ${info.status}: ${info['error-desc'] ?? ''}`);
    const nq = await QmpClient.connect(p('new.qmp'), 60000);
    const before = text.length;
    await until(() => text.length > before + 3, 'the guest printing from the new process');
    const [t0, t1] = [await oq.execute('x-query-vcpu-times'), await nq.execute('x-query-vcpu-times')];
    const [om, nm] = [memOf(oldVm.pid), memOf(newVm.pid)];
    const rows: [string, string][] = [
      ['guest pause', `${((t1.running - t0.parked) / 1000).toFixed(2)} ms (old vCPUs parked → new vCPUs running)`],
      ['total time', `${info['total-time']} ms (migrate → completed)`],
      ['sent on main', `${info.ram.transferred} bytes (RAM pages: ${info.ram.normal})`],
      ['old process', `${(await oq.execute('query-status')).status}, RSS ${mib(om.VmRSS)} (guest RAM ${mib(om.RssShmem)})`],
      ['new process', `${(await nq.execute('query-status')).status}, RSS ${mib(nm.VmRSS)} (guest RAM ${mib(nm.RssShmem)})`],
      ['guest RAM copies', ((om.Pss_Shmem + nm.Pss_Shmem) / nm.RssShmem).toFixed(2)],
      ['console', `the same connection${closed ? ' CLOSED' : ''}: ${before - atMigrate} bytes during the upgrade, more since`],
    ];
    console.log('\nsummary');
    for (const [k, v] of rows) console.log(`  ${k.padEnd(18)} ${v}`);
    await oq.execute('quit').catch(() => undefined);
    const ok = (await o.verify(nq)) && !closed;
    await nq.execute('quit').catch(() => undefined);
    console_.destroy();
    return ok ? 0 : 1;
  } finally {
    await sleep(200);
    oldVm.kill();
    newVm?.kill();
  }
}
