/**
 * Multifd between real livemig processes, in the spirit of QEMU's multifd qtests
 * (test_multifd_tcp_*, test_multifd_tcp_cancel): 1, 2 and 4 channels over unix and tcp with
 * each zero-page-detection mode, the destination started with -S so its RAM can be compared
 * with the stopped source's byte for byte before the guest runs on, then the A/B invariant on
 * the running destination; a cancel in the middle of a pass; and one multifd connection cut
 * by a relay, which fails the migration while the source guest keeps running.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { checkAb } from '../../guests/ram-check';
import { MULTIFD_MAGIC } from '../../lib/migration/multifd/wire';
import { tmpdir } from './helpers';
import { sleep, stopAll, Vm } from './vm';

const MEM = 64 * 2 ** 20;
const AB = { guest: 'ab', mem: '64M', smp: 2, append: 'size=16M seed=11' };

async function ramOf(vm: Vm, dir: string): Promise<Buffer> {
  const file = path.join(dir, `${vm.name}-${Date.now()}.bin`);
  await vm.qmp.execute('pmemsave', { val: 0x8000_0000, size: MEM, filename: file });
  return fs.readFileSync(file);
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function setup(vms: Vm[], channels: number, extra: Record<string, unknown> = {}): Promise<void> {
  for (const v of vms) {
    await v.setCaps({ multifd: true, 'return-path': true, events: true });
    await v.qmp.execute('migrate-set-parameters', { 'multifd-channels': channels, ...extra });
  }
}

/** A relay for the migration's connections; it can cut the multifd channel with a given id
 * once that connection has carried `after` bytes. */
class Relay {
  private readonly server: net.Server;
  cutChannel = -1;
  after = 0;
  cut = false;

  constructor(readonly path: string, target: string) {
    this.server = net.createServer((a) => {
      const b = net.connect(target);
      a.on('error', () => undefined);
      b.on('error', () => undefined);
      let seen = 0;
      let mine = false;
      a.on('data', (d: Buffer) => {
        if (seen === 0 && d.length >= 25 && d.readUInt32BE(0) === MULTIFD_MAGIC && d[24] === this.cutChannel) mine = true;
        seen += d.length;
        if (mine && !this.cut && seen > this.after) {
          this.cut = true;
          a.destroy();
          b.destroy();
          return;
        }
        if (!b.write(d)) a.pause();
      });
      b.on('drain', () => a.resume());
      a.on('end', () => b.end());
      b.pipe(a);
    });
  }

  listen(): Promise<void> {
    return new Promise((r) => this.server.listen(this.path, r));
  }

  close(): void {
    this.server.close();
  }
}

