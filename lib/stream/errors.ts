/**
 * Typed errors of the stream layer. Tests and callers assert `code`, never the message.
 *
 * A stream keeps its *first* error (QEMU's qemu_file_set_error: "if (ret < 0 &&
 * !f->last_error) f->last_error = ret"); the error records the absolute stream offset at
 * which it happened, so a report can say where in the byte stream things went wrong.
 */

export type StreamErrorCode =
  /** The peer closed the stream before the bytes a reader needed arrived. */
  | 'ESTREAM_EOF'
  /** A synchronous getter was called for more bytes than were buffered (a caller bug:
   * sync getters must follow `has(n)` or an awaited `ensure(n)`). */
  | 'ESTREAM_UNDERRUN'
  /** A length or count read from the wire is over its hard limit (see limits.ts). */
  | 'ESTREAM_LIMIT'
  /** A value read from the wire does not fit the requested representation
   * (e.g. a be64 above 2^53 read as a number). */
  | 'ESTREAM_RANGE'
  /** The underlying byte channel failed (write, drain, read or end rejected/threw). */
  | 'ESTREAM_CHANNEL'
  /** Write after the writer was closed. */
  | 'ESTREAM_CLOSED'
  /** A descriptor could not be passed: the channel cannot carry one, the service byte is
   * wrong, or no descriptor came with it (QEMU's qemu_file_get_fd / qemu_file_put_fd). */
  | 'ESTREAM_FD';

export class StreamError extends Error {
  override readonly name = 'StreamError';
  readonly code: StreamErrorCode;
  /** Absolute stream offset (bytes since the start of this stream) where it happened. */
  readonly position: number;

  constructor(code: StreamErrorCode, message: string, position: number, options?: { cause?: unknown }) {
    super(`${message} (stream offset ${position})`, options);
    this.code = code;
    this.position = position;
  }
}

/** Anything carrying a stable `code`, the shape every livemig error has. */
export function hasCode(err: unknown): err is Error & { code: string } {
  return err instanceof Error && typeof (err as { code?: unknown }).code === 'string';
}
