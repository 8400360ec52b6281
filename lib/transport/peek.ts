/**
 * The first bytes of a new connection, left on the socket (recv MSG_PEEK): QEMU tells an
 * incoming connection's kind — main stream or multifd channel — by its first four bytes
 * (migration_ioc_process_incoming), and a multifd channel's initial packet is checked before
 * its socket goes to a channel thread, with nothing read past it.
 *
 * It polls with a timer rather than the channel's readiness: a new connection is peeked once,
 * the peer sends its first bytes at once, and the channel must not start reading meanwhile.
 */
import { native } from '../host';
import { TransportError } from './errors';

const RETRY_MS = 2;

/** The first `n` bytes waiting on `fd`'s socket; fewer only when the peer ended the stream
 * first. Rejects when the socket fails, or after `timeoutMs` (ETIMEDOUT). */
export function peekSocket(fd: number, n: number, timeoutMs: number, label = 'socket'): Promise<Uint8Array> {
  const buf = Buffer.alloc(n);
  const deadline = performance.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = (): void => {
      let got: number;
      try {
        got = native.peek(fd, buf, 0, n);
      } catch (e) {
        return reject(TransportError.fromSyscall(e, label));
      }
      if (got === n || got === 0) return resolve(buf.subarray(0, got));
      if (performance.now() > deadline) return reject(new TransportError('ETIMEDOUT', `${label}: no first ${n} bytes within ${timeoutMs} ms`));
      setTimeout(attempt, RETRY_MS);
    };
    attempt();
  });
}
