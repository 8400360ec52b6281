/**
 * livemig-analyze's engine: one streaming pass over a savevm stream (layout in
 * ../savevm.ts), the counterpart of QEMU's scripts/analyze-migration.py.
 *
 *   header ─ configuration ─ { START | PART | END | FULL | COMMAND }* ─ EOF ─ [vmdesc] ─ end
 *
 * - Sections are framed as QEMU frames them (footers optional, but a footer must name the
 *   section it closes); RAM records are counted by ram.ts; FULL bodies are decoded by the
 *   stream's vmdesc when it has one (decode-vmdesc.ts), else by livemig's own descriptions
 *   (decode-vmsd.ts), else the analysis stops: a body has no length, so an undescribed section
 *   cannot be skipped.
 * - The vmdesc sits after EOF but is needed at the first FULL section. A plain file's tail is
 *   read up front; for a compressed one the reader first buffers ahead (PREFETCH, enough for
 *   the device sections that follow RAM), and only if the end is still not in sight is the file
 *   read a second time for its tail.
 * - Commands are checked (number, length) and recorded; a PACKAGED blob (postcopy) is parsed
 *   as the nested stream it is, with offsets of the outer stream.
 * - Everything read from the file is bounded before it is used: section and record counts,
 *   lengths (lib/stream/limits.ts), decoded device state (decode-common.ts), RAM (ram.ts).
 */
import { PACKAGED_MAX, QemuFileReader, VMDESC_JSON_MAX } from '../../stream';
import type { VmdescDevice } from '../../vmstate';
import { MIG_CMD, MIG_CMD_LEN, MIG_CMD_NAMES, QEMU_VM_COMMAND, QEMU_VM_CONFIGURATION, QEMU_VM_EOF, QEMU_VM_FILE_MAGIC, QEMU_VM_FILE_VERSION, QEMU_VM_FILE_VERSION_COMPAT, QEMU_VM_SECTION_END, QEMU_VM_SECTION_FOOTER, QEMU_VM_SECTION_FULL, QEMU_VM_SECTION_PART, QEMU_VM_SECTION_START, QEMU_VM_VMDESCRIPTION, RAM_IDSTR } from '../wire';
import { decodeConfiguration } from './configuration';
import { charge, newBudget, type DecodeBudget, type DecodeCtx } from './decode-common';
import { decodeByVmdesc } from './decode-vmdesc';
import { decodeByVmsd } from './decode-vmsd';
import { AnalyzeError, type AnalyzeErrorCode } from './errors';
import { BlockExtractor } from './extract';
import type { StreamInput } from './input';
import { LivemigDescriptions } from './livemig-sections';
import { RamAnalyzer, checkRamVersion } from './ram';
import type { AnalyzeResult, StreamRecord } from './types';
import type { StateDict } from './values';
import { locateVmdesc, parseVmdescChecked, VMDESC_TAIL_MAX } from './vmdesc-find';

/** Records kept in the result; later ones are only counted. */
export const RECORDS_MAX = 1 << 20;
/** How far a compressed stream is read ahead to find its end (and vmdesc) in one pass. */
export const PREFETCH = 64 << 20;
/** Target page size when neither vmdesc nor configuration says (riscv, x86: 4 KiB). */
export const DEFAULT_PAGE_SIZE = 4096;

export interface AnalyzeOptions {
  /** Stop after the header and the vmdesc (-d desc). */
  descOnly?: boolean;
  /** Write each RAM block's final contents to DIR/<idstr>.bin. */
  extractDir?: string;
  /** Called for every record as it is read (e.g. to print -d sections without keeping them). */
  onRecord?: (r: StreamRecord) => void;
}

interface OpenSection {
  readonly idstr: string;
  readonly instanceId: number;
  readonly versionId: number;
  readonly ram: RamAnalyzer | null;
}

export async function analyzeStream(input: StreamInput, opts: AnalyzeOptions = {}): Promise<AnalyzeResult> {
  const a = new Analyzer(input, opts);
  try {
    return await a.run();
  } finally {
    a.extractor?.close();
    await input.close();
  }
}

class Analyzer {
  readonly f: QemuFileReader;
  readonly extractor: BlockExtractor | undefined;
  private readonly result: AnalyzeResult;
  private readonly budget: DecodeBudget = newBudget();
  private readonly open = new Map<number, OpenSection>();
  private readonly devices = new Map<string, VmdescDevice>();
  private vmdescLooked = false;
  private livemig = new LivemigDescriptions();
  private ram: RamAnalyzer | null = null;
  private pageSizeFixed = false;

