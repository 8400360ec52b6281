/**
 * Scalar VMStateInfo types: wire width and JS representation (migration/vmstate-types.c).
 *
 *   info            wire         JS value         load-side rule
 *   bool            u8           boolean          non-zero → true (get_bool)
 *   int8/uint8      u8           number
 *   int16/uint16    be16         number
 *   int32/uint32    be32         number
 *   int64/uint64    be64         bigint           int64 signed, uint64 unsigned
 *   timer           be64         bigint           expiry ns, -1n = not armed
 *   uint8/16/32 equal, int32 equal, "int64 equal" (u64)
 *                   same width   number / bigint  must equal the current value (EVMSTATE_EQUAL)
 *   int32 le        be32         number           0 ≤ v ≤ current, then stored (EVMSTATE_RANGE)
 *
 * Saving wraps like a C store: an integer out of range is truncated to the wire width
 * (-1 in a uint32 field goes out as ff ff ff ff). Non-integers and missing values are errors.
 */
import type { ScalarInfo } from './types';

export interface ScalarSpec {
  readonly size: 1 | 2 | 4 | 8;
  readonly signed: boolean;
  readonly check: 'none' | 'equal' | 'le';
  readonly bool: boolean;
}

function spec(size: 1 | 2 | 4 | 8, signed: boolean, check: ScalarSpec['check'] = 'none', bool = false): ScalarSpec {
  return { size, signed, check, bool };
}

export const SCALAR: Readonly<Record<ScalarInfo, ScalarSpec>> = {
  bool: spec(1, false, 'none', true),
  int8: spec(1, true),
  int16: spec(2, true),
  int32: spec(4, true),
  int64: spec(8, true),
  uint8: spec(1, false),
  uint16: spec(2, false),
  uint32: spec(4, false),
  uint64: spec(8, false),
  'uint8 equal': spec(1, false, 'equal'),
  'uint16 equal': spec(2, false, 'equal'),
  'uint32 equal': spec(4, false, 'equal'),
  'int32 equal': spec(4, true, 'equal'),
  'int64 equal': spec(8, false, 'equal'),
  'int32 le': spec(4, true, 'le'),
  timer: spec(8, true),
};

export function isScalarInfo(x: unknown): x is ScalarInfo {
  return typeof x === 'string' && Object.prototype.hasOwnProperty.call(SCALAR, x);
}

/** Normalise a current (receiver-side) value to what the wire would carry, for `equal` and
 * `le` comparisons. Returns undefined if the value cannot be one of this type. */
export function normalise(s: ScalarSpec, v: unknown): number | bigint | undefined {
  if (s.size === 8) {
    let b: bigint;
    if (typeof v === 'bigint') b = v;
    else if (typeof v === 'number' && Number.isSafeInteger(v)) b = BigInt(v);
    else return undefined;
    return s.signed ? BigInt.asIntN(64, b) : BigInt.asUintN(64, b);
  }
  let n: number;
  if (typeof v === 'number' && Number.isInteger(v)) n = v;
  else if (typeof v === 'boolean') n = v ? 1 : 0;
  else return undefined;
  switch (s.size) {
    case 1:
      return s.signed ? (n << 24) >> 24 : n & 0xff;
    case 2:
      return s.signed ? (n << 16) >> 16 : n & 0xffff;
    default:
      return s.signed ? n | 0 : n >>> 0;
  }
}

/** Typed array to allocate for a loaded scalar array when the receiver has none (or one too
 * short): what a device would most likely have declared. */
export function newScalarArray(info: ScalarInfo, n: number, like: unknown): { [i: number]: unknown; length: number } {
  if (ArrayBuffer.isView(like) && !(like instanceof DataView)) {
    const Ctor = (like as unknown as { constructor: new (n: number) => { [i: number]: unknown; length: number } })
      .constructor;
    return new Ctor(n);
  }
  if (Array.isArray(like)) return new Array(n).fill(undefined);
  const s = SCALAR[info];
  if (s.bool) return new Array<boolean>(n).fill(false);
  switch (s.size) {
    case 1:
      return s.signed ? new Int8Array(n) : new Uint8Array(n);
    case 2:
      return s.signed ? new Int16Array(n) : new Uint16Array(n);
    case 4:
      return s.signed ? new Int32Array(n) : new Uint32Array(n);
    default:
      return s.signed ? new BigInt64Array(n) : new BigUint64Array(n);
  }
}

/** Hex rendering for error messages. */
export function hex(v: number | bigint | undefined): string {
  if (v === undefined) return 'undefined';
  if (typeof v === 'bigint') return (v < 0n ? '-0x' + (-v).toString(16) : '0x' + v.toString(16));
  return v < 0 ? '-0x' + (-v).toString(16) : '0x' + v.toString(16);
}
