/**
 * Save a description's state to the stream (QEMU's vmstate_save_state_v), and describe it
 * for vmdesc while doing so.
 *
 * Body of a description on the wire — no names, tags or lengths, both ends walk the same list:
 *
 *   field₁ elements │ field₂ elements │ … │ subsection* 
 *   subsection = 0x05 │ u8 len │ name[len] │ be32 version │ body (fields + its subsections)
 *
 *   scalar   big-endian of its width (bool: one byte 0/1)
 *   buffer   `size` raw bytes (or `sizeFrom(opaque)`, an earlier field: VBUFFER)
 *   unused   `size` zero bytes
 *   struct   the nested description's body, inline: fields then its own subsections
 *   tmp      the nested description's body over a temporary object (VMSTATE_WITH_TMP)
 *   arrays   elements back to back; counts (`num`, `numFrom`) are never on the wire
 *
 * Order (QEMU docs/devel/migration): preSave → fields → subsections (each `needed` one) →
 * postSave. A preSave failure aborts without postSave; a field failure still runs postSave.
 * Saving is synchronous: the writer buffers, and the caller drains at section boundaries.
 */
import type { QemuFileWriter } from '../stream/qemu-file-writer';
import { VMSTATE_ARRAY_MAX, VMSTATE_BUFFER_MAX } from '../stream/limits';
import { VMStateError, type VMStateErrorCode } from './errors';
import { SCALAR } from './scalar';
import type { VMStateDescription, VMStateField } from './types';
import type { VmdescField, VmdescNode } from './vmdesc';
import {
  canCompress,
  elementPath,
  fieldExists,
  getValue,
  isArrayField,
  subsectionPath,
  vmdescNames,
  vmdescType,
} from './walk';

/** QEMU_VM_SUBSECTION. */
export const VM_SUBSECTION = 0x05;

export interface SaveOptions {
  /** Build the vmdesc description while saving (default true). */
  vmdesc?: boolean;
  /** The section idstr, for error messages. */
  idstr?: string;
}

interface SaveCtx {
  f: QemuFileWriter;
  section: string;
  idstr: string | undefined;
  path: string;
}

/** Whether a top-level section is to be sent at all (vmstate_section_needed / save_needed). */
export function sectionNeeded(vmsd: VMStateDescription, opaque: unknown): boolean {
  return !vmsd.needed || !!vmsd.needed(opaque);
}

/**
 * Write `opaque`'s state as described by `vmsd` (its current versionId). Returns the vmdesc
 * node (null with `vmdesc: false`). Throws VMStateError (EVMSTATE_VALUE, EVMSTATE_HOOK,
 * EVMSTATE_LIMIT, EVMSTATE_VALIDATE); stream errors stay sticky in `f` for the caller.
 */
export function vmstateSave(
  f: QemuFileWriter,
  vmsd: VMStateDescription,
  opaque: unknown,
  opts: SaveOptions = {},
): VmdescNode | null {
  const ctx: SaveCtx = { f, section: vmsd.name, idstr: opts.idstr, path: vmsd.name };
  const node = opts.vmdesc === false ? null : ({} as VmdescNode);
  try {
    saveState(ctx, vmsd, opaque, node as Record<string, unknown> | null, vmsd.name);
  } catch (e) {
    throw asSaveError(ctx, e);
  }
  return node;
}

function fail(ctx: SaveCtx, code: VMStateErrorCode, detail: string, cause?: unknown): never {
  throw new VMStateError(code, detail, {
    section: ctx.section,
    idstr: ctx.idstr,
    field: ctx.path,
    position: ctx.f.position,
    cause,
  });
}

