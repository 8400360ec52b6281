/**
 * The VM description (vmdesc) JSON that follows QEMU_VM_EOF, exactly as QEMU writes it
 * (migration/vmstate.c vmsd_desc_field_*, savevm.c, qobject/json-writer.c non-pretty mode):
 *
 *   u8 0x06 (QEMU_VM_VMDESCRIPTION) │ be32 json_len │ json_len bytes of JSON, no NUL
 *
 *   {"page_size": 4096, "devices": [
 *     {"name": IDSTR, "instance_id": N, "vmsd_name": NAME, "version": V,
 *      "fields": [ {"name": F, ["array_len": N | "index": I,] "type": INFO,
 *                   ["struct": {"vmsd_name", "version", "fields", ["subsections"]},] "size": B}, … ],
 *      ["subsections": [ {"vmsd_name", "version", "fields", ["subsections"]}, … ]]}, … ]}
 *
 * Formatting is QEMU's JSONWriter: ", " between members, ": " after keys, no newlines,
 * strings escaped with \" \\ \b \f \n \r \t and \uXXXX (upper-case hex) for other control
 * characters and everything from 0x7F up. Key order is the order QEMU emits them. Sizes are
 * the bytes actually written for that entry (a compressed array's size is one element's).
 * A `tmp` field (VMSTATE_WITH_TMP) carries its nested description's keys inline, because
 * QEMU's put_tmp writes them into the field's own object.
 *
 * scripts/analyze-migration.py reads ints by `size`, big-endian; walks `fields` and expects
 * every listed subsection, in order. Newer QEMU puts a "configuration" entry before
 * "page_size"; QEMU 7.2 does not, and a 7.2-compatible reader must not require it.
 */
import { VMDESC_JSON_MAX } from '../stream/limits';
import { VMStateError } from './errors';

/** One field entry. Key order matters for byte-exact output: build in this order. */
export interface VmdescField {
  name: string;
  array_len?: number;
  index?: number;
  type: string;
  struct?: VmdescNode;
  /** `tmp` fields only: the nested description, inline. */
  vmsd_name?: string;
  version?: number;
  fields?: VmdescField[];
  subsections?: VmdescNode[];
  size: number;
}

/** A description as saved: a section body, a nested struct, or a subsection. */
export interface VmdescNode {
  vmsd_name: string;
  version: number;
  fields: VmdescField[];
  subsections?: VmdescNode[];
}

/** One FULL section in the file's `devices` list. */
export interface VmdescDevice extends VmdescNode {
  name: string;
  instance_id: number;
}

export interface VmdescFile {
  configuration?: VmdescNode;
  page_size: number;
  devices: VmdescDevice[];
}

/** The `devices` entry for a saved section: QEMU writes name and instance_id, then the
 * section's description. */
export function vmdescDevice(idstr: string, instanceId: number, node: VmdescNode): VmdescDevice {
  const d: VmdescDevice = { name: idstr, instance_id: instanceId } as VmdescDevice;
  d.vmsd_name = node.vmsd_name;
  d.version = node.version;
  d.fields = node.fields;
  if (node.subsections) d.subsections = node.subsections;
  return d;
}

/** The whole-file object, from the FULL sections in stream order. `configuration` (the
 * configuration section's description) is written first when given, as newer QEMU does. */
export function vmdescFile(
  devices: readonly VmdescDevice[],
  opts: { pageSize?: number; configuration?: VmdescNode } = {},
): VmdescFile {
  const f = {} as VmdescFile;
  if (opts.configuration) f.configuration = opts.configuration;
  f.page_size = opts.pageSize ?? 4096;
  f.devices = devices.slice();
  return f;
}

/** Serialise any JSON value the way QEMU's JSONWriter (non-pretty) does. */
export function vmdescToJson(value: unknown): string {
  const out: string[] = [];
  writeValue(out, value);
  return out.join('');
}

/** The JSON as bytes (pure ASCII: every other character is escaped). */
export function encodeVmdesc(value: unknown): Uint8Array {
  return Buffer.from(vmdescToJson(value), 'latin1');
}

/** Parse vmdesc JSON bytes (e.g. for livemig-analyze), enforcing VMDESC_JSON_MAX. */
export function parseVmdesc(bytes: Uint8Array, position = 0): VmdescFile {
  const info = { section: 'vmdesc', field: '', position };
  if (bytes.length > VMDESC_JSON_MAX) {
    throw new VMStateError('EVMSTATE_VMDESC', `vmdesc of ${bytes.length} bytes over limit ${VMDESC_JSON_MAX}`, info);
  }
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch (e) {
    throw new VMStateError('EVMSTATE_VMDESC', `vmdesc is not valid JSON: ${(e as Error).message}`, { ...info, cause: e });
  }
  if (typeof v !== 'object' || v === null || !Array.isArray((v as VmdescFile).devices)) {
    throw new VMStateError('EVMSTATE_VMDESC', 'vmdesc has no "devices" array', info);
  }
  return v as VmdescFile;
}

function writeValue(out: string[], v: unknown): void {
  if (v === null) {
    out.push('null');
  } else if (typeof v === 'string') {
    out.push(quote(v));
  } else if (typeof v === 'number') {
    out.push(Number.isInteger(v) ? String(v) : String(v));
  } else if (typeof v === 'bigint') {
    out.push(v.toString());
  } else if (typeof v === 'boolean') {
    out.push(v ? 'true' : 'false');
  } else if (Array.isArray(v)) {
    out.push('[');
    for (let i = 0; i < v.length; i++) {
      if (i) out.push(', ');
      writeValue(out, v[i]);
    }
    out.push(']');
  } else if (typeof v === 'object') {
    out.push('{');
    let first = true;
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      if (x === undefined) continue;
      if (!first) out.push(', ');
      first = false;
      out.push(quote(k), ': ');
      writeValue(out, x);
    }
    out.push('}');
  } else {
    out.push('null');
  }
}

function u4(n: number): string {
  return '\\u' + n.toString(16).toUpperCase().padStart(4, '0');
}

/** Printable ASCII other than '"' and '\\': quoted as it is (every name in a vmdesc). */
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

/** json-writer.c quoted_str(). */
function quote(s: string): string {
  if (PLAIN.test(s)) return `"${s}"`;
  let r = '"';
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    switch (cp) {
      case 0x22: r += '\\"'; break;
      case 0x5c: r += '\\\\'; break;
      case 0x08: r += '\\b'; break;
      case 0x0c: r += '\\f'; break;
      case 0x0a: r += '\\n'; break;
      case 0x0d: r += '\\r'; break;
      case 0x09: r += '\\t'; break;
      default:
        if (cp > 0xffff) {
          r += u4(0xd800 + ((cp - 0x10000) >> 10)) + u4(0xdc00 + ((cp - 0x10000) & 0x3ff));
        } else if (cp < 0x20 || cp >= 0x7f) {
          r += u4(cp);
        } else {
          r += ch;
        }
    }
  }
  return r + '"';
}
