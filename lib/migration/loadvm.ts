/**
 * Reading QEMU's savevm stream (migration/savevm.c qemu_loadvm_state). The stream is hostile
 * until proven otherwise: sections are looked up by (idstr, instance_id), versions checked
 * against what we accept, every footer checked against its header, every command's length
 * checked, and every failure names the section, field and stream offset.
 *
 * Layout: see savevm.ts.
 */
import { QemuFileReader, StreamError } from '../stream';
import { VMStateError, vmstateLoad } from '../vmstate';
import { VMSTATE_CONFIGURATION, type ConfigurationState } from './configuration';
import { MigrationError, type MigrationErrorCode } from './errors';
import type { SectionEntry, SectionRegistry } from './registry';
import {
  MIG_CMD,
  MIG_CMD_LEN,
  MIG_CMD_NAMES,
  QEMU_VM_COMMAND,
  QEMU_VM_CONFIGURATION,
  QEMU_VM_EOF,
  QEMU_VM_FILE_MAGIC,
  QEMU_VM_FILE_VERSION,
  QEMU_VM_FILE_VERSION_COMPAT,
  QEMU_VM_SECTION_END,
  QEMU_VM_SECTION_FOOTER,
  QEMU_VM_SECTION_FULL,
  QEMU_VM_SECTION_PART,
  QEMU_VM_SECTION_START,
  QEMU_VM_VMDESCRIPTION,
  SECTION_TYPE_NAMES,
} from './wire';

/** A command arrived (after its length was checked); the payload is `len` bytes. 'quit' ends
 * the package that carried it (QEMU's LOADVM_QUIT: POSTCOPY_RUN ends the package). QEMU's main
 * loop quits too, because its listen thread reads the pages from then on; here the main loop
 * reads them itself, so it goes on. */
export type CommandHandler = (cmd: number, payload: Uint8Array, position: number) => Promise<void | 'quit'> | void | 'quit';

/** The largest PACKAGED blob accepted: it is read whole before it is parsed, and holds only
 * device state (a few KiB here). QEMU's only limit is 4 GiB − 1, which lets a hostile sender
 * force a 4 GiB allocation. */
export const PACKAGED_MAX = 16 * 1024 * 1024;

export interface LoadVmOptions {
  /** The configuration section follows the header (`send-configuration`, default on). */
  expectConfiguration?: boolean;
  /** Every section ends with a footer (`send-section-footer`, default on). */
  expectSectionFooter?: boolean;
  /** Commands other than the ones LoadVm handles itself. Unhandled ones fail the load. */
  onCommand?: CommandHandler;
  /** Called after each section loads (progress, tests). */
  onSection?: (e: SectionEntry, type: number) => void;
}

/** Where a failure points: translate lower layers' errors into MigrationError. */
export function asMigrationError(e: unknown, section?: string, position?: number): MigrationError {
  if (e instanceof MigrationError) return e;
  if (e instanceof VMStateError) {
    const inner = e.cause;
    if (inner instanceof MigrationError) return inner;
    const code: MigrationErrorCode = e.code === 'EVMSTATE_TRUNCATED' ? 'EMIG_TRUNCATED' : e.code === 'EVMSTATE_VERSION' ? 'EMIG_VERSION' : 'EMIG_DEVICE';
    return new MigrationError(code, e.detail, { section: e.idstr ?? e.section, field: e.field || undefined, position: e.position, cause: e });
  }
  if (e instanceof StreamError) {
    const code: MigrationErrorCode = e.code === 'ESTREAM_EOF' ? 'EMIG_TRUNCATED' : e.code === 'ESTREAM_LIMIT' ? 'EMIG_LIMIT' : 'EMIG_PEER';
    return new MigrationError(code, e.message, { section, position: e.position, cause: e });
  }
  const msg = e instanceof Error ? e.message : String(e);
  return new MigrationError('EMIG_DEVICE', msg, { section, position, cause: e });
}

