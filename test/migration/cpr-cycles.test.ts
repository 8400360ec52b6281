/**
 * 100 cpr-transfer upgrades in a row, each machine handing its RAM to the next over a real
 * cpr channel (unix socket, SCM_RIGHTS) and a real main channel, in one process so its
 * descriptors and mappings can be counted: after the first few cycles nothing grows. The ab
 * guest runs throughout and its RAM keeps the A/B invariant at the end.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { VirtMachine } from '../../lib/machine/virt';
import { MigrationManager } from '../../lib/migration';
import { CprReceiver } from '../../lib/migration/cpr';
import type { MigrationAddress } from '../../lib/transport';
import { checkAb } from '../../guests/ram-check';
import { guest } from '../e2e/helpers';

const MEM = 32 * 2 ** 20;
const CYCLES = 100;
const WARM = 10;

const fds = () => fs.readdirSync('/proc/self/fd');
const memfdFds = () => fds().filter((f) => {
  try {
    return fs.readlinkSync(`/proc/self/fd/${f}`).startsWith('/memfd:');
  } catch {
    return false; // the directory's own descriptor, gone by now
  }
}).length;
const maps = () => fs.readFileSync('/proc/self/maps', 'utf8').split('\n').filter(Boolean);
const memfdMaps = () => maps().filter((l) => l.includes('/memfd:')).length;
/** Mappings other than the JS heap's: V8 grows and shrinks its heap in anonymous 256 KiB pages
 * as the garbage collector pleases, which says nothing about what an upgrade left behind. */
const HEAP_PAGE = 256 * 1024;
const nonHeapMaps = () =>
  maps().filter((l) => {
    const [range, , , , inode, path] = l.split(/\s+/);
    const [a, b] = range.split('-').map((x) => parseInt(x, 16));
    return !(inode === '0' && !path && b - a === HEAP_PAGE);
  }).length;
const threads = () => fs.readdirSync('/proc/self/task').length;

test(`${CYCLES} upgrades leak no descriptor and no mapping`, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'livemig-cpr-cycles-'));
  const cprAddr: MigrationAddress = { transport: 'socket', type: 'unix', path: path.join(dir, 'cpr.sock') };
  const main: MigrationAddress = { transport: 'socket', type: 'unix', path: path.join(dir, 'main.sock') };
  const shared = { memSize: MEM, smp: 1, ramShared: true, auxRamShared: true };
  // Only counted: a string of everything the guest printed would grow the heap every cycle,
  // and the heap's new pages would count as mappings left behind.
  let printedBytes = 0;
  const watch = (m: VirtMachine) => m.on('serial', (b: Uint8Array) => (printedBytes += b.length));
  let cur = await VirtMachine.create({ ...shared, kernel: fs.readFileSync(guest('ab')), append: 'size=4M seed=9' });
  watch(cur);
  cur.cont();
  let baseline: { fds: number; maps: number; threads: number } | null = null;
  try {
    for (let i = 0; i < CYCLES; i++) {
      if (i === WARM) baseline = { fds: fds().length, maps: nonHeapMaps(), threads: threads() };
      const receiver = CprReceiver.listen(cprAddr);
      const received = receiver.receive();
      const src = new MigrationManager(cur);
      src.options.setParameters({ mode: 'cpr-transfer' });
      await src.migrate(main, { cpr: cprAddr });
      const state = await received;
      const next = await VirtMachine.create({ ...shared, adoptRam: (n) => state.take(n), incoming: true });
      state.checkAllClaimed();
      watch(next);
      const dst = new MigrationManager(next);
      dst.expectIncoming({ cpr: state });
      await dst.incoming(main);
      expect(await src.done()).toBe('completed');
      expect(await dst.done()).toBe('completed');
      expect(next.running).toBe(true);
      await cur.destroy();
      cur = next;
      // Two RAM blocks, one mapping and one descriptor each: nothing of the old machine left.
      expect([memfdFds(), memfdMaps()]).toEqual([2, 2]);
    }
    // Something left behind per cycle (a worker's stack, a window) would add one or more
    // mappings per cycle, and a thread each; the JS heap's own pages are not counted.
    // A thread or descriptor of the last old machine may still be on its way out: give it a
    // moment (what leaks stays).
    for (let t = 0; t < 100 && (fds().length > baseline!.fds || threads() > baseline!.threads); t++) await new Promise((r) => setTimeout(r, 20));
    expect(fds().length).toBeLessThanOrEqual(baseline!.fds);
    expect(threads()).toBeLessThanOrEqual(baseline!.threads);
    expect(nonHeapMaps() - baseline!.maps).toBeLessThan((CYCLES - WARM) / 4);
    const printed = printedBytes;
    while (printedBytes < printed + 3) await new Promise((r) => setTimeout(r, 10));
    await cur.stop();
    const r = checkAb(cur.readPhys(0x8000_0000, MEM));
    expect(r.errors).toEqual([]);
  } finally {
    await cur.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}, 300000);
