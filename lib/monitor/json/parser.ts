/**
 * Incremental JSON message parser: QEMU's streamer and parser (qobject/json-streamer.c,
 * qobject/json-parser.c) in push form.
 *
 * Message boundaries follow QEMU's streamer: it counts braces and brackets over the tokens
 * and a message ends when both counts are back to zero, or when either goes negative (a
 * stray closer). Each message yields one value or one error; then counting starts afresh.
 * A lexical error ends the message at once ("JSON parse error, stray '…'").
 *
 * QEMU collects a message's tokens and parses them when the message ends; we parse each
 * token as it arrives and hold the first syntax error until the message ends, which gives
 * the same value or the same first error without keeping the token list in memory.
 *
 * Limits (json-streamer.c), checked on every token before it is taken:
 *   MAX_TOKEN_SIZE  64 MiB   total bytes of a message's tokens
 *   MAX_TOKEN_COUNT 2 Mi     tokens in a message
 *   MAX_NESTING     1024     open braces + brackets
 * Exceeding one reports "JSON token size limit exceeded" (…count…, "JSON nesting depth
 * limit exceeded") and starts a new message with the next token, as QEMU does.
 */

import { JsonLexer, MAX_TOKEN_SIZE, Tok } from './lexer';
import { StringError, decodeStringToken } from './strings';
import { JsonFloat, JsonObject, JsonValue } from './value';

export const MAX_TOKEN_COUNT = 2 * 1024 * 1024;
export const MAX_NESTING = 1024;

export interface JsonLimits {
  maxTokenSize: number;
  maxTokenCount: number;
  maxNesting: number;
}

export const QEMU_JSON_LIMITS: JsonLimits = {
  maxTokenSize: MAX_TOKEN_SIZE,
  maxTokenCount: MAX_TOKEN_COUNT,
  maxNesting: MAX_NESTING,
};

/** Called once per message: a value, or an error text (QEMU's Error description). */
export type MessageSink = (value: JsonValue | undefined, error: string | undefined) => void;

const enum P {
  AFTER_LCURLY,
  AFTER_LSQUARE,
  BEFORE_KEY,
  END_OF_KEY,
  BEFORE_VALUE,
  END_OF_VALUE,
}

interface Frame {
  container: JsonObject | JsonValue[];
  state: P;
  key?: string;
  /** a container parsed where a key was expected: QEMU parses it, then refuses it */
  asKey?: boolean;
}

class ParseError extends Error {}

const latin1 = (b: Uint8Array) => Buffer.from(b).toString('latin1');

function literal(type: Tok, bytes: Uint8Array): JsonValue {
  if (type === Tok.STRING) {
    try {
      return decodeStringToken(bytes);
    } catch (e) {
      if (e instanceof StringError) throw new ParseError(e.message);
      throw e;
    }
  }
  const text = latin1(bytes);
  if (type === Tok.KEYWORD) {
    if (text === 'true') return true;
    if (text === 'false') return false;
    if (text === 'null') return null;
    throw new ParseError(`invalid keyword '${text}'`);
  }
  if (type === Tok.INTEGER) {
    // int64 if it fits, else uint64, else a double (json-parser.c parse_literal).
    const big = BigInt(text);
    if (big >= -(2n ** 63n) && big < 2n ** 64n) {
      return Number.isSafeInteger(Number(big)) ? Number(big) : big;
    }
  }
  return new JsonFloat(Number(text));
}

const isValueStart = (t: Tok) =>
  t === Tok.LCURLY || t === Tok.LSQUARE || t === Tok.STRING || t === Tok.INTEGER ||
  t === Tok.FLOAT || t === Tok.KEYWORD;

/** The push parser proper: one token at a time, returns the top-level value when complete. */
class PushParser {
  private stack: Frame[] = [];

  reset(): void {
    this.stack = [];
  }

  get complete(): boolean {
    return this.stack.length === 0;
  }

  feed(type: Tok, bytes: Uint8Array): JsonValue | undefined {
    const top = this.stack[this.stack.length - 1];
    if (!top) return this.beginValue(type, bytes, false);
    switch (top.state) {
      case P.AFTER_LCURLY:
        if (type === Tok.RCURLY) return this.finish();
        top.state = P.BEFORE_KEY;
        return this.key(top, type, bytes);
      case P.BEFORE_KEY:
        return this.key(top, type, bytes);
      case P.END_OF_KEY:
        if (type !== Tok.COLON) throw new ParseError('missing : in object pair');
        top.state = P.BEFORE_VALUE;
        return undefined;
      case P.AFTER_LSQUARE:
        if (type === Tok.RSQUARE) return this.finish();
        top.state = P.BEFORE_VALUE;
        return this.beginValue(type, bytes, false);
      case P.BEFORE_VALUE:
        return this.beginValue(type, bytes, false);
      case P.END_OF_VALUE:
        if (Array.isArray(top.container)) {
          if (type === Tok.RSQUARE) return this.finish();
          if (type !== Tok.COMMA) throw new ParseError('expected separator in list');
          top.state = P.BEFORE_VALUE;
        } else {
          if (type === Tok.RCURLY) return this.finish();
          if (type !== Tok.COMMA) throw new ParseError('expected separator in dict');
          top.state = P.BEFORE_KEY;
        }
        return undefined;
    }
  }

