/**
 * Decoded device state, and how it is printed — the shape scripts/analyze-migration.py gives
 * its `-d state` output, so the two can be compared by eye or by diff:
 *
 *   integers   "0x" + big-endian hex, two digits per byte of the field's size; for signed
 *              types a negative value adds its decimal: "0xffffffff (-1)"
 *   bool       true / false
 *   capability the name, as a string
 *   nullptr    "nullptr"
 *   others     (buffer, unused_buffer, timer, bitmap, float64, unknown types such as
 *              "pci config") the bytes in hex, space separated: "00 0c 01"
 *   arrays     a list; an array of one element is that element alone, because QEMU's vmdesc
 *              only marks arrays of more than one element
 *   structs, sections, subsections: objects in field order; a subsection is a member named by
 *              its full name ("cpu/pmp")
 *
 * Printing is Python's json.dumps(indent=4, separators=(',', ': ')) with ensure_ascii: four
 * spaces per level, non-ASCII and control characters as \uXXXX with lower-case hex.
 */

/** One field element as it was on the wire. */
export interface Leaf {
  readonly type: string;
  readonly bytes: Uint8Array;
}

export type StateValue = Leaf | StateValue[] | StateDict;
export type StateDict = Map<string, StateValue>;

/** A printable value: what renderState() turns state into, and what printJson() prints. */
export type JsonValue = string | number | boolean | null | JsonValue[] | Map<string, JsonValue> | { [k: string]: JsonValue };

const SIGNED = new Set(['int8', 'int16', 'int32', 'int64', 'int32 equal', 'int32 le', 'int64 equal', 'uint8 equal', 'uint16 equal']);
const UNSIGNED = new Set(['uint8', 'uint16', 'uint32', 'uint64', 'uint32 equal']);

/** Types read as integers (analyze-migration.py's VMSDFieldInt / VMSDFieldUInt). */
export function isIntType(type: string): boolean {
  return SIGNED.has(type) || UNSIGNED.has(type);
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

export function hexBytes(b: Uint8Array, sep = ''): string {
  const parts: string[] = new Array(b.length);
  for (let i = 0; i < b.length; i++) parts[i] = HEX[b[i]];
  return parts.join(sep);
}

export function latin1String(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');
}

/** A leaf as analyze-migration.py prints it. */
export function renderLeaf(leaf: Leaf): JsonValue {
  const { type, bytes } = leaf;
  if (type === 'bool') return bytes.length > 0 && bytes[0] !== 0;
  if (type === 'capability') return latin1String(bytes);
  if (type === 'nullptr') return 'nullptr';
  if (isIntType(type) && bytes.length > 0) {
    const hex = hexBytes(bytes);
    if (SIGNED.has(type) && bytes[0] & 0x80) {
      const signed = BigInt('0x' + hex) - (1n << BigInt(bytes.length * 8));
      return `0x${hex} (${signed.toString()})`;
    }
    return `0x${hex}`;
  }
  return hexBytes(bytes, ' ');
}

export function isLeaf(v: StateValue): v is Leaf {
  return !Array.isArray(v) && !(v instanceof Map);
}

export function renderState(v: StateValue): JsonValue {
  if (Array.isArray(v)) return v.map(renderState);
  if (v instanceof Map) {
    const out = new Map<string, JsonValue>();
    for (const [k, x] of v) out.set(k, renderState(x));
    return out;
  }
  return renderLeaf(v);
}

/**
 * Add a decoded field to its parent, as analyze-migration.py does: the first value under a
 * name is stored as is; a second one turns it into a list (this is how array elements, which
 * the vmdesc lists one entry per element, come together).
 */
export function addField(dict: StateDict, name: string, v: StateValue): void {
  const prev = dict.get(name);
  if (prev === undefined) dict.set(name, v);
  else if (Array.isArray(prev)) prev.push(v);
  else dict.set(name, [prev, v]);
}

/* ------------------------------------------------------------------------------------------ */
/* Printing                                                                                     */
/* ------------------------------------------------------------------------------------------ */

function quote(s: string): string {
  let r = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x22) r += '\\"';
    else if (c === 0x5c) r += '\\\\';
    else if (c >= 0x20 && c < 0x7f) r += s[i];
    else if (c === 0x0a) r += '\\n';
    else if (c === 0x0d) r += '\\r';
    else if (c === 0x09) r += '\\t';
    else if (c === 0x08) r += '\\b';
    else if (c === 0x0c) r += '\\f';
    else r += '\\u' + c.toString(16).padStart(4, '0');
  }
  return r + '"';
}

function write(out: string[], v: JsonValue, indent: string): void {
  if (v === null) out.push('null');
  else if (typeof v === 'string') out.push(quote(v));
  else if (typeof v === 'number') out.push(Number.isFinite(v) ? String(v) : 'null');
  else if (typeof v === 'boolean') out.push(v ? 'true' : 'false');
  else if (Array.isArray(v)) {
    if (v.length === 0) return void out.push('[]');
    const inner = indent + '    ';
    out.push('[');
    v.forEach((x, i) => {
      out.push(i ? ',\n' : '\n', inner);
      write(out, x, inner);
    });
    out.push('\n', indent, ']');
  } else {
    const entries = v instanceof Map ? [...v.entries()] : Object.entries(v).filter(([, x]) => x !== undefined);
    if (entries.length === 0) return void out.push('{}');
    const inner = indent + '    ';
    out.push('{');
    entries.forEach(([k, x], i) => {
      out.push(i ? ',\n' : '\n', inner, quote(k), ': ');
      write(out, x, inner);
    });
    out.push('\n', indent, '}');
  }
}

/** Python's json.dumps(v, indent=4, separators=(',', ': ')). No trailing newline. */
export function printJson(v: JsonValue): string {
  const out: string[] = [];
  write(out, v, '');
  return out.join('');
}
