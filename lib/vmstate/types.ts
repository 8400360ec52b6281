/**
 * Declarative device-state descriptions, modelled on QEMU's VMStateDescription
 * (include/migration/vmstate.h). A description names the state, its version range and an
 * ordered field list; the vmstate layer walks the list to save, load and describe (vmdesc).
 * Devices never write bytes themselves.
 *
 * Values seen through `get`/`set`:
 *   bool                          → boolean
 *   (u)int8/16/32, "… equal", le  → number
 *   (u)int64, "int64 equal", timer → bigint
 *   buffers                       → Uint8Array
 *   arrays of scalars             → ArrayLike of the element value (Array or typed array)
 *   structs                       → the nested opaque object (arrays: ArrayLike of them)
 */

/** Scalar wire types, named exactly as QEMU's VMStateInfo so vmdesc JSON matches. */
export type ScalarInfo =
  | 'bool'
  | 'int8'
  | 'int16'
  | 'int32'
  | 'int64'
  | 'uint8'
  | 'uint16'
  | 'uint32'
  | 'uint64'
  | 'uint8 equal'
  | 'uint16 equal'
  | 'uint32 equal'
  | 'int32 equal'
  | 'int64 equal'
  | 'int32 le'
  | 'timer';

export type FieldKind =
  /** one scalar, or an array of them when `num`/`numFrom` is set */
  | 'scalar'
  /** raw bytes of fixed `size`, or `sizeFrom` another already-loaded field (VBUFFER) */
  | 'buffer'
  /** `size` zero bytes on save, skipped on load (VMSTATE_UNUSED) */
  | 'unused'
  /** nested description inline (VMS_STRUCT), or an array of them */
  | 'struct'
  /** a temporary object in wire form (VMSTATE_WITH_TMP) */
  | 'tmp'
  /** no bytes; `validate` must hold after load (VMSTATE_VALIDATE) */
  | 'validate'
  /** a migration capability name as a counted string (vmstate_info_capability; the
   * configuration section's capability list). JS value: string */
  | 'capability'
  /** a file descriptor: one ' ' byte carrying it by SCM_RIGHTS (vmstate_info_fd, QEMU's
   * VMSTATE_FD); the stream's channel must pass descriptors. JS value: number */
  | 'fd'
  /** a linked list of `struct` elements, each after a u8 1, ended by a u8 0 (VMSTATE_QLIST).
   * At most `max` elements are loaded. JS value: an array of the element objects */
  | 'qlist';

export interface VMStateField<T = any> {
  /** Name on the wire description (vmdesc) and default property key. */
  readonly name: string;
  readonly kind: FieldKind;
  /** Element type for 'scalar'. */
  readonly info?: ScalarInfo;
  /** Fixed element count (VMS_ARRAY). */
  readonly num?: number;
  /** Element count taken from an earlier field of the same object (VMS_VARRAY_*). */
  readonly numFrom?: (opaque: T) => number;
  /** Fixed byte size for 'buffer' and 'unused'. */
  readonly size?: number;
  /** Byte size from an earlier field (VMS_VBUFFER). */
  readonly sizeFrom?: (opaque: T) => number;
  /** For 'qlist': the most elements a load accepts (the count is wire data). */
  readonly max?: number;
  /** Nested description for 'struct', 'tmp' and 'qlist'. */
  readonly struct?: VMStateDescription<any>;
  /** Field exists from this stream version on (QEMU's field version_id, the `_V` macros). */
  readonly version?: number;
  /** Existence test (QEMU's field_exists); when present it alone decides. */
  readonly exists?: (opaque: T, versionId: number) => boolean;
  /** For 'validate': must return true after load, else the load fails. */
  readonly validate?: (opaque: T, versionId: number) => boolean;
  /** For 'tmp': builds the temporary wire-form object from the parent (its preSave fills it,
   * its postLoad writes back through the parent it was given). */
  readonly tmp?: (parent: T) => object;
  /** Accessors; default is `opaque[key ?? name]`. */
  readonly key?: string;
  readonly get?: (opaque: T) => unknown;
  readonly set?: (opaque: T, value: unknown) => void;
}

export interface VMStateDescription<T = any> {
  readonly name: string;
  /** Highest version this side writes and understands. */
  readonly versionId: number;
  /** Oldest version the loader accepts. */
  readonly minimumVersionId: number;
  readonly fields: readonly VMStateField<T>[];
  /** Subsections; each is sent after the fields when its `needed` is true (or absent). */
  readonly subsections?: readonly VMStateDescription<T>[];
  /** On a subsection: whether to send it. On a top-level section: whether to send it at all. */
  readonly needed?: (opaque: T) => boolean;
  /** QEMU's hook order: save = preSave → fields → subsections → postSave;
   * load = version check → preLoad → fields → subsections → postLoad. Throwing fails the save/load. */
  readonly preSave?: (opaque: T) => void;
  readonly postSave?: (opaque: T) => void;
  readonly preLoad?: (opaque: T) => void;
  readonly postLoad?: (opaque: T, versionId: number) => void;
  /** Save order among non-iterative sections (QEMU MigrationPriority: higher first). */
  readonly priority?: number;
  /** Saved before the iterative (RAM) sections begin (QEMU's early_setup). */
  readonly earlySetup?: boolean;
}

/** QEMU's MigrationPriority values. */
export const MIG_PRI = {
  DEFAULT: 2,
  LOW: 1,
  IOMMU: 3,
  PCI_BUS: 4,
  VIRTIO_MEM: 5,
  APIC: 6,
} as const;
