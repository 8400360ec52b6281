/**
 * Analyzer errors: one class, a stable `code` for tests, and where it happened — the section
 * (idstr and section id), the field path or RAM block, and the byte offset in the
 * (decompressed) stream — so that a hostile or damaged file fails with one line a person can
 * act on: `section 'cpu' (id 5), field 'cpu/env.pc', offset 1234: stream ended …`. Messages
 * are one line: control bytes from the file are shown as \xNN.
 */

export type AnalyzeErrorCode =
  /** Bad magic or file version. */
  | 'EANALYZE_HEADER'
  /** The stream ended before a record was complete. */
  | 'EANALYZE_TRUNCATED'
  /** A length or count from the file over its limit (see lib/stream/limits.ts). */
  | 'EANALYZE_LIMIT'
  /** A section type byte the format does not have, or a section id never opened. */
  | 'EANALYZE_SECTION'
  /** A section footer naming another section. */
  | 'EANALYZE_FOOTER'
  /** A command number or command length that is not valid. */
  | 'EANALYZE_COMMAND'
  /** The configuration section is missing or malformed. */
  | 'EANALYZE_CONFIG'
  /** A RAM record that is invalid (flags, block, offset, block list). */
  | 'EANALYZE_RAM'
  /** The vmdesc JSON is missing where needed, not JSON, or does not describe the stream. */
  | 'EANALYZE_VMDESC'
  /** A FULL section nothing describes (no vmdesc entry, no livemig description). */
  | 'EANALYZE_UNKNOWN'
  /** A description does not fit the bytes (bad subsection, nullptr marker, version). */
  | 'EANALYZE_DEVICE'
  /** Reading the input or writing extracted files failed. */
  | 'EANALYZE_IO';

/** Names and snippets come from the file: escape control bytes so a message stays one line. */
export function oneLine(s: string): string {
  return s.replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

export interface AnalyzeErrorInfo {
  section?: string;
  sectionId?: number;
  field?: string;
  position?: number;
  cause?: unknown;
}

export class AnalyzeError extends Error {
  override readonly name = 'AnalyzeError';
  readonly section?: string;
  readonly sectionId?: number;
  readonly field?: string;
  readonly position?: number;
  /** The bare reason, without the location prefix. */
  readonly detail: string;

  constructor(
    readonly code: AnalyzeErrorCode,
    detail: string,
    info: AnalyzeErrorInfo = {},
  ) {
    const where = [
      info.section !== undefined ? `section '${info.section}'${info.sectionId !== undefined ? ` (id ${info.sectionId})` : ''}` : '',
      info.field ? `field '${info.field}'` : '',
      info.position !== undefined ? `offset ${info.position}` : '',
    ]
      .filter(Boolean)
      .join(', ');
    super(oneLine(where ? `${where}: ${detail}` : detail), info.cause !== undefined ? { cause: info.cause } : undefined);
    this.section = info.section;
    this.sectionId = info.sectionId;
    this.field = info.field;
    this.position = info.position;
    this.detail = detail;
  }
}
