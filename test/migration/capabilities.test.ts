/**
 * Every capability the schema lists is either refused, naming itself, or does something a
 * test can see: a walk over MIGRATION_CAPABILITIES with one probe per implemented capability,
 * each comparing a real migration (two machines, in-memory channel, the stream recorded) with
 * the capability on and off. A capability that is accepted and has no probe fails the walk.
 * The `-global migration.*` properties that shape the stream get the same treatment.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { VirtMachine } from '../../lib/machine/virt';
import {
  CAPABILITY_SUPPORT, IncomingMigration, MIGRATION_CAPABILITIES, MigrationError, MigrationManager, MigrationOptions, MigrationRunState,
  MigrationState, OutgoingMigration, type MigrationCapabilityName, type MigrationGlobals, type MigrationStatus,
} from '../../lib/migration';
import { analyzeStream, bytesInput, type StreamRecord } from '../../lib/migration/analyze';
import { Throttle } from '../../lib/migration/throttle';
import { EventBus } from '../../lib/monitor';
import { memoryChannelPair, type ByteChannel } from '../../lib/stream';
import { guest } from '../e2e/helpers';
import { MIG_RP_MSG } from '../../lib/migration/wire';

const MiB = 2 ** 20;
const UUID_A = Uint8Array.from(Buffer.from('11111111222233334444555555555555', 'hex'));
const UUID_B = Uint8Array.from(Buffer.from('99999999222233334444555555555555', 'hex'));

interface Side {
  caps?: Partial<Record<MigrationCapabilityName, boolean>>;
  globals?: Partial<MigrationGlobals>;
  machine?: Partial<ConstructorParameters<typeof Object>[0]> & { memPath?: string; uuid?: Uint8Array; type?: string };
}

interface Outcome {
  srcStatuses: MigrationStatus[];
  final: MigrationStatus;
  dstError?: MigrationError;
  records: StreamRecord[];
  rpTypes: number[];
  normal: number;
  duplicate: number;
  dstRam?: Buffer;
  srcRam?: Buffer;
}

function options(side: Side, type = 'virt'): MigrationOptions {
  const o = new MigrationOptions({ globals: type === 'virt-1.0' ? { 'send-switchover-start': false, ...side.globals } : side.globals });
  o.setParameters({ 'max-bandwidth': 0 });
  const caps = Object.entries(side.caps ?? {}).map(([c, state]) => ({ capability: c as MigrationCapabilityName, state: !!state }));
  if (caps.length) o.setCapabilities(caps);
  return o;
}

/** Tap a channel's writes: everything the side wrote, in order. */
function tap(ch: ByteChannel, into: Buffer[]): ByteChannel {
  return {
    read: () => ch.read(),
    write: (c) => (into.push(Buffer.from(c)), ch.write(c)),
    writev: (cs) => (cs.forEach((c) => into.push(Buffer.from(c))), ch.writev ? ch.writev(cs) : cs.every((c) => ch.write(c))),
    drain: () => ch.drain(),
    end: () => ch.end(),
    destroy: (e) => ch.destroy(e),
  };
}

/** Return-path message types in what the destination wrote. */
function rpTypes(bytes: Buffer): number[] {
  const out: number[] = [];
  for (let at = 0; at + 4 <= bytes.length; at += 4 + bytes.readUInt16BE(at + 2)) out.push(bytes.readUInt16BE(at));
  return out;
}

