/**
 * livemig as a library, the way a user has it: a directory whose node_modules/livemig is this
 * package, and a script that require()s it by name, builds two machines, migrates the ab guest
 * from one to the other over a unix socket, and compares their RAM.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ROOT, tmpdir } from './helpers';

const SCRIPT = `
const lm = require('livemig');
const crypto = require('node:crypto');
const path = require('node:path');
(async () => {
  const MiB = 1 << 20;
  const src = await lm.createMachine({ memSize: 64 * MiB, smp: 2, kernel: lm.guestImage('ab'), append: 'size=8M seed=9' });
  let out = '';
  src.on('serial', (b) => (out += Buffer.from(b).toString('latin1')));
  src.cont();
  while (!/AB{3}/.test(out)) await new Promise((r) => setTimeout(r, 20));
  // The destination stays stopped after loading (-S), so its RAM is what arrived.
  const dst = await lm.createMachine({ memSize: 64 * MiB, smp: 2 });
  const sock = path.join(__dirname, 'mig.sock');
  const incoming = await lm.acceptMigration(dst, 'unix:' + sock, { startPaused: true, capabilities: { 'return-path': true } });
  const info = await lm.migrate(src, 'unix:' + sock, { capabilities: { 'return-path': true }, parameters: { 'max-bandwidth': 0 } });
  const dinfo = await incoming.done;
  const hash = (m) => crypto.createHash('sha256').update(m.readPhys(lm.RAM_BASE, 64 * MiB)).digest('hex');
  console.log(JSON.stringify({
    status: info.status, dstStatus: dinfo.status, src: src.runState, dst: dst.runState,
    same: hash(src) === hash(dst), pages: info.ram.normal + info.ram.duplicate,
  }));
  await src.destroy();
  await dst.destroy();
})().catch((e) => { console.error(e); process.exit(1); });
`;

test("require('livemig'): two machines, one migration, identical RAM", () => {
  const dir = tmpdir();
  try {
    fs.mkdirSync(path.join(dir, 'node_modules'));
    fs.symlinkSync(ROOT, path.join(dir, 'node_modules', 'livemig'), 'dir');
    fs.writeFileSync(path.join(dir, 'app.js'), SCRIPT);
    const r = spawnSync(process.execPath, ['app.js'], { cwd: dir, encoding: 'utf8', timeout: 60000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const got = JSON.parse(r.stdout.trim());
    expect(got).toMatchObject({ status: 'completed', dstStatus: 'completed', src: 'postmigrate', dst: 'paused', same: true });
    expect(got.pages).toBeGreaterThanOrEqual((64 * 2 ** 20) / 4096);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
