/**
 * JSON output as QEMU writes it (qobject/qjson.c to_json, quoted_str; qobject/qnum.c).
 *
 *   {"return": {}, "id": 1}       members joined by ", ", key and value by ": "
 *   [1, 2]                        elements joined by ", "
 *   "a\u00E9"                     output is ASCII: other code points as \uXXXX (upper-case
 *                                 hex, surrogate pairs beyond the BMP); \" \\ \b \f \n \r \t
 *   0.10000000000000001           doubles printed with "%.17g"
 *
 * QMP's spec promises ASCII output (docs/interop/qmp-spec.rst).
 */

import { JsonFloat } from './value';

/** C printf "%.<precision>g" for a finite double. */
export function formatG(x: number, precision: number): string {
  if (x === 0) return Object.is(x, -0) ? '-0' : '0';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : Number.isNaN(x) ? 'nan' : '-inf';
  const p = Math.max(precision, 1);
  const [mant, expText] = x.toExponential(p - 1).split('e');
  const exp = Number(expText);
  const strip = (s: string) => (s.includes('.') ? s.replace(/\.?0+$/, '') : s);
  if (exp < -4 || exp >= p) {
    const e = Math.abs(exp) < 10 ? `0${Math.abs(exp)}` : `${Math.abs(exp)}`;
    return `${strip(mant)}e${exp < 0 ? '-' : '+'}${e}`;
  }
  return strip(x.toFixed(Math.max(p - 1 - exp, 0)));
}

const hex4 = (n: number) => n.toString(16).toUpperCase().padStart(4, '0');

export function quoteString(s: string): string {
  let out = '"';
  for (const ch of s) {
    let cp = ch.codePointAt(0)!;
    switch (cp) {
      case 0x22: out += '\\"'; continue;
      case 0x5c: out += '\\\\'; continue;
      case 0x08: out += '\\b'; continue;
      case 0x0c: out += '\\f'; continue;
      case 0x0a: out += '\\n'; continue;
      case 0x0d: out += '\\r'; continue;
      case 0x09: out += '\\t'; continue;
    }
    if (cp >= 0xd800 && cp <= 0xdfff) cp = 0xfffd; // lone surrogate: replacement character
    if (cp > 0xffff) {
      out += `\\u${hex4(0xd800 + ((cp - 0x10000) >> 10))}\\u${hex4(0xdc00 + ((cp - 0x10000) & 0x3ff))}`;
    } else if (cp < 0x20 || cp >= 0x7f) {
      out += `\\u${hex4(cp)}`;
    } else {
      out += ch;
    }
  }
  return out + '"';
}

function formatNumber(n: number): string {
  if (Number.isInteger(n) && Math.abs(n) < 2 ** 64) {
    // Integers print in full, never in exponent form (QNUM_I64/QNUM_U64 use PRId64/PRIu64).
    return Number.isSafeInteger(n) ? String(n) : BigInt(n).toString();
  }
  return formatG(n, 17);
}

/**
 * Encode a value: plain objects (members in insertion order, undefined members dropped),
 * Maps, arrays, strings, booleans, null, numbers, bigints and JsonFloat.
 */
export function toJson(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  switch (typeof v) {
    case 'boolean':
      return v ? 'true' : 'false';
    case 'number':
      return formatNumber(v);
    case 'bigint':
      return v.toString();
    case 'string':
      return quoteString(v);
    case 'object':
      break;
    default:
      return 'null';
  }
  if (v instanceof JsonFloat) return formatG(v.value, 17);
  if (Array.isArray(v)) return `[${v.map(toJson).join(', ')}]`;
  const entries: Array<[string, unknown]> =
    v instanceof Map ? [...v.entries()] : Object.entries(v as Record<string, unknown>);
  const parts: string[] = [];
  for (const [k, x] of entries) {
    if (x === undefined) continue;
    parts.push(`${quoteString(k)}: ${toJson(x)}`);
  }
  return `{${parts.join(', ')}}`;
}
