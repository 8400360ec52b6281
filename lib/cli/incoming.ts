/**
 * `-incoming` as QEMU reads it (vl.c incoming_option_parse), repeatable:
 *
 *   defer                                      main: wait for migrate-incoming
 *   unix:PATH  tcp:H:P  fd:N  exec:…  file:…   main, a URI (an alphabetic scheme and ':')
 *   {"channel-type": "cpr", "addr": {...}}     a MigrationChannel in JSON (single quotes too)
 *   cpr,addr.transport=socket,addr.type=unix,addr.path=PATH
 *                                              the same in keyval form ("channel-type" implied)
 *
 * A later spec of a channel type replaces an earlier one, as in QEMU. Channels are checked
 * against the QAPI schema with QEMU's texts; what this build has no transport for (vsock,
 * rdma, abstract unix sockets) is refused by name.
 */
import { JsonMessageParser } from '../monitor';
import { MigrationChannel as MigrationChannelType } from '../monitor/schema/migration-types';
import { validateValue } from '../monitor/schema/visit';
import type { QapiType } from '../monitor/schema/types';
import type { JsonValue } from '../monitor/json/value';
import { parseUri, type MigrationAddress } from '../transport';
import { OptionError } from '../util/keyval';

export interface IncomingChannels {
  /** 'defer', or the address to listen on; undefined without -incoming. */
  main?: MigrationAddress | 'defer';
  /** cpr-transfer's channel. */
  cpr?: MigrationAddress;
}

/** QEMU's migrate_is_uri(): letters, then ':'. */
function isUri(s: string): boolean {
  return /^[A-Za-z]*:/.test(s);
}

export function parseIncoming(specs: readonly string[]): IncomingChannels {
  const out: IncomingChannels = {};
  for (const spec of specs) {
    if (spec === 'defer') out.main = 'defer';
    else if (isUri(spec)) out.main = uri(spec);
    else {
      const ch = channel(spec);
      if (ch.type === 'cpr') out.cpr = ch.addr;
      else out.main = ch.addr;
    }
  }
  if (out.cpr && !out.main) throw new OptionError("a 'cpr' channel needs a main channel too (a URI, a main channel, or defer)");
  return out;
}

function uri(spec: string): MigrationAddress {
  try {
    return parseUri(spec);
  } catch (e) {
    throw new OptionError(e instanceof Error ? e.message : String(e));
  }
}

interface QapiChannel {
  'channel-type': 'main' | 'cpr';
  addr: Record<string, unknown> & { transport: string };
}

function channel(spec: string): { type: 'main' | 'cpr'; addr: MigrationAddress } {
  const value = spec.trimStart().startsWith('{') ? parseJson(spec) : coerce(MigrationChannelType, keyvalTree(spec, 'channel-type'));
  let ch: QapiChannel;
  try {
    ch = validateValue(MigrationChannelType, value) as QapiChannel;
  } catch (e) {
    throw new OptionError(e instanceof Error ? e.message : String(e));
  }
  return { type: ch['channel-type'], addr: transportAddress(ch.addr) };
}

/** The schema's MigrationAddress → the transports' (which implement a subset). */
function transportAddress(a: QapiChannel['addr']): MigrationAddress {
  switch (a.transport) {
    case 'socket': {
      const t = a.type as string;
      if (t === 'inet') return { transport: 'socket', type: 'inet', host: a.host as string, port: a.port as string };
      if (t === 'unix') {
        if (a.abstract) throw new OptionError('abstract unix sockets are not supported');
        return { transport: 'socket', type: 'unix', path: a.path as string };
      }
      if (t === 'fd') return { transport: 'socket', type: 'fd', str: a.str as string };
      throw new OptionError(`socket type '${t}' is not supported`);
    }
    case 'exec':
      return { transport: 'exec', args: a.args as string[] };
    case 'file':
      return { transport: 'file', filename: a.filename as string, offset: a.offset as number };
    default:
      throw new OptionError(`migration transport '${a.transport}' is not supported`);
  }
}

function parseJson(text: string): JsonValue {
  let value: JsonValue | undefined;
  let error: string | undefined;
  const p = new JsonMessageParser((v, e) => {
    if (value === undefined && error === undefined) {
      value = v;
      error = e;
    }
  });
  p.feed(Buffer.from(text, 'utf8'));
  if (error !== undefined || value === undefined) throw new OptionError(error ?? 'JSON parse error, premature EOI');
  return value;
}

/**
 * QEMU's keyval syntax into a tree of strings: `a.b=1,a.c=2` → {a: {b: '1', c: '2'}}; numeric
 * keys make lists (`addr.args.0=sh`); a first item without '=' is the implied key's value;
 * ',,' is a literal comma.
 */
export function keyvalTree(text: string, implied: string): JsonValue {
  const root = new Map<string, JsonValue>();
  splitItems(text).forEach((item, i) => {
    const eq = item.indexOf('=');
    if (eq < 0 && i === 0) return void root.set(implied, item);
    if (eq < 0) throw new OptionError(`Expected '=' after parameter '${item}'`);
    const keys = item.slice(0, eq).split('.');
    let node = root;
    for (const k of keys.slice(0, -1)) {
      let next = node.get(k);
      if (next === undefined) node.set(k, (next = new Map()));
      if (!(next instanceof Map)) throw new OptionError(`Parameter '${keys.join('.')}' conflicts with '${k}'`);
      node = next;
    }
    const last = keys[keys.length - 1];
    if (node.has(last)) throw new OptionError(`Parameter '${keys.join('.')}' is given twice`);
    node.set(last, item.slice(eq + 1));
  });
  return listify(root);
}

function splitItems(text: string): string[] {
  const items: string[] = [];
  let cur = '';
  for (let i = 0; i < text.length; i++) {
    if (text[i] === ',' && text[i + 1] === ',') {
      cur += ',';
      i++;
    } else if (text[i] === ',') {
      items.push(cur);
      cur = '';
    } else cur += text[i];
  }
  items.push(cur);
  return items.filter((s, i) => s !== '' || i === 0);
}

/** A map whose keys are 0..n-1 is a list (QEMU's keyval list convention). */
function listify(v: JsonValue): JsonValue {
  if (!(v instanceof Map)) return v;
  const keys = [...v.keys()];
  for (const k of keys) v.set(k, listify(v.get(k)!));
  if (keys.length && keys.every((k, i) => k === String(i))) return keys.map((k) => v.get(k)!);
  return v;
}

/** The keyval input visitor: strings become the scalar a member's type asks for. */
function coerce(type: QapiType, v: JsonValue): JsonValue {
  switch (type.kind) {
    case 'scalar':
      if (typeof v !== 'string') return v;
      if (type.scalar === 'bool') return v === 'on' || v === 'true' || v === 'yes' ? true : v === 'off' || v === 'false' || v === 'no' ? false : v;
      if (type.scalar !== 'str' && type.scalar !== 'any' && /^\d+$/.test(v)) return Number(v);
      return v;
    case 'list':
      return Array.isArray(v) ? v.map((e) => coerce(type.element, e)) : v;
    case 'struct':
    case 'union': {
      if (!(v instanceof Map)) return v;
      for (const m of type.members) if (v.has(m.name)) v.set(m.name, coerce(m.type, v.get(m.name)!));
      // A union's variant (itself maybe a union) adds members, picked by the discriminator.
      const variant = type.kind === 'union' ? type.variants[String(v.get(type.discriminator))] : undefined;
      return variant ? coerce(variant, v) : v;
    }
    default:
      return v;
  }
}
