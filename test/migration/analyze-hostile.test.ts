/**
 * Hostile and damaged streams: each fails with an AnalyzeError whose code says what kind of
 * damage, naming where (section, field, offset) — wrong magic and version, unknown section
 * types, bad footers, commands, RAM records and block lists, over-limit lengths, corrupt
 * vmdescs, PACKAGED blobs. Streams are built byte by byte here, or damaged copies of one
 * livemig wrote.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { analyzeStream, bytesInput, renderStateJson, DEVICE_VALUES_MAX, type AnalyzeResult } from '../../lib/migration/analyze';
import { smallStream, type SmallStream } from './analyze-helpers';

const analyze = (b: Uint8Array) => analyzeStream(bytesInput(b));

/** A stream written by hand, big-endian. */
class B {
  private readonly parts: Buffer[] = [];
  u8(v: number): this {
    this.parts.push(Buffer.of(v));
    return this;
  }
  be16(v: number): this {
    const b = Buffer.alloc(2);
    b.writeUInt16BE(v);
    this.parts.push(b);
    return this;
  }
  be32(v: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(v >>> 0);
    this.parts.push(b);
    return this;
  }
  be64(v: number | bigint): this {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(BigInt(v));
    this.parts.push(b);
    return this;
  }
  str(s: string): this {
    return this.u8(s.length).raw(Buffer.from(s, 'latin1'));
  }
  raw(b: Uint8Array): this {
    this.parts.push(Buffer.from(b));
    return this;
  }
  bytes(): Buffer {
    return Buffer.concat(this.parts);
  }
}

const PAGE = 4096;

function header(b = new B(), caps: string[] = []): B {
  b.be32(0x5145564d).be32(3).u8(0x07).be32(8).raw(Buffer.from('virt-2.0'));
  if (caps.length) {
    b.u8(0x05).str('configuration/capabilities').be32(1).be32(caps.length);
    for (const c of caps) b.str(c);
  }
  return b;
}

/** RAM START (section id 3) with the given blocks, then EOS and footer. */
function ramStart(b: B, blocks: [string, number][], opts: { version?: number; total?: number; mr?: boolean } = {}): B {
  b.u8(0x01).be32(3).str('ram').be32(0).be32(opts.version ?? 4);
  b.be64((opts.total ?? blocks.reduce((n, [, s]) => n + s, 0)) + 0x04);
  for (const [name, size] of blocks) {
    b.str(name).be64(size);
    if (opts.mr) b.be64(0x8000_0000);
  }
  return b.be64(0x10).u8(0x7e).be32(3);
}

function ramPart(b: B, records: (b: B) => void, id = 3): B {
  b.u8(0x02).be32(id);
  records(b);
  return b.be64(0x10).u8(0x7e).be32(id);
}

function page(b: B, offset: number, block: string | null, fill = 0x5a): B {
  b.be64(offset + 0x08 + (block === null ? 0x20 : 0));
  if (block !== null) b.str(block);
  return b.raw(Buffer.alloc(PAGE, fill));
}

function zero(b: B, offset: number, block: string | null, fillByte = 0): B {
  b.be64(offset + 0x02 + (block === null ? 0x20 : 0));
  if (block !== null) b.str(block);
  return b.u8(fillByte);
}

/** A well-formed stream around `records`: one 8 KiB block "m". */
function ramStream(records: (b: B) => void, caps: string[] = []): Buffer {
  const b = ramStart(header(new B(), caps), [['m', 2 * PAGE]], { mr: caps.includes('x-ignore-shared') });
  return ramPart(b, records).u8(0x00).bytes();
}

async function code(b: Uint8Array): Promise<string> {
  return analyze(b).then(
    () => 'resolved',
    (e) => (e.name === 'AnalyzeError' ? e.code : `not an AnalyzeError: ${e}`),
  );
}

