/**
 * postcopy-ram on both sides, migrate-start-postcopy never asked: the source advises postcopy
 * (ADVISE, the destination discards its RAM and records what arrives) and then completes by
 * precopy. The destination must finish as after any precopy: read the vmdesc and run the guest
 * (it stayed in inmigrate), its RAM equal to the source's.
 */
import * as fs from 'node:fs';
import { VirtMachine } from '../../lib/machine/virt';
import { IncomingMigration } from '../../lib/migration/incoming';
import { OutgoingMigration } from '../../lib/migration/outgoing';
import { MigrationOptions } from '../../lib/migration/options';
import { MigrationRunState } from '../../lib/migration/run-state';
import { MigrationState } from '../../lib/migration/state';
import { guest } from '../e2e/helpers';
import { fdChannelPair } from '../transport/helpers';

const MiB = 2 ** 20;

function options(): MigrationOptions {
  const o = new MigrationOptions();
  o.setParameters({ 'max-bandwidth': 0 });
  o.setCapabilities([{ capability: 'postcopy-ram', state: true }]);
  return o;
}

test.each([
  ['runs the guest', false, 'running'],
  ['stays paused with -S', true, 'paused'],
])('precopy completion after ADVISE %s', async (_n, startPaused, runState) => {
  const sm = await VirtMachine.create({ memSize: 16 * MiB, smp: 1, kernel: fs.readFileSync(guest('ab')), append: 'size=2M' });
  const dm = await VirtMachine.create({ memSize: 16 * MiB, smp: 1 });
  try {
    let printed = 0;
    dm.on('serial', (b: Uint8Array) => (printed += b.length));
    sm.cont();
    await new Promise((r) => setTimeout(r, 300));
    const [a, b] = fdChannelPair();
    const srcState = new MigrationState();
    const dstState = new MigrationState();
    const out = new OutgoingMigration({ machine: sm, options: options(), vm: new MigrationRunState(sm), state: srcState, connect: async () => a });
    const inc = new IncomingMigration({ machine: dm, options: options(), vm: new MigrationRunState(dm), state: dstState, startPaused });
    const [, r] = await Promise.all([out.run({ transport: 'socket', type: 'unix', path: 'pair' }), inc.run(b)]);
    expect(r.error).toBeUndefined();
    expect([srcState.status, dstState.status]).toEqual(['completed', 'completed']);
    expect(inc.postcopyState).toBe('end');
    expect(dm.runState).toBe(runState);
    if (startPaused) {
      expect(Buffer.from(dm.readPhys(0x8000_0000, 16 * MiB)).equals(Buffer.from(sm.readPhys(0x8000_0000, 16 * MiB)))).toBe(true);
    } else {
      for (let i = 0; i < 100 && printed === 0; i++) await new Promise((res) => setTimeout(res, 50));
      expect(printed).toBeGreaterThan(0);
    }
  } finally {
    await sm.destroy();
    await dm.destroy();
  }
});
