/**
 * Postcopy between real livemig processes, on real userfaultfd faults, in the spirit of QEMU's
 * postcopy qtests: plain, after a precopy pass, with the preempt channel, recovery after the
 * channel is killed (also twice, and with preempt), cancel refused once the guest runs on the
 * destination, and a destination lost before the switchover (the source resumes). Each
 * destination's RAM is checked with the ab guest's A/B invariant, and the guest must keep
 * printing there.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { tmpdir } from './helpers';
import { abRamOk, sleep, stopAll, Vm } from './vm';

const MEM = 64 * 2 ** 20;
const AB = { guest: 'ab', mem: '64M', smp: 2, append: 'size=16M seed=7' };

/** A relay between source and destination that the test can cut: at once, or once a number of
 * bytes more have gone from the source to the destination (so where the stream is cut does not
 * depend on how fast this busy test process gets to run). */
class Relay {
  private readonly server: net.Server;
  private readonly socks = new Set<net.Socket>();
  private forwarded = 0;
  private cutAt = Infinity;

  constructor(
    readonly path: string,
    target: string,
  ) {
    this.server = net.createServer((a) => {
      const b = net.connect(target);
      for (const s of [a, b]) {
        this.socks.add(s);
        s.on('error', () => undefined);
        s.on('close', () => this.socks.delete(s));
      }
      a.pipe(b);
      b.pipe(a);
      a.on('data', (d: Buffer) => {
        this.forwarded += d.length;
        if (this.forwarded >= this.cutAt) this.cut();
      });
    });
  }

  /** Cut every connection once `bytes` more have come from the source. */
  cutAfter(bytes: number): void {
    this.cutAt = this.forwarded + bytes;
  }

  listen(): Promise<void> {
    return new Promise((r) => this.server.listen(this.path, r));
  }

  /** Every connection dies at once, as a broken network would kill them. */
  cut(): void {
    for (const s of this.socks) s.destroy();
  }

  close(): void {
    this.cut();
    this.server.close();
  }
}

/** The MIGRATION events a process sends from now on (both sides run with `events`). */
function statuses(vm: Vm): string[] {
  const list: string[] = [];
  vm.qmp.on('event', (e) => e.event === 'MIGRATION' && list.push((e.data as { status: string }).status));
  return list;
}

/** Waits until `want` appears, in order, among the statuses seen after index `from`. */
async function seen(list: string[], from: number, want: string[], ms = 30000): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    let i = 0;
    for (const s of list.slice(from)) if (s === want[i]) i++;
    if (i === want.length) return;
    if (Date.now() - t0 > ms) throw new Error(`statuses ${list.slice(from).join(' → ')}: ${want.join(' → ')} not seen`);
    await sleep(20);
  }
}

async function pair(dir: string, caps: Record<string, boolean>, incoming: string): Promise<[Vm, Vm]> {
  const src = await new Vm(dir, 'src', AB).connect();
  const dst = await new Vm(dir, 'dst', { ...AB, extra: ['-incoming', 'defer'] }).connect();
  for (const v of [src, dst]) await v.setCaps({ events: true, 'postcopy-ram': true, ...caps });
  await dst.qmp.execute('migrate-incoming', { uri: incoming });
  await src.waitOutput(/AB{3}/);
  return [src, dst];
}

/** A relay that holds back what the source sends on its second connection (the preempt
 * channel) until a second after the source has ended the first (the main channel, after its
 * EOF): every page the source sends on request is still on its way when the destination
 * reads the EOF. */
class HeldPreemptRelay {
  private readonly server: net.Server;
  private readonly socks = new Set<net.Socket>();
  private readonly held: Buffer[] = [];
  private preempt: net.Socket | null = null;
  private preemptEnded = false;
  private released = false;

  constructor(
    readonly path: string,
    target: string,
  ) {
    // Half-open both ways, as the sockets it stands for: the source half-closes the main
    // channel after EOF and still reads the destination's SHUT.
    this.server = net.createServer({ allowHalfOpen: true }, (a) => {
      const main = this.socks.size === 0;
      const b = net.connect({ path: target, allowHalfOpen: true });
      for (const s of [a, b]) {
        this.socks.add(s);
        s.on('error', () => undefined);
      }
      b.pipe(a);
      if (main) {
        a.pipe(b);
        // Long enough for the destination to read what was queued before the end (the EOF).
        a.on('end', () => setTimeout(() => this.release(), 1000));
        return;
      }
      this.preempt = b;
      a.on('data', (d: Buffer) => (this.released ? b.write(d) : this.held.push(d)));
      a.on('end', () => {
        this.preemptEnded = true;
        if (this.released) b.end();
      });
    });
  }