test('a well-formed hand-made stream analyses', async () => {
  const r = await analyze(ramStream((b) => {
    page(b, 0, 'm');
    zero(b, PAGE, null);
    page(b, 0, null, 0x11);
    b.be64(0x200); // MULTIFD_FLUSH
    b.be64(PAGE + 0x40).str('m').u8(0x01).be16(3).raw(Buffer.of(0, 1, 9)); // XBZRLE
  }));
  expect(r.ram!.blocks[0]).toMatchObject({ normal: 2, zero: 1, xbzrle: 1, resent: 2, received: 2 });
  expect(r.ram!.flushes).toBe(1);
});

describe('header', () => {
  test.each([
    ['empty', Buffer.alloc(0), 'EANALYZE_TRUNCATED'],
    ['magic', Buffer.from('QEMU\0\0\0\x03'), 'EANALYZE_HEADER'],
    ['version 2', new B().be32(0x5145564d).be32(2).bytes(), 'EANALYZE_HEADER'],
    ['version 4', new B().be32(0x5145564d).be32(4).bytes(), 'EANALYZE_HEADER'],
    ['header only', new B().be32(0x5145564d).be32(3).bytes(), 'EANALYZE_TRUNCATED'],
    ['text', Buffer.from('{"not": "a migration stream"}\n'), 'EANALYZE_HEADER'],
  ])('%s', async (_n, bytes, want) => {
    expect(await code(bytes)).toBe(want);
  });

  test('the error names the offset', async () => {
    await expect(analyze(new B().be32(0x5145564d).be32(7).bytes())).rejects.toMatchObject({ position: 4, message: expect.stringMatching(/^offset 4: invalid file version 7/) });
  });
});

describe('framing', () => {
  test.each([
    ['unknown section type', header().u8(0x09).bytes(), 'EANALYZE_SECTION'],
    ['subsection marker at top level', ramStart(header(), [['m', PAGE]]).u8(0x05).bytes(), 'EANALYZE_SECTION'],
    ['footer outside a section', header().u8(0x7e).be32(0).u8(0).bytes(), 'EANALYZE_FOOTER'],
    ['PART of a section never opened', header().u8(0x02).be32(9).bytes(), 'EANALYZE_SECTION'],
    ['second configuration', header().u8(0x07).be32(4).raw(Buffer.from('virt')).bytes(), 'EANALYZE_CONFIG'],
    ['configuration name length', new B().be32(0x5145564d).be32(3).u8(0x07).be32(0xffffff00).bytes(), 'EANALYZE_LIMIT'],
    ['unknown configuration subsection', new B().be32(0x5145564d).be32(3).u8(7).be32(4).raw(Buffer.from('virt')).u8(5).str('configuration/x').be32(1).u8(0).bytes(), 'EANALYZE_CONFIG'],
    ['mapped-ram', header(new B(), ['mapped-ram']).u8(0).bytes(), 'EANALYZE_CONFIG'],
    ['capability count', new B().be32(0x5145564d).be32(3).u8(7).be32(4).raw(Buffer.from('virt')).u8(5).str('configuration/capabilities').be32(1).be32(1e6).bytes(), 'EANALYZE_LIMIT'],
    ['iterative section other than RAM', header().u8(0x01).be32(1).str('block').be32(0).be32(1).bytes(), 'EANALYZE_UNKNOWN'],
    ['RAM as a FULL section', header().u8(0x04).be32(1).str('ram').be32(0).be32(4).bytes(), 'EANALYZE_SECTION'],
    ['EOF missing', header().bytes(), 'EANALYZE_TRUNCATED'],
  ])('%s', async (_n, bytes, want) => {
    expect(await code(bytes)).toBe(want);
  });

  test('a footer naming another section', async () => {
    const b = ramStart(header(), [['m', PAGE]]).bytes();
    b.writeUInt32BE(4, b.length - 4);
    await expect(analyze(Buffer.concat([b, Buffer.of(0)]))).rejects.toMatchObject({ code: 'EANALYZE_FOOTER', section: 'ram', sectionId: 3 });
  });

  test('footers are optional (send-section-footer=off)', async () => {
    const b = new B().be32(0x5145564d).be32(3).u8(0x07).be32(4).raw(Buffer.from('virt'));
    b.u8(0x01).be32(3).str('ram').be32(0).be32(4).be64(PAGE + 4).str('m').be64(PAGE).be64(0x10);
    b.u8(0x03).be32(3);
    page(b, 0, 'm');
    b.be64(0x10).u8(0);
    const r = await analyze(b.bytes());
    expect(r.ram!.blocks[0].normal).toBe(1);
  });

  test('trailing bytes after EOF are counted, not an error', async () => {
    const r = await analyze(Buffer.concat([ramStream(() => undefined), Buffer.from('junk')]));
    expect(r.trailingBytes).toBe(4);
  });
});

