/**
 * Load a description's state from the stream (QEMU's vmstate_load_state and
 * vmstate_subsection_load). The wire body is the one drawn in save.ts.
 *
 * Async, awaiting only when bytes are missing. Each field checks `f.has(n)` and only then
 * awaits `f.fill(n)`; while the bytes are buffered the walk runs synchronously, so a section
 * that arrived whole costs no promise per field. Why async rather than a synchronous parser
 * with a restartable "need more" state: a description is a recursive walk with user hooks
 * (preLoad, exists, numFrom, postLoad) that must each run exactly once and in QEMU's order; a
 * restartable walk would have to snapshot its position mid-recursion or re-run hooks on every
 * retry. Device sections are small, so the per-await cost is irrelevant, and input split at
 * any byte boundary only changes where the walk waits, never what it does.
 *
 * Order: version range (too new: > versionId, too old: < minimumVersionId) → preLoad →
 * fields → subsections → postLoad(versionId). Nested structs are loaded with the receiver's
 * *current* version of their description (no version on the wire).
 *
 * Subsections (after the fields), peeking before consuming, exactly as QEMU does:
 *   end of input, or next byte ≠ 0x05            → no more subsections here
 *   0x05 but the header (len, name) is cut short → EVMSTATE_TRUNCATED
 *   name length < len(parent name) + 1           → not ours (an outer level's), stop
 *   name does not start with the parent's name   → not ours, stop
 *   name not among the parent's subsections      → EVMSTATE_SUBSECTION (QEMU: -ENOENT)
 *   else consume 0x05, len, name, be32 version and load it (its own version checks apply).
 * A subsection that does not arrive leaves the receiver's values as they were.
 *
 * Every failure is a VMStateError naming section, field path and stream offset, and becomes
 * the reader's sticky error (QEMU's qemu_file_set_error in vmstate_load_state).
 */
import type { QemuFileReader } from '../stream/qemu-file-reader';
import { latin1 } from '../stream/qemu-file-reader';
import { VMSTATE_ARRAY_MAX, VMSTATE_BUFFER_MAX } from '../stream/limits';
import { VMStateError, type VMStateErrorCode } from './errors';
import { SCALAR, hex, newScalarArray, normalise, type ScalarSpec } from './scalar';
import type { VMStateDescription, VMStateField } from './types';
import { fieldExists, getValue, isArrayField, setValue, subsectionPath } from './walk';
import { VM_SUBSECTION } from './save';

export interface LoadOptions {
  /** The section idstr, for error messages. */
  idstr?: string;
}

/** Where the walk is, kept as pieces so paths are only built when an error needs one. */
interface LoadCtx {
  f: QemuFileReader;
  section: string;
  idstr: string | undefined;
  base: string;
  name: string | null;
  index: number;
  fieldStart: number;
}

function pathOf(ctx: LoadCtx): string {
  if (ctx.name === null) return ctx.base;
  return ctx.index < 0 ? `${ctx.base}/${ctx.name}` : `${ctx.base}/${ctx.name}[${ctx.index}]`;
}

/**
 * Load `opaque`'s state as described by `vmsd`, from a stream whose section header said
 * `versionId` (use vmsd.versionId where the wire carries no version, e.g. configuration).
 * Rejects with a VMStateError, which is also set as the reader's sticky error.
 */
export async function vmstateLoad(
  f: QemuFileReader,
  vmsd: VMStateDescription,
  opaque: unknown,
  versionId: number,
  opts: LoadOptions = {},
): Promise<void> {
  const ctx: LoadCtx = {
    f,
    section: vmsd.name,
    idstr: opts.idstr,
    base: vmsd.name,
    name: null,
    index: -1,
    fieldStart: f.position,
  };
  try {
    if (f.error) fail(ctx, 'EVMSTATE_STREAM', `stream already failed: ${f.error.message}`, f.error);
    await loadState(ctx, vmsd, opaque, versionId, vmsd.name);
  } catch (e) {
    const err = asLoadError(ctx, e);
    f.setError(err);
    throw err;
  }
}

function fail(ctx: LoadCtx, code: VMStateErrorCode, detail: string, cause?: unknown): never {
  throw new VMStateError(code, detail, {
    section: ctx.section,
    idstr: ctx.idstr,
    field: pathOf(ctx),
    position: ctx.fieldStart,
    cause,
  });
}