describe('multifd between processes', () => {
  let dir: string;
  const relays: Relay[] = [];
  beforeEach(() => (dir = tmpdir()));
  afterEach(async () => {
    relays.splice(0).forEach((r) => r.close());
    await stopAll();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test.each([
    [1, 'unix', 'legacy'],
    [2, 'unix', 'multifd'],
    [4, 'unix', 'multifd'],
    [1, 'tcp', 'none'],
    [2, 'tcp', 'multifd'],
    [4, 'tcp', 'legacy'],
  ])('%i channel(s) over %s, zero-page-detection %s: RAM equal to the stopped source, A/B holds on the running destination', async (channels, transport, zero) => {
    const src = await new Vm(dir, 'src', AB).connect();
    const dst = await new Vm(dir, 'dst', { ...AB, extra: ['-S', '-incoming', 'defer'] }).connect();
    await setup([src, dst], channels as number, { 'zero-page-detection': zero });
    const sock = path.join(dir, 'mig.sock');
    await dst.qmp.execute('migrate-incoming', { uri: transport === 'unix' ? `unix:${sock}` : 'tcp:127.0.0.1:0' });
    const uri = transport === 'unix' ? `unix:${sock}` : `tcp:127.0.0.1:${(await dst.qmp.execute('query-migrate'))['socket-address'][0].port}`;
    await src.waitOutput(/AB{2}/);
    // The guest rewrites its whole range every few milliseconds: it converges once a pass of it
    // fits under the threshold, which this limit keeps within reach on a loaded machine.
    await src.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 0, 'downtime-limit': 1000 });
    await src.qmp.execute('migrate', { uri });
    const info = await src.waitStatus(['completed', 'failed']);
    expect(info).toMatchObject({ status: 'completed' });
    expect((await dst.waitStatus(['completed', 'failed'])).status).toBe('completed');

    // The pages went over the channels; transferred counts them with the main stream.
    const ram = info.ram;
    expect(ram['multifd-bytes']).toBeGreaterThan(16 * 2 ** 20);
    expect(ram.transferred).toBeGreaterThan(ram['multifd-bytes']);
    expect(ram['precopy-bytes'] + ram['downtime-bytes']).toBe(ram.transferred);
    if (zero === 'none') expect(ram.duplicate).toBe(0);
    else expect(ram.duplicate).toBeGreaterThan(0);

    expect((await src.qmp.execute('query-status')).status).toBe('postmigrate');
    expect((await dst.qmp.execute('query-status')).status).toBe('paused');
    const [a, b] = [await ramOf(src, dir), await ramOf(dst, dir)];
    expect(sha(b)).toBe(sha(a));
    expect(checkAb(b).errors).toEqual([]);

    await dst.qmp.execute('cont');
    await dst.printsMore();
    await dst.qmp.execute('stop');
    const r = checkAb(await ramOf(dst, dir));
    expect(r.errors).toEqual([]);
    expect(r.ok).toBe(true);
  });

  test('migrate_cancel in the middle of a pass: the source runs on, and migrates again afterwards', async () => {
    const sock = path.join(dir, 'mig.sock');
    const src = await new Vm(dir, 'src', AB).connect();
    const dst = await new Vm(dir, 'dst', { ...AB, extra: ['-incoming', 'defer'] }).connect();
    await setup([src, dst], 2);
    await dst.qmp.execute('migrate-incoming', { uri: `unix:${sock}` });
    await src.waitOutput(/AB/);
    // 8 MiB/s: the first pass (16 MiB of data) takes two seconds.
    await src.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 8 * 2 ** 20 });
    await src.qmp.execute('migrate', { uri: `unix:${sock}` });
    for (;;) {
      const i = await src.qmp.execute('query-migrate');
      if (i.status === 'active' && i.ram['multifd-bytes'] > 2 * 2 ** 20) break;
      expect(i.status).toMatch(/setup|active/);
      await sleep(20);
    }
    await src.qmp.execute('migrate_cancel');
    expect((await src.waitStatus(['cancelled', 'failed', 'completed'])).status).toBe('cancelled');
    expect((await src.qmp.execute('query-status')).status).toBe('running');
    await src.printsMore();
    expect(await dst.exited).toBe(1); // its stream broke off: exit-on-error, as QEMU

    const sock2 = path.join(dir, 'again.sock');
    const again = await new Vm(dir, 'again', { ...AB, extra: ['-incoming', 'defer'] }).connect();
    await setup([again], 2);
    await again.qmp.execute('migrate-incoming', { uri: `unix:${sock2}` });
    await src.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 0, 'downtime-limit': 1000 });
    await src.qmp.execute('migrate', { uri: `unix:${sock2}` });
    expect((await src.waitStatus(['completed', 'failed'])).status).toBe('completed');
    await again.printsMore();
  });

  test('one multifd connection dying fails the migration; the source keeps running, the destination exits', async () => {
    const sock = path.join(dir, 'mig.sock');
    const relay = new Relay(path.join(dir, 'relay.sock'), sock);
    relays.push(relay);
    await relay.listen();
    relay.cutChannel = 1;
    relay.after = 1 * 2 ** 20;
    const src = await new Vm(dir, 'src', AB).connect();
    const dst = await new Vm(dir, 'dst', { ...AB, extra: ['-incoming', 'defer'] }).connect();
    await setup([src, dst], 2);
    await dst.qmp.execute('migrate-incoming', { uri: `unix:${sock}` });
    await src.waitOutput(/AB/);
    await src.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 32 * 2 ** 20 });
    await src.qmp.execute('migrate', { uri: `unix:${relay.path}` });
    const info = await src.waitStatus(['failed', 'completed', 'cancelled'], 40000).catch((e: Error) => {
      throw new Error(`${e.message}\nrelay cut: ${relay.cut}\nsource: ${src.stderr}\ndestination: ${dst.stderr}`);
    });
    expect(relay.cut).toBe(true);
    expect(info.status).toBe('failed');
    // Whichever the source notices first: its own channel breaking, or the destination (which
    // failed on the cut channel) closing the return path.
    expect(info['error-desc']).toMatch(/multifd.*channel 1|return path closed/);
    expect((await src.qmp.execute('query-status')).status).toBe('running');
    await src.printsMore();
    // The destination fails too: on the cut channel, or on the main stream the source closed
    // on failing, whichever it notices first.
    expect(await dst.exited).toBe(1);
    expect(dst.stderr).toMatch(/load of migration failed/);
  });
});
