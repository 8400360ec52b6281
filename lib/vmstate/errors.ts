/**
 * VMState errors: one class, a stable `code`, and enough context to find the bad byte — the
 * section (vmsd name, plus the section idstr when the caller gave one), the field path
 * (`serial/divider`, `cpu/env.gpr[3]`, `cpu/pmp/env.pmp_state.pmp[2]/cfg_reg`) and the
 * absolute stream offset where the failing field starts.
 */

export type VMStateErrorCode =
  /** Incoming version too new (> versionId) or too old (< minimumVersionId). */
  | 'EVMSTATE_VERSION'
  /** A `… equal` field differs from the receiver's current value. */
  | 'EVMSTATE_EQUAL'
  /** `int32 le`: incoming value negative or above the receiver's current value. */
  | 'EVMSTATE_RANGE'
  /** A VALIDATE field's test failed (QEMU: "Input validation failed"). */
  | 'EVMSTATE_VALIDATE'
  /** A subsection carrying the parent's prefix is not one the receiver knows (QEMU: ENOENT). */
  | 'EVMSTATE_SUBSECTION'
  /** The stream ended inside the section. */
  | 'EVMSTATE_TRUNCATED'
  /** The stream had already failed (channel error, earlier sticky error). */
  | 'EVMSTATE_STREAM'
  /** A count or size (from an earlier loaded field) is negative, fractional or over a limit. */
  | 'EVMSTATE_LIMIT'
  /** A description hook (preSave, postLoad, exists, numFrom, tmp, ...) threw. */
  | 'EVMSTATE_HOOK'
  /** Save: a field's value is missing or of the wrong type. */
  | 'EVMSTATE_VALUE'
  /** The vmdesc JSON is over its limit or not valid JSON. */
  | 'EVMSTATE_VMDESC'
  /** Anything else thrown while walking a description (a bug; never from wire bytes). */
  | 'EVMSTATE_INTERNAL';

export interface VMStateErrorInfo {
  /** Top-level vmsd name. */
  section: string;
  /** Section idstr (e.g. "0000:00:00.0/gpex_root"), when the caller supplied it. */
  idstr?: string;
  /** Field path inside the section ('' when the error is about the section itself). */
  field: string;
  /** Absolute stream offset (load: where the failing field starts; save: bytes written). */
  position: number;
  cause?: unknown;
}

export class VMStateError extends Error {
  override readonly name = 'VMStateError';
  readonly code: VMStateErrorCode;
  readonly section: string;
  readonly idstr: string | undefined;
  readonly field: string;
  readonly position: number;
  /** The bare reason, without the location prefix. */
  readonly detail: string;

  constructor(code: VMStateErrorCode, detail: string, info: VMStateErrorInfo) {
    const where =
      `section '${info.section}'` +
      (info.idstr !== undefined && info.idstr !== info.section ? ` (idstr '${info.idstr}')` : '') +
      (info.field ? `, field '${info.field}'` : '') +
      `, stream offset ${info.position}`;
    super(`${where}: ${detail}`, info.cause !== undefined ? { cause: info.cause } : undefined);
    this.code = code;
    this.section = info.section;
    this.idstr = info.idstr;
    this.field = info.field;
    this.position = info.position;
    this.detail = detail;
  }
}