function asLoadError(ctx: LoadCtx, e: unknown): VMStateError {
  if (e instanceof VMStateError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  return new VMStateError('EVMSTATE_INTERNAL', `load failed: ${msg}`, {
    section: ctx.section,
    idstr: ctx.idstr,
    field: pathOf(ctx),
    position: ctx.fieldStart,
    cause: e,
  });
}

function hook<R>(ctx: LoadCtx, what: string, fn: () => R): R {
  try {
    return fn();
  } catch (e) {
    if (e instanceof VMStateError) throw e;
    return fail(ctx, 'EVMSTATE_HOOK', `${what} failed: ${e instanceof Error ? e.message : String(e)}`, e);
  }
}

/** Slow path of "make n bytes readable": pull, or fail with TRUNCATED / STREAM. */
async function need(ctx: LoadCtx, n: number): Promise<void> {
  const f = ctx.f;
  await f.fill(n);
  if (f.has(n)) return;
  if (f.error) fail(ctx, 'EVMSTATE_STREAM', `stream failed: ${f.error.message}`, f.error);
  fail(ctx, 'EVMSTATE_TRUNCATED', `stream ended: needed ${n} bytes, ${f.buffered} left`);
}

async function loadState(
  ctx: LoadCtx,
  vmsd: VMStateDescription,
  opaque: any,
  versionId: number,
  path: string,
): Promise<void> {
  const f = ctx.f;
  ctx.base = path;
  ctx.name = null;
  ctx.index = -1;
  ctx.fieldStart = f.position;
  if (versionId > vmsd.versionId) {
    fail(ctx, 'EVMSTATE_VERSION', `${vmsd.name}: incoming version_id ${versionId} is too new for local version_id ${vmsd.versionId}`);
  }
  if (versionId < vmsd.minimumVersionId) {
    fail(ctx, 'EVMSTATE_VERSION', `${vmsd.name}: incoming version_id ${versionId} is too old for local minimum version_id ${vmsd.minimumVersionId}`);
  }
  if (vmsd.preLoad) hook(ctx, `${vmsd.name}: preLoad`, () => vmsd.preLoad!(opaque));
  for (const field of vmsd.fields) {
    ctx.base = path;
    ctx.name = field.name;
    ctx.index = -1;
    ctx.fieldStart = f.position;
    if (field.kind === 'validate') {
      if (!hook(ctx, 'validate', () => field.validate!(opaque, versionId))) {
        fail(ctx, 'EVMSTATE_VALIDATE', 'input validation failed');
      }
      continue;
    }
    if (!hook(ctx, 'exists', () => fieldExists(field, opaque, versionId))) continue;
    await loadField(ctx, field, opaque, path);
  }
  ctx.base = path;
  ctx.name = null;
  ctx.index = -1;
  ctx.fieldStart = f.position;
  await loadSubsections(ctx, vmsd, opaque, path);
  ctx.base = path;
  ctx.name = null;
  ctx.index = -1;
  ctx.fieldStart = f.position;
  if (vmsd.postLoad) hook(ctx, `${vmsd.name}: postLoad`, () => vmsd.postLoad!(opaque, versionId));
}

function elementCount(ctx: LoadCtx, field: VMStateField, opaque: any): number {
  let n = 1;
  if (field.num !== undefined) n = field.num;
  else if (field.numFrom) n = hook(ctx, 'numFrom', () => field.numFrom!(opaque));
  // The count usually comes from a field loaded just before: it is wire data. Check it
  // before anything is allocated or read from it.
  if (!Number.isInteger(n) || n < 0 || n > VMSTATE_ARRAY_MAX) {
    fail(ctx, 'EVMSTATE_LIMIT', `element count ${n} is not an integer in 0..${VMSTATE_ARRAY_MAX}`);
  }
  return n;
}

function isArrayLike(v: unknown, n: number): v is { [i: number]: unknown; length: number } {
  return v !== null && typeof v === 'object' && typeof (v as { length?: unknown }).length === 'number' && (v as ArrayLike<unknown>).length >= n;
}

async function loadField(ctx: LoadCtx, field: VMStateField, opaque: any, base: string): Promise<void> {
  const f = ctx.f;
  switch (field.kind) {
    case 'scalar':
      return loadScalars(ctx, field, opaque);
    case 'buffer':
      return loadBuffer(ctx, field, opaque);
    case 'unused': {
      // get_unused_buffer: read and discard.
      const size = field.size ?? 0;
      if (!f.has(size)) await need(ctx, size);
      f.skip(size);
      return;
    }
    case 'struct':
      return loadStructs(ctx, field, opaque, base);
    case 'capability':
      return loadCapabilities(ctx, field, opaque);
    case 'fd': {
      // get_fd: the service byte, then the descriptor that came with it.
      if (!f.has(1)) await need(ctx, 1);
      const fd = f.getFd();
      if (f.error) fail(ctx, 'EVMSTATE_STREAM', f.error.message, f.error);
      hook(ctx, 'set', () => setValue(field, opaque, fd));
      return;
    }
    case 'qlist':
      return loadQlist(ctx, field, opaque, base);
    case 'tmp': {
      // get_tmp: a fresh temporary wire-form object; its postLoad writes back to the parent.
      const tmp = hook(ctx, 'tmp', () => field.tmp!(opaque));
      await loadState(ctx, field.struct!, tmp, field.struct!.versionId, pathOf(ctx));
      return;
    }
    default:
      fail(ctx, 'EVMSTATE_INTERNAL', `unknown field kind '${String(field.kind)}'`);
  }
}

/**
 * get_qlist: while the marker byte is non-zero, one more element (QEMU takes any non-zero byte
 * as "more"). The list is stored element by element as it grows, so a postLoad or an error
 * path sees everything loaded so far (descriptors included, which the owner must close).
 */
async function loadQlist(ctx: LoadCtx, field: VMStateField, opaque: any, base: string): Promise<void> {
  const f = ctx.f;
  const max = field.max ?? VMSTATE_ARRAY_MAX;
  const list: unknown[] = [];
  hook(ctx, 'set', () => setValue(field, opaque, list));
  for (let i = 0; ; i++) {
    ctx.base = base;
    ctx.name = field.name;
    ctx.index = i;
    ctx.fieldStart = f.position;
    if (!f.has(1)) await need(ctx, 1);
    if (f.getU8() === 0) return;
    if (i >= max) fail(ctx, 'EVMSTATE_LIMIT', `more than ${max} elements`);
    const elem = {};
    list.push(elem);
    await loadState(ctx, field.struct!, elem, field.struct!.versionId, pathOf(ctx));
  }
}

/** get_capability: u8 length, then the name; the caller decides whether it knows it. */
async function loadCapabilities(ctx: LoadCtx, field: VMStateField, opaque: any): Promise<void> {
  const f = ctx.f;
  const n = elementCount(ctx, field, opaque);
  const names: string[] = [];
  for (let i = 0; i < n; i++) {
    ctx.index = i;
    ctx.fieldStart = f.position;
    if (!f.has(1)) await need(ctx, 1);
    const len = f.peekU8(0);
    if (!f.has(1 + len)) await need(ctx, 1 + len);
    names.push(f.getCounted());
  }
  hook(ctx, 'set', () => setValue(field, opaque, names));
}

function readScalar(f: QemuFileReader, s: ScalarSpec): number | bigint | boolean {
  if (s.bool) return f.getU8() !== 0; // get_bool: any non-zero byte is true
  switch (s.size) {
    case 1:
      return s.signed ? f.getS8() : f.getU8();
    case 2:
      return s.signed ? f.getSbe16() : f.getBe16();
    case 4:
      return s.signed ? f.getSbe32() : f.getBe32();
    default:
      return s.signed ? f.getSbe64() : f.getBe64();
  }
}

async function loadScalars(ctx: LoadCtx, field: VMStateField, opaque: any): Promise<void> {
  const f = ctx.f;
  const s = SCALAR[field.info!];
  if (!s) fail(ctx, 'EVMSTATE_INTERNAL', `unknown scalar info '${String(field.info)}'`);
  const isArray = isArrayField(field);
  const n = elementCount(ctx, field, opaque);
  if (n === 0) return;
  let arr: { [i: number]: unknown; length: number } | null = null;
  if (isArray) {
    const cur = getValue(field, opaque);
    if (isArrayLike(cur, n)) arr = cur;
    else if (s.check === 'none') {
      arr = newScalarArray(field.info!, n, cur);
      setValue(field, opaque, arr);
    } else arr = { length: 0 };
  }
  for (let i = 0; i < n; i++) {
    if (isArray) ctx.index = i;
    ctx.fieldStart = f.position;
    if (!f.has(s.size)) await need(ctx, s.size);
    const v = readScalar(f, s);
    if (s.check !== 'none') {
      const cur = normalise(s, isArray ? arr![i] : getValue(field, opaque));
      if (s.check === 'equal') {
        if (cur !== v) fail(ctx, 'EVMSTATE_EQUAL', `${field.info}: incoming ${hex(v as number | bigint)} != local ${hex(cur)}`);
        continue; // nothing to store: it is the same value
      }
      // get_int32_le: "loaded >= 0 && loaded <= *cur", then stored.
      if (cur === undefined || (v as number) < 0 || (v as number) > (cur as number)) {
        fail(ctx, 'EVMSTATE_RANGE', `int32 le: invalid value ${v as number}, expecting 0..${cur === undefined ? '?' : String(cur)}`);
      }
    }
    if (isArray) arr![i] = v;
    else setValue(field, opaque, v);
  }
  // The loaded array is always stored back, even when it was filled in place: `get` (or a
  // property getter) may have returned a copy of state that lives elsewhere (shared memory,
  // registers kept as pairs). Storing the same array again is harmless.
  if (isArray && arr && arr.length === n) setValue(field, opaque, arr);
}

async function loadBuffer(ctx: LoadCtx, field: VMStateField, opaque: any): Promise<void> {
  const f = ctx.f;
  const size = field.size !== undefined ? field.size : hook(ctx, 'sizeFrom', () => field.sizeFrom!(opaque));
  if (!Number.isInteger(size) || size < 0 || size > VMSTATE_BUFFER_MAX) {
    fail(ctx, 'EVMSTATE_LIMIT', `buffer size ${size} is not an integer in 0..${VMSTATE_BUFFER_MAX}`);
  }
  if (!f.has(size)) await need(ctx, size);
  let buf = getValue(field, opaque);
  if (!(buf instanceof Uint8Array) || buf.length < size) {
    buf = new Uint8Array(size);
    setValue(field, opaque, buf);
  }
  f.getBufferInto(buf as Uint8Array, size);
  setValue(field, opaque, buf);
}

async function loadStructs(ctx: LoadCtx, field: VMStateField, opaque: any, base: string): Promise<void> {
  const vmsd = field.struct!;
  const isArray = isArrayField(field);
  const n = elementCount(ctx, field, opaque);
  if (!isArray) {
    let obj = getValue(field, opaque);
    if (typeof obj !== 'object' || obj === null) {
      obj = {};
      setValue(field, opaque, obj);
    }
    await loadState(ctx, vmsd, obj, vmsd.versionId, pathOf(ctx));
    return;
  }
  if (n === 0) return;
  let arr = getValue(field, opaque);
  if (!isArrayLike(arr, n)) {
    const old = arr as ArrayLike<unknown> | undefined;
    const fresh: unknown[] = new Array(n);
    if (old && typeof old === 'object' && typeof old.length === 'number') {
      for (let i = 0; i < Math.min(n, old.length); i++) fresh[i] = old[i];
    }
    arr = fresh;
    setValue(field, opaque, arr);
  }
  const list = arr as { [i: number]: unknown; length: number };
  for (let i = 0; i < n; i++) {
    ctx.base = base;
    ctx.name = field.name;
    ctx.index = i;
    ctx.fieldStart = ctx.f.position;
    let obj = list[i];
    if (typeof obj !== 'object' || obj === null) {
      obj = {};
      list[i] = obj;
    }
    await loadState(ctx, vmsd, obj, vmsd.versionId, pathOf(ctx));
  }
}

async function loadSubsections(ctx: LoadCtx, vmsd: VMStateDescription, opaque: any, path: string): Promise<void> {
  const f = ctx.f;
  const parentLen = vmsd.name.length;
  for (;;) {
    ctx.base = path;
    ctx.name = null;
    ctx.index = -1;
    ctx.fieldStart = f.position;
    // A clean end of input right after the fields is "no subsections" (the framing layer
    // decides whether the stream may end there).
    if (!f.has(1) && (await f.fill(1)) < 1) return;
    if (f.peekU8(0) !== VM_SUBSECTION) return;
    // But a marker with an incomplete header is a truncated stream. (QEMU's peek at EOF sets
    // the file error, so its load fails too; continuing would misparse the header as fields.)
    if (!f.has(2)) await need(ctx, 2);
    const len = f.peekU8(1);
    // "subsection name has to be section_name/a"
    if (len < parentLen + 1) return;
    if (!f.has(2 + len)) await need(ctx, 2 + len);
    const name = latin1(f.peekBytes(2, len)!);
    if (!name.startsWith(vmsd.name)) return;
    const sub = vmsd.subsections?.find((s) => s.name === name);
    if (!sub) fail(ctx, 'EVMSTATE_SUBSECTION', `unknown subsection '${name}' of '${vmsd.name}'`);
    if (!f.has(2 + len + 4)) await need(ctx, 2 + len + 4);
    f.skip(2 + len);
    // QEMU reads the be32 into a uint8_t version_id: versions alias modulo 256. Mirrored so
    // that we accept exactly the subsections QEMU accepts.
    const version = f.getBe32() & 0xff;
    await loadState(ctx, sub, opaque, version, subsectionPath(path, vmsd, sub));
  }
}
