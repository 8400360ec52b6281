/**
 * Migration errors: a stable `code` for tests and callers, and where it happened — the section
 * (idstr / instance), the field or record, and the stream offset — so a hostile or truncated
 * stream fails with a message a person can act on.
 */

export type MigrationErrorCode =
  /** Bad magic or file version. */
  | 'EMIG_HEADER'
  /** Configuration section missing or not matching (machine type, page bits, capabilities). */
  | 'EMIG_CONFIG'
  /** A section type byte or command number we do not know. */
  | 'EMIG_SECTION_TYPE'
  /** A section idstr/instance or section id the receiver does not have. */
  | 'EMIG_SECTION_UNKNOWN'
  /** A section version outside what the receiver accepts. */
  | 'EMIG_VERSION'
  /** A section footer missing or naming another section. */
  | 'EMIG_FOOTER'
  /** A command with a bad length, or not allowed in the current state. */
  | 'EMIG_COMMAND'
  /** A RAM record that is invalid (flags, block, offset, size). */
  | 'EMIG_RAM'
  /** The stream ended early. */
  | 'EMIG_TRUNCATED'
  /** A multifd channel's initial packet or packet header is invalid, or the channel failed. */
  | 'EMIG_MULTIFD'
  /** A length or count over its limit. */
  | 'EMIG_LIMIT'
  /** Return-path message invalid. */
  | 'EMIG_RETURN_PATH'
  /** The peer reported a failure (non-zero SHUT) or went away. */
  | 'EMIG_PEER'
  /** The migration was cancelled. */
  | 'EMIG_CANCELLED'
  /** Device state failed to save or load (see cause). */
  | 'EMIG_DEVICE'
  /** A request not possible in the current state (QMP-level misuse). */
  | 'EMIG_STATE'
  /** A capability, parameter or property refused (QEMU's rules, or not implemented here). */
  | 'EMIG_SETTING'
  /** The cpr state or a cpr-transfer handover is invalid (descriptor names, sizes, counts). */
  | 'EMIG_CPR';

export interface MigrationErrorInfo {
  section?: string;
  field?: string;
  position?: number;
  cause?: unknown;
}

export class MigrationError extends Error {
  override readonly name = 'MigrationError';
  readonly section?: string;
  readonly field?: string;
  readonly position?: number;

  constructor(
    readonly code: MigrationErrorCode,
    /** what went wrong, without the location (the message has both) */
    readonly detail: string,
    info: MigrationErrorInfo = {},
  ) {
    const where = [
      info.section !== undefined ? `section '${info.section}'` : '',
      info.field !== undefined ? `field '${info.field}'` : '',
      info.position !== undefined ? `stream offset ${info.position}` : '',
    ]
      .filter(Boolean)
      .join(', ');
    super(where ? `${where}: ${detail}` : detail, info.cause !== undefined ? { cause: info.cause } : undefined);
    this.section = info.section;
    this.field = info.field;
    this.position = info.position;
  }
}
