/** `npm start` (the demo) migrates, summarises and verifies; here on a small guest. */
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { ROOT } from './helpers';

test('the demo migrates the ab guest and verifies the destination', async () => {
  const p = spawn(process.execPath, [path.join(ROOT, 'dist/lib/cli/demo.js'), '--mem', '64M', '--append', 'size=8M', '--transport', 'tcp'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  p.stdout!.on('data', (d) => (out += d));
  p.stderr!.on('data', (d) => (out += d));
  const code = await new Promise((r) => p.on('exit', r));
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
