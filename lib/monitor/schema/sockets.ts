/** Socket addresses (qapi/sockets.json), used by migration channels and query-migrate. */

import { bool, enumType, extend, opt, req, str, struct, uint16, union } from './types';

export const InetSocketAddressBase = struct('InetSocketAddressBase', {
  host: req(str, 'host part of the address'),
  port: req(str, 'port part of the address (a string, as in QEMU)'),
});

export const InetSocketAddress = extend(
  'InetSocketAddress',
  InetSocketAddressBase,
  {
    numeric: opt(bool, 'true if the host/port are guaranteed to be numeric'),
    to: opt(uint16, 'if present, a range of ports from port to this one'),
    ipv4: opt(bool, 'whether to accept IPv4 addresses'),
    ipv6: opt(bool, 'whether to accept IPv6 addresses'),
    'keep-alive': opt(bool, 'enable keep-alive'),
    mptcp: opt(bool, 'enable multi-path TCP'),
  },
  'a socket address or address range in the Internet namespace',
);

export const UnixSocketAddress = struct(
  'UnixSocketAddress',
  {
    path: req(str, 'filesystem path to use'),
    abstract: opt(bool, 'a Linux abstract socket address'),
    tight: opt(bool, 'do not pad an abstract address'),
  },
  'a socket address in the local ("Unix socket") namespace',
);

export const VsockSocketAddress = struct('VsockSocketAddress', {
  cid: req(str, 'unique host identifier'),
  port: req(str, 'port'),
});

export const FdSocketAddress = struct('FdSocketAddress', {
  str: req(str, 'decimal file descriptor number, or a name given with getfd'),
});

export const SocketAddressType = enumType('SocketAddressType', ['inet', 'unix', 'vsock', 'fd'] as const);

export const SocketAddress = union(
  'SocketAddress',
  {
    base: { type: req(SocketAddressType, 'transport type') },
    discriminator: 'type',
    variants: {
      inet: InetSocketAddress,
      unix: UnixSocketAddress,
      vsock: VsockSocketAddress,
      fd: FdSocketAddress,
    },
  },
  'the address of a socket, or a socket file descriptor',
);
