/**
 * Decoding a section body by one of livemig's own VMState descriptions, for streams that
 * carry no vmdesc (a `suppress-vmdesc` sender, a postcopy stream, a file cut before its end).
 * The walk is the loader's (lib/vmstate/load.ts) — fields that exist at the stream's version,
 * element counts, nested structs at their current version, subsections found by peeking —
 * but nothing is stored into a device: values go into the output, named exactly as the vmdesc
 * of the same save would name them (`name[k]` for repeated names), so a stream decodes to the
 * same output with or without its vmdesc.
 *
 * Counts and sizes that a description takes from its object (`numFrom`, `sizeFrom`, `exists`:
 * the number of harts, PLIC sources …) are asked of a *shape*: a device object built the way
 * the board builds it (see livemig-sections.ts), never written to. Values decoded earlier in
 * the same object shadow the shape's, so a count sent on the wire before its array (as the
 * configuration's name length is) is used as sent.
 */
import { VMSTATE_ARRAY_MAX } from '../../stream';
import { SCALAR, fieldExists, isArrayField, vmdescNames, vmdescType, type VMStateDescription, type VMStateField } from '../../vmstate';
import { checkDepth, decodeError, peekSubsection, readLeaf, readLeafNow, readSubsectionHeader, type DecodeCtx } from './decode-common';
import { addField, type Leaf, type StateDict, type StateValue } from './values';

type Locals = Record<string, unknown>;

/** The object the description's hooks see: decoded values first, then the shape. */
function view(shape: unknown, locals: Locals): any {
  if (typeof shape !== 'object' || shape === null) return locals;
  return new Proxy(shape, {
    get: (target, prop) => (typeof prop === 'string' && prop in locals ? locals[prop] : Reflect.get(target, prop, target)),
  });
}

function hook<R>(ctx: DecodeCtx, path: string, what: string, fn: () => R): R {
  try {
    return fn();
  } catch (e) {
    throw decodeError(ctx, 'EANALYZE_DEVICE', `description ${what} failed: ${e instanceof Error ? e.message : String(e)}`, path);
  }
}

/** The shape below a struct field (element `i` of an array), or null if there is none. */
function childShape(field: VMStateField, shape: unknown, i: number, isArray: boolean): unknown {
  if (typeof shape !== 'object' || shape === null) return null;
  try {
    const v = field.get ? field.get(shape) : (shape as Record<string, unknown>)[field.key ?? field.name];
    return isArray ? (v as ArrayLike<unknown> | undefined)?.[i] ?? null : v ?? null;
  } catch {
    return null;
  }
}

/** JS value of a scalar, for hooks that read it back (a count, a size). */
function localValue(leaf: Leaf, info: keyof typeof SCALAR): unknown {
  const s = SCALAR[info];
  const b = leaf.bytes;
  if (s.bool) return b[0] !== 0;
  let v = 0n;
  for (let i = 0; i < b.length; i++) v = (v << 8n) | BigInt(b[i]);
  if (s.signed) v = BigInt.asIntN(s.size * 8, v);
  return s.size === 8 ? v : Number(v);
}

