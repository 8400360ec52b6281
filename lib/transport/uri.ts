/**
 * Migration URIs and channels, as QEMU accepts them (migration/migration.c
 * migrate_uri_parse, qapi/migration.json MigrationAddress / MigrationChannel):
 *
 *   tcp:HOST:PORT          socket inet   (incoming PORT 0 = ephemeral)
 *   unix:PATH              socket unix
 *   fd:NAME                socket fd     (a monitor-named fd, or a number)
 *   exec:CMDLINE           exec          (/bin/sh -c CMDLINE)
 *   file:PATH[,offset=N]   file          (N: size suffixes or 0x hex)
 *   defer                  incoming only: wait for migrate-incoming
 */
import { parseSize, SizeError } from '../util/size';

export type SocketAddress =
  | { type: 'inet'; host: string; port: string }
  | { type: 'unix'; path: string }
  | { type: 'fd'; str: string };

export type MigrationAddress =
  | ({ transport: 'socket' } & SocketAddress)
  | { transport: 'exec'; args: string[] }
  | { transport: 'file'; filename: string; offset: number };

export type ChannelType = 'main' | 'cpr';

export interface MigrationChannel {
  'channel-type': ChannelType;
  addr: MigrationAddress;
}

export class UriError extends Error {
  readonly code = 'EURI';
}

export function parseUri(uri: string): MigrationAddress {
  const colon = uri.indexOf(':');
  if (colon < 0) throw new UriError(`unknown migration protocol: ${uri}`);
  const scheme = uri.slice(0, colon);
  const rest = uri.slice(colon + 1);
  switch (scheme) {
    case 'tcp': {
      // Options after the port (",to=", ",ipv4=", ",ipv6=") are accepted and ignored:
      // they only steer address selection in QEMU.
      const hp = rest.split(',')[0];
      const m = /^(?:\[([^\]]*)\]|([^:]*)):(\d+)$/.exec(hp);
      if (!m) throw new UriError(`tcp: expected HOST:PORT in '${uri}'`);
      const port = Number(m[3]);
      if (port > 65535) throw new UriError(`tcp: port ${port} out of range`);
      return { transport: 'socket', type: 'inet', host: m[1] ?? m[2], port: m[3] };
    }
    case 'unix':
      if (!rest) throw new UriError('unix: a socket path is required');
      return { transport: 'socket', type: 'unix', path: rest };
    case 'fd':
      if (!rest) throw new UriError('fd: a descriptor name or number is required');
      return { transport: 'socket', type: 'fd', str: rest };
    case 'exec':
      if (!rest) throw new UriError('exec: a command is required');
      return { transport: 'exec', args: ['/bin/sh', '-c', rest] };
    case 'file':
      return parseFileUri(rest);
    default:
      throw new UriError(`unknown migration protocol: ${uri}`);
  }
}

function parseFileUri(rest: string): MigrationAddress {
  // QEMU splits at the last ",offset=" so paths may contain commas.
  const idx = rest.lastIndexOf(',offset=');
  let filename = rest;
  let offset = 0;
  if (idx >= 0) {
    filename = rest.slice(0, idx);
    const text = rest.slice(idx + ',offset='.length);
    try {
      offset = parseSize(text, 1);
    } catch (e) {
      if (e instanceof SizeError) throw new UriError(`file: invalid offset '${text}'`);
      throw e;
    }
  }
  if (!filename) throw new UriError('file: a path is required');
  return { transport: 'file', filename, offset };
}

/** Back to the URI form, for messages and query output. */
export function formatAddress(a: MigrationAddress): string {
  switch (a.transport) {
    case 'socket':
      if (a.type === 'inet') return `tcp:${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`;
      if (a.type === 'unix') return `unix:${a.path}`;
      return `fd:${a.str}`;
    case 'exec':
      return a.args.length === 3 && a.args[0] === '/bin/sh' && a.args[1] === '-c' ? `exec:${a.args[2]}` : `exec:${a.args.join(' ')}`;
    case 'file':
      return a.offset ? `file:${a.filename},offset=${a.offset}` : `file:${a.filename}`;
  }
}

/**
 * `migrate`/`migrate-incoming` take exactly one of `uri` and `channels` (QEMU: "need either
 * 'uri' or 'channels' argument" / "'uri' and 'channels' arguments are mutually exclusive").
 * Returns the main channel and, when given, the cpr channel.
 */
export function resolveChannels(uri: string | undefined, channels: MigrationChannel[] | undefined): {
  main: MigrationAddress;
  cpr?: MigrationAddress;
} {
  if (uri !== undefined && channels !== undefined) {
    throw new UriError("'uri' and 'channels' arguments are mutually exclusive; exactly one of the two should be present");
  }
  if (uri !== undefined) return { main: parseUri(uri) };
  if (!channels || channels.length === 0) throw new UriError("need either 'uri' or 'channels' argument");
  let main: MigrationAddress | undefined;
  let cpr: MigrationAddress | undefined;
  for (const ch of channels) {
    if (ch['channel-type'] === 'main') {
      if (main) throw new UriError('Channel list has more than one main entry');
      main = ch.addr;
    } else if (ch['channel-type'] === 'cpr') {
      if (cpr) throw new UriError('Channel list has more than one cpr entry');
      cpr = ch.addr;
    }
  }
  if (!main) throw new UriError('Channel list has no main entry');
  return { main, cpr };
}
