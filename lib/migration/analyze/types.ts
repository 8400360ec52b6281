/**
 * What an analysis produces (see analyzer.ts for how, report.ts for how it is printed).
 */
import type { VmdescFile } from '../../vmstate';
import type { ConfigurationInfo } from './configuration';
import type { RamStats } from './ram';
import type { StateDict } from './values';

export type RecordKind = 'header' | 'configuration' | 'start' | 'part' | 'end' | 'full' | 'command' | 'eof' | 'vmdesc';

/** One top-level record of the stream, in stream order: `offset` of its first byte, `length`
 * in bytes including the section footer. */
export interface StreamRecord {
  readonly kind: RecordKind;
  readonly offset: number;
  readonly length: number;
  readonly sectionId?: number;
  readonly idstr?: string;
  readonly instanceId?: number;
  readonly versionId?: number;
  /** Commands: QEMU's name (PING, SWITCHOVER_START …); configuration: the machine type. */
  readonly name?: string;
  /** PING: its value; PACKAGED: the blob size; RAM_DISCARD: the number of ranges. */
  readonly value?: number;
  /** FULL sections: which description decoded the body. */
  readonly decodedBy?: 'vmdesc' | 'livemig';
  /** Records from inside a PACKAGED blob (postcopy) have depth 1. */
  readonly depth?: number;
}

export interface AnalyzeResult {
  readonly name: string;
  /** File version from the header (3). */
  version: number;
  configuration: ConfigurationInfo | null;
  /** The vmdesc JSON, parsed, and where its 0x06 byte is; null if the stream has none. */
  vmdesc: VmdescFile | null;
  vmdescOffset: number | null;
  pageSize: number;
  /** Records in stream order (at most RECORDS_MAX; `recordsDropped` counts the rest). */
  readonly records: StreamRecord[];
  recordsDropped: number;
  /** Device state by section, keyed "idstr (section_id)" as analyze-migration.py keys it. */
  readonly state: StateDict;
  ram: RamStats | null;
  /** Offset of the QEMU_VM_EOF byte, null if the stream has none (a PACKAGED-only parse). */
  eofOffset: number | null;
  /** Bytes of the stream read in all. */
  streamBytes: number;
  /** Bytes after the vmdesc (or after EOF when no vmdesc follows); QEMU ignores them. */
  trailingBytes: number;
  /** Files written by extraction. */
  readonly extracted: string[];
}
