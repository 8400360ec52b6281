/**
 * Flattened device tree writer (Devicetree Specification v0.4, §5 "Flattened Devicetree (DTB)
 * Format").
 *
 *   offset 0   header (10 × be32): magic d00dfeed, totalsize, off_dt_struct, off_dt_strings,
 *              off_mem_rsvmap, version 17, last_comp_version 16, boot_cpuid_phys,
 *              size_dt_strings, size_dt_struct
 *   0x28       memory reservation block: (be64 address, be64 size)* terminated by (0, 0)
 *   …          structure block: FDT_BEGIN_NODE name\0 pad4, FDT_PROP be32 len be32 nameoff
 *              value pad4, FDT_END_NODE, …, FDT_END
 *   …          strings block: property names, NUL-terminated, shared
 */

const FDT_MAGIC = 0xd00dfeed;
const FDT_BEGIN_NODE = 1;
const FDT_END_NODE = 2;
const FDT_PROP = 3;
const FDT_END = 9;
const HEADER_SIZE = 40;

export type PropValue =
  | string
  | readonly string[]
  | number
  | readonly number[]
  | Uint8Array
  | null;

export interface FdtNode {
  name: string;
  props: [string, PropValue][];
  children: FdtNode[];
}

export function node(name: string, props: Record<string, PropValue> = {}, children: FdtNode[] = []): FdtNode {
  return { name, props: Object.entries(props), children };
}

/** Encode a property value as the spec's types: strings and string lists NUL-terminated,
 * numbers as <u32> cells, Uint8Array raw, null as an empty (boolean) property. */
function encodeValue(v: PropValue): Uint8Array {
  if (v === null) return new Uint8Array(0);
  if (v instanceof Uint8Array) return v;
  if (typeof v === 'string') return Buffer.from(v + '\0', 'utf8');
  if (typeof v === 'number') return cells([v]);
  if (v.length > 0 && typeof v[0] === 'string') return Buffer.from((v as string[]).map((s) => s + '\0').join(''), 'utf8');
  return cells(v as number[]);
}

function cells(values: readonly number[]): Uint8Array {
  const out = Buffer.alloc(4 * values.length);
  values.forEach((x, i) => out.writeUInt32BE(x >>> 0, 4 * i));
  return out;
}

/** <u64> pairs as two cells each, for reg properties with #address-cells = #size-cells = 2. */
export function reg64(...pairs: number[]): number[] {
  const out: number[] = [];
  for (const x of pairs) out.push(Math.floor(x / 2 ** 32), x % 2 ** 32);
  return out;
}

class Writer {
  private buf = Buffer.alloc(4096);
  len = 0;

  private grow(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const next = Buffer.alloc(Math.max(this.buf.length * 2, this.len + n));
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }
  u32(x: number): void {
    this.grow(4);
    this.buf.writeUInt32BE(x >>> 0, this.len);
    this.len += 4;
  }
  bytes(b: Uint8Array): void {
    this.grow(b.length + 3);
    this.buf.set(b, this.len);
    this.len += b.length;
    while (this.len & 3) this.buf[this.len++] = 0;
  }
  result(): Buffer {
    return this.buf.subarray(0, this.len);
  }
}

/** Serialise a tree rooted at `root` (whose name must be ""). */
export function buildFdt(root: FdtNode, bootCpuId = 0): Buffer {
  const strings = new Map<string, number>();
  let stringsLen = 0;
  const stringOrder: string[] = [];
  const nameOff = (name: string): number => {
    let off = strings.get(name);
    if (off === undefined) {
      off = stringsLen;
      strings.set(name, off);
      stringOrder.push(name);
      stringsLen += Buffer.byteLength(name) + 1;
    }
    return off;
  };

  const st = new Writer();
  const walk = (n: FdtNode): void => {
    st.u32(FDT_BEGIN_NODE);
    st.bytes(Buffer.from(n.name + '\0', 'utf8'));
    for (const [key, value] of n.props) {
      const v = encodeValue(value);
      st.u32(FDT_PROP);
      st.u32(v.length);
      st.u32(nameOff(key));
      st.bytes(v);
    }
    n.children.forEach(walk);
    st.u32(FDT_END_NODE);
  };
  walk(root);
  st.u32(FDT_END);
  const struct = st.result();
  const stringsBlob = Buffer.from(stringOrder.map((s) => s + '\0').join(''), 'utf8');

  const rsvmapOff = HEADER_SIZE;
  const structOff = rsvmapOff + 16;
  const stringsOff = structOff + struct.length;
  const total = stringsOff + stringsBlob.length;
  const out = Buffer.alloc(total);
  const header = [
    FDT_MAGIC,
    total,
    structOff,
    stringsOff,
    rsvmapOff,
    17,
    16,
    bootCpuId,
    stringsBlob.length,
    struct.length,
  ];
  header.forEach((x, i) => out.writeUInt32BE(x, 4 * i));
  // The reservation block is a single (0, 0) terminator: nothing reserved.
  struct.copy(out, structOff);
  stringsBlob.copy(out, stringsOff);
  return out;
}

/** Minimal reader, for tests and tooling: returns the tree back. */
export function parseFdt(blob: Uint8Array): FdtNode {
  const b = Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength);
  if (b.length < HEADER_SIZE || b.readUInt32BE(0) !== FDT_MAGIC) throw new Error('fdt: bad magic');
  const structOff = b.readUInt32BE(8);
  const stringsOff = b.readUInt32BE(12);
  const cstr = (off: number): string => {
    const end = b.indexOf(0, off);
    if (end < 0) throw new Error('fdt: unterminated string');
    return b.toString('utf8', off, end);
  };
  let p = structOff;
  const stack: FdtNode[] = [];
  let root: FdtNode | undefined;
  for (;;) {
    if (p + 4 > b.length) throw new Error('fdt: truncated structure block');
    const tok = b.readUInt32BE(p);
    p += 4;
    if (tok === FDT_BEGIN_NODE) {
      const name = cstr(p);
      p = (p + Buffer.byteLength(name) + 1 + 3) & ~3;
      const n: FdtNode = { name, props: [], children: [] };
      if (stack.length) stack[stack.length - 1].children.push(n);
      else root = n;
      stack.push(n);
    } else if (tok === FDT_PROP) {
      const len = b.readUInt32BE(p);
      const name = cstr(stringsOff + b.readUInt32BE(p + 4));
      const value = new Uint8Array(b.subarray(p + 8, p + 8 + len));
      stack[stack.length - 1].props.push([name, value]);
      p = (p + 8 + len + 3) & ~3;
    } else if (tok === FDT_END_NODE) {
      stack.pop();
    } else if (tok === FDT_END) {
      if (!root) throw new Error('fdt: empty tree');
      return root;
    } else if (tok !== 4) {
      throw new Error(`fdt: bad token ${tok} at ${p - 4}`);
    }
  }
}

/** Look a node up by path ("/chosen", "/soc/serial@10000000"). */
export function findNode(root: FdtNode, path: string): FdtNode | undefined {
  let n: FdtNode | undefined = root;
  for (const part of path.split('/').filter(Boolean)) {
    n = n?.children.find((c) => c.name === part);
  }
  return n;
}

export function propString(n: FdtNode | undefined, name: string): string | undefined {
  const v = n?.props.find(([k]) => k === name)?.[1];
  if (v instanceof Uint8Array) return Buffer.from(v).toString('utf8').replace(/\0+$/, '');
  return typeof v === 'string' ? v : undefined;
}
