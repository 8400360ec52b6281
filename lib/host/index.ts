/**
 * lib/host: the typed face of the native addon. Thin wrappers over system calls: memfd RAM
 * mappings and windows, userfaultfd, fd passing on unix sockets, kernel dirty tracking, and
 * the HostError every failure becomes. Policy lives in the layers above.
 */
export { HostError, isHostError } from './errors';
export { native } from './addon';
export { closeQuietly } from './close';
export type { NativeAddon, TcpListenResult } from './native';
export { MemfdMapping, windowAt, findMapping, MAX_WINDOW_SIZE } from './memfd';
export type { MemfdOptions, MapFdOptions } from './memfd';
export { Userfaultfd, gettid } from './userfaultfd';
export type {
  UffdFeature,
  UffdFeatureSet,
  UffdIoctl,
  UffdMode,
  UffdEvent,
  UffdPagefault,
  ResolveOptions,
} from './userfaultfd';
export { FdSocket, FdListener } from './fd-socket';
export type { FdSocketType, FdMessage } from './fd-socket';
export { FdPoll } from './fd-poll';
export type { ReadyCallback } from './fd-poll';
export { WpDirtyTracker } from './wp-dirty-tracker';
export type { TrackedRange } from './wp-dirty-tracker';
export { HOST_PAGE_SIZE, UFFD_FEATURE, PAGE_IS, UV_READABLE, UV_WRITABLE, SOCK_STREAM } from './linux';
