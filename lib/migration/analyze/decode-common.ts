/**
 * What both device-state decoders share: the stream, where they are (for errors), and the
 * budget that keeps a hostile file from making them hold or produce unbounded state.
 *
 * Device state has no lengths on the wire, so a decoder trusts a description — the file's
 * own vmdesc or livemig's VMState descriptions — and the description may be as hostile as
 * the bytes. Every size and count is checked against lib/stream/limits.ts before bytes are
 * read or held; a whole stream may hold at most DEVICE_STATE_MAX decoded bytes and
 * DEVICE_VALUES_MAX values, and descriptions nest at most DEPTH_MAX deep.
 */
import { VMSTATE_BUFFER_MAX, type QemuFileReader } from '../../stream';
import { AnalyzeError, type AnalyzeErrorCode } from './errors';
import type { Leaf } from './values';

/** Decoded device-state bytes one stream may hold in all (device state is KiBs; the largest
 * single VMState buffer we accept is this size too). */
export const DEVICE_STATE_MAX = VMSTATE_BUFFER_MAX;
/** Decoded values (leaves) one stream may produce; zero-sized fields cost one each, so a
 * description of endless empty fields still stops. QEMU's largest arrays (e1000's 32 Ki
 * registers, PCI config space) are far below it. */
export const DEVICE_VALUES_MAX = 1 << 20;
/** Nesting of structs and subsections (QEMU's deepest is a handful). */
export const DEPTH_MAX = 32;

const EMPTY = new Uint8Array(0);

export interface DecodeBudget {
  bytes: number;
  values: number;
}

export function newBudget(): DecodeBudget {
  return { bytes: DEVICE_STATE_MAX, values: DEVICE_VALUES_MAX };
}

export interface DecodeCtx {
  readonly f: QemuFileReader;
  /** Section idstr and id, for errors. */
  readonly section: string;
  readonly sectionId: number | undefined;
  readonly budget: DecodeBudget;
}

export function decodeError(ctx: DecodeCtx, code: AnalyzeErrorCode, detail: string, field: string, position = ctx.f.position): AnalyzeError {
  return new AnalyzeError(code, detail, { section: ctx.section, sectionId: ctx.sectionId, field, position });
}

/** Make `n` bytes readable synchronously, or fail naming the field. */
export async function need(ctx: DecodeCtx, n: number, field: string): Promise<void> {
  const f = ctx.f;
  if (f.has(n)) return;
  await f.fill(n);
  if (f.has(n)) return;
  if (f.error) throw decodeError(ctx, 'EANALYZE_IO', `read failed: ${f.error.message}`, field);
  throw decodeError(ctx, 'EANALYZE_TRUNCATED', `stream ended: needed ${n} bytes, ${f.buffered} left`, field);
}

/** Charge one value of `size` bytes to the budget. */
export function charge(ctx: DecodeCtx, size: number, field: string): void {
  if (!Number.isInteger(size) || size < 0 || size > VMSTATE_BUFFER_MAX) {
    throw decodeError(ctx, 'EANALYZE_LIMIT', `size ${String(size)} is not an integer in 0..${VMSTATE_BUFFER_MAX}`, field);
  }
  const b = ctx.budget;
  if (--b.values < 0) throw decodeError(ctx, 'EANALYZE_LIMIT', `more than ${DEVICE_VALUES_MAX} device-state values in the stream`, field);
  b.bytes -= size;
  if (b.bytes < 0) throw decodeError(ctx, 'EANALYZE_LIMIT', `more than ${DEVICE_STATE_MAX} bytes of device state in the stream`, field);
}

/** One field element: `size` bytes, copied out of the reader. Callers on the fast path use
 * readLeafNow when `f.has(size)`, saving a promise per value. */
export async function readLeaf(ctx: DecodeCtx, type: string, size: number, field: string): Promise<Leaf> {
  charge(ctx, size, field);
  await need(ctx, size, field);
  return take(ctx, type, size, field);
}

/** readLeaf for bytes already buffered. */
export function readLeafNow(ctx: DecodeCtx, type: string, size: number, field: string): Leaf {
  charge(ctx, size, field);
  return take(ctx, type, size, field);
}

function take(ctx: DecodeCtx, type: string, size: number, field: string): Leaf {
  const start = ctx.f.position;
  const bytes = size === 0 ? EMPTY : ctx.f.getBytes(size).slice();
  if (type === 'nullptr' && (size !== 1 || bytes[0] !== 0x30)) {
    // VMSTATE's NULL-pointer marker is the single byte '0'.
    throw decodeError(ctx, 'EANALYZE_DEVICE', 'nullptr marker is not the byte 0x30', field, start);
  }
  return { type, bytes };
}

/** A capability name (configuration section): cstr8. */
export async function readCapability(ctx: DecodeCtx, field: string): Promise<Leaf> {
  await need(ctx, 1, field);
  const len = ctx.f.peekU8(0);
  charge(ctx, len, field);
  await need(ctx, 1 + len, field);
  ctx.f.skip(1);
  return { type: 'capability', bytes: ctx.f.getBytes(len).slice() };
}

export function checkDepth(ctx: DecodeCtx, depth: number, field: string): void {
  if (depth > DEPTH_MAX) throw decodeError(ctx, 'EANALYZE_LIMIT', `descriptions nest deeper than ${DEPTH_MAX}`, field);
}

/** Subsection header: 0x05, cstr8 name, be32 version. Returns null (nothing consumed) if the
 * next byte is not 0x05 or the stream ends there. */
export async function peekSubsection(ctx: DecodeCtx, field: string): Promise<{ name: string; len: number } | null> {
  const f = ctx.f;
  if (!f.has(1) && (await f.fill(1)) < 1) return null;
  if (f.peekU8(0) !== 0x05) return null;
  await need(ctx, 2, field);
  const len = f.peekU8(1);
  await need(ctx, 2 + len + 4, field);
  const name = Buffer.from(f.peekBytes(2, len)!).toString('latin1');
  return { name, len };
}

export function readSubsectionHeader(ctx: DecodeCtx, len: number): number {
  ctx.f.skip(2 + len);
  return ctx.f.getBe32();
}
