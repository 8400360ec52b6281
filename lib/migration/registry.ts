/**
 * The savevm handler list (QEMU's SaveStateEntry list): every piece of state that travels, by
 * (idstr, instance_id), with a sender-local section id handed out at registration. Two kinds:
 *
 *  - VMState sections: a description plus its opaque object, sent whole as SECTION_FULL;
 *  - live (iterative) handlers, such as RAM: START at setup, PART while iterating, END at
 *    completion, and their own loader.
 *
 * Ordering follows QEMU: entries sorted by priority (higher first), equal priorities keep
 * registration order; FULL sections are saved in that order.
 */
import type { QemuFileReader, QemuFileWriter } from '../stream';
import type { VMStateDescription } from '../vmstate';
import { MIG_PRI } from '../vmstate';

/** QEMU's SaveVMHandlers, the parts an iterative section needs. */
export interface LiveHandler {
  /** Whether the handler takes part in this migration (QEMU's is_active). */
  isActive?(): boolean;
  /** START section body. */
  saveSetup(f: QemuFileWriter): Promise<void> | void;
  /** PART section body; resolves true when it has nothing more to send for now. */
  saveIterate(f: QemuFileWriter): Promise<boolean>;
  /** END section body (the VM is stopped). */
  saveComplete(f: QemuFileWriter): Promise<void>;
  /** Bytes still to send (QEMU's state_pending_estimate/exact). */
  pending(exact: boolean): number;
  saveCleanup?(): void;
  /** Incoming: body of START, PART or END. */
  loadState(f: QemuFileReader, versionId: number, sectionType: number): Promise<void>;
  loadSetup?(): void;
  loadCleanup?(): void;
}

export interface SectionEntry {
  readonly idstr: string;
  readonly instanceId: number;
  readonly sectionId: number;
  readonly versionId: number;
  readonly priority: number;
  readonly vmsd?: VMStateDescription;
  readonly opaque?: unknown;
  readonly live?: LiveHandler;
}

export class SectionRegistry {
  private readonly list: SectionEntry[] = [];
  private nextId = 0;

  /** A VMState section. `instanceId` 'any' picks max(existing same idstr)+1 (QEMU's
   * VMSTATE_INSTANCE_ID_ANY). */
  registerVmsd(idstr: string, instanceId: number | 'any', vmsd: VMStateDescription, opaque: unknown): SectionEntry {
    return this.add({
      idstr,
      instanceId: this.instance(idstr, instanceId),
      sectionId: this.nextId++,
      versionId: vmsd.versionId,
      priority: vmsd.priority ?? MIG_PRI.DEFAULT,
      vmsd,
      opaque,
    });
  }

  registerLive(idstr: string, instanceId: number, versionId: number, live: LiveHandler): SectionEntry {
    return this.add({
      idstr,
      instanceId: this.instance(idstr, instanceId),
      sectionId: this.nextId++,
      versionId,
      priority: MIG_PRI.DEFAULT,
      live,
    });
  }

  find(idstr: string, instanceId: number): SectionEntry | undefined {
    return this.list.find((e) => e.idstr === idstr && e.instanceId === instanceId);
  }

  get entries(): readonly SectionEntry[] {
    return this.list;
  }

  get liveEntries(): SectionEntry[] {
    return this.list.filter((e) => e.live && (e.live.isActive?.() ?? true));
  }

  private instance(idstr: string, id: number | 'any'): number {
    if (id !== 'any') {
      if (this.find(idstr, id)) throw new Error(`savevm: section ${idstr} instance ${id} registered twice`);
      return id;
    }
    let max = -1;
    for (const e of this.list) if (e.idstr === idstr) max = Math.max(max, e.instanceId);
    return max + 1;
  }

  private add(e: SectionEntry): SectionEntry {
    // Stable insert: after every entry of equal or higher priority.
    let i = this.list.length;
    while (i > 0 && this.list[i - 1].priority < e.priority) i--;
    this.list.splice(i, 0, e);
    return e;
  }
}
