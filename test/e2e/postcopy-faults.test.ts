/**
 * Postcopy corner cases between real livemig processes:
 *
 * - the destination killed (SIGKILL) while postcopy is active: the source pauses and stays
 *   paused — its guest must not run again, the destination may have run it — and refuses
 *   migrate_cancel;
 * - the source killed: the destination pauses, its vCPUs waiting for pages stay blocked, its
 *   QMP keeps answering, and `quit` still ends it (no vCPU left blocked in the kernel);
 * - `quit` on the source mid-postcopy: it exits cleanly, the destination pauses;
 * - minor placement (x-postcopy-placement=minor: write through an alias, UFFDIO_CONTINUE),
 *   with and without the preempt channel: the destination's RAM passes the ab invariant;
 * - pmemsave on a destination whose pages are still missing: it fetches them and answers
 *   instead of blocking the main thread on a missing page.
 *
 * Every wait has a bound that fails the test; processes left behind are killed in afterEach.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkAb } from '../../guests/ram-check';
import { tmpdir } from './helpers';
import { sleep, stopAll, Vm } from './vm';

const MiB = 2 ** 20;
const MEM = 64 * MiB;
const AB = { guest: 'ab', mem: '64M', smp: 2, append: 'size=16M seed=7' };

/** `p`, or a failure naming `what` after `ms`. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms)));
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

async function abRamOk(vm: Vm, dir: string): Promise<void> {
  const file = path.join(dir, `${vm.name}-ram.bin`);
  await within(vm.qmp.execute('pmemsave', { val: 0x8000_0000, size: MEM, filename: file }), 20000, `${vm.name} pmemsave`);
  const r = checkAb(fs.readFileSync(file));
  expect(r.errors).toEqual([]);
  expect(r.ok).toBe(true);
}

async function pair(dir: string, caps: Record<string, boolean>, dstParams: Record<string, unknown> = {}): Promise<[Vm, Vm, string]> {
  const sock = path.join(dir, 'mig.sock');
  const src = await new Vm(dir, 'src', AB).connect();
  const dst = await new Vm(dir, 'dst', { ...AB, extra: ['-incoming', 'defer'] }).connect();
  for (const v of [src, dst]) await v.setCaps({ events: true, 'postcopy-ram': true, ...caps });
  if (Object.keys(dstParams).length) await dst.qmp.execute('migrate-set-parameters', dstParams);
  await dst.qmp.execute('migrate-incoming', { uri: `unix:${sock}` });
  await src.waitOutput(/AB{3}/);
  return [src, dst, sock];
}

/** Start postcopy at once, slowly enough that pages stay missing for seconds. */
async function startPostcopy(src: Vm, dst: Vm, sock: string, postcopyBandwidth: number): Promise<void> {
  await src.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 0, 'max-postcopy-bandwidth': postcopyBandwidth });
  await src.qmp.execute('migrate', { uri: `unix:${sock}` });
  await src.qmp.execute('migrate-start-postcopy');
  await src.waitStatus('postcopy-active', 20000);
  await dst.waitStatus('postcopy-active', 20000);
}

