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

/** A relay between source and destination that the test can cut, or that cuts itself as soon
 * as the source has sent its first bytes (a recovery handshake that dies half way). */
class Relay {
  private readonly server: net.Server;
  private readonly socks = new Set<net.Socket>();

  constructor(
    readonly path: string,
    target: string,
    cutOnFirstData = false,
  ) {
    this.server = net.createServer((a) => {
      const b = net.connect(target);
      for (const s of [a, b]) {
        this.socks.add(s);
        s.on('error', () => undefined);
        s.on('close', () => this.socks.delete(s));
      }
      if (cutOnFirstData) {
        a.once('data', (d) => {
          b.write(d, () => setTimeout(() => this.cut(), 50));
        });
      } else {
        a.pipe(b);
      }
      b.pipe(a);
    });
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

async function pair(dir: string, caps: Record<string, boolean>, incoming: string): Promise<[Vm, Vm]> {
  const src = await new Vm(dir, 'src', AB).connect();
  const dst = await new Vm(dir, 'dst', { ...AB, extra: ['-incoming', 'defer'] }).connect();
  for (const v of [src, dst]) await v.setCaps({ events: true, 'postcopy-ram': true, ...caps });
  await dst.qmp.execute('migrate-incoming', { uri: incoming });
  await src.waitOutput(/AB{3}/);
  return [src, dst];
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
    // A slow background stream leaves the guest pages to fault on.
    await src.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 0, 'max-postcopy-bandwidth': 4 * 2 ** 20 });
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

  test.each([
    ['without preempt', {}],
    ['with preempt', { 'postcopy-preempt': true }],
  ])('recovery %s: the channel is cut mid-way, both pause, a new socket resumes it; a failed attempt pauses again', async (_n, caps) => {
    const sock = path.join(dir, 'mig.sock');
    const relay = new Relay(path.join(dir, 'relay.sock'), sock);
    relays.push(relay);
    await relay.listen();
    const [src, dst] = await pair(dir, caps, `unix:${sock}`);
    await src.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 0, 'max-postcopy-bandwidth': 4 * 2 ** 20 });
    await src.qmp.execute('migrate', { uri: `unix:${relay.path}` });
    await src.qmp.execute('migrate-start-postcopy');
    await src.waitStatus('postcopy-active');
    await sleep(500);
    relay.cut();
    await src.waitStatus('postcopy-paused');
    await dst.waitStatus('postcopy-paused');
    // The guest keeps waiting on the destination; the source refuses to give it back.
    await expect(src.qmp.execute('migrate_cancel')).rejects.toThrow('Postcopy migration in progress, cannot cancel.');

    // First attempt: the new channel dies during the handshake (the destination has seen the
    // source's first command) → both paused again.
    const rsock1 = path.join(dir, 'recover1.sock');
    const relay1 = new Relay(path.join(dir, 'relay1.sock'), rsock1, true);
    relays.push(relay1);
    await relay1.listen();
    const dstEvents: string[] = [];
    dst.qmp.on('event', (e) => e.event === 'MIGRATION' && dstEvents.push((e.data as any).status));
    await dst.qmp.execute('migrate-recover', { uri: `unix:${rsock1}` });
    await src.qmp.execute('migrate', { uri: `unix:${relay1.path}`, resume: true });
    for (let t = 0; !dstEvents.includes('postcopy-recover') && t < 1500; t++) await sleep(20);
    await src.waitStatus('postcopy-paused');
    await dst.waitStatus('postcopy-paused');
    expect(dstEvents.slice(0, 2)).toEqual(['postcopy-recover', 'postcopy-paused']);

    const rsock2 = path.join(dir, 'recover2.sock');
    await dst.qmp.execute('migrate-recover', { uri: `unix:${rsock2}` });
    await src.qmp.execute('migrate', { uri: `unix:${rsock2}`, resume: true });
    expect((await src.waitStatus(['completed', 'failed'], 120000)).status).toBe('completed');
    expect((await dst.waitStatus('completed', 60000)).status).toBe('completed');
    await dst.printsMore();
    await abRamOk(dst, dir, MEM);
  }, 180000);

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
    const rsock = path.join(dir, 'recover.sock');
    await dst.qmp.execute('migrate-recover', { uri: `unix:${rsock}` });
    await src.qmp.execute('migrate', { uri: `unix:${rsock}`, resume: true });
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
