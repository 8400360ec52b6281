/**
 * Hostile postcopy streams against a real destination machine in this process. A real postcopy
 * stream is recorded once (postcopy at once, so every page travels after the package), then
 * its commands are patched: POSTCOPY_ADVISE of a wrong length or page size, when the
 * destination has postcopy-ram off, or twice; RAM_DISCARD before ADVISE, malformed, for an
 * unknown block, outside it, after LISTEN; LISTEN and RUN out of order; PACKAGED over its limit
 * (nothing of that size allocated), cut short, without RUN; RECV_BITMAP and POSTCOPY_RESUME
 * outside a recovery.
 *
 * Every refusal fails the load before the guest runs, with a MigrationError naming section
 * 'command', the command as field, and the command's stream offset. The destination is left
 * stopped and whole: the return path says SHUT(1) and ends (no thread keeps a dup of the
 * socket), no userfaultfd stays open or registered on guest RAM, and the machine is destroyed
 * promptly.
 */
import * as fs from 'node:fs';
import { VirtMachine } from '../../lib/machine/virt';
import { analyzeStream, bytesInput, type StreamRecord } from '../../lib/migration/analyze';
import { MigrationError } from '../../lib/migration/errors';
import { IncomingMigration } from '../../lib/migration/incoming';
import { PACKAGED_MAX } from '../../lib/migration/loadvm';
import { OutgoingMigration } from '../../lib/migration/outgoing';
import { MigrationOptions, type MigrationCapabilityName } from '../../lib/migration/options';
import { encodeAdvise, encodeCounted, encodeDiscard } from '../../lib/migration/postcopy/wire';
import { MigrationRunState } from '../../lib/migration/run-state';
import { MigrationState } from '../../lib/migration/state';
import { MIG_CMD, MIG_RP_MSG } from '../../lib/migration/wire';
import { guest } from '../e2e/helpers';
import { fdChannelPair } from '../transport/helpers';

const MiB = 2 ** 20;
const RAM = 'riscv_virt_board.ram';
const RAM_SIZE = 16 * MiB;
/** A machine that does not tear down in this time is stuck (a vCPU or worker in the kernel). */
const DESTROY_MS = 10000;

let stream: Buffer;
let records: StreamRecord[];

function options(caps: Partial<Record<MigrationCapabilityName, boolean>>): MigrationOptions {
  const o = new MigrationOptions();
  o.setParameters({ 'max-bandwidth': 0 });
  const list = Object.entries(caps).map(([capability, state]) => ({ capability: capability as MigrationCapabilityName, state: !!state }));
  if (list.length) o.setCapabilities(list);
  return o;
}

function command(cmd: number, payload: Uint8Array = new Uint8Array(0)): Buffer {
  const h = Buffer.alloc(5);
  h[0] = 0x08;
  h.writeUInt16BE(cmd, 1);
  h.writeUInt16BE(payload.length, 3);
  return Buffer.concat([h, payload]);
}

const be32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0);
  return b;
};

function splice(s: Buffer, at: number, remove: number, ...insert: Uint8Array[]): Buffer {
  return Buffer.concat([s.subarray(0, at), ...insert, s.subarray(at + remove)]);
}

function find(name: string, depth?: number, nth = 0): StreamRecord {
  const r = records.filter((x) => x.kind === 'command' && x.name === name && x.depth === depth)[nth];
  if (!r) throw new Error(`no ${name} command in the recorded stream`);
  return r;
}

/** The stream with its package replaced by `mutate(package)`; PACKAGED's size follows. */
function repackage(mutate: (blob: Buffer, rel: (r: StreamRecord) => number) => Buffer): Buffer {
  const p = find('PACKAGED');
  const start = p.offset + 9;
  const blob = stream.subarray(start, start + p.value!);
  const next = mutate(Buffer.from(blob), (r) => r.offset - start);
  return splice(stream, p.offset, 9 + p.value!, command(MIG_CMD.PACKAGED, be32(next.length)), next);
}

/** Userfaultfds this process has open. */
function userfaultfds(): number {
  let n = 0;
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      if (fs.readlinkSync(`/proc/self/fd/${fd}`).includes('userfaultfd')) n++;
    } catch {
      /* closed meanwhile */
    }
  }
  return n;
}

/** Whether the mapping at `addr` is registered with a userfaultfd for missing pages (smaps 'um'). */
function uffdMissingRegistered(addr: number): boolean {
  const smaps = fs.readFileSync('/proc/self/smaps', 'utf8').split('\n');
  let inside = false;
  for (const line of smaps) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) /.exec(line);
    if (m) inside = parseInt(m[1], 16) <= addr && addr < parseInt(m[2], 16);
    else if (inside && line.startsWith('VmFlags:')) return line.split(/\s+/).includes('um');
  }
  return false;
}

