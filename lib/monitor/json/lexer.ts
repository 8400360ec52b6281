/**
 * Incremental JSON lexer with QEMU's extensions and error recovery (qobject/json-lexer.c).
 *
 * It works on bytes, one at a time, so input may be split anywhere. Tokens:
 *
 *   { } [ ] : ,               structural characters
 *   "..." or '...'            strings; single quotes are QEMU's extension; any byte
 *                             0x20..0xFD is taken inside a string, escapes and UTF-8 are
 *                             checked later by the parser
 *   -?(0|[1-9][0-9]*)         integers, with optional .digits and e[+-]digits (floats)
 *   [a-z]+                    keywords; the parser rejects all but true/false/null
 *
 * A byte that cannot continue the current token is a lexical error: the token so far plus
 * that byte are reported ("stray"), and the lexer enters recovery, skipping input up to a
 * structural character, an ASCII control character other than tab, or 0xFE/0xFF. That is
 * QEMU's documented way for a client to force the parser back into a known-good state
 * (docs/interop/qmp-spec.rst, "Forcing the JSON parser into known-good state").
 *
 * Tokens that end only when the next byte arrives (numbers, keywords) are emitted on that
 * byte, which is then lexed again from the start state ("lookahead").
 */

export enum Tok {
  LCURLY,
  RCURLY,
  LSQUARE,
  RSQUARE,
  COLON,
  COMMA,
  INTEGER,
  FLOAT,
  KEYWORD,
  STRING,
  /** lexical error: the offending bytes */
  ERROR,
  /** a single token grew past the size limit; the lexer skips to a resync point */
  OVERSIZED,
}

enum S {
  START,
  RECOVERY,
  DQ_STRING,
  DQ_ESCAPE,
  SQ_STRING,
  SQ_ESCAPE,
  ZERO,
  DIGITS,
  SIGN,
  MANTISSA,
  MANTISSA_DIGITS,
  EXP_E,
  EXP_SIGN,
  EXP_DIGITS,
  KEYWORD,
}

export type TokenSink = (type: Tok, bytes: Uint8Array) => void;

/** QEMU json-lexer.c MAX_TOKEN_SIZE: no single token may grow beyond 64 MiB. */
export const MAX_TOKEN_SIZE = 64 * 1024 * 1024;

const isDigit = (c: number) => c >= 0x30 && c <= 0x39;

export class JsonLexer {
  private state = S.START;
  private buf = new Uint8Array(64);
  private len = 0;

  constructor(
    private readonly sink: TokenSink,
    private readonly maxTokenSize = MAX_TOKEN_SIZE,
  ) {}

  /**
   * Lex `data`. With `stop`, return early once it reports true after a byte: the caller
   * takes input only as fast as it can act on it (QEMU reads QMP input one byte at a time
   * for the same reason). Returns the number of bytes consumed.
   */
  feed(data: Uint8Array, stop?: () => boolean): number {
    for (let i = 0; i < data.length; i++) {
      this.feedByte(data[i]);
      if (stop?.()) return i + 1;
    }
    return data.length;
  }

  /** Drop any partial token (connection reset). */
  reset(): void {
    this.state = S.START;
    this.len = 0;
  }

  private push(c: number): void {
    if (this.len === this.buf.length) {
      const nb = new Uint8Array(this.buf.length * 2);
      nb.set(this.buf);
      this.buf = nb;
    }
    this.buf[this.len++] = c;
  }

  private emit(type: Tok): void {
    const bytes = this.buf.slice(0, this.len);
    this.len = 0;
    if (this.buf.length > 4096) this.buf = new Uint8Array(64);
    this.sink(type, bytes);
  }

  /** The byte cannot continue the token: report it with the token so far, then recover. */
  private error(c: number): void {
    this.push(c);
    this.emit(Tok.ERROR);
    this.state = S.RECOVERY;
  }

