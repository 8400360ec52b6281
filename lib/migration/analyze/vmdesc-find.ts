/**
 * Finding and checking the vmdesc record at the end of a stream (savevm.c after QEMU_VM_EOF):
 *
 *   … 0x00 EOF │ 0x06 │ be32 json_len │ json[json_len] ⟶ end of file
 *
 * scripts/analyze-migration.py takes the last NUL byte of the final 10 MiB and the first `{`
 * after it. That guess breaks when the JSON is preceded by page data without NULs near the
 * end; here a candidate must be exact instead: a 0x06 byte, a length, a `{`, and the JSON
 * ending precisely at the end of the stream. The search runs backwards and takes the first
 * match: QEMU's JSON writer escapes every control character, so no raw 0x06 can sit inside
 * the JSON and a later candidate cannot exist.
 */
import { VMDESC_JSON_MAX, PAGE_MAX } from '../../stream/limits';
import { parseVmdesc, type VmdescFile } from '../../vmstate';
import { QEMU_VM_VMDESCRIPTION } from '../wire';
import { AnalyzeError } from './errors';
import type { StreamTail } from './input';

/** Bytes of the tail to look at: the record header plus the largest JSON we accept. */
export const VMDESC_TAIL_MAX = VMDESC_JSON_MAX + 5;

const BRACE = 0x7b;

/** A vmdesc record located in a tail: `offset` is the stream offset of its 0x06 byte. */
export interface LocatedVmdesc {
  readonly offset: number;
  readonly json: Uint8Array;
}

export function locateVmdesc(tail: StreamTail): LocatedVmdesc | null {
  const b = tail.bytes;
  const n = b.length;
  for (let p = n - 6; p >= 0; p--) {
    if (b[p] !== QEMU_VM_VMDESCRIPTION || b[p + 5] !== BRACE) continue;
    const len = ((b[p + 1] << 24) | (b[p + 2] << 16) | (b[p + 3] << 8) | b[p + 4]) >>> 0;
    if (p + 5 + len === n) return { offset: tail.offset + p, json: b.subarray(p + 5) };
  }
  return null;
}

/** Parse and check the top level of a vmdesc; the shape of each field is checked while
 * decoding, where an error can name the section and field it belongs to. */
export function parseVmdescChecked(json: Uint8Array, offset: number): VmdescFile {
  let v: VmdescFile;
  try {
    v = parseVmdesc(json, offset);
  } catch (e) {
    throw new AnalyzeError('EANALYZE_VMDESC', (e as { detail?: string }).detail ?? (e as Error).message, { section: 'vmdesc', position: offset, cause: e });
  }
  const bad = (what: string): never => {
    throw new AnalyzeError('EANALYZE_VMDESC', what, { section: 'vmdesc', position: offset });
  };
  if (v.page_size !== undefined) {
    const ps = v.page_size;
    if (!Number.isInteger(ps) || ps < 1024 || ps > PAGE_MAX || (ps & (ps - 1)) !== 0) bad(`page_size ${String(ps)} is not a power of two in 1024..${PAGE_MAX}`);
  }
  if (v.configuration !== undefined && !isObject(v.configuration)) bad('"configuration" is not an object');
  v.devices.forEach((d, i) => {
    if (!isObject(d)) bad(`devices[${i}] is not an object`);
    if (typeof d.name !== 'string') bad(`devices[${i}] has no "name" string`);
    if (!Number.isInteger(d.instance_id) || d.instance_id < 0 || d.instance_id > 0xffffffff) bad(`device '${d.name}' has no valid "instance_id"`);
    // analyze-migration.py: "vmstate for device %s has no fields"
    if (!Array.isArray(d.fields)) bad(`vmstate for device '${d.name}' has no fields`);
  });
  return v;
}

export function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}