function asSaveError(ctx: SaveCtx, e: unknown): VMStateError {
  if (e instanceof VMStateError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  return new VMStateError('EVMSTATE_INTERNAL', `save failed: ${msg}`, {
    section: ctx.section,
    idstr: ctx.idstr,
    field: ctx.path,
    position: ctx.f.position,
    cause: e,
  });
}

function hook<R>(ctx: SaveCtx, what: string, fn: () => R): R {
  try {
    return fn();
  } catch (e) {
    if (e instanceof VMStateError) throw e;
    return fail(ctx, 'EVMSTATE_HOOK', `${what} failed: ${e instanceof Error ? e.message : String(e)}`, e);
  }
}

/** vmstate_save_state_v: writes the body; fills `desc` with vmsd_name/version/fields/subsections. */
function saveState(
  ctx: SaveCtx,
  vmsd: VMStateDescription,
  opaque: any,
  desc: Record<string, unknown> | null,
  path: string,
): void {
  const versionId = vmsd.versionId;
  ctx.path = path;
  if (vmsd.preSave) hook(ctx, `${vmsd.name}: preSave`, () => vmsd.preSave!(opaque));
  const fields: VmdescField[] | null = desc ? [] : null;
  if (desc) {
    desc.vmsd_name = vmsd.name;
    desc.version = versionId;
    desc.fields = fields;
  }
  let failed: unknown = null;
  try {
    const names = desc ? vmdescNames(vmsd) : null;
    for (let fi = 0; fi < vmsd.fields.length; fi++) {
      const field = vmsd.fields[fi];
      ctx.path = `${path}/${field.name}`;
      if (field.kind === 'validate') {
        // VMSTATE_VALIDATE on save: QEMU asserts ("Output state validation failed").
        if (!hook(ctx, 'validate', () => field.validate!(opaque, versionId))) {
          fail(ctx, 'EVMSTATE_VALIDATE', 'output state validation failed');
        }
        continue;
      }
      if (!hook(ctx, 'exists', () => fieldExists(field, opaque, versionId))) continue;
      saveField(ctx, field, opaque, fields, names ? names[fi] : '', path);
    }
    ctx.path = path;
    saveSubsections(ctx, vmsd, opaque, desc, path);
  } catch (e) {
    failed = e;
  }
  // post_save runs even when a field failed (but not after a failed pre_save); the first
  // failure is the one reported.
  if (vmsd.postSave) {
    const p = ctx.path;
    ctx.path = path;
    try {
      hook(ctx, `${vmsd.name}: postSave`, () => vmsd.postSave!(opaque));
    } catch (e) {
      if (failed === null) failed = e;
    }
    ctx.path = p;
  }
  if (failed !== null) throw failed;
}

function elementCount(ctx: SaveCtx, field: VMStateField, opaque: any): number {
  let n = 1;
  if (field.num !== undefined) n = field.num;
  else if (field.numFrom) n = hook(ctx, 'numFrom', () => field.numFrom!(opaque));
  if (!Number.isInteger(n) || n < 0 || n > VMSTATE_ARRAY_MAX) {
    fail(ctx, 'EVMSTATE_LIMIT', `element count ${n} is not an integer in 0..${VMSTATE_ARRAY_MAX}`);
  }
  return n;
}

function saveField(
  ctx: SaveCtx,
  field: VMStateField,
  opaque: any,
  fields: VmdescField[] | null,
  descName: string,
  base: string,
): void {
  const f = ctx.f;
  if (field.kind === 'qlist') return saveQlist(ctx, field, opaque, fields, descName);
  const isArray = isArrayField(field);
  const n = elementCount(ctx, field, opaque);
  const value = hook(ctx, 'get', () => getValue(field, opaque));
  if (isArray && n > 0 && !isArrayLike(value, n)) {
    fail(ctx, 'EVMSTATE_VALUE', `expected an array of at least ${n} elements`);
  }
  const compress = canCompress(field);
  let describe = fields !== null;
  for (let i = 0; i < n; i++) {
    ctx.path = elementPath(base, field, i, isArray);
    const elem = isArray ? (value as ArrayLike<unknown>)[i] : value;
    let entry: VmdescField | null = null;
    if (describe) {
      entry = { name: descName } as VmdescField;
      if (n > 1) {
        if (compress) entry.array_len = n;
        else entry.index = i;
      }
      entry.type = vmdescType(field);
    }
    const before = f.position;
    switch (field.kind) {
      case 'scalar':
        putScalar(ctx, field, elem);
        break;
      case 'buffer':
        putBufferField(ctx, field, opaque, elem);
        break;
      case 'unused':
        f.putZeros(field.size ?? 0);
        break;
      case 'capability': {
        if (typeof elem !== 'string' || elem.length === 0 || elem.length > 255) fail(ctx, 'EVMSTATE_VALUE', 'expected a capability name of 1..255 characters');
        f.putCounted(elem);
        break;
      }
      case 'fd':
        if (typeof elem !== 'number' || !Number.isInteger(elem) || elem < 0) fail(ctx, 'EVMSTATE_VALUE', `expected a file descriptor, got ${String(elem)}`);
        f.putFd(elem);
        break;
      case 'struct': {
        if (typeof elem !== 'object' || elem === null) fail(ctx, 'EVMSTATE_VALUE', 'expected an object');
        const sub = entry ? ({} as Record<string, unknown>) : null;
        if (entry) entry.struct = sub as unknown as VmdescNode;
        saveState(ctx, field.struct!, elem, sub, ctx.path);
        break;
      }
      case 'tmp': {
        const tmp = hook(ctx, 'tmp', () => field.tmp!(opaque));
        // put_tmp() hands the field's own vmdesc object to the nested save: keys go inline.
        saveState(ctx, field.struct!, tmp, entry as Record<string, unknown> | null, ctx.path);
        break;
      }
      default:
        fail(ctx, 'EVMSTATE_INTERNAL', `unknown field kind '${String(field.kind)}'`);
    }
    if (entry) {
      entry.size = f.position - before;
      fields!.push(entry);
      // "Compressed arrays only care about the first element".
      if (compress) describe = false;
    }
  }
}

/** put_qlist: each element after a u8 1, then a u8 0. The vmdesc entry names the list only. */
function saveQlist(ctx: SaveCtx, field: VMStateField, opaque: any, fields: VmdescField[] | null, descName: string): void {
  const f = ctx.f;
  const base = ctx.path;
  const list = hook(ctx, 'get', () => getValue(field, opaque));
  if (!Array.isArray(list)) fail(ctx, 'EVMSTATE_VALUE', `expected an array, got ${describe(list)}`);
  const before = f.position;
  list.forEach((elem, i) => {
    ctx.path = `${base}[${i}]`;
    if (typeof elem !== 'object' || elem === null) fail(ctx, 'EVMSTATE_VALUE', 'expected an object');
    f.putU8(1);
    saveState(ctx, field.struct!, elem, null, ctx.path);
  });
  f.putU8(0);
  fields?.push({ name: descName, type: 'qlist', size: f.position - before } as VmdescField);
}

function isArrayLike(v: unknown, n: number): v is ArrayLike<unknown> {
  return (
    v !== null &&
    typeof v === 'object' &&
    typeof (v as { length?: unknown }).length === 'number' &&
    (v as ArrayLike<unknown>).length >= n
  );
}

function putScalar(ctx: SaveCtx, field: VMStateField, v: unknown): void {
  const s = SCALAR[field.info!];
  if (!s) fail(ctx, 'EVMSTATE_INTERNAL', `unknown scalar info '${String(field.info)}'`);
  const f = ctx.f;
  if (s.bool) {
    if (typeof v !== 'boolean' && typeof v !== 'number') fail(ctx, 'EVMSTATE_VALUE', `expected a boolean, got ${typeof v}`);
    f.putU8(v ? 1 : 0);
    return;
  }
  if (s.size === 8) {
    if (typeof v === 'bigint') f.putBe64(v);
    else if (typeof v === 'number' && Number.isSafeInteger(v)) f.putBe64Number(v);
    else fail(ctx, 'EVMSTATE_VALUE', `expected a bigint (or safe integer) for ${field.info}, got ${describe(v)}`);
    return;
  }
  let n: number;
  if (typeof v === 'number' && Number.isInteger(v)) n = v;
  else if (typeof v === 'boolean') n = v ? 1 : 0;
  else return fail(ctx, 'EVMSTATE_VALUE', `expected an integer for ${field.info}, got ${describe(v)}`);
  if (s.size === 1) f.putU8(n & 0xff);
  else if (s.size === 2) f.putBe16(n & 0xffff);
  else f.putBe32(n >>> 0);
}

function putBufferField(ctx: SaveCtx, field: VMStateField, opaque: any, v: unknown): void {
  const size = field.size !== undefined ? field.size : hook(ctx, 'sizeFrom', () => field.sizeFrom!(opaque));
  if (!Number.isInteger(size) || size < 0 || size > VMSTATE_BUFFER_MAX) {
    fail(ctx, 'EVMSTATE_LIMIT', `buffer size ${size} is not an integer in 0..${VMSTATE_BUFFER_MAX}`);
  }
  if (!(v instanceof Uint8Array) || v.length < size) {
    fail(ctx, 'EVMSTATE_VALUE', `expected a Uint8Array of at least ${size} bytes, got ${describe(v)}`);
  }
  ctx.f.putBuffer(v.length === size ? v : v.subarray(0, size));
}

function saveSubsections(
  ctx: SaveCtx,
  vmsd: VMStateDescription,
  opaque: any,
  desc: Record<string, unknown> | null,
  path: string,
): void {
  const subs = vmsd.subsections;
  if (!subs) return;
  let list: VmdescNode[] | null = null;
  for (const sub of subs) {
    const subPath = subsectionPath(path, vmsd, sub);
    ctx.path = subPath;
    if (sub.needed && !hook(ctx, `${sub.name}: needed`, () => sub.needed!(opaque))) continue;
    let node: Record<string, unknown> | null = null;
    if (desc) {
      // "Only create subsection array when we have any".
      if (!list) desc.subsections = list = [];
      node = {};
    }
    const f = ctx.f;
    f.putU8(VM_SUBSECTION);
    f.putCounted(sub.name);
    f.putBe32(sub.versionId);
    saveState(ctx, sub, opaque, node, subPath);
    if (node) list!.push(node as unknown as VmdescNode);
  }
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (v instanceof Uint8Array) return `a Uint8Array of ${v.length} bytes`;
  return typeof v === 'number' || typeof v === 'bigint' ? `${typeof v} ${String(v)}` : typeof v;
}
