/**
 * lib/chardev: character devices, below both the monitor and the command line. The parsed
 * spec (-serial/-monitor/-qmp spelling), the -serial backends, and the one socket
 * implementation the serial backend and the monitor endpoints share. Descriptors are named so
 * a chardev can be handed to a new process (cpr-transfer) and adopted there.
 */
export { parseChardev, disconnectedFilename, type ChardevSpec, type SocketSpec } from './spec';
export { openChardev, type Chardev, type OpenChardevOptions } from './backends';
export { ChardevSocket, type ChardevSocketOptions } from './socket';
export type { NamedFd } from './fds';
export { ChardevError, type ChardevErrorCode } from './errors';