const timeout = <T>(p: Promise<T>, ms: number, what: string) =>
  Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what} did not finish in ${ms} ms`)), ms).unref())]);

interface Loaded {
  error: MigrationError | null;
  status: string;
  runState: string;
  rp: number[];
  shut: number | null;
}

/** Feed `bytes` to a fresh destination over a socket; check it is left whole; destroy it. */
async function load(bytes: Buffer, caps: Partial<Record<MigrationCapabilityName, boolean>> = { 'postcopy-ram': true }): Promise<Loaded> {
  const dm = await VirtMachine.create({ memSize: RAM_SIZE, smp: 2 });
  const uffds = userfaultfds();
  try {
    const [ours, theirs] = fdChannelPair();
    const state = new MigrationState();
    const inc = new IncomingMigration({ machine: dm, options: options(caps), vm: new MigrationRunState(dm), state, startPaused: true });
    // The return path, until the destination ends it: it must end, or a thread kept the socket.
    const back: Buffer[] = [];
    const rpEnded = (async () => {
      try {
        for (let c = await ours.read(); c; c = await ours.read()) back.push(Buffer.from(c));
      } catch {
        /* reset by a destination that failed while we were writing */
      }
    })();
    ours.write(bytes);
    void ours.end().catch(() => undefined);
    const r = await timeout(inc.run(theirs), 30000, 'the load');
    await timeout(rpEnded, 5000, 'the return path');
    ours.destroy();
    const rp = Buffer.concat(back);
    const types: number[] = [];
    let shut: number | null = null;
    for (let at = 0; at + 4 <= rp.length; at += 4 + rp.readUInt16BE(at + 2)) {
      types.push(rp.readUInt16BE(at));
      if (rp.readUInt16BE(at) === MIG_RP_MSG.SHUT) shut = rp.readUInt32BE(at + 4);
    }
    expect(userfaultfds()).toBe(uffds);
    expect(uffdMissingRegistered(dm.ram.mapping.addr)).toBe(false);
    return { error: r.ok ? null : r.error!, status: state.status, runState: dm.runState, rp: types, shut };
  } finally {
    await timeout(dm.destroy(), DESTROY_MS, 'destroying the destination');
  }
}

/** The load failed before the guest ran, naming `field` of section 'command'. */
async function refused(bytes: Buffer, field: string, detail: RegExp, opts: { code?: string; at?: number; caps?: Partial<Record<MigrationCapabilityName, boolean>> } = {}): Promise<MigrationError> {
  const r = await load(bytes, opts.caps);
  expect(r.error).toBeInstanceOf(MigrationError);
  const e = r.error!;
  expect({ code: e.code, section: e.section, field: e.field }).toEqual({ code: opts.code ?? 'EMIG_COMMAND', section: 'command', field });
  expect(e.message).toMatch(detail);
  expect(typeof e.position).toBe('number');
  if (opts.at !== undefined) expect(e.position).toBe(opts.at);
  expect(r.status).toBe('failed');
  expect(r.runState).toBe('paused');
  expect(r.shut).toBe(1);
  return e;
}

beforeAll(async () => {
  // Record what a source writes in a real postcopy migration (postcopy at once).
  const sm = await VirtMachine.create({ memSize: RAM_SIZE, smp: 2, kernel: fs.readFileSync(guest('ab')), append: 'size=2M' });
  const dm = await VirtMachine.create({ memSize: RAM_SIZE, smp: 2 });
  try {
    sm.cont();
    await new Promise((r) => setTimeout(r, 200));
    const [a, b] = fdChannelPair();
    const wire: Buffer[] = [];
    // Recorded as the destination reads it: the source sends pages from guest RAM by native
    // calls on the socket, past the channel's own write path.
    const read = b.read.bind(b);
    b.read = async () => {
      const c = await read();
      if (c) wire.push(Buffer.from(c));
      return c;
    };
    const caps = { 'postcopy-ram': true };
    const out = new OutgoingMigration({ machine: sm, options: options(caps), vm: new MigrationRunState(sm), state: new MigrationState(), connect: async () => a });
    out.startPostcopy();
    const inc = new IncomingMigration({ machine: dm, options: options(caps), vm: new MigrationRunState(dm), state: new MigrationState(), startPaused: false });
    const [, r] = await Promise.all([out.run({ transport: 'socket', type: 'unix', path: 'pair' }), inc.run(b)]);
    expect(r.error).toBeUndefined();
    expect(out.status).toBe('completed');
    stream = Buffer.concat(wire);
    records = (await analyzeStream(bytesInput(stream))).records as StreamRecord[];
  } finally {
    await sm.destroy();
    await dm.destroy();
  }
}, 60000);

test('the recorded stream has the postcopy commands, and loads', async () => {
  const names = records.filter((r) => r.kind === 'command').map((r) => `${r.depth ? '  ' : ''}${r.name}`);
  expect(names).toEqual(expect.arrayContaining(['POSTCOPY_ADVISE', 'POSTCOPY_RAM_DISCARD', 'PACKAGED', '  POSTCOPY_LISTEN', '  POSTCOPY_RUN']));
  const r = await load(stream);
  expect(r.error).toBeNull();
  expect(r.status).toBe('completed');
  expect(r.shut).toBe(0);
});

describe('POSTCOPY_ADVISE', () => {
  test('a length other than 16', async () => {
    const adv = find('POSTCOPY_ADVISE');
    for (const len of [0, 8, 24]) {
      const bytes = splice(stream, adv.offset, adv.length, command(MIG_CMD.POSTCOPY_ADVISE, Buffer.alloc(len)));
      await refused(bytes, 'POSTCOPY_ADVISE', new RegExp(`advise of ${len} bytes`), { at: adv.offset });
    }
  });

  test('page sizes that are not ours', async () => {
    const adv = find('POSTCOPY_ADVISE');
    const with_ = (summary: number, target: number) => splice(stream, adv.offset, adv.length, command(MIG_CMD.POSTCOPY_ADVISE, encodeAdvise(summary, target)));
    await refused(with_(4096 | 2 * MiB, 4096), 'POSTCOPY_ADVISE', /matching RAM page sizes \(s=2101248 d=4096\)/, { at: adv.offset });
    await refused(with_(4096, 16384), 'POSTCOPY_ADVISE', /matching target page sizes/, { at: adv.offset });
  });

  test('when the destination has postcopy-ram off', async () => {
    await refused(stream, 'POSTCOPY_ADVISE', /RAM postcopy is disabled but have 16 byte advise/, { caps: {}, at: find('POSTCOPY_ADVISE').offset });
  });

  test('twice', async () => {
    const adv = find('POSTCOPY_ADVISE');
    const again = stream.subarray(adv.offset, adv.offset + adv.length);
    await refused(splice(stream, adv.offset + adv.length, 0, again), 'POSTCOPY_ADVISE', /POSTCOPY_ADVISE in postcopy state advise/, { at: adv.offset + adv.length });
    // After the package: the destination listens already, its fault worker runs.
    const run = find('POSTCOPY_RUN', 1);
    await refused(repackage((blob, rel) => splice(blob, rel(run), 0, again)), 'POSTCOPY_ADVISE', /in postcopy state listening/, { at: run.offset });
  });
});

describe('POSTCOPY_RAM_DISCARD', () => {
  const discard = (block: string, start: number, length: number) => command(MIG_CMD.POSTCOPY_RAM_DISCARD, encodeDiscard(block, [{ start, length }]));

  test('before ADVISE', async () => {
    const adv = find('POSTCOPY_ADVISE');
    await refused(splice(stream, adv.offset, 0, discard(RAM, 0, 4096)), 'POSTCOPY_RAM_DISCARD', /without POSTCOPY_ADVISE/, { at: adv.offset });
  });

  test('malformed: a wrong version, a name running past the payload, a partial range', async () => {
    const d = find('POSTCOPY_RAM_DISCARD');
    const v1 = Buffer.from(stream);
    v1[d.offset + 5] = 1;
    await refused(v1, 'POSTCOPY_RAM_DISCARD', /Expected version 0, got 1/, { at: d.offset });
    const long = Buffer.from(stream);
    long[d.offset + 6] = 250;
    await refused(long, 'POSTCOPY_RAM_DISCARD', /does not fit/, { at: d.offset });
    const payload = Buffer.from(encodeDiscard(RAM, [{ start: 0, length: 4096 }]));
    await refused(splice(stream, d.offset, 0, command(MIG_CMD.POSTCOPY_RAM_DISCARD, payload.subarray(0, payload.length - 3))), 'POSTCOPY_RAM_DISCARD', /does not fit/, { at: d.offset });
  });

  test('for an unknown block', async () => {
    const d = find('POSTCOPY_RAM_DISCARD');
    await refused(splice(stream, d.offset, 0, discard('riscv_virt_board.rom', 0, 4096)), 'POSTCOPY_RAM_DISCARD', /unknown block 'riscv_virt_board.rom'/, { at: d.offset });
  });

  test('outside the block, unaligned, or empty', async () => {
    const d = find('POSTCOPY_RAM_DISCARD');
    for (const [start, length] of [[RAM_SIZE, 4096], [RAM_SIZE - 4096, 8192], [2 ** 52, 4096], [100, 4096], [0, 100], [4096, 0]]) {
      await refused(splice(stream, d.offset, 0, discard(RAM, start, length)), 'POSTCOPY_RAM_DISCARD', /outside 'riscv_virt_board.ram'/, { at: d.offset });
    }
  });

  test('after LISTEN', async () => {
    const run = find('POSTCOPY_RUN', 1);
    await refused(repackage((blob, rel) => splice(blob, rel(run), 0, discard(RAM, 0, 4096))), 'POSTCOPY_RAM_DISCARD', /in postcopy state listening/, { at: run.offset });
  });
});

describe('LISTEN and RUN out of order', () => {
  test('LISTEN or RUN before ADVISE', async () => {
    const adv = find('POSTCOPY_ADVISE');
    await refused(splice(stream, adv.offset, 0, command(MIG_CMD.POSTCOPY_LISTEN)), 'POSTCOPY_LISTEN', /without POSTCOPY_ADVISE/, { at: adv.offset });
    await refused(splice(stream, adv.offset, 0, command(MIG_CMD.POSTCOPY_RUN)), 'POSTCOPY_RUN', /without POSTCOPY_ADVISE/, { at: adv.offset });
  });

  test('RUN before LISTEN: in the main stream, and a package without its LISTEN', async () => {
    const d = find('POSTCOPY_RAM_DISCARD');
    await refused(splice(stream, d.offset, 0, command(MIG_CMD.POSTCOPY_RUN)), 'POSTCOPY_RUN', /POSTCOPY_RUN in postcopy state advise/, { at: d.offset });
    const listen = find('POSTCOPY_LISTEN', 1);
    const run = find('POSTCOPY_RUN', 1);
    await refused(repackage((blob, rel) => splice(blob, rel(listen), 5)), 'POSTCOPY_RUN', /POSTCOPY_RUN in postcopy state discard/, { at: run.offset - 5 });
  });

  test('LISTEN twice', async () => {
    const listen = find('POSTCOPY_LISTEN', 1);
    await refused(repackage((blob, rel) => splice(blob, rel(listen), 0, command(MIG_CMD.POSTCOPY_LISTEN))), 'POSTCOPY_LISTEN', /in postcopy state listening/, { at: listen.offset + 5 });
  });
});

describe('PACKAGED', () => {
  /** Sizes of the typed arrays allocated by length while `fn` runs. */
  async function allocations(fn: () => Promise<unknown>): Promise<number[]> {
    const sizes: number[] = [];
    const Orig = globalThis.Uint8Array;
    class Spy extends Orig {
      constructor(...args: unknown[]) {
        if (typeof args[0] === 'number' && args[0] >= MiB) sizes.push(args[0]);
        super(...(args as [number]));
      }
    }
    globalThis.Uint8Array = Spy as Uint8ArrayConstructor;
    try {
      await fn();
    } finally {
      globalThis.Uint8Array = Orig;
    }
    return sizes;
  }

  test('over PACKAGED_MAX is refused before anything of its size is allocated', async () => {
    const p = find('PACKAGED');
    for (const size of [PACKAGED_MAX + 1, 0xffffffff]) {
      const bytes = splice(stream, p.offset + 5, 4, be32(size));
      const sizes = await allocations(() => refused(bytes, 'PACKAGED', new RegExp(`package of ${size} bytes exceeds ${PACKAGED_MAX}`), { code: 'EMIG_LIMIT', at: p.offset }));
      expect(sizes.filter((n) => n > PACKAGED_MAX / 2)).toEqual([]);
    }
    // The spy sees a package at the limit (which the stream then cuts short) being allocated.
    const atLimit = splice(stream, p.offset + 5, 4, be32(PACKAGED_MAX)).subarray(0, p.offset + 9 + 100);
    const sizes = await allocations(() => refused(atLimit, 'PACKAGED', /inside a package/, { code: 'EMIG_TRUNCATED' }));
    expect(sizes).toContain(PACKAGED_MAX);
  });

  test('cut short inside the package', async () => {
    const p = find('PACKAGED');
    for (const cut of [p.offset + 9, p.offset + 9 + Math.floor(p.value! / 2), p.offset + p.length - 1]) {
      await refused(stream.subarray(0, cut), 'PACKAGED', /stream ended inside a package/, { code: 'EMIG_TRUNCATED' });
    }
  });

  test('without RUN: the package ends after the devices, or at an EOF', async () => {
    const p = find('PACKAGED');
    const run = find('POSTCOPY_RUN', 1);
    await refused(repackage((blob, rel) => splice(blob, rel(run), 5)), 'PACKAGED', /package ended without POSTCOPY_RUN/, { at: p.offset });
    // An EOF in its place ends no package either.
    await refused(repackage((blob, rel) => splice(blob, rel(run), 5, Buffer.from([0x00]))), 'PACKAGED', /package ended without POSTCOPY_RUN/, { at: p.offset });
  });
});

describe('recovery commands outside a recovery', () => {
  test('RECV_BITMAP', async () => {
    const d = find('POSTCOPY_RAM_DISCARD');
    await refused(splice(stream, d.offset, 0, command(MIG_CMD.RECV_BITMAP, encodeCounted(RAM))), 'RECV_BITMAP', /RECV_BITMAP in state active/, { at: d.offset });
  });

  test('POSTCOPY_RESUME is ignored, as QEMU does ("illegal resume received"), and the load goes on', async () => {
    const d = find('POSTCOPY_RAM_DISCARD');
    const r = await load(splice(stream, d.offset, 0, command(MIG_CMD.POSTCOPY_RESUME)));
    expect(r.error).toBeNull();
    expect(r.status).toBe('completed');
    expect(r.rp).not.toContain(MIG_RP_MSG.RESUME_ACK);
  });
});

describe('after RUN the guest runs here', () => {
  /** Everything up to the package, then `after`: the guest runs on faulted pages that nobody
   * sends. It must pause, not fail (QEMU: no going back once the destination runs). */
  async function pausesThenDestroyed(after: Buffer, detail: RegExp): Promise<void> {
    const dm = await VirtMachine.create({ memSize: RAM_SIZE, smp: 2 });
    const uffds = userfaultfds();
    let destroyed = false;
    try {
      const [ours, theirs] = fdChannelPair();
      const state = new MigrationState();
      const inc = new IncomingMigration({ machine: dm, options: options({ 'postcopy-ram': true }), vm: new MigrationRunState(dm), state, startPaused: false });
      void (async () => {
        try {
          for (let c = await ours.read(); c; c = await ours.read());
        } catch {
          /* reset */
        }
      })();
      const p = find('PACKAGED');
      ours.write(Buffer.concat([stream.subarray(0, p.offset + p.length), after]));
      const result = inc.run(theirs);
      for (let i = 0; i < 200 && state.status !== 'postcopy-paused' && state.status !== 'failed'; i++) await new Promise((r) => setTimeout(r, 50));
      expect(state.status).toBe('postcopy-paused');
      expect(inc.errorDesc).toMatch(detail);
      expect(dm.runState).toBe('running');
      expect(uffdMissingRegistered(dm.ram.mapping.addr)).toBe(true);
      await timeout(dm.destroy(), DESTROY_MS, 'destroying the paused destination');
      destroyed = true;
      const r = await timeout(result, 5000, 'the load');
      expect(r.ok).toBe(false);
      expect(r.error!.code).toBe('EMIG_CANCELLED');
      expect(state.status).toBe('failed');
      expect(userfaultfds()).toBe(uffds);
      ours.destroy();
    } finally {
      if (!destroyed) await timeout(dm.destroy(), DESTROY_MS, 'destroying the destination');
    }
  }

  test('RUN again pauses instead of failing; destroying the machine then ends the load and frees blocked vCPUs', async () => {
    await pausesThenDestroyed(command(MIG_CMD.POSTCOPY_RUN), /section 'command', field 'POSTCOPY_RUN', stream offset \d+: POSTCOPY_RUN in postcopy state running/);
  });

  test('EOF with pages never sent pauses too: the guest needs them', async () => {
    await pausesThenDestroyed(Buffer.from([0x00]), /section 'ram'.*pages never received/);
  });

  test('a package inside a package is refused', async () => {
    const run = find('POSTCOPY_RUN', 1);
    const inner = command(MIG_CMD.PACKAGED, be32(5));
    await refused(repackage((blob, rel) => splice(blob, rel(run), 0, inner, command(MIG_CMD.POSTCOPY_RUN))), 'PACKAGED', /inside a package/, { at: run.offset });
  });

  test('the package\'s commands inline, without PACKAGED: RUN does not end the load, which completes', async () => {
    const p = find('PACKAGED');
    const inline = splice(stream, p.offset, 9);
    const r = await load(inline);
    expect(r.error).toBeNull();
    expect(r.status).toBe('completed');
  });
});