  constructor(
    private readonly input: StreamInput,
    private readonly opts: AnalyzeOptions,
  ) {
    this.f = new QemuFileReader(input.source);
    this.extractor = opts.extractDir !== undefined ? new BlockExtractor(opts.extractDir) : undefined;
    this.result = {
      name: input.name, version: 0, configuration: null, vmdesc: null, vmdescOffset: null, pageSize: DEFAULT_PAGE_SIZE,
      records: [], recordsDropped: 0, state: new Map(), ram: null, eofOffset: null, streamBytes: 0, trailingBytes: 0,
      extracted: this.extractor ? this.extractor.files : [],
    };
  }

  async run(): Promise<AnalyzeResult> {
    await this.header();
    if (this.opts.descOnly) {
      await this.vmdesc(true);
      return this.result;
    }
    // A plain file's tail costs one read: know the vmdesc (and its page size) from the start.
    if (!this.input.compressed) await this.vmdesc(false);
    await this.loop(this.f, 0, 0);
    await this.afterEof();
    this.extractor?.flush();
    this.ramState();
    this.result.streamBytes = this.f.position;
    return this.result;
  }

  /** analyze-migration.py's RAM entry: {"section sizes": {block: "0x%016x"}}. */
  private ramState(): void {
    const ram = this.result.ram;
    if (!ram) return;
    const sizes: StateDict = new Map();
    for (const b of ram.blocks) {
      const bytes = new Uint8Array(8);
      new DataView(bytes.buffer).setBigUint64(0, BigInt(b.size));
      sizes.set(b.idstr, { type: 'uint64', bytes });
    }
    this.result.state.set(`${RAM_IDSTR} (${ram.sectionId})`, new Map([['section sizes', sizes]]));
  }

  private fail(code: AnalyzeErrorCode, detail: string, position: number, section?: string, sectionId?: number): never {
    throw new AnalyzeError(code, detail, { section, sectionId, position });
  }

  /** Positions in errors are the reader's; a PACKAGED blob's reader starts at 0, and
   * packaged() moves its errors to outer-stream offsets. */
  private async need(f: QemuFileReader, n: number, what: string, section?: string): Promise<void> {
    if (f.has(n)) return;
    await f.fill(n);
    if (f.has(n)) return;
    if (f.error) this.fail('EANALYZE_IO', `read failed: ${f.error.message}`, f.position, section);
    this.fail('EANALYZE_TRUNCATED', `stream ended while reading ${what}`, f.position, section);
  }

  private record(r: StreamRecord): void {
    this.opts.onRecord?.(r);
    if (this.result.records.length < RECORDS_MAX) this.result.records.push(r);
    else this.result.recordsDropped++;
  }

  private async header(): Promise<void> {
    const f = this.f;
    await this.need(f, 8, 'the file header');
    const magic = f.getBe32();
    if (magic !== QEMU_VM_FILE_MAGIC) this.fail('EANALYZE_HEADER', `invalid file magic 0x${magic.toString(16)} (expected 0x5145564d "QEVM")`, 0);
    const version = f.getBe32();
    if (version === QEMU_VM_FILE_VERSION_COMPAT) this.fail('EANALYZE_HEADER', 'file version 2 is obsolete', 4);
    if (version !== QEMU_VM_FILE_VERSION) this.fail('EANALYZE_HEADER', `invalid file version ${version} (expected ${QEMU_VM_FILE_VERSION})`, 4);
    this.result.version = version;
    this.record({ kind: 'header', offset: 0, length: 8 });
  }

  /** Find the vmdesc at the end of the stream (once). `mustExist`: fail if there is none. */
  private async vmdesc(mustExist: boolean): Promise<void> {
    if (!this.vmdescLooked) {
      this.vmdescLooked = true;
      let tail = await this.input.knownTail(VMDESC_TAIL_MAX);
      if (!tail) {
        await this.f.fill(PREFETCH);
        tail = (await this.input.knownTail(VMDESC_TAIL_MAX)) ?? (await this.input.readTail(VMDESC_TAIL_MAX));
      }
      const found = locateVmdesc(tail);
      if (found) this.useVmdesc(found.json, found.offset);
    }
    if (mustExist && !this.result.vmdesc) this.fail('EANALYZE_VMDESC', 'the stream has no vmdesc (QEMU_VM_VMDESCRIPTION) at its end', this.f.position);
  }