  private key(top: Frame, type: Tok, bytes: Uint8Array): JsonValue | undefined {
    if (type === Tok.STRING) {
      top.key = literal(type, bytes) as string;
      top.state = P.END_OF_KEY;
      return undefined;
    }
    // QEMU parses whatever stands in the key position as a value, then refuses it.
    if (!isValueStart(type)) throw new ParseError('expecting value');
    if (type === Tok.LCURLY || type === Tok.LSQUARE) return this.beginValue(type, bytes, true);
    literal(type, bytes);
    throw new ParseError('key is not a string in object');
  }

  private beginValue(type: Tok, bytes: Uint8Array, asKey: boolean): JsonValue | undefined {
    if (type === Tok.LCURLY) {
      this.stack.push({ container: new Map(), state: P.AFTER_LCURLY, asKey });
      return undefined;
    }
    if (type === Tok.LSQUARE) {
      this.stack.push({ container: [], state: P.AFTER_LSQUARE, asKey });
      return undefined;
    }
    if (!isValueStart(type)) throw new ParseError('expecting value');
    return this.place(literal(type, bytes));
  }

  private finish(): JsonValue | undefined {
    const done = this.stack.pop()!;
    if (done.asKey) throw new ParseError('key is not a string in object');
    return this.place(done.container);
  }

  /** Put a completed value into the enclosing container, or return it at top level. */
  private place(value: JsonValue): JsonValue | undefined {
    const top = this.stack[this.stack.length - 1];
    if (!top) return value;
    if (Array.isArray(top.container)) {
      top.container.push(value);
    } else {
      if (top.container.has(top.key!)) throw new ParseError('duplicate key');
      top.container.set(top.key!, value);
      top.key = undefined;
    }
    top.state = P.END_OF_VALUE;
    return undefined;
  }
}

export class JsonMessageParser {
  private readonly lexer: JsonLexer;
  private readonly parser = new PushParser();
  private braces = 0;
  private brackets = 0;
  private tokenCount = 0;
  private tokenSize = 0;
  private pendingError: string | undefined;
  private value: JsonValue | undefined;
  private readonly limits: JsonLimits;

  constructor(
    private readonly sink: MessageSink,
    limits: Partial<JsonLimits> = {},
  ) {
    this.limits = { ...QEMU_JSON_LIMITS, ...limits };
    this.lexer = new JsonLexer((t, b) => this.token(t, b), this.limits.maxTokenSize);
  }

  /** Feed bytes; with `stop`, consume only until it holds. Returns bytes consumed. */
  feed(data: Uint8Array, stop?: () => boolean): number {
    return this.lexer.feed(data, stop);
  }

  /** Forget partial input (the connection closed). */
  reset(): void {
    this.lexer.reset();
    this.startMessage();
  }

  private startMessage(): void {
    this.braces = this.brackets = 0;
    this.tokenCount = this.tokenSize = 0;
    this.pendingError = undefined;
    this.value = undefined;
    this.parser.reset();
  }

  private emitError(text: string): void {
    this.startMessage();
    this.sink(undefined, text);
  }

  private token(type: Tok, bytes: Uint8Array): void {
    switch (type) {
      case Tok.LCURLY: this.braces++; break;
      case Tok.RCURLY: this.braces--; break;
      case Tok.LSQUARE: this.brackets++; break;
      case Tok.RSQUARE: this.brackets--; break;
      case Tok.ERROR:
        return this.emitError(`JSON parse error, stray '${latin1(bytes)}'`);
      case Tok.OVERSIZED:
        return this.emitError('JSON token size limit exceeded');
      default:
        break;
    }
    if (this.tokenSize + bytes.length + 1 > this.limits.maxTokenSize) {
      return this.emitError('JSON token size limit exceeded');
    }
    if (this.tokenCount + 1 > this.limits.maxTokenCount) {
      return this.emitError('JSON token count limit exceeded');
    }
    if (this.braces + this.brackets > this.limits.maxNesting) {
      return this.emitError('JSON nesting depth limit exceeded');
    }
    this.tokenSize += bytes.length;
    this.tokenCount++;
    if (this.pendingError === undefined) {
      try {
        const v = this.parser.feed(type, bytes);
        if (v !== undefined) this.value = v;
      } catch (e) {
        if (!(e instanceof ParseError)) throw e;
        this.pendingError = `JSON parse error, ${e.message}`;
        this.parser.reset();
      }
    }
    if ((this.braces > 0 || this.brackets > 0) && this.braces >= 0 && this.brackets >= 0) return;
    // End of message.
    const err = this.pendingError;
    const value = this.value;
    const complete = this.parser.complete;
    this.startMessage();
    if (err !== undefined) this.sink(undefined, err);
    else if (value !== undefined && complete) this.sink(value, undefined);
    else this.sink(undefined, 'JSON parse error, premature EOI');
  }
}
