/** UUIDs as QEMU's -uuid takes and prints them (util/uuid.c). */

export class UuidError extends Error {
  readonly code = 'EUUID';
}

/** qemu_uuid_parse(): 8-4-4-4-12 hex digits → 16 bytes. */
export function parseUuid(text: string): Uint8Array {
  if (!/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/.test(text)) {
    throw new UuidError('Fail to parse UUID string. Wrong format.');
  }
  return Uint8Array.from(Buffer.from(text.replace(/-/g, ''), 'hex'));
}

/** 16 bytes → "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" (qemu_uuid_unparse). */
export function formatUuid(b: Uint8Array): string {
  const h = Buffer.from(b).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
