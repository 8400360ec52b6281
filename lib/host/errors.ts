/**
 * Host errors: a failed system call, as data (better-sqlite3's SqliteError, undici's errors).
 * `code` is the errno name ("EEXIST", "EFAULT", …) and is what callers and tests compare;
 * the message is for people and may change.
 */
export class HostError extends Error {
  override readonly name = 'HostError';

  constructor(
    message: string,
    readonly errno: number,
    readonly code: string,
    readonly syscall: string,
  ) {
    super(message);
  }
}

/** True when `e` is a HostError with the given errno name. */
export function isHostError(e: unknown, code?: string): e is HostError {
  return e instanceof HostError && (code === undefined || e.code === code);
}
