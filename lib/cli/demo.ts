#!/usr/bin/env node
/**
 * `npm start`: a live migration on this host with embedded defaults. It starts a source
 * livemig running the `ab` guest and a destination waiting with `-incoming`, migrates over a
 * unix socket while showing progress, prints a summary, and checks the destination: the guest
 * goes on printing there, and its RAM satisfies the A/B invariant.
 *
 * By default the ab guest rewrites a 64 MiB working set as fast as its vCPU runs (`size=64M`):
 * a guest that rewrites all of its RAM faster than the link carries it can never fit under
 * the downtime limit. If the migration has not converged after CONVERGE_WAIT_S, the demo
 * raises downtime-limit, as QEMU's own migration tests do, and says so.
 *
 *   npm start -- [--guest ab|dirty|idle] [--mem 512M] [--smp 2] [--transport unix|tcp]
 *                [--downtime-limit MS] [--max-bandwidth SIZE] [--append ARGS] [--keep]
 *                [--postcopy]
 *   npm start -- --cpr [--mem 512M] [--smp 2] [--append ARGS] [--keep]
 *                upgrade the livemig process under the running ab guest (cpr-transfer,
 *                demo-cpr.ts)
 *
 * --postcopy migrates by postcopy (asked for at once) and prints the destination's blocktime
 * and fault-latency histogram (demo-postcopy.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { QmpClient } from '../monitor/qmp-client';
import { formatSize, parseSize } from '../util/size';
import { cprDemo } from './demo-cpr';
import { POSTCOPY_CAPABILITIES, formatPostcopyFigures, postcopyRows, startPostcopy } from './demo-postcopy';

const ROOT = path.resolve(__dirname, '../../..');
const CONVERGE_WAIT_S = 30;
/** Precopy's link in the postcopy demo unless --max-bandwidth says otherwise. */
const POSTCOPY_DEMO_PRECOPY_BANDWIDTH = 64 * 2 ** 20;
const LIVEMIG = path.join(__dirname, 'livemig.js');

interface DemoOptions {
  guest: string;
  mem: string;
  smp: number;
  transport: 'unix' | 'tcp';
  downtimeLimit: number;
  maxBandwidth: number;
  maxBandwidthGiven?: boolean;
  append: string;
  keep: boolean;
  cpr: boolean;
  postcopy: boolean;
}

function parseDemoArgs(argv: string[]): DemoOptions {
  const o: DemoOptions = {
    guest: 'ab',
    mem: '512M',
    smp: 2,
    transport: 'unix',
    downtimeLimit: 300,
    maxBandwidth: 0,
    append: 'size=64M',
    keep: false,
    cpr: false,
    postcopy: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    switch (a) {
      case '--guest': o.guest = v(); break;
      case '--mem': o.mem = v(); break;
      case '--smp': o.smp = Number(v()); break;
      case '--transport': {
        const t = v();
        if (t !== 'unix' && t !== 'tcp') throw new Error('--transport is unix or tcp');
        o.transport = t;
        break;
      }
      case '--downtime-limit': o.downtimeLimit = Number(v()); break;
      case '--max-bandwidth': o.maxBandwidth = parseSize(v(), 2 ** 20); o.maxBandwidthGiven = true; break;
      case '--append': o.append = v(); break;
      case '--keep': o.keep = true; break;
      case '--cpr': o.cpr = true; break;
      case '--postcopy': o.postcopy = true; break;
      case '-h':
      case '--help':
        process.stdout.write(usage());
        process.exit(0);
      default: throw new Error(`unknown option ${a}`);
    }
  }
  return o;
}

/** The header comment of this file (compiled, it follows the module helpers tsc puts first). */
function usage(): string {
  const src = fs.readFileSync(__filename, 'utf8');
  const doc = src.slice(src.indexOf('/**') + 3, src.indexOf('*/'));
  return doc.split('\n').map((l) => l.replace(/^ \* ?/, '')).join('\n').trim() + '\n';
}