async function migrate(src: Side, dst: Side, opts: { onStatus?: (s: MigrationStatus, out: OutgoingMigration) => void; timeoutMs?: number } = {}): Promise<Outcome> {
  const machineOpts = (s: Side) => ({ memSize: 16 * MiB, smp: 1, type: s.machine?.type, memPath: s.machine?.memPath, ramShared: !!s.machine?.memPath, uuid: s.machine?.uuid });
  const sm = await VirtMachine.create({ ...machineOpts(src), kernel: fs.readFileSync(guest('ab')), append: 'size=1M' });
  const dm = await VirtMachine.create(machineOpts(dst));
  try {
    sm.cont();
    await new Promise((r) => setTimeout(r, 100));
    const [a, b] = memoryChannelPair({ highWaterMark: 64 * MiB });
    const wire: Buffer[] = [];
    const back: Buffer[] = [];
    const srcState = new MigrationState();
    const srcStatuses: MigrationStatus[] = [];
    const out = new OutgoingMigration({
      machine: sm, options: options(src, src.machine?.type), vm: new MigrationRunState(sm), state: srcState, connect: async () => tap(a, wire),
    });
    srcState.onChange((s) => {
      srcStatuses.push(s);
      opts.onStatus?.(s, out);
    });
    const inc = new IncomingMigration({ machine: dm, options: options(dst, dst.machine?.type), vm: new MigrationRunState(dm), state: new MigrationState(), startPaused: true });
    const timer = setTimeout(() => out.cancel(), opts.timeoutMs ?? 20000);
    const [, r] = await Promise.all([out.run({ transport: 'socket', type: 'unix', path: 'memory' }), inc.run(tap(b, back))]);
    clearTimeout(timer);
    const stats = out.refreshStats();
    const stream = Buffer.concat(wire);
    const records = (await analyzeStream(bytesInput(stream)).catch(() => ({ records: [] as StreamRecord[] }))).records;
    return {
      srcStatuses, final: srcState.status, dstError: r.error, records, rpTypes: rpTypes(Buffer.concat(back)), normal: stats.normal, duplicate: stats.duplicate,
      srcRam: r.ok ? Buffer.from(sm.readPhys(0x8000_0000, 16 * MiB)) : undefined,
      dstRam: r.ok ? Buffer.from(dm.readPhys(0x8000_0000, 16 * MiB)) : undefined,
    };
  } finally {
    await sm.destroy();
    await dm.destroy();
  }
}

interface PostcopyOutcome {
  statuses: MigrationStatus[];
  src: ReturnType<MigrationManager['query']>;
  dst: ReturnType<MigrationManager['query']>;
  /** pages the destination's fault worker placed from the preempt channel */
  preemptPages: number;
  /** bytes of the source's RAM still allocated after the migration */
  srcRamAllocated: number;
}

