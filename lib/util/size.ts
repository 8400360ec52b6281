/**
 * Size strings as QEMU parses them (util/cutils.c qemu_strtosz): a decimal number, optionally
 * with a fraction, then an optional binary suffix B K M G T P E (case-insensitive). Hex
 * (0x...) is accepted without a suffix only. Each caller picks the unit for a bare number:
 * `-m` uses MiB, `-object size=` and `file:...,offset=` use bytes, HMP bandwidths use MiB.
 */

const SUFFIX: Record<string, number> = {
  b: 1,
  k: 2 ** 10,
  m: 2 ** 20,
  g: 2 ** 30,
  t: 2 ** 40,
  p: 2 ** 50,
  e: 2 ** 60,
};

export class SizeError extends Error {
  readonly code = 'ESIZE';
}

/** Parse `text`; a bare number is multiplied by `defaultUnit`. Results above 2^53 are refused
 * (nothing we size is that large, and a double would lose the low bits). */
export function parseSize(text: string, defaultUnit = 1): number {
  const s = text.trim();
  const hex = /^0x([0-9a-f]+)$/i.exec(s);
  if (hex) {
    const v = parseInt(hex[1], 16);
    if (!Number.isSafeInteger(v)) throw new SizeError(`size '${text}' is too large`);
    return v;
  }
  const m = /^(\d+)(?:\.(\d+))?([bkmgtpe])?$/i.exec(s);
  if (!m) throw new SizeError(`invalid size '${text}'`);
  const unit = m[3] ? SUFFIX[m[3].toLowerCase()] : defaultUnit;
  const whole = Number(m[1]);
  const frac = m[2] ? Number(`0.${m[2]}`) : 0;
  if (frac && unit === 1) throw new SizeError(`size '${text}' has a fraction of a byte`);
  const v = Math.floor((whole + frac) * unit);
  if (!Number.isSafeInteger(v)) throw new SizeError(`size '${text}' is too large`);
  return v;
}

/** Human form for messages and HMP: 1048576 → "1 MiB". */
export function formatSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1 && v % 1024 === 0) {
    v /= 1024;
    i++;
  }
  return `${v} ${units[i]}`;
}
