/**
 * Live precopy between real livemig processes, in the spirit of QEMU's migration qtests:
 * unix, tcp (ephemeral port) and fd transports, -incoming defer, a refusing or dying
 * destination, and the checks QEMU's tests make: the guest keeps printing on the destination,
 * and its RAM (dumped with pmemsave, guest stopped) satisfies the A/B invariant.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FdSocket } from '../../lib/host';
import { tmpdir } from './helpers';
import { abRamOk, stopAll, Vm } from './vm';

const MEM = 64 * 2 ** 20;
const AB = { guest: 'ab', mem: '64M', smp: 2, append: 'size=16M seed=3' };

async function pair(dir: string, incoming: string, srcExtra: Partial<typeof AB> = {}): Promise<[Vm, Vm]> {
  const src = await new Vm(dir, 'src', { ...AB, ...srcExtra }).connect();
  const dst = await new Vm(dir, 'dst', { ...AB, extra: ['-incoming', incoming] }).connect();
  await src.waitOutput(/AB/);
  return [src, dst];
}

describe('precopy between processes', () => {
  let dir: string;
  beforeEach(() => (dir = tmpdir()));
  afterEach(async () => {
    await stopAll();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('unix: the guest carries on at the destination with its memory intact; stats add up', async () => {
    const sock = path.join(dir, 'mig.sock');
    const [src, dst] = await pair(dir, `unix:${sock}`);
    const events: string[] = [];
    src.qmp.on('event', (e) => events.push(e.event === 'MIGRATION' ? `MIGRATION:${(e.data as any).status}` : e.event));
    for (const v of [src, dst]) await v.setCaps({ events: true, 'return-path': true });
    await src.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 0 });
    await src.qmp.execute('migrate', { uri: `unix:${sock}` });
    const info = await src.waitStatus(['completed', 'failed']);
    expect(info.status).toBe('completed');
    expect((await dst.waitStatus('completed')).status).toBe('completed');

    const ram = info.ram;
    const totalPages = (MEM + 0xf000) / 4096;
    expect(ram.total).toBe(MEM + 0xf000);
    expect(ram.remaining).toBe(0);
    expect(ram['page-size']).toBe(4096);
    expect(ram['normal-bytes']).toBe(ram.normal * 4096);
    expect(ram.normal + ram.duplicate).toBeGreaterThanOrEqual(totalPages);
    expect(ram.transferred).toBeGreaterThan(ram['normal-bytes']);
    expect(ram['precopy-bytes'] + ram['downtime-bytes']).toBe(ram.transferred);
    expect(ram['dirty-sync-count']).toBeGreaterThanOrEqual(2);
    expect(info.downtime).toBeGreaterThanOrEqual(0);
    expect(info['total-time']).toBeGreaterThanOrEqual(info['setup-time']);
    expect(events).toEqual(expect.arrayContaining(['MIGRATION:setup', 'MIGRATION:active', 'MIGRATION:device', 'MIGRATION:completed', 'STOP', 'MIGRATION_PASS']));

    expect((await src.qmp.execute('query-status')).status).toBe('postmigrate');
    expect((await dst.qmp.execute('query-status')).status).toBe('running');
    await dst.printsMore();
    await abRamOk(dst, dir, MEM);
  });

  test('tcp with an ephemeral port, reported in socket-address', async () => {
    const [src, dst] = await pair(dir, 'tcp:127.0.0.1:0');
    const dinfo = await dst.qmp.execute('query-migrate');
    const addr = dinfo['socket-address'][0];
    expect(addr).toMatchObject({ type: 'inet', host: '127.0.0.1' });
    expect(Number(addr.port)).toBeGreaterThan(0);
    await src.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 0 });
    await src.qmp.execute('migrate', { uri: `tcp:127.0.0.1:${addr.port}` });
    expect((await src.waitStatus(['completed', 'failed'])).status).toBe('completed');
    await dst.printsMore();
    await abRamOk(dst, dir, MEM);
  });

  test('fd: a connected socket pair inherited by both processes', async () => {
    const [a, b] = FdSocket.pair('stream');
    const src = await new Vm(dir, 'src', { ...AB, fds: [a.fd] }).connect();
    const dst = await new Vm(dir, 'dst', { ...AB, fds: [b.fd], extra: ['-incoming', 'fd:3'] }).connect();
    a.close();
    b.close();
    await src.waitOutput(/AB/);
    await src.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 0 });
    await src.qmp.execute('migrate', { uri: 'fd:3' });
    expect((await src.waitStatus(['completed', 'failed'])).status).toBe('completed');
    await dst.printsMore();
  });

  test('-incoming defer waits for migrate-incoming', async () => {
    const sock = path.join(dir, 'mig.sock');
    const [src, dst] = await pair(dir, 'defer');
    expect((await dst.qmp.execute('query-status')).status).toBe('inmigrate');
    expect(fs.existsSync(sock)).toBe(false);
    await dst.qmp.execute('migrate-incoming', { uri: `unix:${sock}` });
    await src.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 0 });
    await src.qmp.execute('migrate', { uri: `unix:${sock}` });
    expect((await src.waitStatus(['completed', 'failed'])).status).toBe('completed');
    await dst.printsMore();
  });

  test('a destination with other RAM refuses; the source keeps running and a second attempt succeeds', async () => {
    const sock = path.join(dir, 'bad.sock');
    const src = await new Vm(dir, 'src', AB).connect();
    const bad = await new Vm(dir, 'bad', { ...AB, mem: '32M', extra: ['-incoming', `unix:${sock}`] }).connect();
    await src.waitOutput(/AB/);
    for (const v of [src, bad]) await v.setCaps({ 'return-path': true });
    await src.qmp.execute('migrate', { uri: `unix:${sock}` });
    const info = await src.waitStatus(['completed', 'failed']);
    expect(info.status).toBe('failed');
    expect(info['error-desc']).toMatch(/SHUT|fail/i);
    expect(await bad.exited).toBe(1); // exit-on-error, as QEMU
    expect(bad.stderr).toMatch(/riscv_virt_board\.ram/);
    expect((await src.qmp.execute('query-status')).status).toBe('running');
    await src.printsMore();

    const sock2 = path.join(dir, 'good.sock');
    const good = await new Vm(dir, 'good', { ...AB, extra: ['-incoming', `unix:${sock2}`] }).connect();
    await src.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 0 });
    await src.qmp.execute('migrate', { uri: `unix:${sock2}` });
    expect((await src.waitStatus(['completed', 'failed'])).status).toBe('completed');
    await good.printsMore();
  });

  test('the destination dying mid-stream fails the source, which keeps running', async () => {
    const sock = path.join(dir, 'mig.sock');
    const [src, dst] = await pair(dir, `unix:${sock}`);
    await src.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 4 * 2 ** 20 });
    await src.qmp.execute('migrate', { uri: `unix:${sock}` });
    await src.waitStatus('active');
    dst.kill();
    const info = await src.waitStatus(['failed', 'completed']);
    expect(info.status).toBe('failed');
    expect((await src.qmp.execute('query-status')).status).toBe('running');
    await src.printsMore();
  });
});
