/**
 * Writing QEMU's savevm stream (migration/savevm.c):
 *
 *   be32 "QEVM" │ be32 3 │ 0x07 configuration
 *   [0x08 commands: OPEN_RETURN_PATH, PING …]
 *   0x01 START  id idstr inst ver │ body │ 0x7e id     (each live handler: RAM block list)
 *   0x02 PART   id                │ body │ 0x7e id     (repeated: RAM pages)
 *   0x08 SWITCHOVER_START
 *   0x03 END    id                │ body │ 0x7e id
 *   0x04 FULL   id idstr inst ver │ body │ 0x7e id     (each device, priority order)
 *   0x00 EOF │ 0x06 be32 len vmdesc-json
 *
 *   START/FULL header: u8 type, be32 section_id, u8 len + idstr, be32 instance_id, be32 version_id
 *   PART/END header:   u8 type, be32 section_id
 *   command:           u8 0x08, be16 cmd, be16 len, payload
 */
import type { QemuFileWriter } from '../stream';
import { encodeVmdesc, sectionNeeded, vmdescDevice, vmdescFile, vmstateSave, type VmdescDevice, type VmdescNode } from '../vmstate';
import { VMSTATE_CONFIGURATION, type ConfigurationState } from './configuration';
import { MigrationError } from './errors';
import type { SectionEntry, SectionRegistry } from './registry';
import {
  MIG_CMD,
  QEMU_VM_COMMAND,
  QEMU_VM_CONFIGURATION,
  QEMU_VM_EOF,
  QEMU_VM_FILE_MAGIC,
  QEMU_VM_FILE_VERSION,
  QEMU_VM_SECTION_END,
  QEMU_VM_SECTION_FOOTER,
  QEMU_VM_SECTION_FULL,
  QEMU_VM_SECTION_PART,
  QEMU_VM_SECTION_START,
  QEMU_VM_VMDESCRIPTION,
} from './wire';

export function writeSectionHeader(f: QemuFileWriter, type: number, e: SectionEntry): void {
  f.putU8(type);
  f.putBe32(e.sectionId);
  if (type === QEMU_VM_SECTION_START || type === QEMU_VM_SECTION_FULL) {
    f.putCounted(e.idstr);
    f.putBe32(e.instanceId);
    f.putBe32(e.versionId);
  }
}

export function writeSectionFooter(f: QemuFileWriter, e: SectionEntry, enabled = true): void {
  if (!enabled) return;
  f.putU8(QEMU_VM_SECTION_FOOTER);
  f.putBe32(e.sectionId);
}

/** The `-global migration.*` properties that shape the stream (options/globals.ts). */
export interface StreamFormat {
  sendConfiguration: boolean;
  sendSectionFooter: boolean;
  sendSwitchoverStart: boolean;
}

export const DEFAULT_STREAM_FORMAT: StreamFormat = { sendConfiguration: true, sendSectionFooter: true, sendSwitchoverStart: true };

export function writeCommand(f: QemuFileWriter, cmd: number, payload: Uint8Array = new Uint8Array(0)): void {
  f.putU8(QEMU_VM_COMMAND);
  f.putBe16(cmd);
  f.putBe16(payload.length);
  f.putBuffer(payload);
}

export function be32(v: number): Uint8Array {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0);
  return b;
}

export class SaveVm {
  private readonly devices: VmdescDevice[] = [];
  private configurationDesc: VmdescNode | null = null;

  constructor(
    private writer: QemuFileWriter,
    readonly registry: SectionRegistry,
    readonly config: ConfigurationState,
    readonly format: StreamFormat = DEFAULT_STREAM_FORMAT,
  ) {}

  get f(): QemuFileWriter {
    return this.writer;
  }

  /** Postcopy recovery: go on writing on a new channel (no header: the stream carries on). */
  useWriter(f: QemuFileWriter): void {
    this.writer = f;
  }

  /** Magic, version and the configuration section. */
  writeHeader(): void {
    const f = this.f;
    f.putBe32(QEMU_VM_FILE_MAGIC);
    f.putBe32(QEMU_VM_FILE_VERSION);
    if (!this.format.sendConfiguration) return;
    f.putU8(QEMU_VM_CONFIGURATION);
    this.configurationDesc = vmstateSave(f, VMSTATE_CONFIGURATION, this.config, { idstr: 'configuration' });
  }

  command(cmd: number, payload?: Uint8Array): void {
    writeCommand(this.f, cmd, payload);
  }

  ping(value: number): void {
    this.command(MIG_CMD.PING, be32(value));
  }

  /** START sections: every live handler's setup. */
  async setup(): Promise<void> {
    for (const e of this.registry.liveEntries) {
      writeSectionHeader(this.f, QEMU_VM_SECTION_START, e);
      await e.live!.saveSetup(this.f);
      writeSectionFooter(this.f, e, this.format.sendSectionFooter);
    }
    this.check();
  }

  /** One PART section per live handler (QEMU's qemu_savevm_state_iterate); true when every
   * handler said it has nothing more to send for now. */
  async iterate(): Promise<boolean> {
    let allDone = true;
    for (const e of this.registry.liveEntries) {
      if (this.f.rateLimitExceeded()) return false;
      writeSectionHeader(this.f, QEMU_VM_SECTION_PART, e);
      const done = await e.live!.saveIterate(this.f);
      writeSectionFooter(this.f, e, this.format.sendSectionFooter);
      if (!done) allDone = false;
    }
    this.check();
    return allDone;
  }

  /** Bytes the live handlers still have to send. */
  pending(exact: boolean): number {
    let n = 0;
    for (const e of this.registry.liveEntries) n += e.live!.pending(exact);
    return n;
  }

  /** SWITCHOVER_START (unless turned off, or already sent when postcopy began), then END
   * sections (the VM is stopped). */
  async complete(switchoverStart = true): Promise<void> {
    if (switchoverStart && this.format.sendSwitchoverStart) this.command(MIG_CMD.SWITCHOVER_START);
    for (const e of this.registry.liveEntries) {
      writeSectionHeader(this.f, QEMU_VM_SECTION_END, e);
      await e.live!.saveComplete(this.f);
      writeSectionFooter(this.f, e, this.format.sendSectionFooter);
    }
    this.check();
  }

  /** FULL sections for every device whose state is needed, in priority order. */
  saveDevices(): void {
    for (const e of this.registry.entries) {
      if (!e.vmsd || !sectionNeeded(e.vmsd, e.opaque)) continue;
      writeSectionHeader(this.f, QEMU_VM_SECTION_FULL, e);
      const node = vmstateSave(this.f, e.vmsd, e.opaque, { idstr: e.idstr });
      writeSectionFooter(this.f, e, this.format.sendSectionFooter);
      if (node) this.devices.push(vmdescDevice(e.idstr, e.instanceId, node));
      this.check(e.idstr);
    }
  }

  /** EOF and, after it, the vmdesc JSON (QEMU_VM_VMDESCRIPTION). */
  finish(withVmdesc = true): void {
    this.f.putU8(QEMU_VM_EOF);
    if (!withVmdesc) return;
    const json = encodeVmdesc(vmdescFile(this.devices, { pageSize: 4096, configuration: this.configurationDesc ?? undefined }));
    this.f.putU8(QEMU_VM_VMDESCRIPTION);
    this.f.putBe32(json.length);
    this.f.putBuffer(json);
  }

  private check(section?: string): void {
    const err = this.f.error;
    if (err) {
      if (err instanceof MigrationError) throw err;
      throw new MigrationError('EMIG_DEVICE', `saving failed: ${err.message}`, { section, cause: err });
    }
  }
}
