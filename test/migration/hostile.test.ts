/**
 * Hostile incoming streams against a real machine: a valid stream saved from a running guest is
 * corrupted in every way the loader must refuse — truncated at every record boundary, wrong
 * magic or version, unknown section, unknown subsection, version out of range, a RAM offset
 * outside its block, a bogus idstr length, a wrong footer, an unknown section type or command —
 * and mutated at random. Every case fails with a MigrationError whose code is the right one and
 * whose message names a stream offset; nothing hangs, nothing else is thrown.
 */
import * as fs from 'node:fs';
import { VirtMachine } from '../../lib/machine/virt';
import { analyzeStream, bytesInput, type StreamRecord } from '../../lib/migration/analyze';
import { MigrationError } from '../../lib/migration/errors';
import { IncomingMigration } from '../../lib/migration/incoming';
import { OutgoingMigration } from '../../lib/migration/outgoing';
import { MigrationOptions } from '../../lib/migration/options';
import { MigrationRunState } from '../../lib/migration/run-state';
import { MigrationState } from '../../lib/migration/state';
import { chunkSource, memoryChannelPair, type ByteChannel } from '../../lib/stream';
import { guest } from '../e2e/helpers';

const MiB = 2 ** 20;
let src: VirtMachine;
let dst: VirtMachine;
let stream: Buffer;
let records: StreamRecord[];

/** A channel that plays `bytes` as the incoming stream and swallows the return path. */
function replay(bytes: Uint8Array): ByteChannel {
  const source = chunkSource([bytes]);
  return {
    read: () => source.read(),
    write: () => true,
    drain: async () => {},
    end: async () => {},
    destroy: () => {},
  };
}

async function load(bytes: Uint8Array): Promise<MigrationError | null> {
  const inc = new IncomingMigration({ machine: dst, options: new MigrationOptions(), vm: new MigrationRunState(dst), state: new MigrationState(), startPaused: true });
  const r = await inc.run(replay(bytes));
  return r.ok ? null : r.error!;
}

async function expectRefused(bytes: Uint8Array, code: string, detail?: RegExp): Promise<MigrationError> {
  const err = await load(bytes);
  expect(err).toBeInstanceOf(MigrationError);
  expect(err!.code).toBe(code);
  expect(err!.message).toMatch(/stream offset \d+/);
  if (detail) expect(err!.message).toMatch(detail);
  return err!;
}

function patch(at: number, ...bytes: number[]): Buffer {
  const b = Buffer.from(stream);
  bytes.forEach((x, i) => (b[at + i] = x));
  return b;
}

const find = (pred: (r: StreamRecord) => boolean) => {
  const r = records.find(pred);
  if (!r) throw new Error('record not found');
  return r;
};

beforeAll(async () => {
  src = await VirtMachine.create({ memSize: 16 * MiB, smp: 2, kernel: fs.readFileSync(guest('ab')), append: 'size=2M' });
  dst = await VirtMachine.create({ memSize: 16 * MiB, smp: 2 });
  src.cont();
  await new Promise((r) => setTimeout(r, 300));
  const [a, b] = memoryChannelPair({ highWaterMark: 64 * MiB });
  const options = new MigrationOptions();
  options.setParameters({ 'max-bandwidth': 0 });
  await new OutgoingMigration({ machine: src, options, vm: new MigrationRunState(src), state: new MigrationState(), connect: async () => a }).run({
    transport: 'socket',
    type: 'unix',
    path: 'memory',
  });
  const chunks: Uint8Array[] = [];
  for (let c = await b.read(); c; c = await b.read()) chunks.push(c);
  stream = Buffer.concat(chunks);
  records = (await analyzeStream(bytesInput(stream))).records as StreamRecord[];
}, 60000);

afterAll(async () => {
  await src?.destroy();
  await dst?.destroy();
});

test('the untouched stream loads', async () => {
  expect(await load(stream)).toBeNull();
});

test('truncated at every record boundary (and one byte either side) fails as truncated', async () => {
  const eof = find((r) => r.kind === 'eof');
  const cuts = new Set<number>();
  for (const r of records) {
    if (r.offset >= eof.offset) continue;
    for (const d of [-1, 0, 1, 5]) if (r.offset + d > 0) cuts.add(r.offset + d);
  }
  expect(cuts.size).toBeGreaterThan(20);
  for (const cut of cuts) {
    const err = await load(stream.subarray(0, cut));
    expect(err).toBeInstanceOf(MigrationError);
    expect(['EMIG_TRUNCATED', 'EMIG_HEADER', 'EMIG_CONFIG']).toContain(err!.code);
  }
});