/** A command handler checks the payload and the postcopy state, not where the command was:
 * its error gets the command's stream offset (and section and field, if it named none). */
function atCommand(e: unknown, name: string, at: number): unknown {
  if (!(e instanceof MigrationError) || e.position !== undefined) return e;
  return new MigrationError(e.code, e.detail, { section: e.section ?? 'command', field: e.field ?? name, position: at, cause: e.cause });
}

export class LoadVm {
  /** Sender's section id → our entry, learned from START/FULL headers. */
  private readonly byId = new Map<number, SectionEntry>();
  private sawEof = false;
  private quit = false;
  /** Reading a PACKAGED blob: its end between records is the package ending, not a cut. */
  private inPackage = false;

  constructor(
    private reader: QemuFileReader,
    readonly registry: SectionRegistry,
    readonly config: ConfigurationState,
    readonly opts: LoadVmOptions = {},
  ) {}

  get f(): QemuFileReader {
    return this.reader;
  }

  /** Postcopy recovery: go on reading from a new channel (no header: the stream carries on). */
  useReader(f: QemuFileReader): void {
    this.reader = f;
    // A stream that paused at its EOF (pages missing) ends again on the new channel.
    this.sawEof = false;
  }

  /** Reads `n` bytes' worth of buffering or fails naming what was being read. */
  async need(n: number, what: string, section?: string): Promise<void> {
    if (this.f.has(n)) return;
    if (await this.f.ensure(n)) return;
    const err = this.f.error;
    if (err && !(err instanceof StreamError && err.code === 'ESTREAM_EOF')) throw asMigrationError(err, section, this.f.position);
    throw new MigrationError('EMIG_TRUNCATED', `stream ended while reading ${what}`, { section, position: this.f.position });
  }

  /** Magic, version and the configuration section. */
  async loadHeader(): Promise<void> {
    const f = this.f;
    await this.need(8, 'the file header');
    const pos = f.position;
    const magic = f.getBe32();
    if (magic !== QEMU_VM_FILE_MAGIC) {
      throw new MigrationError('EMIG_HEADER', `bad magic 0x${magic.toString(16)} (expected 0x5145564d "QEVM")`, { field: 'magic', position: pos });
    }
    const version = f.getBe32();
    if (version === QEMU_VM_FILE_VERSION_COMPAT) {
      throw new MigrationError('EMIG_HEADER', 'SaveVM v2 format is obsolete and no longer supported', { field: 'version', position: pos + 4 });
    }
    if (version !== QEMU_VM_FILE_VERSION) {
      throw new MigrationError('EMIG_HEADER', `unsupported migration stream version ${version}`, { field: 'version', position: pos + 4 });
    }
    if (this.opts.expectConfiguration === false) return;
    await this.need(1, 'the configuration section');
    const at = f.position;
    if (f.getU8() !== QEMU_VM_CONFIGURATION) {
      throw new MigrationError('EMIG_CONFIG', 'Configuration section missing', { section: 'configuration', position: at });
    }
    try {
      await vmstateLoad(f, VMSTATE_CONFIGURATION, this.config, 1, { idstr: 'configuration' });
    } catch (e) {
      throw asMigrationError(e, 'configuration', f.position);
    }
  }

  /** Sections and commands until EOF (in a package: until a command says quit, or its end). */
  async loadMain(): Promise<void> {
    const f = this.f;
    this.quit = false;
    while (!this.sawEof && !this.quit) {
      if (this.inPackage && f.buffered === 0) return;
      await this.need(1, 'a section type');
      const at = f.position;
      const type = f.getU8();
      switch (type) {
        case QEMU_VM_SECTION_START:
        case QEMU_VM_SECTION_FULL:
          await this.loadSectionFull(type, at);
          break;
        case QEMU_VM_SECTION_PART:
        case QEMU_VM_SECTION_END:
          await this.loadSectionPart(type, at);
          break;
        case QEMU_VM_COMMAND:
          await this.loadCommand(at);
          break;
        case QEMU_VM_EOF:
          this.sawEof = true;
          break;
        default:
          throw new MigrationError('EMIG_SECTION_TYPE', `unknown savevm section type ${type}`, { position: at });
      }
    }
  }