/** A postcopy migration between two machines in this process over a unix socket. */
async function postcopy(caps: Partial<Record<MigrationCapabilityName, boolean>>): Promise<PostcopyOutcome> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'livemig-pc-'));
  const sm = await VirtMachine.create({ memSize: 16 * MiB, smp: 1, kernel: fs.readFileSync(guest('ab')), append: 'size=4M' });
  const dm = await VirtMachine.create({ memSize: 16 * MiB, smp: 1 });
  try {
    // Migrate once the guest is in its loop over its whole working set: the destination's
    // vCPU then faults at once, however slowly a busy machine schedules it.
    let out = '';
    sm.on('serial', (b: Uint8Array) => (out += Buffer.from(b).toString('latin1')));
    sm.cont();
    const t0 = Date.now();
    while (!/AB{2}/.test(out) && Date.now() - t0 < 20000) await new Promise((r) => setTimeout(r, 20));
    const src = new MigrationManager(sm);
    const dst = new MigrationManager(dm);
    const list = Object.entries({ 'postcopy-ram': true, ...caps }).map(([c, state]) => ({ capability: c as MigrationCapabilityName, state: !!state }));
    for (const m of [src, dst]) m.options.setCapabilities(list);
    // A slow background stream leaves the guest pages to fault on.
    src.options.setParameters({ 'max-bandwidth': 0, 'max-postcopy-bandwidth': 2 * MiB });
    dst.expectIncoming();
    const sock = path.join(dir, 'mig.sock');
    await dst.incoming(`unix:${sock}`, { exitOnError: false });
    const statuses: MigrationStatus[] = [];
    src.on('status', (s: MigrationStatus) => statuses.push(s));
    await src.migrate(`unix:${sock}`);
    src.startPostcopy();
    expect(await src.done()).toBe('completed');
    expect(await dst.done()).toBe('completed');
    const figures = (dst as unknown as { incomingMig: { postcopyFigures(): { preemptPages: number } | null } }).incomingMig.postcopyFigures();
    const ext = sm.ram.mapping.dataExtents();
    let allocated = 0;
    for (let i = 0; i < ext.length; i += 2) allocated += ext[i + 1] - ext[i];
    return { statuses, src: src.query(), dst: dst.query(), preemptPages: figures?.preemptPages ?? 0, srcRamAllocated: allocated };
  } finally {
    await sm.destroy();
    await dm.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** A precopy migration between two machines in this process over a unix socket (multifd needs
 * real connections): the source's query-migrate, and whether the RAM arrived whole. */
async function viaSocket(caps: Partial<Record<MigrationCapabilityName, boolean>>, channels = 2): Promise<{ src: ReturnType<MigrationManager['query']>; same: boolean }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'livemig-mf-'));
  const sm = await VirtMachine.create({ memSize: 16 * MiB, smp: 1, kernel: fs.readFileSync(guest('ab')), append: 'size=4M' });
  const dm = await VirtMachine.create({ memSize: 16 * MiB, smp: 1 });
  try {
    sm.cont();
    await new Promise((r) => setTimeout(r, 100));
    const src = new MigrationManager(sm);
    const dst = new MigrationManager(dm, { startPaused: true });
    const list = Object.entries(caps).map(([c, state]) => ({ capability: c as MigrationCapabilityName, state: !!state }));
    for (const m of [src, dst]) {
      m.options.setCapabilities(list);
      m.options.setParameters({ 'multifd-channels': channels });
    }
    src.options.setParameters({ 'max-bandwidth': 0, 'downtime-limit': 1000 });
    const sock = path.join(dir, 'mig.sock');
    await dst.incoming(`unix:${sock}`, { exitOnError: false });
    await src.migrate(`unix:${sock}`);
    expect(await src.done()).toBe('completed');
    expect(await dst.done()).toBe('completed');
    const same = Buffer.from(sm.readPhys(0x8000_0000, 16 * MiB)).equals(Buffer.from(dm.readPhys(0x8000_0000, 16 * MiB)));
    return { src: src.query(), same };
  } finally {
    await sm.destroy();
    await dm.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const commands = (o: Outcome) => o.records.filter((r) => r.kind === 'command').map((r) => r.name);
const sections = (o: Outcome) => o.records.filter((r) => r.kind === 'full').map((r) => r.idstr);

/** One probe per capability livemig implements: it must fail if the capability did nothing. */
const PROBES: Partial<Record<MigrationCapabilityName, () => Promise<void>>> = {
  async 'return-path'() {
    const off = await migrate({}, {});
    const on = await migrate({ caps: { 'return-path': true } }, { caps: { 'return-path': true } });
    expect(commands(off)).not.toContain('OPEN_RETURN_PATH');
    expect(commands(on)).toEqual(expect.arrayContaining(['OPEN_RETURN_PATH', 'PING']));
    expect(on.rpTypes).toEqual([MIG_RP_MSG.PONG, MIG_RP_MSG.SHUT]);
    expect(off.rpTypes).toEqual([]);
  },
  async 'pause-before-switchover'() {
    const on = await migrate({ caps: { 'pause-before-switchover': true } }, {}, {
      onStatus: (s, out) => s === 'pre-switchover' && setTimeout(() => out.continueFrom('pre-switchover'), 50),
    });
    expect(on.srcStatuses).toEqual(['setup', 'active', 'pre-switchover', 'device', 'completed']);
    const off = await migrate({}, {});
    expect(off.srcStatuses).toEqual(['setup', 'active', 'device', 'completed']);
  },
  async 'switchover-ack'() {
    const caps = { 'return-path': true, 'switchover-ack': true };
    const on = await migrate({ caps }, { caps });
    expect(on.final).toBe('completed');
    expect(on.rpTypes).toContain(MIG_RP_MSG.SWITCHOVER_ACK);
    // A destination that never acknowledges holds the source back from switching over.
    const held = await migrate({ caps }, { caps: { 'return-path': true } }, { timeoutMs: 1500 });
    expect(held.final).toBe('cancelled');
    expect(held.srcStatuses).not.toContain('device');
  },
  async 'validate-uuid'() {
    const caps = { 'validate-uuid': true };
    const same = await migrate({ caps, machine: { uuid: UUID_A } }, { machine: { uuid: UUID_A } });
    expect(same.final).toBe('completed');
    const other = await migrate({ caps, machine: { uuid: UUID_A } }, { machine: { uuid: UUID_B } });
    expect(other.dstError?.code).toBe('EMIG_CONFIG');
    expect(other.dstError?.message).toMatch(/UUID received is 11111111-2222-3333-4444-555555555555 and local is 99999999-/);
    // Without the capability the UUID does not travel, so nothing is compared.
    expect((await migrate({ machine: { uuid: UUID_A } }, { machine: { uuid: UUID_B } })).final).toBe('completed');
  },
  async 'x-ignore-shared'() {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'livemig-shared-'));
    try {
      const memPath = path.join(dir, 'ram');
      const caps = { 'x-ignore-shared': true };
      const on = await migrate({ caps, machine: { memPath } }, { caps, machine: { memPath } });
      expect(on.final).toBe('completed');
      // Only the ROM went over the wire; the RAM arrived through the shared file.
      expect(on.normal + on.duplicate).toBe(0xf000 / 4096);
      expect(on.dstRam!.equals(on.srcRam!)).toBe(true);
      const off = await migrate({ machine: { memPath } }, { machine: { memPath } });
      expect(off.normal + off.duplicate).toBeGreaterThanOrEqual((16 * MiB) / 4096);
      // Both ends must agree (a validated capability).
      const one = await migrate({ caps, machine: { memPath } }, { machine: { memPath } });
      expect(one.dstError?.message).toMatch(/Capability x-ignore-shared is off, but received capability is on/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
  async 'auto-converge'() {
    // The throttle rule itself: two periods dirtying more than half of what was sent.
    const throttled: number[] = [];
    const machine = { setThrottle: (p: number) => throttled.push(p) } as unknown as VirtMachine;
    let t = 0;
    for (const on of [false, true]) {
      const o = new MigrationOptions();
      if (on) o.setCapabilities([{ capability: 'auto-converge', state: true }]);
      const th = new Throttle(o, machine, () => t);
      for (let i = 1; i <= 4; i++) {
        t += 1000;
        th.onSync(1000, i * 1000 * 4096);
      }
    }
    expect(throttled).toEqual([20, 30]);
  },
  async 'postcopy-ram'() {
    const on = await postcopy({});
    expect(on.statuses).toEqual(['setup', 'active', 'device', 'postcopy-device', 'postcopy-active', 'completed']);
    expect(on.src.ram!['postcopy-bytes']).toBeGreaterThan(0);
    const off = await migrate({}, {});
    expect(off.srcStatuses).not.toContain('postcopy-active');
  },
  async 'postcopy-preempt'() {
    const on = await postcopy({ 'postcopy-preempt': true });
    expect(on.src.ram!['postcopy-requests']).toBeGreaterThan(0);
    expect(on.preemptPages).toBeGreaterThan(0);
    expect((await postcopy({})).preemptPages).toBe(0);
  },
  async 'postcopy-blocktime'() {
    const on = await postcopy({ 'postcopy-blocktime': true });
    expect(on.dst['postcopy-vcpu-blocktime']).toHaveLength(1);
    expect(on.dst['postcopy-latency-dist']).toHaveLength(24);
    expect((await postcopy({})).dst['postcopy-blocktime']).toBeUndefined();
  },
  async 'release-ram'() {
    const on = await postcopy({ 'release-ram': true });
    const off = await postcopy({});
    // Every page the destination has is freed on the source as it goes.
    expect(on.srcRamAllocated).toBe(0);
    expect(off.srcRamAllocated).toBeGreaterThan(4 * MiB);
  },
  async multifd() {
    const on = await viaSocket({ multifd: true }, 2);
    const off = await viaSocket({});
    expect(on.same && off.same).toBe(true);
    // The pages went over the extra channels: nearly all the bytes, and none without it.
    expect(on.src.ram!['multifd-bytes']).toBeGreaterThan(0.9 * on.src.ram!.transferred);
    expect(off.src.ram!['multifd-bytes']).toBe(0);
    // QEMU 10.x pairs it with postcopy; livemig refuses the pair by name.
    const o = new MigrationOptions();
    expect(() => o.setCapabilities([{ capability: 'multifd', state: true }, { capability: 'postcopy-ram', state: true }])).toThrow(/multifd.*postcopy-ram/);
  },
  async events() {
    for (const on of [false, true]) {
      const o = new MigrationOptions();
      if (on) o.setCapabilities([{ capability: 'events', state: true }]);
      const bus = new EventBus({ config: o });
      const seen: string[] = [];
      bus.subscribe((e) => seen.push(e.name));
      bus.emit('MIGRATION', { status: 'active' });
      bus.emit('MIGRATION_PASS', { pass: 1 });
      expect(seen).toEqual(on ? ['MIGRATION', 'MIGRATION_PASS'] : []);
    }
  },
};

describe('every capability is implemented or refused', () => {
  test.each(MIGRATION_CAPABILITIES.map((c) => [c]))('%s', async (cap) => {
    const refused = CAPABILITY_SUPPORT[cap].refused;
    if (refused) {
      const o = new MigrationOptions();
      expect(() => o.setCapabilities([{ capability: cap, state: true }])).toThrow(MigrationError);
      expect(o.caps[cap]).toBe(false);
      // Alone, a capability with no prerequisite is refused by name.
      let msg = '';
      try {
        o.setCapabilities([{ capability: cap, state: true }]);
      } catch (e) {
        msg = (e as Error).message;
      }
      expect(msg === `Capability '${cap}' is not supported by livemig: ${refused}` || /requires|QEMU compiled|KVM|Zero copy/.test(msg)).toBe(true);
      return;
    }
    const probe = PROBES[cap];
    expect(probe).toBeDefined(); // an accepted capability needs a probe showing its effect
    await probe!();
  }, 60000);
});

describe('-global migration.* shapes the stream', () => {
  test('send-switchover-start: on by default, off for virt-1.0 and with -global; no COMMAND record then', async () => {
    expect(commands(await migrate({}, {}))).toEqual(['SWITCHOVER_START']);
    const old = await migrate({ machine: { type: 'virt-1.0' } }, { machine: { type: 'virt-1.0' } });
    expect(old.final).toBe('completed');
    expect(old.records.some((r) => r.kind === 'command')).toBe(false);
    const off = await migrate({ globals: { 'send-switchover-start': false } }, {});
    expect(off.records.some((r) => r.kind === 'command')).toBe(false);
  }, 60000);

  test('store-global-state=off leaves out the globalstate section; the destination then runs the guest', async () => {
    expect(sections(await migrate({}, {}))).toContain('globalstate');
    const off = await migrate({ globals: { 'store-global-state': false } }, {});
    expect(off.final).toBe('completed');
    expect(sections(off)).not.toContain('globalstate');
  }, 60000);

  test('send-configuration and send-section-footer: both ends must agree', async () => {
    for (const g of ['send-configuration', 'send-section-footer'] as const) {
      const both = await migrate({ globals: { [g]: false } }, { globals: { [g]: false } });
      expect(both.final).toBe('completed');
      expect(both.dstError).toBeUndefined();
      const one = await migrate({ globals: { [g]: false } }, {});
      expect(one.dstError).toBeInstanceOf(MigrationError);
    }
  }, 60000);
});