export async function decodeByVmsd(
  ctx: DecodeCtx,
  vmsd: VMStateDescription,
  shape: unknown,
  versionId: number,
  path: string,
  depth = 0,
): Promise<StateDict> {
  checkDepth(ctx, depth, path);
  if (versionId > vmsd.versionId || versionId < vmsd.minimumVersionId) {
    throw decodeError(ctx, 'EANALYZE_DEVICE', `version ${versionId} is outside livemig's ${vmsd.minimumVersionId}..${vmsd.versionId} for '${vmsd.name}'`, path);
  }
  const locals: Locals = Object.create(null);
  const opaque = view(shape, locals);
  const names = vmdescNames(vmsd);
  const dict: StateDict = new Map();
  for (let fi = 0; fi < vmsd.fields.length; fi++) {
    const field = vmsd.fields[fi];
    const fpath = `${path}/${field.name}`;
    if (field.kind === 'validate') continue; // no bytes
    if (!hook(ctx, fpath, 'exists', () => fieldExists(field, opaque, versionId))) continue;
    const isArray = isArrayField(field);
    const n = field.num ?? (field.numFrom ? hook(ctx, fpath, 'numFrom', () => field.numFrom!(opaque)) : 1);
    if (!Number.isInteger(n) || n < 0 || n > VMSTATE_ARRAY_MAX) {
      throw decodeError(ctx, 'EANALYZE_LIMIT', `element count ${String(n)} is not an integer in 0..${VMSTATE_ARRAY_MAX}`, fpath);
    }
    for (let i = 0; i < n; i++) {
      const epath = isArray ? `${fpath}[${i}]` : fpath;
      const size = field.kind === 'scalar' ? SCALAR[field.info!]?.size : undefined;
      const v = size !== undefined && ctx.f.has(size) ? readLeafNow(ctx, field.info!, size, epath) : await decodeElement(ctx, field, shape, opaque, epath, i, isArray, depth);
      if (!isArray && !Array.isArray(v) && !(v instanceof Map) && field.kind === 'scalar') locals[field.key ?? field.name] = localValue(v, field.info!);
      if (!isArray && field.kind === 'buffer') locals[field.key ?? field.name] = (v as Leaf).bytes;
      addField(dict, names[fi], v);
    }
  }
  await decodeSubsections(ctx, vmsd, shape, path, depth, dict);
  return dict;
}

async function decodeElement(
  ctx: DecodeCtx,
  field: VMStateField,
  shape: unknown,
  opaque: unknown,
  path: string,
  i: number,
  isArray: boolean,
  depth: number,
): Promise<StateValue> {
  switch (field.kind) {
    case 'scalar': {
      const s = SCALAR[field.info!];
      if (!s) throw decodeError(ctx, 'EANALYZE_DEVICE', `unknown scalar type '${String(field.info)}'`, path);
      return readLeaf(ctx, field.info!, s.size, path);
    }
    case 'buffer': {
      const size = field.size ?? hook(ctx, path, 'sizeFrom', () => field.sizeFrom!(opaque));
      return readLeaf(ctx, vmdescType(field), size, path);
    }
    case 'unused':
      return readLeaf(ctx, vmdescType(field), field.size ?? 0, path);
    case 'struct': {
      const sub = field.struct!;
      return decodeByVmsd(ctx, sub, childShape(field, shape, i, isArray), sub.versionId, path, depth + 1);
    }
    case 'tmp': {
      const sub = field.struct!;
      let tmp: unknown = null;
      try {
        tmp = field.tmp ? field.tmp(shape) : null;
      } catch {
        tmp = null;
      }
      return decodeByVmsd(ctx, sub, tmp, sub.versionId, path, depth + 1);
    }
    default:
      throw decodeError(ctx, 'EANALYZE_DEVICE', `unknown field kind '${String(field.kind)}'`, path);
  }
}

/** After the fields, as the loader does: 0x05 + a name that starts with the parent's name is
 * ours (an unknown one fails); anything else ends this level. */
async function decodeSubsections(ctx: DecodeCtx, vmsd: VMStateDescription, shape: unknown, path: string, depth: number, dict: StateDict): Promise<void> {
  for (;;) {
    const at = ctx.f.position;
    const hdr = await peekSubsection(ctx, path);
    if (!hdr || hdr.len < vmsd.name.length + 1 || !hdr.name.startsWith(vmsd.name)) return;
    const sub = vmsd.subsections?.find((s) => s.name === hdr.name);
    if (!sub) throw decodeError(ctx, 'EANALYZE_DEVICE', `unknown subsection '${hdr.name}' of '${vmsd.name}'`, path, at);
    // The loader keeps the version in a uint8_t (vmstate_subsection_load); so do we.
    const version = readSubsectionHeader(ctx, hdr.len) & 0xff;
    dict.set(hdr.name, await decodeByVmsd(ctx, sub, shape, version, `${path}/${hdr.name}`, depth + 1));
  }
}
