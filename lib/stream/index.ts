/**
 * The migration stream (QEMU's QEMUFile) over a byte channel: buffered, rate-limited, with a
 * sticky first error and hard limits on every wire length. See docs/ARCHITECTURE.md §Stream.
 */
export type { ByteSource, ByteSink, ByteChannel, DirectSink, MemoryPipeOptions } from './channel';
export {
  memoryChannelPair,
  CollectingSink,
  collectingSink,
  NullSink,
  chunkSource,
  bytesSource,
  isDirectSink,
} from './channel';
export { StreamError, hasCode } from './errors';
export type { StreamErrorCode } from './errors';
export * from './limits';
export type { Clock } from './rate-limit';
export { systemClock, ManualClock, RateLimiter, BUFFER_DELAY_MS, XFER_LIMIT_RATIO } from './rate-limit';
export { QemuFileWriter, DEFAULT_STAGING_SIZE, MIN_STAGING_SIZE, FD_SERVICE_BYTE } from './qemu-file-writer';
export type { WriterOptions } from './qemu-file-writer';
export { QemuFileReader, latin1 } from './qemu-file-reader';