describe('postcopy faults between processes', () => {
  let dir: string;
  beforeEach(() => (dir = tmpdir()));
  afterEach(async () => {
    await stopAll();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('the destination killed mid-postcopy: the source pauses, stays paused with its guest stopped, and refuses cancel', async () => {
    const [src, dst, sock] = await pair(dir, {});
    await startPostcopy(src, dst, sock, 2 * MiB);
    dst.kill();
    await dst.exited;
    const info = await src.waitStatus(['postcopy-paused', 'failed', 'completed'], 15000);
    expect(info.status).toBe('postcopy-paused');
    const printed = src.output.length;
    await sleep(1500);
    expect(await src.status()).toBe('postcopy-paused');
    expect((await src.qmp.execute('query-status')).running).toBe(false);
    expect(src.output.length).toBe(printed);
    await expect(src.qmp.execute('migrate_cancel')).rejects.toThrow('Postcopy migration in progress, cannot cancel.');
    expect(await src.status()).toBe('postcopy-paused');
  }, 60000);

  test('the source killed mid-postcopy: the destination pauses, its vCPUs stay blocked, QMP answers, quit ends it', async () => {
    const [src, dst, sock] = await pair(dir, {});
    await startPostcopy(src, dst, sock, 2 * MiB);
    src.kill();
    await src.exited;
    const info = await dst.waitStatus(['postcopy-paused', 'failed', 'completed'], 15000);
    expect(info.status).toBe('postcopy-paused');
    expect(info['error-desc']).toBeTruthy();
    // The guest touches every page of its 16 MiB on each pass: it soon waits for a missing one.
    await sleep(1000);
    const printed = dst.output.length;
    for (let i = 0; i < 5; i++) {
      expect((await within(dst.qmp.execute('query-migrate'), 5000, 'query-migrate')).status).toBe('postcopy-paused');
      await sleep(200);
    }
    expect(dst.output.length).toBe(printed);
    expect((await within(dst.qmp.execute('query-status'), 5000, 'query-status')).status).toBe('running');
    // Quitting must not wait for vCPUs blocked on pages that will never come.
    await dst.qmp.execute('quit').catch(() => undefined);
    const code = await within(dst.exited, 15000, 'the destination exiting after quit');
    expect(code).toBe(0);
  }, 60000);

  test('quit on the source mid-postcopy with preempt: it exits cleanly (nothing reads its RAM after unmap) and the destination pauses', async () => {
    const [src, dst, sock] = await pair(dir, { 'postcopy-preempt': true });
    await startPostcopy(src, dst, sock, 4 * MiB);
    await sleep(300);
    await src.qmp.execute('quit').catch(() => undefined);
    expect(await within(src.exited, 15000, 'the source exiting after quit')).toBe(0);
    expect(src.proc.signalCode).toBeNull();
    expect((await dst.waitStatus(['postcopy-paused', 'failed', 'completed'], 15000)).status).toBe('postcopy-paused');
  }, 60000);

  test.each([
    ['without preempt', {}],
    ['with preempt', { 'postcopy-preempt': true }],
  ])('minor placement %s: the destination RAM passes the A/B invariant', async (_n, caps) => {
    const [src, dst, sock] = await pair(dir, caps, { 'x-postcopy-placement': 'minor' });
    expect((await dst.qmp.execute('query-migrate-parameters'))['x-postcopy-placement']).toBe('minor');
    await src.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 0, 'max-postcopy-bandwidth': 32 * MiB });
    await src.qmp.execute('migrate', { uri: `unix:${sock}` });
    await src.qmp.execute('migrate-start-postcopy');
    expect((await src.waitStatus(['completed', 'failed'], 60000)).status).toBe('completed');
    expect((await dst.waitStatus(['completed', 'failed'], 30000)).status).toBe('completed');
    await dst.printsMore();
    await within(dst.qmp.execute('stop'), 10000, 'stop');
    await abRamOk(dst, dir);
  }, 90000);

  test('pmemsave while pages are still missing fetches them instead of blocking the main thread', async () => {
    const [src, dst, sock] = await pair(dir, {});
    await startPostcopy(src, dst, sock, 4 * MiB);
    await within(dst.qmp.execute('stop'), 20000, 'stop');
    const before = await src.qmp.execute('query-migrate');
    expect(before.status).toBe('postcopy-active');
    expect(before.ram.remaining).toBeGreaterThan(4 * MiB);
    // The dump needs every page, most of them not received yet.
    await abRamOk(dst, dir);
    expect((await within(dst.qmp.execute('query-migrate'), 5000, 'query-migrate')).status).not.toBe('failed');
    await dst.qmp.execute('cont');
    expect((await src.waitStatus(['completed', 'failed'], 60000)).status).toBe('completed');
    expect((await dst.waitStatus(['completed', 'failed'], 30000)).status).toBe('completed');
    await dst.printsMore();
  }, 90000);
});
