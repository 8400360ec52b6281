/**
 * What a chardev is, as -serial, -monitor and -qmp spell it: the parsed form both the serial
 * backend and the monitor endpoints are built from.
 *
 *   stdio                                 the process's stdin/stdout
 *   null / none                           discard output (none: no chardev at all)
 *   file:PATH                             output to PATH, truncated at open
 *   unix:PATH[,server=on][,wait=off]      unix socket: listen (server=on) or connect
 *   tcp:HOST:PORT[,server=on][,wait=off]  TCP: listen or connect; an empty HOST is 0.0.0.0
 *
 * wait defaults to on, as in QEMU: a listening chardev holds start-up until a client is here.
 */
import { OptionError, parseBool, parseKeyval } from '../util/keyval';

export type ChardevSpec =
  | { kind: 'stdio' }
  | { kind: 'null' }
  | { kind: 'file'; path: string }
  | { kind: 'unix'; path: string; server: boolean; wait: boolean }
  | { kind: 'tcp'; host: string; port: number; server: boolean; wait: boolean };

/** The chardevs that are sockets. */
export type SocketSpec = Extract<ChardevSpec, { kind: 'unix' | 'tcp' }>;

/** Parses a chardev argument; `none` is null. Malformed text raises OptionError. */
export function parseChardev(text: string): ChardevSpec | null {
  if (text === 'stdio') return { kind: 'stdio' };
  if (text === 'null') return { kind: 'null' };
  if (text === 'none') return null;
  if (text.startsWith('file:')) return { kind: 'file', path: text.slice(5) };
  const sock = /^(unix|tcp):(.*)$/.exec(text);
  if (sock) {
    const kv = parseKeyval(sock[2], 'addr');
    const addr = kv.get('addr') ?? '';
    const server = kv.has('server') ? parseBool(kv.get('server')!, 'server') : false;
    const wait = kv.has('wait') ? parseBool(kv.get('wait')!, 'wait') : true;
    for (const k of kv.keys()) {
      if (!['addr', 'server', 'wait'].includes(k)) throw new OptionError(`unknown parameter '${k}'`);
    }
    if (sock[1] === 'unix') {
      if (!addr) throw new OptionError('unix socket needs a path');
      return { kind: 'unix', path: addr, server, wait };
    }
    const m = /^(.*):(\d+)$/.exec(addr);
    if (!m) throw new OptionError('tcp needs HOST:PORT');
    const port = Number(m[2]);
    if (port > 65535) throw new OptionError(`port ${port} out of range`);
    return { kind: 'tcp', host: m[1].replace(/^\[(.*)\]$/, '$1') || '0.0.0.0', port, server, wait };
  }
  throw new OptionError(`'${text}' is not a supported character device`);
}

/**
 * The name QEMU gives a listening socket chardev with no client yet (qemu_chr_compute_filename),
 * as in "QEMU waiting for connection on: disconnected:unix:PATH,server=on".
 */
export function disconnectedFilename(spec: SocketSpec): string {
  if (spec.kind === 'unix') return `disconnected:unix:${spec.path},server=on`;
  return `disconnected:tcp:${spec.host}:${spec.port},server=on`;
}