  private release(): void {
    this.released = true;
    if (!this.preempt) return;
    for (const d of this.held.splice(0)) this.preempt.write(d);
    if (this.preemptEnded) this.preempt.end();
  }

  listen(): Promise<void> {
    return new Promise((r) => this.server.listen(this.path, r));
  }

  close(): void {
    for (const s of this.socks) s.destroy();
    this.server.close();
  }
}


describe('postcopy between processes', () => {
  let dir: string;
  let relays: { close(): void }[] = [];
  beforeEach(() => (dir = tmpdir()));
  afterEach(async () => {
    for (const r of relays) r.close();
    relays = [];
    await stopAll();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('postcopy at once: the guest runs on the destination on faulted pages; RAM intact; blocktime reported', async () => {
    const sock = path.join(dir, 'mig.sock');
    const [src, dst] = await pair(dir, { 'postcopy-blocktime': true }, `unix:${sock}`);
    const events: string[] = [];
    src.qmp.on('event', (e) => e.event === 'MIGRATION' && events.push((e.data as any).status));
    await src.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 0, 'max-postcopy-bandwidth': 32 * 2 ** 20 });
    await src.qmp.execute('migrate', { uri: `unix:${sock}` });
    await src.qmp.execute('migrate-start-postcopy');
    const info = await src.waitStatus(['completed', 'failed'], 90000);
    expect(info.status).toBe('completed');
    expect(events).toEqual(expect.arrayContaining(['device', 'postcopy-device', 'postcopy-active', 'completed']));
    expect(events.indexOf('postcopy-active')).toBeGreaterThan(events.indexOf('device'));
    expect(info.ram['postcopy-requests']).toBeGreaterThan(0);
    expect(info.ram['postcopy-bytes']).toBeGreaterThan(0);
    const dinfo = await dst.waitStatus('completed');
    expect(dinfo['postcopy-vcpu-blocktime']).toHaveLength(2);
    const perVcpu = dinfo['postcopy-vcpu-blocktime'].reduce((a: number, b: number) => a + b, 0);
    expect(perVcpu).toBeGreaterThanOrEqual(dinfo['postcopy-blocktime']);
    expect(dinfo['postcopy-latency-dist']).toHaveLength(24);
    expect(dinfo['postcopy-latency-dist'].reduce((a: number, b: number) => a + b, 0)).toBeGreaterThan(0);
    expect((await src.qmp.execute('query-status')).status).toBe('postmigrate');
    expect((await dst.qmp.execute('query-status')).status).toBe('running');
    await dst.printsMore();
    await abRamOk(dst, dir, MEM);
  });

  test('postcopy after a precopy pass, with the preempt channel', async () => {
    const sock = path.join(dir, 'mig.sock');
    const [src, dst] = await pair(dir, { 'postcopy-preempt': true }, `unix:${sock}`);
    await src.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 64 * 2 ** 20, 'max-postcopy-bandwidth': 16 * 2 ** 20 });
    await src.qmp.execute('migrate', { uri: `unix:${sock}` });
    for (;;) {
      const i = await src.qmp.execute('query-migrate');
      if ((i.ram?.['dirty-sync-count'] ?? 0) >= 2) break;
      expect(['setup', 'active']).toContain(i.status);
      await sleep(20);
    }
    await src.qmp.execute('migrate-start-postcopy');
    const info = await src.waitStatus(['completed', 'failed'], 90000);
    expect(info.status).toBe('completed');
    // The first pass carried the guest's 16 MiB working set; postcopy the rest.
    expect(info.ram['precopy-bytes']).toBeGreaterThan(15 * 2 ** 20);
    expect((await dst.waitStatus('completed')).status).toBe('completed');
    await dst.printsMore();
    await abRamOk(dst, dir, MEM);
  });

  test('postcopy at once with the background unlimited: the guest faults from its first instructions, and they are asked for and counted', async () => {
    const sock = path.join(dir, 'mig.sock');
    const [src, dst] = await pair(dir, { 'postcopy-blocktime': true, 'postcopy-preempt': true }, `unix:${sock}`);
    await src.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 0, 'max-postcopy-bandwidth': 0 });
    await src.qmp.execute('migrate', { uri: `unix:${sock}` });
    await src.qmp.execute('migrate-start-postcopy');
    const info = await src.waitStatus(['completed', 'failed'], 90000);
    expect(info.status).toBe('completed');
    // The whole working set was discarded at the switchover; the guest runs at once and walks
    // it far faster than the background stream can bring it.
    expect(info.ram['postcopy-requests']).toBeGreaterThan(0);
    const dinfo = await dst.waitStatus('completed');
    expect(dinfo['postcopy-latency-dist'].reduce((a: number, b: number) => a + b, 0)).toBeGreaterThan(0);
    expect(dinfo['postcopy-vcpu-blocktime'][0]).toBeGreaterThan(0);
    await abRamOk(dst, dir, MEM);
  });


  test('max-postcopy-bandwidth set during postcopy applies to the running background stream', async () => {
    const sock = path.join(dir, 'mig.sock');
    const [src, dst] = await pair(dir, {}, `unix:${sock}`);
    // 64 KiB/s would take the guest's 64 MiB about 17 minutes: only the new value finishes it.
    await src.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 0, 'max-postcopy-bandwidth': 64 * 2 ** 10 });
    await src.qmp.execute('migrate', { uri: `unix:${sock}` });
    await src.qmp.execute('migrate-start-postcopy');
    await src.waitStatus('postcopy-active');
    await src.qmp.execute('migrate-set-parameters', { 'max-postcopy-bandwidth': 0 });
    expect((await src.waitStatus(['completed', 'failed'], 120000)).status).toBe('completed');
    await dst.printsMore();
    await abRamOk(dst, dir, MEM);
  });

  test('pages on the preempt channel when the main stream ends are placed before the destination completes', async () => {
    const sock = path.join(dir, 'mig.sock');
    const relay = new HeldPreemptRelay(path.join(dir, 'relay.sock'), sock);
    relays.push(relay);
    await relay.listen();
    const [src, dst] = await pair(dir, { 'postcopy-preempt': true }, `unix:${sock}`);
    await src.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 0, 'max-postcopy-bandwidth': 0 });
    await src.qmp.execute('migrate', { uri: `unix:${relay.path}` });
    await src.qmp.execute('migrate-start-postcopy');
    const info = await src.waitStatus(['completed', 'failed', 'postcopy-paused'], 90000);
    // The guest's first fault is answered on the held channel, after the main stream has
    // carried the rest of RAM and ended.
    expect(info.ram['postcopy-requests']).toBeGreaterThan(0);
    expect(info.status).toBe('completed');
    expect((await dst.waitStatus('completed')).status).toBe('completed');
    await dst.printsMore();
    await abRamOk(dst, dir, MEM);
  });

  test.each([
    ['without preempt', {}],
    ['with preempt', { 'postcopy-preempt': true }],
  ])('recovery %s: the channel is cut mid-way, both pause, a new socket resumes it; a failed attempt pauses again', async (_n, caps) => {
    const sock = path.join(dir, 'mig.sock');
    const relay = new Relay(path.join(dir, 'relay.sock'), sock);
    relays.push(relay);
    await relay.listen();
    const [src, dst] = await pair(dir, caps, `unix:${sock}`);
    const srcSeen = statuses(src);
    const dstSeen = statuses(dst);
    await src.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 0, 'max-postcopy-bandwidth': 8 * 2 ** 20 });
    await src.qmp.execute('migrate', { uri: `unix:${relay.path}` });
    await src.qmp.execute('migrate-start-postcopy');
    await src.waitStatus('postcopy-active');
    // Mid-way: 2 MiB into postcopy, of the 16 MiB the guest keeps dirty.
    relay.cutAfter(2 * 2 ** 20);
    await src.waitStatus('postcopy-paused');
    await dst.waitStatus('postcopy-paused');
    // The guest keeps waiting on the destination; the source refuses to give it back.
    await expect(src.qmp.execute('migrate_cancel')).rejects.toThrow('Postcopy migration in progress, cannot cancel.');

    // First attempt: the new channel dies during the handshake, as soon as the source's first
    // bytes have gone through → both paused again.
    const rsock1 = path.join(dir, 'recover1.sock');
    const relay1 = new Relay(path.join(dir, 'relay1.sock'), rsock1);
    relays.push(relay1);
    await relay1.listen();
    relay1.cutAfter(1);
    await dst.qmp.execute('migrate-recover', { uri: `unix:${rsock1}` });
    const [s0, d0] = [srcSeen.length, dstSeen.length];
    await src.qmp.execute('migrate', { uri: `unix:${relay1.path}`, resume: true });
    // Both went through a recovery and back (the destination may still be reaching paused
    // when the source is: a second migrate-recover would be refused meanwhile).
    await seen(srcSeen, s0, ['postcopy-recover-setup', 'postcopy-paused']);
    await seen(dstSeen, d0, ['postcopy-recover', 'postcopy-paused']);

    const rsock2 = path.join(dir, 'recover2.sock');
    await dst.qmp.execute('migrate-recover', { uri: `unix:${rsock2}` });
    await src.qmp.execute('migrate', { uri: `unix:${rsock2}`, resume: true });
    expect((await src.waitStatus(['completed', 'failed'], 120000)).status).toBe('completed');
    expect((await dst.waitStatus('completed', 60000)).status).toBe('completed');
    await dst.printsMore();
    await abRamOk(dst, dir, MEM);
  });

  test('migrate-pause on the source pauses both; recover completes it', async () => {
    const sock = path.join(dir, 'mig.sock');
    const [src, dst] = await pair(dir, {}, `unix:${sock}`);
    await src.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 0, 'max-postcopy-bandwidth': 8 * 2 ** 20 });
    await src.qmp.execute('migrate', { uri: `unix:${sock}` });
    await src.qmp.execute('migrate-start-postcopy');
    await src.waitStatus('postcopy-active');
    await src.qmp.execute('migrate-pause');
    await src.waitStatus('postcopy-paused');
    await dst.waitStatus('postcopy-paused');
    const paused = (await src.qmp.execute('query-migrate')).ram;
    const rsock = path.join(dir, 'recover.sock');
    await dst.qmp.execute('migrate-recover', { uri: `unix:${rsock}` });
    await src.qmp.execute('migrate', { uri: `unix:${rsock}`, resume: true });
    // The stream after the recovery counts on from the one before: the figures only grow.
    let last = paused.transferred;
    for (let info = await src.qmp.execute('query-migrate'); info.status !== 'completed' && info.status !== 'failed'; info = await src.qmp.execute('query-migrate')) {
      expect(info.ram.transferred).toBeGreaterThanOrEqual(last);
      expect(info.ram.mbps).toBeGreaterThanOrEqual(0);
      last = info.ram.transferred;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect((await src.waitStatus(['completed', 'failed'], 120000)).status).toBe('completed');
    await dst.printsMore();
    await abRamOk(dst, dir, MEM);
  });

  test('the destination lost before the switchover: the source fails the migration and runs on', async () => {
    const sock = path.join(dir, 'mig.sock');
    const [src, dst] = await pair(dir, { 'pause-before-switchover': true }, `unix:${sock}`);
    await src.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 0 });
    await src.qmp.execute('migrate', { uri: `unix:${sock}` });
    await src.qmp.execute('migrate-start-postcopy');
    await src.waitStatus('pre-switchover');
    dst.kill();
    await dst.exited;
    await src.qmp.execute('migrate-continue', { state: 'pre-switchover' });
    const info = await src.waitStatus(['failed', 'completed']);
    expect(info.status).toBe('failed');
    expect((await src.qmp.execute('query-status')).status).toBe('running');
    await src.printsMore();
  });

  test('migrate-start-postcopy needs the capability and a migration', async () => {
    const src = await new Vm(dir, 'src', AB).connect();
    await expect(src.qmp.execute('migrate-start-postcopy')).rejects.toThrow('Enable postcopy with migrate_set_capability before the start of migration');
    await src.setCaps({ 'postcopy-ram': true });
    await expect(src.qmp.execute('migrate-start-postcopy')).rejects.toThrow('Postcopy must be started after migration has been started');
    await expect(src.qmp.execute('migrate-recover', { uri: 'unix:/nonexistent' })).rejects.toThrow('Migrate recover can only be run when postcopy is paused.');
  });
});
