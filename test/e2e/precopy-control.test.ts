/**
 * Steering a running migration, as QEMU's qtests do: cancel from each state the source passes
 * through (and then migrate again), pause-before-switchover + migrate-continue, auto-converge
 * raising the throttle in QEMU's steps, and HMP `migrate`. A dirtying guest converging within
 * downtime-limit is precopy-downtime.test.ts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tmpdir } from './helpers';
import { sleep, stopAll, Vm } from './vm';

const AB = { guest: 'ab', mem: '64M', smp: 2, append: 'size=16M seed=3' };

describe('controlling a migration', () => {
  let dir: string;
  beforeEach(() => (dir = tmpdir()));
  afterEach(async () => {
    await stopAll();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function start(extraCaps: Record<string, boolean> = {}, params: Record<string, unknown> = {}, guest = AB): Promise<[Vm, Vm, string]> {
    const sock = path.join(dir, `mig-${Date.now()}.sock`);
    const src = await new Vm(dir, 'src', guest).connect();
    const dst = await new Vm(dir, `dst${Date.now()}`, { ...guest, extra: ['-incoming', `unix:${sock}`] }).connect();
    await src.waitOutput(guest.guest === 'ab' ? /AB/ : /tick 1/);
    await src.setCaps({ events: true, ...extraCaps });
    await src.qmp.execute('migrate-set-parameters', params);
    return [src, dst, sock];
  }

  test('cancel with nothing running is accepted and changes nothing', async () => {
    const src = await new Vm(dir, 'src', AB).connect();
    await src.qmp.execute('migrate_cancel');
    expect(await src.qmp.execute('query-migrate')).toEqual({});
  });

  test('cancel while active: cancelled, the source runs, a second migration succeeds', async () => {
    const [src, , sock] = await start({}, { 'max-bandwidth': 2 * 2 ** 20 });
    const statuses: string[] = [];
    src.qmp.on('event', (e) => e.event === 'MIGRATION' && statuses.push((e.data as any).status));
    await src.qmp.execute('migrate', { uri: `unix:${sock}` });
    await src.waitStatus('active');
    await src.qmp.execute('migrate_cancel');
    await src.waitStatus('cancelled');
    expect(statuses).toEqual(['setup', 'active', 'cancelling', 'cancelled']);
    expect((await src.qmp.execute('query-status')).status).toBe('running');
    await src.printsMore();

    const sock2 = path.join(dir, 'again.sock');
    const again = await new Vm(dir, 'again', { ...AB, extra: ['-incoming', `unix:${sock2}`] }).connect();
    await src.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 0 });
    await src.qmp.execute('migrate', { uri: `unix:${sock2}` });
    expect((await src.waitStatus(['completed', 'failed'])).status).toBe('completed');
    await again.printsMore();
  });

  test('pause-before-switchover stops in pre-switchover; cancel from there resumes the guest', async () => {
    const [src, , sock] = await start({ 'pause-before-switchover': true }, { 'max-bandwidth': 0 });
    await src.qmp.execute('migrate', { uri: `unix:${sock}` });
    await src.waitStatus('pre-switchover');
    await expect(src.qmp.execute('migrate-continue', { state: 'active' })).rejects.toThrow(/expected state/);
    await src.qmp.execute('migrate_cancel');
    await src.waitStatus('cancelled');
    expect((await src.qmp.execute('query-status')).status).toBe('running');
    await src.printsMore();
  });

  test('pause-before-switchover then migrate-continue completes', async () => {
    const [src, dst, sock] = await start({ 'pause-before-switchover': true }, { 'max-bandwidth': 0 });
    await src.qmp.execute('migrate', { uri: `unix:${sock}` });
    await src.waitStatus('pre-switchover');
    await src.qmp.execute('migrate-continue', { state: 'pre-switchover' });
    expect((await src.waitStatus(['completed', 'failed'])).status).toBe('completed');
    await dst.printsMore();
  });

  test('capabilities cannot change while migrating', async () => {
    const [src, , sock] = await start({}, { 'max-bandwidth': 2 * 2 ** 20 });
    await src.qmp.execute('migrate', { uri: `unix:${sock}` });
    await src.waitStatus('active');
    await expect(src.setCaps({ 'auto-converge': true })).rejects.toThrow(/in progress/);
    await expect(src.qmp.execute('migrate', { uri: `unix:${sock}` })).rejects.toThrow(/in progress/);
    await src.qmp.execute('migrate_cancel');
    await src.waitStatus('cancelled');
  });

  test('auto-converge throttles a guest that dirties faster than the link, in QEMU steps', async () => {
    const [src, dst, sock] = await start(
      { 'auto-converge': true },
      { 'max-bandwidth': 8 * 2 ** 20, 'downtime-limit': 1, 'cpu-throttle-initial': 30, 'cpu-throttle-increment': 20, 'max-cpu-throttle': 60 },
    );
    await src.qmp.execute('migrate', { uri: `unix:${sock}` });
    await src.waitStatus('active');
    const seen: number[] = [];
    for (;;) {
      const info = await src.qmp.execute('query-migrate');
      expect(info.status).toBe('active');
      const p = info['cpu-throttle-percentage'];
      if (p > 0 && seen[seen.length - 1] !== p) seen.push(p);
      if (p >= 60) break;
      await sleep(50);
    }
    // initial, + increment, capped at max-cpu-throttle (30 + 20 + 20 > 60).
    expect(seen).toEqual([30, 50, 60]);
    // Relax the limits as QEMU's test does; the throttle goes when the migration ends.
    await src.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 0, 'downtime-limit': 2000 });
    expect((await src.waitStatus(['completed', 'failed'])).status).toBe('completed');
    await dst.printsMore();
  });

  test('HMP through human-monitor-command: migrate, info migrate, capabilities and parameters', async () => {
    const [src, dst, sock] = await start();
    const hmp = (line: string) => src.qmp.execute('human-monitor-command', { 'command-line': line });
    await hmp('migrate_set_capability events on');
    await hmp('migrate_set_parameter max-bandwidth 0');
    await hmp('migrate_set_parameter downtime-limit 200');
    expect(await hmp('info migrate_capabilities')).toMatch(/events: on/);
    expect(await hmp('info migrate_parameters')).toMatch(/downtime-limit: 200 ms/);
    await hmp(`migrate -d unix:${sock}`);
    await src.waitStatus(['completed', 'failed']);
    const text = await hmp('info migrate');
    expect(text).toMatch(/Status:\s+completed/);
    await dst.printsMore();
  });
});