describe('commands', () => {
  const cmd = (c: number, payload: Buffer, len = payload.length) => header().u8(0x08).be16(c).be16(len).raw(payload).u8(0).bytes();
  test.each([
    ['command 0', cmd(0, Buffer.alloc(0)), 'EANALYZE_COMMAND'],
    ['command 12', cmd(12, Buffer.alloc(0)), 'EANALYZE_COMMAND'],
    ['PING of 5 bytes', cmd(2, Buffer.alloc(5)), 'EANALYZE_COMMAND'],
    ['OPEN_RETURN_PATH with payload', cmd(1, Buffer.alloc(1)), 'EANALYZE_COMMAND'],
    ['payload cut short', header().u8(0x08).be16(6).be16(200).raw(Buffer.alloc(10)).bytes(), 'EANALYZE_TRUNCATED'],
    ['RAM_DISCARD length', cmd(6, Buffer.from([0, 1, 0x6d, 0, 1, 2])), 'EANALYZE_COMMAND'],
    ['ADVISE with huge pages', cmd(3, new B().be64(0x201000).be64(PAGE).bytes()), 'EANALYZE_RAM'],
    ['PACKAGED over its limit', cmd(7, new B().be32(0x7fffffff).bytes()), 'EANALYZE_LIMIT'],
    ['PACKAGED blob cut short', cmd(7, new B().be32(100).bytes()), 'EANALYZE_TRUNCATED'],
  ])('%s', async (_n, bytes, want) => {
    expect(await code(bytes)).toBe(want);
  });

  test('a PACKAGED blob is parsed as the nested stream it is, at outer offsets', async () => {
    const inner = new B().u8(0x08).be16(4).be16(0); // LISTEN
    inner.u8(0x04).be32(5).str('globalstate').be32(0).be32(1).be32(7).raw(Buffer.concat([Buffer.from('paused'), Buffer.alloc(94)])).u8(0x7e).be32(5);
    inner.u8(0x08).be16(2).be16(4).be32(3); // PING 3
    inner.u8(0x08).be16(5).be16(0); // RUN
    const blob = inner.bytes();
    const b = header().u8(0x08).be16(3).be16(16).be64(PAGE).be64(PAGE).u8(0x08).be16(7).be16(4).be32(blob.length).raw(blob).u8(0).bytes();
    const r = await analyze(b);
    const pkg = r.records.find((x) => x.name === 'PACKAGED')!;
    expect(pkg.length).toBe(9 + blob.length);
    const full = r.records.find((x) => x.kind === 'full')!;
    expect(full).toMatchObject({ idstr: 'globalstate', depth: 1, offset: pkg.offset + 9 + 5, decodedBy: 'livemig' });
    expect(JSON.parse(renderStateJson(r))['globalstate (5)'].size).toBe('0x00000007');
    expect(r.records.filter((x) => x.depth === 1).map((x) => x.name ?? x.kind)).toEqual(['POSTCOPY_LISTEN', 'full', 'PING', 'POSTCOPY_RUN']);

    const broken = Buffer.from(b);
    const at = b.indexOf(Buffer.from('globalstate')) - 1;
    broken[at] = 255; // idstr length runs past the blob
    await expect(analyze(broken)).rejects.toMatchObject({ code: 'EANALYZE_TRUNCATED', message: expect.stringContaining('in a PACKAGED blob') });
    const e = await analyze(broken).catch((x) => x);
    expect(e.position).toBeGreaterThan(pkg.offset);
  });
});

