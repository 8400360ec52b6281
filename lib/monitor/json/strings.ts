/**
 * String literals as QEMU's parser decodes them (qobject/json-parser.c parse_string,
 * util/unicode.c mod_utf8_codepoint).
 *
 * Input is modified UTF-8: "\xC0\x80" stands for U+0000, overlong forms are otherwise
 * refused, and so are surrogates, noncharacters (U+FDD0..U+FDEF, U+xxFFFE/F) and anything
 * past U+10FFFF, whether written raw or as \u escapes. Escapes are RFC 8259's plus \' .
 */

export class StringError extends Error {}

/** util/unicode.c is_valid_codepoint */
export function isValidCodepoint(cp: number): boolean {
  if (cp > 0x10ffff) return false;
  if ((cp >= 0xfdd0 && cp <= 0xfdef) || (cp & 0xfffe) === 0xfffe) return false;
  if (cp >= 0xd800 && cp <= 0xdfff) return false;
  return true;
}

const MIN_CP = [0x80, 0x800, 0x10000, 0x200000, 0x4000000];

/**
 * Decode one code point at `pos` (util/unicode.c mod_utf8_codepoint). Returns the code point
 * or -1, and the position after the bytes consumed.
 */
export function modUtf8Codepoint(b: Uint8Array, pos: number, end: number): [number, number] {
  let byte = b[pos++];
  if (byte < 0x80) return [byte, pos];
  if (byte >= 0xfe || (byte & 0x40) === 0) return [-1, pos];
  let len = 0;
  let mask = 0x80;
  for (; byte & mask; mask >>= 1) len++;
  let cp = byte & (mask - 1);
  for (let i = 1; i < len; i++) {
    byte = pos < end ? b[pos] : 0;
    if ((byte & 0xc0) !== 0x80) return [-1, pos];
    pos++;
    cp = cp * 64 + (byte & 0x3f);
  }
  if (!isValidCodepoint(cp)) return [-1, pos];
  if (cp < MIN_CP[len - 2] && !(cp === 0 && len === 2)) return [-1, pos];
  return [cp, pos];
}

function hex4(b: Uint8Array, pos: number, end: number): number {
  let cp = 0;
  for (let i = 0; i < 4; i++) {
    const c = pos + i < end ? b[pos + i] : 0;
    let d: number;
    if (c >= 0x30 && c <= 0x39) d = c - 0x30;
    else if (c >= 0x61 && c <= 0x66) d = c - 0x61 + 10;
    else if (c >= 0x41 && c <= 0x46) d = c - 0x41 + 10;
    else return -1;
    cp = cp * 16 + d;
  }
  return cp;
}

const latin = (b: Uint8Array, from: number, to: number) =>
  Buffer.from(b.subarray(from, Math.min(to, b.length))).toString('latin1');

/**
 * Decode a whole string token, quotes included. Throws StringError with QEMU's message
 * (without the "JSON parse error, " prefix the caller adds).
 */
export function decodeStringToken(tok: Uint8Array): string {
  const quote = tok[0];
  const end = tok.length - 1; // index of the closing quote
  let out = '';
  let pos = 1;
  while (pos < end) {
    const c = tok[pos];
    if (c === 0x5c) {
      const beg = pos;
      const e = tok[pos + 1];
      pos += 2;
      switch (e) {
        case 0x22: out += '"'; break;
        case 0x27: out += "'"; break;
        case 0x5c: out += '\\'; break;
        case 0x2f: out += '/'; break;
        case 0x62: out += '\b'; break;
        case 0x66: out += '\f'; break;
        case 0x6e: out += '\n'; break;
        case 0x72: out += '\r'; break;
        case 0x74: out += '\t'; break;
        case 0x75: {
          let cp = hex4(tok, pos, end);
          pos += 4;
          if (cp >= 0xd800 && cp <= 0xdbff && tok[pos] === 0x5c && tok[pos + 1] === 0x75) {
            // A leading surrogate must be followed by a trailing one (QEMU parse_string).
            const trailing = hex4(tok, pos + 2, end);
            if (trailing >= 0xdc00 && trailing <= 0xdfff) {
              cp = 0x10000 + ((cp & 0x3ff) << 10) + (trailing & 0x3ff);
              pos += 6;
            } else {
              cp = -1;
            }
          }
          if (cp < 0 || !isValidCodepoint(cp)) {
            throw new StringError(`${latin(tok, beg, pos)} is not a valid Unicode character`);
          }
          out += String.fromCodePoint(cp);
          break;
        }
        default:
          throw new StringError('invalid escape sequence in string');
      }
      continue;
    }
    if (c < 0x80 && c !== quote) {
      // Fast path: a run of plain ASCII.
      let run = pos;
      while (run < end && tok[run] < 0x80 && tok[run] !== 0x5c) run++;
      out += latin(tok, pos, run);
      pos = run;
      continue;
    }
    const [cp, next] = modUtf8Codepoint(tok, pos, end);
    if (cp < 0) throw new StringError('invalid UTF-8 sequence in string');
    out += String.fromCodePoint(cp);
    pos = next;
  }
  return out;
}
