/** Multifd: RAM pages over extra channels, one thread per channel on each side. */
export { MultifdSender, type MultifdSenderOptions } from './send';
export { MultifdReceiver, type MultifdReceiverOptions, MISSING_CHANNEL_MS } from './recv';
export * from './wire';