test('wrong magic, the obsolete version 2, an unknown version', async () => {
  await expectRefused(patch(0, 0x51, 0x45, 0x56, 0x4e), 'EMIG_HEADER', /magic/);
  await expectRefused(patch(4, 0, 0, 0, 2), 'EMIG_HEADER', /v2 format is obsolete/);
  await expectRefused(patch(4, 0, 0, 0, 4), 'EMIG_HEADER', /version 4/);
});

test('an unknown section, a section version too new, a wrong footer', async () => {
  const serial = find((r) => r.idstr === 'serial');
  // idstr "serial" → "serjal": not a section we have.
  await expectRefused(patch(serial.offset + 6 + 3, 'j'.charCodeAt(0)), 'EMIG_SECTION_UNKNOWN', /serjal/);
  // version_id is the be32 after idstr and instance id.
  const ver = serial.offset + 6 + 'serial'.length + 4;
  await expectRefused(patch(ver, 0, 0, 0, 99), 'EMIG_VERSION', /unsupported version 99/);
  // The footer follows the 11-byte body (after the header of 1+4+1+6+4+4 bytes).
  const footer = serial.offset + serial.length - 5;
  expect(stream[footer]).toBe(0x7e);
  await expectRefused(patch(footer + 4, stream[footer + 4] ^ 1), 'EMIG_FOOTER');
  await expectRefused(patch(footer, 0x7f), 'EMIG_FOOTER', /missing section footer/);
});

test('an unknown subsection is refused, naming the section', async () => {
  const mtimer = find((r) => r.idstr === 'riscv_mtimer');
  const at = stream.indexOf(Buffer.from('riscv_mtimer/time'), mtimer.offset);
  expect(at).toBeGreaterThan(0);
  const err = await expectRefused(patch(at + 'riscv_mtimer/'.length, 'x'.charCodeAt(0)), 'EMIG_DEVICE', /riscv_mtimer/);
  expect(err.message).toMatch(/subsection/i);
});

test('a RAM offset outside its block, bad flags, a bogus block name', async () => {
  const part = find((r) => r.kind === 'part');
  // First record of the first PART: be64 (offset | flags) + idstr.
  const rec = part.offset + 5;
  const hi = patch(rec, 0, 0, 0, 0x10); // offset + 2^36: far outside a 16 MiB block
  await expectRefused(hi, 'EMIG_RAM', /Illegal RAM offset/);
  await expectRefused(patch(rec + 7, 0x48), 'EMIG_RAM', /flags/); // PAGE | HOOK
  const name = stream.indexOf(Buffer.from('riscv_virt_board.ram'), rec);
  await expectRefused(patch(name + 2, 'X'.charCodeAt(0)), 'EMIG_RAM', /Unknown ramblock/);
  await expectRefused(patch(name - 1, 200), 'EMIG_RAM', /Unknown ramblock|flags|offset/);
});

test('an unknown section type and an invalid command', async () => {
  const part = find((r) => r.kind === 'part');
  await expectRefused(patch(part.offset, 0x42), 'EMIG_SECTION_TYPE', /section type 66/);
  await expectRefused(patch(part.offset, 0x08, 0x00, 0x63, 0, 0), 'EMIG_COMMAND', /Invalid command 99/);
  await expectRefused(patch(part.offset, 0x08, 0x00, 0x02, 0, 9), 'EMIG_COMMAND', /bad length 9/);
});

const FUZZ = Number(process.env.LIVEMIG_FUZZ_ITERATIONS ?? 150);

test('random mutations fail with typed errors or load, and never hang', async () => {
  let seed = 12345;
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const n = FUZZ;
  const head = find((r) => r.kind === 'part').offset + 64;
  const tail = find((r) => r.kind === 'end').offset;
  for (let i = 0; i < n; i++) {
    const b = Buffer.from(stream);
    // Aim at the interesting parts: headers, block list, the last records and device state.
    const at = i % 2 ? rnd(head) : tail + rnd(stream.length - tail);
    const kind = rnd(3);
    let input: Buffer = b;
    if (kind === 0) b[at] ^= 1 << rnd(8);
    else if (kind === 1) input = b.subarray(0, at);
    else input = Buffer.concat([b.subarray(0, at), Buffer.from([rnd(256), rnd(256)]), b.subarray(at)]);
    const err = await load(input);
    if (err) {
      expect(err).toBeInstanceOf(MigrationError);
      expect(typeof err.code).toBe('string');
    }
  }
}, Math.max(120000, FUZZ * 100));
