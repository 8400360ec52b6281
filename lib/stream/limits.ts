/**
 * Hard limits on every length and count that comes from the wire. The incoming stream is
 * hostile until proven otherwise: a length is checked against one of these *before* anything
 * is allocated or read from it. Where QEMU has a limit we keep it; where QEMU trusts the wire
 * (it will allocate up to 4 GiB for a PACKAGED blob) we set a smaller, named one.
 */
import { StreamError } from './errors';

/** QEMU's counted string ("cstr8"): u8 length, so at most 255 bytes (qemu_get_counted_string). */
export const COUNTED_STRING_MAX = 255;

/** Section idstr: read as a counted string into a 256-byte buffer incl. NUL (savevm.c). */
export const IDSTR_MAX = COUNTED_STRING_MAX;

/** Subsection names are counted strings too (vmstate_subsection_load peeks `len` ≤ 255). */
export const SUBSECTION_NAME_MAX = COUNTED_STRING_MAX;

/** One VMState buffer (VMSTATE_BUFFER / VBUFFER, sized by an earlier loaded field). Device
 * state is small; the biggest buffers we know of (PCI config space, FIFOs) are a few KiB. */
export const VMSTATE_BUFFER_MAX = 64 * 1024 * 1024;

/** Element count of one VMState array (VMS_ARRAY / VMS_VARRAY_*, counted by an earlier loaded
 * field). QEMU reads these counts from int32/uint32 members: up to 2^32 without a check. */
export const VMSTATE_ARRAY_MAX = 1 << 20;

/** Bytes one VMState array may occupy in total (count × element size), so that a legal count
 * of large structs cannot add up to gigabytes. */
export const VMSTATE_ARRAY_BYTES_MAX = VMSTATE_BUFFER_MAX;

/** The vmdesc JSON after EOF (be32 length). QEMU only discards it; scripts/analyze-migration.py
 * looks for it in the last 10 MiB of a file. A riscv virt machine writes about 10 KB. */
export const VMDESC_JSON_MAX = 10 * 1024 * 1024;

/** QEMU_VM_COMMAND PACKAGED blob (be32 length). QEMU's only limit is 4 GiB − 1; the package
 * holds device state and no RAM, so 256 MiB is far above any real one. */
export const PACKAGED_MAX = 256 * 1024 * 1024;

/** Return-path message payload (QEMU's MAX_RP_MSG_LEN check: length > 512 fails). */
export const RP_MSG_MAX = 512;

/** A RAM page in the stream (TARGET_PAGE_SIZE on riscv). Page-sized reads never exceed it. */
export const PAGE_MAX = 64 * 1024;

/**
 * Check a wire length against its limit. Returns an error to throw or set (never throws), so
 * hot paths can stay branch-light: `const e = checkLimit(n, MAX, 'what', pos); if (e) ...`.
 */
export function checkLimit(value: number, limit: number, what: string, position: number): StreamError | null {
  if (Number.isInteger(value) && value >= 0 && value <= limit) return null;
  return new StreamError('ESTREAM_LIMIT', `${what}: length ${value} over limit ${limit}`, position);
}