  private feedByte(c: number): void {
    // A loop because terminal states hand the byte back to the start state (lookahead).
    for (;;) {
      switch (this.state) {
        case S.START:
          return this.start(c);
        case S.RECOVERY:
          if (c < 0x20 || c >= 0xfe) {
            if (c === 0x09) return;
            this.state = S.START;
            continue;
          }
          if (c === 0x5b || c === 0x5d || c === 0x7b || c === 0x7d || c === 0x3a || c === 0x2c) {
            this.state = S.START;
            continue;
          }
          return;
        case S.DQ_STRING:
        case S.SQ_STRING: {
          const quote = this.state === S.DQ_STRING ? 0x22 : 0x27;
          if (c < 0x20 || c > 0xfd) return this.error(c);
          this.push(c);
          if (c === quote) {
            this.state = S.START;
            this.emit(Tok.STRING);
          } else if (c === 0x5c) {
            this.state = this.state === S.DQ_STRING ? S.DQ_ESCAPE : S.SQ_ESCAPE;
          }
          return this.checkSize();
        }
        case S.DQ_ESCAPE:
        case S.SQ_ESCAPE:
          if (c < 0x20 || c > 0xfd) return this.error(c);
          this.push(c);
          this.state = this.state === S.DQ_ESCAPE ? S.DQ_STRING : S.SQ_STRING;
          return this.checkSize();
        case S.ZERO:
          if (isDigit(c)) return this.error(c);
          if (c === 0x2e) return this.take(c, S.MANTISSA);
          this.terminal(Tok.INTEGER);
          continue;
        case S.SIGN:
          if (c === 0x30) return this.take(c, S.ZERO);
          if (c >= 0x31 && c <= 0x39) return this.take(c, S.DIGITS);
          return this.error(c);
        case S.DIGITS:
          if (isDigit(c)) return this.take(c, S.DIGITS);
          if (c === 0x2e) return this.take(c, S.MANTISSA);
          if (c === 0x65 || c === 0x45) return this.take(c, S.EXP_E);
          this.terminal(Tok.INTEGER);
          continue;
        case S.MANTISSA:
          if (isDigit(c)) return this.take(c, S.MANTISSA_DIGITS);
          return this.error(c);
        case S.MANTISSA_DIGITS:
          if (isDigit(c)) return this.take(c, S.MANTISSA_DIGITS);
          if (c === 0x65 || c === 0x45) return this.take(c, S.EXP_E);
          this.terminal(Tok.FLOAT);
          continue;
        case S.EXP_E:
          if (c === 0x2b || c === 0x2d) return this.take(c, S.EXP_SIGN);
          if (isDigit(c)) return this.take(c, S.EXP_DIGITS);
          return this.error(c);
        case S.EXP_SIGN:
          if (isDigit(c)) return this.take(c, S.EXP_DIGITS);
          return this.error(c);
        case S.EXP_DIGITS:
          if (isDigit(c)) return this.take(c, S.EXP_DIGITS);
          this.terminal(Tok.FLOAT);
          continue;
        case S.KEYWORD:
          if (c >= 0x61 && c <= 0x7a) return this.take(c, S.KEYWORD);
          this.terminal(Tok.KEYWORD);
          continue;
      }
    }
  }

  private start(c: number): void {
    switch (c) {
      case 0x20:
      case 0x09:
      case 0x0d:
      case 0x0a:
        return;
      case 0x7b:
        return this.single(c, Tok.LCURLY);
      case 0x7d:
        return this.single(c, Tok.RCURLY);
      case 0x5b:
        return this.single(c, Tok.LSQUARE);
      case 0x5d:
        return this.single(c, Tok.RSQUARE);
      case 0x3a:
        return this.single(c, Tok.COLON);
      case 0x2c:
        return this.single(c, Tok.COMMA);
      case 0x22:
        return this.take(c, S.DQ_STRING);
      case 0x27:
        return this.take(c, S.SQ_STRING);
      case 0x2d:
        return this.take(c, S.SIGN);
      case 0x30:
        return this.take(c, S.ZERO);
    }
    if (c >= 0x31 && c <= 0x39) return this.take(c, S.DIGITS);
    if (c >= 0x61 && c <= 0x7a) return this.take(c, S.KEYWORD);
    this.error(c);
  }

  private single(c: number, type: Tok): void {
    this.push(c);
    this.emit(type);
  }

  private take(c: number, next: S): void {
    this.push(c);
    this.state = next;
    this.checkSize();
  }

  /** End a token that needed to see the next byte; the caller's loop re-lexes that byte. */
  private terminal(type: Tok): void {
    this.state = S.START;
    this.emit(type);
  }

  /**
   * QEMU caps a single token at MAX_TOKEN_SIZE. Unlike QEMU, which then restarts lexing in
   * the middle of the oversized token, we skip to the next resync point so the remainder of
   * a giant string is not re-read as a stream of tokens.
   */
  private checkSize(): void {
    if (this.len > this.maxTokenSize) {
      this.len = 0;
      this.sink(Tok.OVERSIZED, new Uint8Array(0));
      this.state = S.RECOVERY;
    }
  }
}
