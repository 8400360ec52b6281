/**
 * Decoding a section body by the stream's own vmdesc, the way scripts/analyze-migration.py
 * does (VMSDSection / VMSDFieldStruct): walk the description's `fields` in order, reading
 * `size` bytes per entry; an entry with `array_len` stands for that many elements; a
 * `struct` entry recurses into its nested description; then every subsection the vmdesc
 * lists must follow, in order (QEMU writes the vmdesc while saving, so it lists exactly the
 * subsections that were sent).
 *
 * Two deliberate differences from the script: a subsection whose name on the wire is not the
 * one the vmdesc lists is an error (the script does not compare them), and a `tmp` entry,
 * which carries its nested description inline (QEMU's put_tmp writes it into the field's own
 * object), is decoded as a nested object rather than printed as raw bytes.
 */
import { VMSTATE_ARRAY_MAX } from '../../stream';
import { checkDepth, decodeError, peekSubsection, readCapability, readLeaf, readLeafNow, readSubsectionHeader, type DecodeCtx } from './decode-common';
import { addField, type StateDict, type StateValue } from './values';
import { isObject } from './vmdesc-find';

/** Decode one vmdesc node (a device, a struct, or a subsection) from the stream. */
export async function decodeByVmdesc(ctx: DecodeCtx, node: unknown, path: string, depth = 0): Promise<StateDict> {
  checkDepth(ctx, depth, path);
  const bad = (what: string, field = path): never => {
    throw decodeError(ctx, 'EANALYZE_VMDESC', `vmdesc: ${what}`, field);
  };
  if (!isObject(node) || !Array.isArray(node.fields)) return bad('description has no "fields" list');
  const dict: StateDict = new Map();
  for (const entry of node.fields as unknown[]) {
    if (!isObject(entry) || typeof entry.name !== 'string' || typeof entry.type !== 'string') return bad('field without "name" and "type"');
    const name = entry.name;
    const type = entry.type;
    const fpath = `${path}/${name}`;
    let count = 1;
    if (entry.array_len !== undefined) {
      const n = entry.array_len;
      if (!Number.isInteger(n) || (n as number) < 0 || (n as number) > VMSTATE_ARRAY_MAX) return bad(`array_len ${String(n)} is not an integer in 0..${VMSTATE_ARRAY_MAX}`, fpath);
      // The script unfolds array_len into entries 0..n-1, keeping entry 0 even when n is 0.
      count = Math.max(1, n as number);
    }
    const plain = type !== 'struct' && type !== 'tmp' && type !== 'capability' && typeof entry.size === 'number';
    for (let i = 0; i < count; i++) {
      const epath = count > 1 ? `${fpath}[${i}]` : entry.index !== undefined ? `${fpath}[${String(entry.index)}]` : fpath;
      // Plain values already buffered are read without a promise each (arrays can be long).
      const v = plain && ctx.f.has(entry.size as number) ? readLeafNow(ctx, type, entry.size as number, epath) : await decodeEntry(ctx, entry, type, epath, depth, bad);
      addField(dict, name, v);
    }
  }
  if (node.subsections !== undefined) {
    if (!Array.isArray(node.subsections)) return bad('"subsections" is not a list');
    for (const sub of node.subsections as unknown[]) {
      if (!isObject(sub)) return bad('subsection description is not an object');
      const want = typeof sub.vmsd_name === 'string' ? sub.vmsd_name : '';
      const at = ctx.f.position;
      const hdr = await peekSubsection(ctx, `${path}/${want}`);
      if (!hdr) throw decodeError(ctx, 'EANALYZE_DEVICE', `subsection '${want}' not found`, path, at);
      if (want && hdr.name !== want) throw decodeError(ctx, 'EANALYZE_DEVICE', `subsection '${hdr.name}' found where the vmdesc lists '${want}'`, path, at);
      readSubsectionHeader(ctx, hdr.len);
      dict.set(hdr.name, await decodeByVmdesc(ctx, sub, `${path}/${hdr.name}`, depth + 1));
    }
  }
  return dict;
}

async function decodeEntry(
  ctx: DecodeCtx,
  entry: Record<string, unknown>,
  type: string,
  path: string,
  depth: number,
  bad: (what: string, field?: string) => never,
): Promise<StateValue> {
  if (type === 'struct') {
    if (!isObject(entry.struct) || !Array.isArray(entry.struct.fields)) return bad('no fields in struct', path);
    return decodeByVmdesc(ctx, entry.struct, path, depth + 1);
  }
  if (type === 'tmp' && Array.isArray(entry.fields)) return decodeByVmdesc(ctx, entry, path, depth + 1);
  if (type === 'capability') return readCapability(ctx, path);
  const size = entry.size;
  if (typeof size !== 'number') return bad('field has no "size"', path);
  return readLeaf(ctx, type, size, path);
}
