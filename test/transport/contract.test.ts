/**
 * The shared ByteChannel contract (test/stream/channel-contract.ts) against every transport,
 * through real sockets, pipes, processes and files.
 */
import { byteChannelContract } from '../stream/channel-contract';
import {
  execPair,
  fdChannelPair,
  filePair,
  hasIpv6Loopback,
  pipePair,
  socketFdPair,
  tcpPair,
  tempDir,
  uniquePath,
  unixPair,
} from './helpers';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

byteChannelContract('tcp (IPv4 loopback)', () => tcpPair('127.0.0.1'));

if (hasIpv6Loopback()) byteChannelContract('tcp (IPv6 loopback)', () => tcpPair('::1'));
else test.skip('ByteChannel contract: tcp (IPv6 loopback) [skipped: no ::1 on this machine]', () => undefined);

byteChannelContract('unix socket', () => unixPair(tmp.dir));

byteChannelContract('FdChannel over a socketpair (default kernel buffers)', () => fdChannelPair());

byteChannelContract('fd over a socketpair (FdChannel)', () => socketFdPair());

byteChannelContract('fd over a pipe', () => pipePair(tmp.dir), { duplex: false });

byteChannelContract('exec through cat (two FIFOs, both directions)', () => execPair(tmp.dir));

byteChannelContract('file (writer, then reader)', () => filePair(uniquePath(tmp.dir, 'stream')), {
  duplex: false,
  live: false,
});

byteChannelContract('file with offset=4096 (writer, then reader)', () => filePair(uniquePath(tmp.dir, 'stream'), 4096), {
  duplex: false,
  live: false,
});
