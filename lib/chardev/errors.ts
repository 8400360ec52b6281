/**
 * Typed errors of the chardev layer. Callers and tests compare `code`, never the message.
 * Errors from the host (bind, connect) arrive as Node's errno errors or HostError unchanged.
 */

export type ChardevErrorCode =
  /** A descriptor the chardev needs was not among those given to adopt. */
  | 'ECHARDEV_ADOPT_MISSING'
  /** A descriptor given to adopt has a name this chardev does not use (or a name repeats). */
  | 'ECHARDEV_ADOPT_UNEXPECTED';

export class ChardevError extends Error {
  override readonly name = 'ChardevError';

  constructor(
    readonly code: ChardevErrorCode,
    message: string,
  ) {
    super(message);
  }
}