  private useVmdesc(json: Uint8Array, offset: number): void {
    const v = parseVmdescChecked(json, offset);
    this.result.vmdesc = v;
    this.result.vmdescOffset = offset;
    for (const d of v.devices) this.devices.set(`${d.name}\0${d.instance_id}`, d);
    if (v.page_size !== undefined) {
      if (this.pageSizeFixed && v.page_size !== this.result.pageSize) {
        this.fail('EANALYZE_VMDESC', `vmdesc page_size ${v.page_size} differs from ${this.result.pageSize}, with which RAM was already read (decompress the file and analyze it again)`, offset);
      }
      this.result.pageSize = v.page_size;
    }
  }

  private ctx(f: QemuFileReader, section: string, sectionId?: number): DecodeCtx {
    return { f, section, sectionId, budget: this.budget };
  }

  /** Top-level records until EOF (depth 0), or to the end of a PACKAGED blob (depth 1). */
  private async loop(f: QemuFileReader, base: number, depth: number): Promise<void> {
    let first = true;
    for (;;) {
      if (depth > 0 && (await f.atEnd())) return;
      await this.need(f, 1, 'a section type');
      const at = f.position;
      const type = f.getU8();
      switch (type) {
        case QEMU_VM_CONFIGURATION:
          if (!first || depth > 0) this.fail('EANALYZE_CONFIG', 'configuration section after the first record', at);
          await this.configuration(f, at);
          break;
        case QEMU_VM_SECTION_START:
        case QEMU_VM_SECTION_FULL:
          await this.sectionFull(f, base, depth, type, at);
          break;
        case QEMU_VM_SECTION_PART:
        case QEMU_VM_SECTION_END:
          await this.sectionPart(f, base, depth, type, at);
          break;
        case QEMU_VM_COMMAND:
          if ((await this.command(f, base, depth, at)) === 'quit') return;
          break;
        case QEMU_VM_EOF:
          if (depth > 0) this.fail('EANALYZE_SECTION', 'EOF inside a PACKAGED blob', at);
          this.result.eofOffset = at;
          this.record({ kind: 'eof', offset: at, length: 1 });
          return;
        case QEMU_VM_SECTION_FOOTER:
          this.fail('EANALYZE_FOOTER', 'section footer outside a section', at);
          break;
        default:
          this.fail('EANALYZE_SECTION', `unknown section type ${type}`, at);
      }
      first = false;
    }
  }

  private async configuration(f: QemuFileReader, at: number): Promise<void> {
    const cfg = await decodeConfiguration(this.ctx(f, 'configuration'), this.result.vmdesc?.configuration);
    this.result.configuration = cfg;
    this.livemig = new LivemigDescriptions(cfg.machineType);
    if (cfg.capabilities.includes('mapped-ram')) this.fail('EANALYZE_CONFIG', 'mapped-ram streams are not supported', at, 'configuration');
    if (cfg.targetPageBits !== undefined && !this.result.vmdesc?.page_size) {
      if (cfg.targetPageBits < 10 || cfg.targetPageBits > 16) this.fail('EANALYZE_CONFIG', `target page bits ${cfg.targetPageBits} outside 10..16`, at, 'configuration');
      this.result.pageSize = 2 ** cfg.targetPageBits;
    }
    this.record({ kind: 'configuration', offset: at, length: f.position - at, name: cfg.machineType });
  }

  private async sectionFull(f: QemuFileReader, base: number, depth: number, type: number, at: number): Promise<void> {
    const kind = type === QEMU_VM_SECTION_START ? 'start' : 'full';
    await this.need(f, 6, `the ${kind.toUpperCase()} header`);
    const sectionId = f.getBe32();
    const len = f.peekU8(0);
    await this.need(f, 1 + len + 8, `the ${kind.toUpperCase()} header`);
    const idstr = f.getCounted();
    const instanceId = f.getBe32();
    const versionId = f.getBe32();
    const where = (d: string, code: AnalyzeErrorCode = 'EANALYZE_SECTION'): never => this.fail(code, d, at, idstr, sectionId);
    const isRam = idstr === RAM_IDSTR && instanceId === 0;
    let decodedBy: 'vmdesc' | 'livemig' | undefined;
    if (kind === 'start') {
      if (!isRam) where(`no decoder for the iterative section '${idstr}' instance ${instanceId}`, 'EANALYZE_UNKNOWN');
      if (this.ram) where('a second START for RAM');
      checkRamVersion(versionId, sectionId, at);
      this.ram = new RamAnalyzer(sectionId, versionId, {
        pageSize: this.result.pageSize,
        ignoreShared: this.result.configuration?.capabilities.includes('x-ignore-shared') ?? false,
        extractor: this.extractor,
      });
      this.pageSizeFixed = true;
      this.result.ram = this.ram.stats;
      this.open.set(sectionId, { idstr, instanceId, versionId, ram: this.ram });
      this.ram.stats.starts++;
      // Its place in the state output; the block sizes are filled in at the end.
      this.result.state.set(`${idstr} (${sectionId})`, new Map());
      await this.ram.section(f);
    } else {
      if (isRam) where('RAM sent as a FULL section');
      this.open.set(sectionId, { idstr, instanceId, versionId, ram: null });
      decodedBy = await this.decodeFull(f, sectionId, idstr, instanceId, versionId, at);
    }
    await this.footer(f, sectionId, idstr);
    this.record({ kind, offset: base + at, length: f.position - at, sectionId, idstr, instanceId, versionId, decodedBy, depth: depth || undefined });
  }

