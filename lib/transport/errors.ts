/**
 * Typed transport errors. Tests and callers compare `code`, never the message.
 *
 * Two kinds of code:
 *   - the OS's own errno name, passed through from a failed system call, with `syscall` and a
 *     positive `errno` (as in C and QEMU's error_setg_errno): ECONNREFUSED, ENOENT, EPIPE,
 *     ECONNRESET, EADDRINUSE, EACCES, EBADF, ...
 *   - livemig's own codes, below, for conditions that are not a single failed syscall.
 */
import { constants as osConstants } from 'node:os';
import { getSystemErrorName } from 'node:util';

export type TransportOwnCode =
  /** fd: the descriptor is neither a socket nor a pipe (QEMU 11 refuses plain files on fd:,
   * "fd: migration to a file is not supported. Use file: instead."). */
  | 'EFD_NOT_SOCKET'
  /** fd:NAME: no descriptor of that name (QEMU: "File descriptor named '%s' has not been found"). */
  | 'EFD_NOT_FOUND'
  /** fd:N: not a valid descriptor number (QEMU: "Invalid file descriptor number '%s'"). */
  | 'EFD_INVALID'
  /** exec: the command exited with a non-zero status (`exitCode`). */
  | 'EXEC_EXIT'
  /** exec: the command was killed by a signal (`signal`). */
  | 'EXEC_SIGNAL'
  /** write() on a channel with no write direction (incoming file:, the read end of a pipe). */
  | 'ENOT_WRITABLE'
  /** write() after end(). */
  | 'EWRITE_AFTER_END'
  /** A second read() while one is pending (the contract allows one at a time). */
  | 'EREAD_BUSY'
  /** destroy() without an error: pending and later drain()/end() reject with this. */
  | 'EDESTROYED'
  /** accept() on a closed listener, or a pending accept() when the listener closed. */
  | 'ELISTENER_CLOSED'
  /** accept() again on a transport that yields one channel only (exec:, fd:, file:). */
  | 'ENOT_MULTICHANNEL'
  /** Use of a channel after detach() handed its descriptor over. */
  | 'EDETACHED'
  /** detach() while bytes are queued in either direction or a read() is pending. */
  | 'EDETACH_PENDING'
  /** connect() aborted through its AbortSignal. */
  | 'EABORTED'
  /** An address this build does not implement. */
  | 'EUNSUPPORTED'
  /** cpr: descriptors were cut off (MSG_CTRUNC) or more arrived than a channel holds. */
  | 'EFD_OVERFLOW';

/** Own codes, or any OS errno name passed through. */
export type TransportErrorCode = TransportOwnCode | (string & {});

export interface TransportErrorDetails {
  errno?: number;
  syscall?: string;
  exitCode?: number;
  signal?: string;
  cause?: unknown;
}

export class TransportError extends Error {
  override readonly name = 'TransportError';
  readonly code: TransportErrorCode;
  /** Positive errno when the error came from a system call. */
  readonly errno?: number;
  readonly syscall?: string;
  /** exec: the command's exit status. */
  readonly exitCode?: number;
  /** exec: the signal that killed the command. */
  readonly signal?: string;

  constructor(code: TransportErrorCode, message: string, details: TransportErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.code = code;
    if (details.errno !== undefined) this.errno = details.errno;
    if (details.syscall !== undefined) this.syscall = details.syscall;
    if (details.exitCode !== undefined) this.exitCode = details.exitCode;
    if (details.signal !== undefined) this.signal = details.signal;
  }

  /**
   * Wrap a Node system error (ErrnoException), keeping its code and syscall. `what` says what
   * we were doing ("tcp: connect to 127.0.0.1:4444"). Already-typed errors pass unchanged.
   */
  static from(err: unknown, what: string): TransportError {
    if (err instanceof TransportError) return err;
    const e = err as NodeJS.ErrnoException;
    const code = typeof e?.code === 'string' ? e.code : 'EIO';
    const msg = err instanceof Error ? err.message : String(err);
    return new TransportError(code, `${what}: ${msg}`, {
      errno: errnoOf(code, e?.errno),
      syscall: typeof e?.syscall === 'string' ? e.syscall : undefined,
      cause: err,
    });
  }

  /**
   * A failed system call from the addon (HostError: errno, code, syscall) as Node names its
   * own: "unix: read ECONNRESET", "tcp: writev EPIPE". Anything else goes through from().
   */
  static fromSyscall(err: unknown, what: string): TransportError {
    if (err instanceof TransportError) return err;
    const e = err as { code?: unknown; syscall?: unknown; errno?: unknown };
    if (typeof e?.code !== 'string' || typeof e?.syscall !== 'string') return TransportError.from(err, what);
    return new TransportError(e.code, `${what}: ${e.syscall} ${e.code}`, {
      errno: errnoOf(e.code, typeof e.errno === 'number' ? e.errno : undefined),
      syscall: e.syscall,
      cause: err,
    });
  }

  /** An errno reported as a value (SO_ERROR after a non-blocking connect). */
  static fromErrno(errno: number, syscall: string, what: string): TransportError {
    let code: string;
    try {
      code = getSystemErrorName(-Math.abs(errno));
    } catch {
      code = `E${errno}`;
    }
    return new TransportError(code, `${what}: ${syscall} ${code}`, { errno: Math.abs(errno), syscall });
  }
}

/** Node reports libuv's negative errno; keep the C convention (positive), or look it up. */
function errnoOf(code: string, errno: number | undefined): number | undefined {
  if (typeof errno === 'number') return Math.abs(errno);
  const table = osConstants.errno as Record<string, number>;
  return table[code];
}

export function isTransportError(err: unknown, code?: TransportErrorCode): err is TransportError {
  return err instanceof TransportError && (code === undefined || err.code === code);
}
