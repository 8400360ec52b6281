/**
 * JSON values as the QMP layer sees them.
 *
 * QEMU's parser keeps the lexical kind of a number: an integer token becomes a QNum holding
 * an int64 (or a uint64 when it does not fit), anything with a fraction or an exponent, or an
 * integer beyond 64 bits, becomes a double (qobject/json-parser.c parse_literal). The type
 * checks depend on that: `1.0` is refused where QAPI expects an integer. JavaScript numbers
 * cannot carry the distinction, so parsed doubles are wrapped in JsonFloat and integers
 * beyond 2^53 stay exact as bigint. Objects are Maps: insertion order is kept and a key
 * such as "__proto__" from a hostile client is just a key.
 */

export class JsonFloat {
  constructor(readonly value: number) {}
}

export type JsonValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | JsonFloat
  | JsonValue[]
  | JsonObject;

export type JsonObject = Map<string, JsonValue>;

export function isJsonObject(v: unknown): v is JsonObject {
  return v instanceof Map;
}

/** QEMU's qobject type names, for messages and dispatch. */
export type QType = 'null' | 'bool' | 'num' | 'string' | 'list' | 'dict';

export function qtypeOf(v: JsonValue): QType {
  if (v === null) return 'null';
  switch (typeof v) {
    case 'boolean':
      return 'bool';
    case 'number':
    case 'bigint':
      return 'num';
    case 'string':
      return 'string';
    default:
      if (v instanceof JsonFloat) return 'num';
      if (Array.isArray(v)) return 'list';
      return 'dict';
  }
}

/** Build a JsonObject from a plain object (tests and internal callers). */
export function jsonObject(entries: Record<string, JsonValue>): JsonObject {
  return new Map(Object.entries(entries));
}

/** Convert plain JavaScript data (objects, arrays, numbers) into JsonValue form. */
export function fromPlain(v: unknown): JsonValue {
  if (v === null || v === undefined) return null;
  if (typeof v === 'boolean' || typeof v === 'string' || typeof v === 'bigint') return v;
  if (typeof v === 'number') return Number.isInteger(v) ? v : new JsonFloat(v);
  if (v instanceof JsonFloat || v instanceof Map) return v as JsonValue;
  if (Array.isArray(v)) return v.map(fromPlain);
  const m: JsonObject = new Map();
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    if (x !== undefined) m.set(k, fromPlain(x));
  }
  return m;
}
