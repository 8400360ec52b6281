/**
 * The incoming side of exec:, fd: and file:. QEMU opens these at once when incoming
 * migration starts (the command is spawned, the fd or file is taken) and processes the one
 * channel when it becomes readable; there is no address and no second connection.
 */
import type { ByteChannel } from '../stream';
import { TransportError } from './errors';
import type { IncomingListener } from './types';

export function singleChannelListener(label: string, channel: ByteChannel): IncomingListener {
  let taken = false;
  let closed = false;
  return {
    addresses: [],
    multiChannel: false,
    accept(): Promise<ByteChannel> {
      if (closed) return Promise.reject(new TransportError('ELISTENER_CLOSED', `${label}: listener closed`));
      if (taken) {
        return Promise.reject(
          new TransportError('ENOT_MULTICHANNEL', `${label}: this transport carries a single channel`),
        );
      }
      taken = true;
      return Promise.resolve(channel);
    },
    close(): Promise<void> {
      // A channel nobody took is released (the command stopped, the descriptor closed).
      if (!closed && !taken) channel.destroy();
      closed = true;
      return Promise.resolve();
    },
  };
}
