/**
 * Postcopy moves every byte: with the destination kept stopped after the switchover (-S), its
 * RAM once postcopy completes must equal the source's, which stopped at the switchover — for a
 * switch at once (everything discarded, all of RAM in the background) and after precopy passes
 * (only what the guest dirtied since is discarded and sent again), with and without the preempt
 * channel, and with either placement. In-process, over a real unix socket.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { VirtMachine } from '../../lib/machine/virt';
import { MigrationManager, type MigrationCapabilityName } from '../../lib/migration';
import { guest } from '../e2e/helpers';

const MiB = 2 ** 20;

const hash = (m: VirtMachine) =>
  m.ramBlocks.map((b) => createHash('sha256').update(b.read(0, b.size)).digest('hex')).join(',');

async function run(opts: { passes: number; preempt: boolean; placement: 'copy' | 'minor'; never?: boolean }): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'livemig-pcid-'));
  const sm = await VirtMachine.create({ memSize: 32 * MiB, smp: 2, kernel: fs.readFileSync(guest('ab')), append: 'size=8M seed=11' });
  const dm = await VirtMachine.create({ memSize: 32 * MiB, smp: 2 });
  try {
    let out = '';
    sm.on('serial', (b: Uint8Array) => (out += Buffer.from(b).toString('latin1')));
    sm.cont();
    for (let t = Date.now(); !/AB{2}/.test(out) && Date.now() - t < 20000; ) await new Promise((r) => setTimeout(r, 20));
    const src = new MigrationManager(sm);
    const dst = new MigrationManager(dm, { startPaused: true });
    const caps = [
      { capability: 'postcopy-ram' as MigrationCapabilityName, state: true },
      { capability: 'postcopy-preempt' as MigrationCapabilityName, state: opts.preempt },
    ];
    for (const m of [src, dst]) m.options.setCapabilities(caps);
    dst.options.setParameters({ 'x-postcopy-placement': opts.placement });
    // A downtime limit no switchover can meet keeps precopy going until postcopy is asked for
    // (precopy would otherwise finish first whenever it could, as QEMU's does).
    src.options.setParameters({ 'max-bandwidth': 64 * MiB, 'max-postcopy-bandwidth': 0, 'downtime-limit': opts.never ? 300 : 1 });
    dst.expectIncoming();
    const sock = path.join(dir, 'mig.sock');
    await dst.incoming(`unix:${sock}`, { exitOnError: false });
    await src.migrate(`unix:${sock}`);
    while (opts.passes > 0 && (src.query().ram?.['dirty-sync-count'] ?? 0) < opts.passes + 1) {
      expect(['setup', 'active']).toContain(src.status);
      await new Promise((r) => setTimeout(r, 10));
    }
    if (!opts.never) src.startPostcopy();
    expect(await src.done()).toBe('completed');
    expect(await dst.done()).toBe('completed');
    expect(sm.runState).toBe('postmigrate');
    expect(dm.runState).toBe('paused');
    expect(hash(dm)).toBe(hash(sm));
  } finally {
    await sm.destroy();
    await dm.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test.each([
  ['at once, copy', { passes: 0, preempt: false, placement: 'copy' as const }],
  ['after a pass, copy, preempt', { passes: 1, preempt: true, placement: 'copy' as const }],
  ['at once, minor', { passes: 0, preempt: false, placement: 'minor' as const }],
  ['after two passes, minor, preempt', { passes: 2, preempt: true, placement: 'minor' as const }],
])('postcopy %s: the stopped destination ends with exactly the source RAM', async (_n, opts) => {
  await run(opts);
}, 60000);

test('postcopy advised but never started: the migration ends as precopy, RAM identical', async () => {
  await run({ passes: 0, preempt: true, placement: 'copy', never: true });
}, 60000);