  /** After EOF: one byte; 0x06 → be32 length and that many bytes of JSON, returned.
   * Anything else (or nothing) is tolerated, as QEMU only logs it. */
  async readVmdesc(maxLen: number): Promise<Uint8Array | null> {
    const f = this.f;
    if (!(await f.fill(1))) return null;
    if (f.peekU8(0) !== QEMU_VM_VMDESCRIPTION) return null;
    f.getU8();
    await this.need(4, 'the vmdesc length');
    const len = f.getBe32();
    if (len > maxLen) throw new MigrationError('EMIG_LIMIT', `vmdesc of ${len} bytes exceeds ${maxLen}`, { position: f.position - 4 });
    const out = new Uint8Array(len);
    if (!(await f.readInto(out))) throw new MigrationError('EMIG_TRUNCATED', 'stream ended inside the vmdesc', { position: f.position });
    return out;
  }

  private async loadSectionFull(type: number, at: number): Promise<void> {
    const f = this.f;
    await this.need(5, `the ${SECTION_TYPE_NAMES[type]} header`);
    const sectionId = f.getBe32();
    const len = f.getU8();
    await this.need(len + 8, `the ${SECTION_TYPE_NAMES[type]} header`);
    const idstr = Buffer.from(f.getBytes(len)).toString('latin1');
    const instanceId = f.getBe32();
    const versionId = f.getBe32();
    const e = this.registry.find(idstr, instanceId);
    if (!e) {
      throw new MigrationError('EMIG_SECTION_UNKNOWN', `Unknown savevm section or instance '${idstr}' ${instanceId}. Make sure that your current VM setup matches your saved VM setup, including any hotplugged devices`, {
        section: idstr,
        position: at,
      });
    }
    if (versionId > e.versionId) {
      throw new MigrationError('EMIG_VERSION', `unsupported version ${versionId} for '${idstr}' v${e.versionId}`, { section: idstr, field: 'version_id', position: at });
    }
    if (type === QEMU_VM_SECTION_START && !e.live) {
      throw new MigrationError('EMIG_SECTION_TYPE', `START section for non-iterative '${idstr}'`, { section: idstr, position: at });
    }
    this.byId.set(sectionId, e);
    await this.loadBody(e, type, versionId);
    await this.checkFooter(e, sectionId);
    this.opts.onSection?.(e, type);
  }

  private async loadSectionPart(type: number, at: number): Promise<void> {
    await this.need(4, `the ${SECTION_TYPE_NAMES[type]} header`);
    const sectionId = this.f.getBe32();
    const e = this.byId.get(sectionId);
    if (!e) throw new MigrationError('EMIG_SECTION_UNKNOWN', `unknown section id ${sectionId} in ${SECTION_TYPE_NAMES[type]}`, { position: at });
    if (!e.live) throw new MigrationError('EMIG_SECTION_TYPE', `${SECTION_TYPE_NAMES[type]} for non-iterative '${e.idstr}'`, { section: e.idstr, position: at });
    await this.loadBody(e, type, e.versionId);
    await this.checkFooter(e, sectionId);
    this.opts.onSection?.(e, type);
  }

  private async loadBody(e: SectionEntry, type: number, versionId: number): Promise<void> {
    try {
      if (e.live) await e.live.loadState(this.f, versionId, type);
      else await vmstateLoad(this.f, e.vmsd!, e.opaque, versionId, { idstr: e.idstr });
    } catch (err) {
      throw asMigrationError(err, e.idstr, this.f.position);
    }
    if (this.f.error) throw asMigrationError(this.f.error, e.idstr, this.f.position);
  }

