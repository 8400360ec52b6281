/**
 * Precopy between two machines in one process over an in-memory channel: the engine end to end
 * without transports. RAM checked with the A/B invariant; the guest goes on printing on the
 * destination; a failing destination leaves the source running.
 */
import * as fs from 'node:fs';
import { VirtMachine } from '../../lib/machine/virt';
import { IncomingMigration } from '../../lib/migration/incoming';
import { OutgoingMigration } from '../../lib/migration/outgoing';
import { MigrationOptions } from '../../lib/migration/options';
import { MigrationRunState } from '../../lib/migration/run-state';
import { MigrationState } from '../../lib/migration/state';
import { memoryChannelPair } from '../../lib/stream';
import { checkAb } from '../../guests/ram-check';
import { guest } from '../e2e/helpers';

const MiB = 2 ** 20;

async function boot(opts: { kernel?: boolean; kernelDirtyLog?: boolean } = {}): Promise<{ m: VirtMachine; out: () => string }> {
  const m = await VirtMachine.create({
    kernelDirtyLog: opts.kernelDirtyLog,
    memSize: 64 * MiB,
    smp: 2,
    kernel: fs.readFileSync(guest('ab')),
    append: 'size=8M seed=5',
  });
  let out = '';
  m.on('serial', (b: Uint8Array) => (out += Buffer.from(b).toString('latin1')));
  if (opts.kernel !== false) m.cont();
  return { m, out: () => out };
}

async function until(cond: () => boolean, ms = 20000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('precopy between machines over an in-memory channel', () => {
  const live: VirtMachine[] = [];
  afterEach(async () => {
    await Promise.all(live.splice(0).map((m) => m.destroy()));
  });

  test.each([
    ['the harts\' dirty map', false],
    ['kernel write-protect + PAGEMAP_SCAN', true],
  ])('ab guest, dirty pages from %s: RAM keeps the A/B invariant and the guest keeps printing', async (_name, kernelDirtyLog) => {
    const src = await boot({ kernelDirtyLog });
    const dst = await boot({ kernel: false });
    live.push(src.m, dst.m);
    await until(() => /AB{3}/.test(src.out()));

    const [a, b] = memoryChannelPair();
    const options = new MigrationOptions();
    options.setParameters({ 'max-bandwidth': 0 });
    options.setCapabilities([{ capability: 'return-path', state: true }]);
    const srcState = new MigrationState();
    const dstState = new MigrationState();
    const out = new OutgoingMigration({ machine: src.m, options, vm: new MigrationRunState(src.m), state: srcState, connect: async () => a });
    const inc = new IncomingMigration({ machine: dst.m, options, vm: new MigrationRunState(dst.m), state: dstState, startPaused: false });
    const [, result] = await Promise.all([out.run({ transport: 'socket', type: 'unix', path: 'mem' }), inc.run(b)]);

    expect(result.error).toBeUndefined();
    expect(srcState.status).toBe('completed');
    expect(dstState.status).toBe('completed');
    expect(src.m.runState).toBe('postmigrate');
    expect(dst.m.running).toBe(true);
    const s = out.refreshStats();
    expect(s.normal + s.duplicate).toBeGreaterThanOrEqual((64 * MiB + 0xf000) / 4096);
    expect(s.downtime).toBeGreaterThan(0);

    // The destination guest carries on: more Bs, then RAM checked with both guests stopped.
    const before = dst.out().length;
    await until(() => dst.out().length > before + 3);
    await dst.m.stop();
    const ram = dst.m.readPhys(0x8000_0000, 64 * MiB);
    const ab = checkAb(ram);
    expect(ab.errors).toEqual([]);
  });

  test('a destination that refuses (RAM size differs) fails the source, which keeps running', async () => {
    const src = await boot();
    live.push(src.m);
    const dst = await VirtMachine.create({ memSize: 32 * MiB, smp: 2 });
    live.push(dst);
    await until(() => /AB/.test(src.out()));
    const [a, b] = memoryChannelPair();
    const options = new MigrationOptions();
    options.setCapabilities([{ capability: 'return-path', state: true }]);
    const srcState = new MigrationState();
    const out = new OutgoingMigration({ machine: src.m, options, vm: new MigrationRunState(src.m), state: srcState, connect: async () => a });
    const inc = new IncomingMigration({ machine: dst, options, vm: new MigrationRunState(dst), state: new MigrationState(), startPaused: false });
    const [, r] = await Promise.all([out.run({ transport: 'socket', type: 'unix', path: 'mem' }), inc.run(b)]);
    expect(r.ok).toBe(false);
    expect(r.error?.code).toBe('EMIG_RAM');
    expect(srcState.status).toBe('failed');
    expect(src.m.running).toBe(true);
    const n = src.out().length;
    await until(() => src.out().length > n);
  });
});
