/** `npm start` (the demo) migrates, summarises and verifies; here on a small guest. */
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { ROOT } from './helpers';

async function demo(args: string[]): Promise<{ out: string; code: unknown }> {
  const p = spawn(process.execPath, [path.join(ROOT, 'dist/lib/cli/demo.js'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  p.stdout!.on('data', (d) => (out += d));
  p.stderr!.on('data', (d) => (out += d));
  const code = await new Promise((r) => p.on('exit', r));
  return { out, code };
}

test('the demo migrates the ab guest and verifies the destination', async () => {
  const { out, code } = await demo(['--mem', '64M', '--append', 'size=8M', '--transport', 'tcp']);
  expect(out).toMatch(/status\s+completed/);
  expect(out).toMatch(/downtime\s+\d+ ms/);
  expect(out).toMatch(/verified: destination RAM follows the A\/B invariant/);
  expect(code).toBe(0);
});

test('npm start -- --cpr upgrades the process under the guest and verifies it', async () => {
  const p = spawn(process.execPath, [path.join(ROOT, 'dist/lib/cli/demo.js'), '--cpr', '--mem', '64M', '--append', 'size=8M', '--smp', '1'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  p.stdout!.on('data', (d) => (out += d));
  p.stderr!.on('data', (d) => (out += d));
  const code = await new Promise((r) => p.on('exit', r));
  expect(out).toMatch(/guest pause\s+\d+\.\d+ ms/);
  expect(out).toMatch(/RAM pages: 0\)/);
  expect(out).toMatch(/guest RAM copies\s+1\.00/);
  expect(out).toMatch(/console\s+the same connection:/);
  expect(out).toMatch(/verified: destination RAM follows the A\/B invariant/);
  expect(code).toBe(0);
});

test('--postcopy: migrates by postcopy, prints blocktime and the latency histogram', async () => {
  const { out, code } = await demo(['--mem', '64M', '--append', 'size=8M', '--postcopy']);
  expect(out).toMatch(/statuses\s+setup → active → .*postcopy-active → completed/);
  expect(out).toMatch(/status\s+completed/);
  expect(out).toMatch(/postcopy bytes\s+\d+\.\d MiB/);
  expect(out).toMatch(/blocktime \(all vCPUs\)\s+\d+ ms/);
  expect(out).toMatch(/blocktime per vCPU\s+\d+, \d+ ms/);
  // Bucket rows, or the line saying no page had to be asked for.
  expect(out).toMatch(/latency histogram[^\n]*\n( +\d+(\.\d)? (µs|ms|s) - \d+(\.\d)? (µs|ms|s) +\d+ +#+\n|    \(no remote faults\)\n)/);
  expect(out).toMatch(/verified: destination RAM follows the A\/B invariant/);
  expect(code).toBe(0);
}, 120000);