  private async checkFooter(e: SectionEntry, sectionId: number): Promise<void> {
    if (this.opts.expectSectionFooter === false) return;
    await this.need(5, 'a section footer', e.idstr);
    const at = this.f.position;
    const marker = this.f.getU8();
    const id = this.f.getBe32();
    if (marker !== QEMU_VM_SECTION_FOOTER || id !== sectionId) {
      throw new MigrationError('EMIG_FOOTER', marker !== QEMU_VM_SECTION_FOOTER ? `missing section footer (read 0x${marker.toString(16)})` : `footer for section ${id}, expected ${sectionId}`, {
        section: e.idstr,
        field: 'footer',
        position: at,
      });
    }
  }

  private async loadCommand(at: number): Promise<void> {
    const f = this.f;
    await this.need(4, 'a command header');
    const cmd = f.getBe16();
    const len = f.getBe16();
    const name = MIG_CMD_NAMES[cmd] ?? String(cmd);
    if (cmd === MIG_CMD.INVALID || cmd >= MIG_CMD.MAX) {
      throw new MigrationError('EMIG_COMMAND', `Invalid command ${cmd}`, { section: 'command', position: at });
    }
    const fixed = MIG_CMD_LEN[cmd];
    if (fixed !== undefined && fixed >= 0 && len !== fixed) {
      throw new MigrationError('EMIG_COMMAND', `command ${name} received with bad length ${len} (expected ${fixed})`, { section: 'command', field: name, position: at });
    }
    await this.need(len, `the ${name} payload`);
    const payload = new Uint8Array(f.getBytes(len));
    if (cmd === MIG_CMD.SWITCHOVER_START) return; // nothing of ours waits for it
    // Its blob would come from the main stream, behind the package being read (QEMU reads it
    // from the main channel too); QEMU's own analyzer refuses one.
    if (cmd === MIG_CMD.PACKAGED && this.inPackage) {
      throw new MigrationError('EMIG_COMMAND', 'PACKAGED inside a package', { section: 'command', field: name, position: at });
    }
    if (!this.opts.onCommand) {
      throw new MigrationError('EMIG_COMMAND', `command ${name} not supported here`, { section: 'command', field: name, position: at });
    }
    let r: void | 'quit';
    try {
      r = await this.opts.onCommand(cmd, payload, at);
    } catch (e) {
      throw atCommand(e, name, at);
    }
    if (r === 'quit' && this.inPackage) this.quit = true;
  }

  /**
   * PACKAGED (loadvm_handle_cmd_packaged): read the `size` bytes that follow the command whole,
   * then load them as a nested stream of sections and commands, until a command quits
   * (POSTCOPY_RUN) or the package ends. Faults during device loading cannot wait on the main
   * channel, which is why the package travels whole.
   */
  async loadPackage(size: number, at: number): Promise<void> {
    if (size > PACKAGED_MAX) {
      throw new MigrationError('EMIG_LIMIT', `package of ${size} bytes exceeds ${PACKAGED_MAX}`, { section: 'command', field: 'PACKAGED', position: at });
    }
    const blob = new Uint8Array(size);
    const start = this.f.position;
    if (!(await this.f.readInto(blob))) {
      throw new MigrationError('EMIG_TRUNCATED', `stream ended inside a package of ${size} bytes`, { section: 'command', field: 'PACKAGED', position: this.f.position });
    }
    const inner = new LoadVm(QemuFileReader.fromBytes(blob, start), this.registry, this.config, this.opts);
    inner.inPackage = true;
    await inner.loadMain();
    // RUN ends every package (QEMU's analyzer refuses an EOF inside one, too).
    if (!inner.quit) {
      throw new MigrationError('EMIG_COMMAND', 'package ended without POSTCOPY_RUN', { section: 'command', field: 'PACKAGED', position: at });
    }
  }
}
