/**
 * QMP errors. QEMU reports every error as {"class", "desc"}; the class set is
 * qapi/error.json's QapiErrorClass and almost everything is GenericError (error_setg).
 * Handlers throw QmpError; anything else thrown by a handler is reported as a
 * GenericError with the exception's message, so a bug never takes the monitor down.
 */

export const ERROR_CLASSES = [
  'GenericError',
  'CommandNotFound',
  'DeviceNotActive',
  'DeviceNotFound',
  'KVMMissingCap',
] as const;

export type QmpErrorClass = (typeof ERROR_CLASSES)[number];

export class QmpError extends Error {
  constructor(
    readonly errorClass: QmpErrorClass,
    readonly desc: string,
  ) {
    super(desc);
    this.name = 'QmpError';
  }
}

/** error_setg(): a GenericError. */
export function genericError(desc: string): QmpError {
  return new QmpError('GenericError', desc);
}

export function toQmpError(e: unknown): QmpError {
  if (e instanceof QmpError) return e;
  if (e instanceof Error) return genericError(e.message);
  return genericError(String(e));
}

/* Texts QEMU uses in many places (include/qapi/qmp/qerror.h, since inlined at the callers). */
export const QERR = {
  missingParameter: (name: string) => `Parameter '${name}' is missing`,
  invalidParameterType: (name: string, expected: string) =>
    `Invalid parameter type for '${name}', expected: ${expected}`,
  invalidParameterValue: (name: string, expected: string) => `Parameter '${name}' expects ${expected}`,
  unexpectedParameter: (name: string) => `Parameter '${name}' is unexpected`,
  enumValue: (name: string, value: string) => `Parameter '${name}' does not accept value '${value}'`,
  migrationActive: "There's a migration process in progress",
  fdNotSupplied: 'No file descriptor supplied via SCM_RIGHTS',
  fdNotFound: (name: string) => `File descriptor named '${name}' not found`,
} as const;