describe('RAM records and block lists', () => {
  test.each([
    ['page outside its block', (b: B) => page(b, 2 * PAGE, 'm'), 'EANALYZE_RAM'],
    ['CONTINUE before any block', (b: B) => page(b, 0, null), 'EANALYZE_RAM'],
    ['unknown block', (b: B) => page(b, 0, 'n'), 'EANALYZE_RAM'],
    ['zero page with a fill byte', (b: B) => zero(b, 0, 'm', 7), 'EANALYZE_RAM'],
    ['HOOK flag', (b: B) => b.be64(0x80), 'EANALYZE_RAM'],
    ['COMPRESS_PAGE flag', (b: B) => b.be64(0x100).str('m'), 'EANALYZE_RAM'],
    ['ZERO|PAGE', (b: B) => b.be64(0x0a).str('m'), 'EANALYZE_RAM'],
    ['EOS|CONTINUE', (b: B) => b.be64(0x30), 'EANALYZE_RAM'],
    ['XBZRLE encoding flag', (b: B) => b.be64(0x40).str('m').u8(2).be16(1).u8(0), 'EANALYZE_RAM'],
    ['XBZRLE length', (b: B) => b.be64(0x40).str('m').u8(1).be16(PAGE + 1), 'EANALYZE_LIMIT'],
    ['page cut short', (b: B) => b.be64(0x08).str('m').raw(Buffer.alloc(100)), 'EANALYZE_TRUNCATED'],
  ])('%s', async (_n, records, want) => {
    const b = ramStart(header(), [['m', 2 * PAGE]]).u8(0x02).be32(3);
    records(b);
    expect(await code(b.bytes())).toBe(want);
  });

  test.each([
    ['version 3', ramStart(header(), [['m', PAGE]], { version: 3 }), 'EANALYZE_RAM'],
    ['total over the page limit', ramStart(header(), [['m', PAGE]], { total: 2 ** 50 }), 'EANALYZE_LIMIT'],
    ['block longer than the total', ramStart(header(), [['m', 2 * PAGE]], { total: PAGE }), 'EANALYZE_RAM'],
    ['block listed twice', ramStart(header(), [['m', PAGE], ['m', PAGE]]), 'EANALYZE_RAM'],
    ['empty block name', ramStart(header(), [['', PAGE]]), 'EANALYZE_RAM'],
    ['block length not a safe integer', header().u8(1).be32(3).str('ram').be32(0).be32(4).be64(PAGE + 4).str('m').be64(2n ** 60n), 'EANALYZE_LIMIT'],
    ['list cut short', header().u8(1).be32(3).str('ram').be32(0).be32(4).be64(PAGE + 4).str('m'), 'EANALYZE_TRUNCATED'],
  ])('%s', async (_n, b, want) => {
    expect(await code(b.u8(0).bytes())).toBe(want);
  });

  test('x-ignore-shared: each block carries its address', async () => {
    const r = await analyze(ramStream((b) => page(b, 0, 'm'), ['x-ignore-shared']));
    expect(r.configuration!.capabilities).toEqual(['x-ignore-shared']);
    expect(r.ram!.blocks[0]).toMatchObject({ mrAddr: 0x8000_0000, normal: 1 });
  });

  test('XBZRLE pages cannot be extracted', async () => {
    const bytes = ramStream((b) => b.be64(0x40).str('m').u8(1).be16(0));
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'livemig-analyze-'));
    await expect(analyzeStream(bytesInput(bytes), { extractDir: dir })).rejects.toMatchObject({ code: 'EANALYZE_RAM' });
    fs.rmSync(dir, { recursive: true });
  });
});