  private async decodeFull(f: QemuFileReader, sectionId: number, idstr: string, instanceId: number, versionId: number, at: number): Promise<'vmdesc' | 'livemig'> {
    const ctx = this.ctx(f, idstr, sectionId);
    charge(ctx, 0, idstr);
    await this.vmdesc(false);
    const key = `${idstr} (${sectionId})`;
    const desc = this.devices.get(`${idstr}\0${instanceId}`);
    if (desc) {
      this.result.state.set(key, await decodeByVmdesc(ctx, desc, idstr));
      return 'vmdesc';
    }
    const known = this.livemig.find(idstr, instanceId);
    if (known) {
      this.result.state.set(key, await decodeByVmsd(ctx, known.vmsd, known.shape, versionId, idstr));
      return 'livemig';
    }
    const why = this.result.vmdesc ? 'the vmdesc does not describe it' : 'the stream has no vmdesc';
    return this.fail('EANALYZE_UNKNOWN', `cannot decode instance ${instanceId}: ${why} and livemig has no description of it`, at, idstr, sectionId);
  }

  private async sectionPart(f: QemuFileReader, base: number, depth: number, type: number, at: number): Promise<void> {
    const kind = type === QEMU_VM_SECTION_PART ? 'part' : 'end';
    await this.need(f, 4, `the ${kind.toUpperCase()} header`);
    const sectionId = f.getBe32();
    const s = this.open.get(sectionId);
    if (!s) this.fail('EANALYZE_SECTION', `${kind.toUpperCase()} for section id ${sectionId}, which no START opened`, at);
    if (!s.ram) this.fail('EANALYZE_SECTION', `${kind.toUpperCase()} for the non-iterative section '${s.idstr}'`, at, s.idstr, sectionId);
    if (kind === 'part') s.ram.stats.parts++;
    else s.ram.stats.ends++;
    await s.ram.section(f);
    await this.footer(f, sectionId, s.idstr);
    this.record({ kind, offset: base + at, length: f.position - at, sectionId, idstr: s.idstr, instanceId: s.instanceId, versionId: s.versionId, depth: depth || undefined });
  }

  /** QEMU_VM_SECTION_FOOTER + be32 section id, when present (send-section-footer). */
  private async footer(f: QemuFileReader, sectionId: number, idstr: string): Promise<void> {
    if (!f.has(1) && (await f.fill(1)) < 1) return;
    if (f.peekU8(0) !== QEMU_VM_SECTION_FOOTER) return;
    const at = f.position;
    await this.need(f, 5, 'a section footer', idstr);
    f.skip(1);
    const id = f.getBe32();
    if (id !== sectionId) this.fail('EANALYZE_FOOTER', `mismatched section footer: ${id} closes section ${sectionId}`, at, idstr, sectionId);
  }