class Vm {
  output = '';
  readonly proc: ChildProcess;
  constructor(readonly name: string, args: string[]) {
    this.proc = spawn(process.execPath, [LIVEMIG, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc.stdout!.on('data', (d: Buffer) => (this.output += d.toString('latin1')));
    this.proc.stderr!.on('data', (d: Buffer) => process.stderr.write(`[${name}] ${d}`));
  }
  async waitOutput(pred: (s: string) => boolean, ms: number): Promise<void> {
    const t0 = Date.now();
    while (!pred(this.output)) {
      if (Date.now() - t0 > ms) throw new Error(`${this.name}: expected output did not appear in ${ms} ms`);
      if (this.proc.exitCode !== null) throw new Error(`${this.name} exited with ${this.proc.exitCode}`);
      await sleep(50);
    }
  }
  kill(): void {
    if (this.proc.exitCode === null) this.proc.kill('SIGKILL');
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function bar(frac: number, width = 30): string {
  const n = Math.max(0, Math.min(width, Math.round(frac * width)));
  return '[' + '#'.repeat(n) + '.'.repeat(width - n) + ']';
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

async function main(): Promise<number> {
  const o = parseDemoArgs(process.argv.slice(2));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'livemig-demo-'));
  const kernel = path.join(ROOT, 'guests', `${o.guest}.elf`);
  if (!fs.existsSync(kernel)) throw new Error(`no guest '${o.guest}' (${kernel})`);
  const memBytes = parseSize(o.mem, 2 ** 20);
  if (o.cpr) {
    if (o.guest !== 'ab') throw new Error('--cpr runs the ab guest');
    try {
      return await cprDemo({
        kernel, mem: o.mem, memBytes, smp: o.smp, append: o.append, dir,
        spawn: (name, args) => {
          const vm = new Vm(name, args);
          return { kill: () => vm.kill(), pid: vm.proc.pid! };
        },
        verify: (q) => verify(o, q, dir, memBytes),
      });
    } finally {
      if (!o.keep) fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  const common = ['-M', 'virt', '-m', o.mem, '-smp', String(o.smp), '-bios', 'none', '-kernel', kernel,
    '-display', 'none', '-serial', 'stdio', '-monitor', 'none'];
  if (o.append) common.push('-append', o.append);
  const migUri = o.transport === 'unix' ? `unix:${path.join(dir, 'mig.sock')}` : 'tcp:127.0.0.1:0';
  const src = new Vm('source', [...common, '-name', 'source', '-qmp', `unix:${path.join(dir, 'src.qmp')},server=on,wait=off`]);
  const dst = new Vm('destination', [...common, '-name', 'destination', '-qmp', `unix:${path.join(dir, 'dst.qmp')},server=on,wait=off`, '-incoming', o.postcopy ? 'defer' : migUri]);
  try {
    console.log(`livemig demo: ${o.guest} guest, ${formatSize(memBytes)} RAM, ${o.smp} vCPU(s), ${o.transport} socket`);
    const sq = await QmpClient.connect(path.join(dir, 'src.qmp'));
    const dq = await QmpClient.connect(path.join(dir, 'dst.qmp'));
    if (o.guest === 'ab') {
      process.stdout.write('source: filling RAM and starting the A/B loop… ');
      await src.waitOutput((s) => /AB/.test(s), 120000);
      console.log('running');
    } else {
      await src.waitOutput((s) => s.length > 0, 60000);
    }
    const caps = ['events', 'return-path', ...(o.postcopy ? POSTCOPY_CAPABILITIES : [])];
    for (const q of [sq, dq]) await q.execute('migrate-set-capabilities', { capabilities: caps.map((capability) => ({ capability, state: true })) });
    // postcopy-preempt must be set before the destination listens.
    if (o.postcopy) await dq.execute('migrate-incoming', { uri: migUri });
    let uri = migUri;
    if (o.transport === 'tcp') {
      const info = await dq.execute('query-migrate');
      const a = info['socket-address'][0];
      uri = `tcp:${a.host}:${a.port}`;
    }
    // Precopy finishes whenever it can, even once postcopy was asked for (as in QEMU): a small
    // guest on an unlimited link could be done before migrate-start-postcopy arrives. Unless
    // told otherwise, the postcopy demo gives precopy a modest link so that postcopy is seen.
    const maxBandwidth = o.postcopy && !o.maxBandwidthGiven ? POSTCOPY_DEMO_PRECOPY_BANDWIDTH : o.maxBandwidth;
    await sq.execute('migrate-set-parameters', { 'downtime-limit': o.downtimeLimit, 'max-bandwidth': maxBandwidth });
    // The progress bar samples; the MIGRATION events say every status the source went through.
    const statuses: string[] = [];
    sq.on('event', (e: { event: string; data?: { status?: string } }) => {
      if (e.event === 'MIGRATION' && e.data?.status) statuses.push(e.data.status);
    });
    console.log(`migrating to ${uri} (downtime-limit ${o.downtimeLimit} ms, max-bandwidth ${maxBandwidth ? formatSize(maxBandwidth) + '/s' : 'unlimited'})`);
    await sq.execute('migrate', { uri });
    if (o.postcopy) {
      await startPostcopy(sq);
      console.log('postcopy asked for: the guest runs on at the destination, pages follow');
    }
    let info: any;
    const started = Date.now();
    let relaxed = false;
    for (;;) {
      if (!relaxed && Date.now() - started > CONVERGE_WAIT_S * 1000) {
        relaxed = true;
        process.stdout.write(`\nnot converging within ${o.downtimeLimit} ms of downtime after ${CONVERGE_WAIT_S} s: raising downtime-limit to 5000 ms\n`);
        await sq.execute('migrate-set-parameters', { 'downtime-limit': 5000 });
      }
      info = await sq.execute('query-migrate');
      const ram = info.ram;
      if (ram) {
        const frac = ram.total ? (ram.total - ram.remaining) / ram.total : 0;
        const line = `${bar(frac)} ${info.status.padEnd(9)} sent ${mib(ram.transferred).padStart(10)}  remaining ${mib(ram.remaining).padStart(10)}  ${(ram.mbps / 8).toFixed(0).padStart(5)} MB/s  pass ${ram['dirty-sync-count']}`;
        process.stdout.write(process.stdout.isTTY ? `\r${line}` : `${line}\n`);
      }
      if (['completed', 'failed', 'cancelled'].includes(info.status)) break;
      await sleep(process.stdout.isTTY ? 100 : 500);
    }
    process.stdout.write('\n');
    if (info.status !== 'completed') throw new Error(`migration ${info.status}: ${info['error-desc'] ?? ''}`);
    const ram = info.ram;
    const rows: [string, string][] = [
      ['status', info.status],
      ['statuses', statuses.join(' → ')],
      ['total time', `${info['total-time']} ms`],
      ['setup time', `${info['setup-time']} ms`],
      ['downtime', `${info.downtime} ms`],
      ['transferred', mib(ram.transferred)],
      ['throughput', `${((ram.transferred / 2 ** 20) / (info['total-time'] / 1000)).toFixed(0)} MiB/s`],
      ['normal pages', String(ram.normal)],
      ['zero pages', String(ram.duplicate)],
      ['passes (dirty syncs)', String(ram['dirty-sync-count'])],
      ...(o.postcopy ? postcopyRows(info) : []),
    ];
    console.log('\nsummary');
    for (const [k, v] of rows) console.log(`  ${k.padEnd(22)} ${v}`);
    if (o.postcopy) console.log(`\n${formatPostcopyFigures(await dq.execute('query-migrate'))}`);

    // The guest lives on at the destination: it keeps printing, and its memory checks out.
    const before = dst.output.length;
    await dst.waitOutput((s) => s.length > before + (o.guest === 'ab' ? 3 : 0), 60000);
    const status = await dq.execute('query-status');
    console.log(`\ndestination: ${status.status}, printed ${dst.output.length - before} more bytes since switchover`);
    const ok = await verify(o, dq, dir, memBytes);
    await sq.execute('quit').catch(() => {});
    await dq.execute('quit').catch(() => {});
    return ok ? 0 : 1;
  } finally {
    await sleep(200);
    src.kill();
    dst.kill();
    if (!o.keep) fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Stop the destination, dump its RAM with pmemsave and check the guest's invariant. */
async function verify(o: DemoOptions, dq: QmpClient, dir: string, memBytes: number): Promise<boolean> {
  // ram-check.js lives with the guests (plain JS), outside the compiled tree.
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const check = require(path.join(ROOT, 'guests', 'ram-check.js'));
  await dq.execute('stop');
  const dump = path.join(dir, 'dst-ram.bin');
  await dq.execute('pmemsave', { val: 0x8000_0000, size: memBytes, filename: dump });
  const ram = fs.readFileSync(dump);
  const r = o.guest === 'ab' ? check.checkAb(ram) : check.checkFill(ram);
  if (r.ok) {
    console.log(o.guest === 'ab'
      ? `verified: destination RAM follows the A/B invariant (${r.pages} pages, pass ${r.passes}, step at page ${r.step})`
      : `verified: destination RAM holds the guest's fill pattern`);
  } else {
    console.log(`VERIFICATION FAILED: ${r.errors.join('; ')}`);
  }
  return r.ok;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`livemig demo: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
