/**
 * Field constructors, the counterparts of QEMU's VMSTATE_* macros. A description reads like
 * its QEMU twin:
 *
 *   fields: [
 *     F.uint16('divider'),
 *     F.uint8('rbr'),
 *     F.uint64Array('timecmp', 2),
 *     F.uint32('flags', { version: 2 }),        // VMSTATE_UINT32_V(flags, S, 2)
 *     F.unused(4),                              // VMSTATE_UNUSED(4)
 *   ]
 */
import type { ScalarInfo, VMStateDescription, VMStateField } from './types';

/** Options shared by every constructor. */
export interface FieldOpts<T = any> {
  version?: number;
  exists?: (opaque: T, versionId: number) => boolean;
  key?: string;
  get?: (opaque: T) => unknown;
  set?: (opaque: T, value: unknown) => void;
}

function scalar<T>(info: ScalarInfo) {
  return (name: string, opts: FieldOpts<T> = {}): VMStateField<T> => ({ name, kind: 'scalar', info, ...opts });
}

function array<T>(info: ScalarInfo) {
  return (name: string, num: number, opts: FieldOpts<T> = {}): VMStateField<T> => ({
    name,
    kind: 'scalar',
    info,
    num,
    ...opts,
  });
}

export const F = {
  bool: scalar('bool'),
  int8: scalar('int8'),
  int16: scalar('int16'),
  int32: scalar('int32'),
  int64: scalar('int64'),
  uint8: scalar('uint8'),
  uint16: scalar('uint16'),
  uint32: scalar('uint32'),
  uint64: scalar('uint64'),
  /** expiry in ns as bigint, -1n when not armed (QEMU's VMSTATE_TIMER) */
  timer: scalar('timer'),
  /** must equal the receiver's current value (configuration consistency) */
  uint8Equal: scalar('uint8 equal'),
  uint16Equal: scalar('uint16 equal'),
  uint32Equal: scalar('uint32 equal'),
  int32Equal: scalar('int32 equal'),
  uint64Equal: scalar('int64 equal'),
  /** 0 ≤ incoming ≤ current, then stored (VMSTATE_INT32_POSITIVE_LE) */
  int32Le: scalar('int32 le'),

  boolArray: array('bool'),
  uint8Array: array('uint8'),
  uint16Array: array('uint16'),
  uint32Array: array('uint32'),
  uint64Array: array('uint64'),
  int32Array: array('int32'),
  int64Array: array('int64'),

  /** Array of `info` whose length is an earlier field's value (VMSTATE_VARRAY_*). */
  varray<T>(name: string, info: ScalarInfo, numFrom: (o: T) => number, opts: FieldOpts<T> = {}): VMStateField<T> {
    return { name, kind: 'scalar', info, numFrom, ...opts };
  },
  /** Fixed-size byte buffer (VMSTATE_BUFFER). */
  buffer<T>(name: string, size: number, opts: FieldOpts<T> = {}): VMStateField<T> {
    return { name, kind: 'buffer', size, ...opts };
  },
  /** Buffer sized by an earlier field (VMSTATE_VBUFFER_UINT32). */
  vbuffer<T>(name: string, sizeFrom: (o: T) => number, opts: FieldOpts<T> = {}): VMStateField<T> {
    return { name, kind: 'buffer', sizeFrom, ...opts };
  },
  /** `size` bytes that used to be sent; zeros on save, skipped on load (VMSTATE_UNUSED). */
  unused<T>(size: number, opts: FieldOpts<T> = {}): VMStateField<T> {
    return { name: 'unused', kind: 'unused', size, ...opts };
  },
  /** Nested description inline (VMSTATE_STRUCT). */
  struct<T>(name: string, struct: VMStateDescription<any>, opts: FieldOpts<T> = {}): VMStateField<T> {
    return { name, kind: 'struct', struct, ...opts };
  },
  /** Fixed array of nested descriptions (VMSTATE_STRUCT_ARRAY). */
  structArray<T>(name: string, num: number, struct: VMStateDescription<any>, opts: FieldOpts<T> = {}): VMStateField<T> {
    return { name, kind: 'struct', struct, num, ...opts };
  },
  /** Variable array of nested descriptions counted by an earlier field. */
  structVarray<T>(
    name: string,
    numFrom: (o: T) => number,
    struct: VMStateDescription<any>,
    opts: FieldOpts<T> = {},
  ): VMStateField<T> {
    return { name, kind: 'struct', struct, numFrom, ...opts };
  },
  /** State whose wire form differs from its memory form (VMSTATE_WITH_TMP): `make(parent)`
   * returns a fresh temporary; the nested description's preSave fills it from the parent and
   * its postLoad writes it back. */
  withTmp<T>(make: (parent: T) => object, struct: VMStateDescription<any>, opts: FieldOpts<T> = {}): VMStateField<T> {
    return { name: 'tmp', kind: 'tmp', struct, tmp: make, ...opts };
  },
  /** Capability names, u8 length + bytes each, counted by an earlier field
   * (VMSTATE_VARRAY_UINT32_ALLOC of vmstate_info_capability). */
  capabilityVarray<T>(name: string, numFrom: (o: T) => number, opts: FieldOpts<T> = {}): VMStateField<T> {
    return { name, kind: 'capability', numFrom, ...opts };
  },
  /** A descriptor passed beside the bytes (VMSTATE_FD): a ' ' byte with the fd attached. */
  fd<T>(name: string, opts: FieldOpts<T> = {}): VMStateField<T> {
    return { name, kind: 'fd', ...opts };
  },
  /** A list of `struct` elements (VMSTATE_QLIST_V); a load refuses more than `max` of them. */
  qlist<T>(name: string, struct: VMStateDescription<any>, max: number, opts: FieldOpts<T> = {}): VMStateField<T> {
    return { name, kind: 'qlist', struct, max, ...opts };
  },
  /** No bytes; fails the load unless `test` holds (VMSTATE_VALIDATE). */
  validate<T>(name: string, test: (o: T, versionId: number) => boolean): VMStateField<T> {
    return { name, kind: 'validate', validate: test };
  },
};