  private async command(f: QemuFileReader, base: number, depth: number, at: number): Promise<'quit' | void> {
    await this.need(f, 4, 'a command header');
    const cmd = f.getBe16();
    const len = f.getBe16();
    const name = MIG_CMD_NAMES[cmd] ?? String(cmd);
    const bad = (d: string): never => this.fail('EANALYZE_COMMAND', d, at, 'command');
    if (cmd === MIG_CMD.INVALID || cmd >= MIG_CMD.MAX) bad(`invalid command ${cmd}`);
    const fixed = MIG_CMD_LEN[cmd];
    if (fixed !== undefined && fixed >= 0 && len !== fixed) bad(`command ${name} with length ${len} (expected ${fixed})`);
    await this.need(f, len, `the ${name} payload`, 'command');
    const p = f.getBytes(len);
    let value: number | undefined;
    if (cmd === MIG_CMD.PING || cmd === MIG_CMD.PACKAGED) value = ((p[0] << 24) | (p[1] << 16) | (p[2] << 8) | p[3]) >>> 0;
    if (cmd === MIG_CMD.POSTCOPY_ADVISE) this.checkAdvise(p, at, bad);
    if (cmd === MIG_CMD.POSTCOPY_RAM_DISCARD) {
      // u8 version, cstr8 block, u8 0, then 16-byte ranges (loadvm_postcopy_ram_handle_discard)
      if (len < 20 || len < 3 + p[1] || (len - 3 - p[1]) % 16 !== 0) bad(`RAM_DISCARD with bad length ${len}`);
      value = (len - 3 - p[1]) / 16;
    }
    if (cmd === MIG_CMD.PACKAGED) {
      if (depth > 0) bad('PACKAGED inside a PACKAGED blob');
      if (value! > PACKAGED_MAX) this.fail('EANALYZE_LIMIT', `PACKAGED blob of ${value} bytes over ${PACKAGED_MAX}`, at, 'command');
    }
    this.record({ kind: 'command', offset: base + at, length: f.position - at + (cmd === MIG_CMD.PACKAGED ? value! : 0), name, value, depth: depth || undefined });
    if (cmd === MIG_CMD.PACKAGED) await this.packaged(f, value!);
    // POSTCOPY_RUN ends the parse of a package (loadvm returns LOADVM_QUIT there).
    if (cmd === MIG_CMD.POSTCOPY_RUN && depth > 0) return 'quit';
  }

  private checkAdvise(p: Uint8Array, at: number, bad: (d: string) => never): void {
    if (p.length !== 0 && p.length !== 16) bad(`POSTCOPY_ADVISE with length ${p.length} (expected 0 or 16)`);
    if (p.length === 0) return;
    const dv = new DataView(p.buffer, p.byteOffset, 16);
    const summary = dv.getUint32(0) * 2 ** 32 + dv.getUint32(4);
    const tps = dv.getUint32(8) * 2 ** 32 + dv.getUint32(12);
    // The block list carries a page size for blocks whose page size differs from the host's;
    // which blocks those are is not in the stream.
    if (summary !== tps && summary !== DEFAULT_PAGE_SIZE) this.fail('EANALYZE_RAM', `postcopy with huge-page blocks (page size summary 0x${summary.toString(16)}) is not supported`, at, 'command');
  }

  /** The blob that follows PACKAGED: a nested stream, read whole and parsed. Buffered before
   * anything is allocated for it, so a short file announcing a big blob costs nothing. */
  private async packaged(f: QemuFileReader, size: number): Promise<void> {
    const start = f.position;
    await this.need(f, size, `a PACKAGED blob of ${size} bytes`, 'command');
    const blob = f.getBytes(size);
    const inner = QemuFileReader.fromBytes(blob);
    try {
      await this.loop(inner, start, 1);
    } catch (e) {
      if (!(e instanceof AnalyzeError)) throw e;
      const position = e.position !== undefined ? start + e.position : undefined;
      throw new AnalyzeError(e.code, `in a PACKAGED blob: ${e.detail}`, { section: e.section, sectionId: e.sectionId, field: e.field, position, cause: e });
    }
  }

  /** After EOF: the vmdesc record, then anything left (QEMU ignores both). */
  private async afterEof(): Promise<void> {
    const f = this.f;
    if (await f.atEnd()) return;
    const at = f.position;
    if (f.peekU8(0) === QEMU_VM_VMDESCRIPTION) {
      await this.need(f, 5, 'the vmdesc length', 'vmdesc');
      f.skip(1);
      const len = f.getBe32();
      if (len > VMDESC_JSON_MAX) this.fail('EANALYZE_LIMIT', `vmdesc of ${len} bytes over ${VMDESC_JSON_MAX}`, at, 'vmdesc');
      await this.need(f, len, `the vmdesc (${len} bytes announced)`, 'vmdesc');
      const json = f.getBytes(len);
      if (this.result.vmdescOffset === null) this.useVmdesc(json, at);
      else if (this.result.vmdescOffset !== at) this.fail('EANALYZE_VMDESC', `vmdesc after EOF is not the one at offset ${this.result.vmdescOffset}`, at, 'vmdesc');
      this.record({ kind: 'vmdesc', offset: at, length: 5 + len });
    }
    const rest = f.position;
    while (!(await f.atEnd())) f.skip(f.buffered);
    this.result.trailingBytes = f.position - rest;
  }
}