describe('corrupt vmdesc', () => {
  let s: SmallStream;
  let r: AnalyzeResult;
  beforeAll(async () => {
    s = await smallStream({ kib: 16 });
    r = await analyze(s.bytes);
  });

  /** The stream with its vmdesc replaced by `json`. */
  function withVmdesc(json: string | object): Buffer {
    const text = Buffer.from(typeof json === 'string' ? json : JSON.stringify(json), 'latin1');
    return Buffer.concat([s.bytes.subarray(0, r.vmdescOffset!), new B().u8(0x06).be32(text.length).bytes(), text]);
  }
  const desc = () => JSON.parse(s.bytes.subarray(r.vmdescOffset! + 5).toString('latin1'));
  const toy = (fields: unknown[], extra: object = {}) => ({ ...desc(), devices: [{ name: 'toy', instance_id: 0, vmsd_name: 'toy', version: 2, fields, ...extra }] });

  test.each([
    ['not JSON', '{"page_size": 4096, "devices": [', 'EANALYZE_VMDESC'],
    ['no devices', '{"page_size": 4096}', 'EANALYZE_VMDESC'],
    ['a device without fields', { page_size: 4096, devices: [{ name: 'toy', instance_id: 0 }] }, 'EANALYZE_VMDESC'],
    ['page size 3000', { page_size: 3000, devices: [] }, 'EANALYZE_VMDESC'],
    ['negative size', () => toy([{ name: 'a', type: 'uint32', size: -1 }]), 'EANALYZE_LIMIT'],
    ['a size of a terabyte', () => toy([{ name: 'a', type: 'buffer', size: 2 ** 40 }]), 'EANALYZE_LIMIT'],
    ['array_len of a billion', () => toy([{ name: 'a', type: 'uint8', size: 1, array_len: 1e9 }]), 'EANALYZE_VMDESC'],
    ['struct without a description', () => toy([{ name: 'a', type: 'struct', size: 4 }]), 'EANALYZE_VMDESC'],
    ['a field without a type', () => toy([{ name: 'a', size: 4 }]), 'EANALYZE_VMDESC'],
    ['more bytes than the section has', () => toy([{ name: 'a', type: 'buffer', size: 1 << 20 }]), 'EANALYZE_TRUNCATED'],
    ['a subsection that is not there', () => toy(desc().devices[0].fields.slice(0, -1).concat([]), { subsections: [{ vmsd_name: 'toy/extra', version: 1, fields: [] }, { vmsd_name: 'toy/more', version: 1, fields: [] }] }), 'EANALYZE_DEVICE'],
    ['a subsection under another name', () => toy(desc().devices[0].fields, { subsections: [{ vmsd_name: 'toy/other', version: 1, fields: [] }] }), 'EANALYZE_DEVICE'],
    ['a nullptr that is not 0x30', () => toy([{ name: 'a', type: 'nullptr', size: 1 }]), 'EANALYZE_DEVICE'],
    ['structs nested a hundred deep', () => {
      let node: object = { vmsd_name: 'x', version: 1, fields: [] };
      for (let i = 0; i < 100; i++) node = { vmsd_name: 'x', version: 1, fields: [{ name: 'n', type: 'struct', struct: node, size: 0 }] };
      return toy((node as { fields: unknown[] }).fields);
    }, 'EANALYZE_LIMIT'],
  ])('%s', async (_n, json, want) => {
    const j = typeof json === 'function' ? json() : json;
    const e = await analyze(withVmdesc(j)).catch((x) => x);
    expect(e.name).toBe('AnalyzeError');
    expect(e.code).toBe(want);
    expect(e.message).not.toContain('\n');
  });

  test('endless empty values stop at the value budget', async () => {
    const j = toy(Array.from({ length: 8 }, (_, i) => ({ name: `z${i}`, type: 'unused_buffer', size: 0, array_len: 1 << 20 })));
    const e = await analyze(withVmdesc(j)).catch((x) => x);
    expect(e.code).toBe('EANALYZE_LIMIT');
    expect(e.message).toContain(`more than ${DEVICE_VALUES_MAX} device-state values`);
  });

  test('a vmdesc length over the limit after EOF', async () => {
    const b = Buffer.concat([s.bytes.subarray(0, r.vmdescOffset!), new B().u8(0x06).be32(0xffffffff).bytes(), Buffer.from('{}')]);
    // Not found at the end (its length does not fit), so "toy" has nothing to decode it.
    expect(await code(b)).toBe('EANALYZE_UNKNOWN');
  });
});
