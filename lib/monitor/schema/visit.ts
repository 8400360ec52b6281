/**
 * Argument validation with QEMU's semantics and texts: a reimplementation of what the
 * generated marshalling code does with qapi/qobject-input-visitor.c and
 * qapi/qapi-visit-core.c. Members are visited in declaration order and the first error
 * wins; unknown members are reported after all declared ones were visited.
 *
 *   missing member         Parameter 'channels[0].addr' is missing
 *   wrong JSON type        Invalid parameter type for 'uri', expected: string
 *                          (… integer, number, boolean, object, array, null)
 *   not a uint64           Parameter 'downtime-limit' expects uint64
 *   out of a small range   Parameter 'multifd-channels' expects uint8_t
 *   unknown enum value     Parameter 'capability' does not accept value 'bogus'
 *   unknown member         Parameter 'foo' is unexpected
 *   alternate mismatch     Invalid parameter type for 'tls-creds', expected: StrOrNull
 *
 * Names are "full names" (capabilities[0].state) except where QEMU passes the bare member
 * name: enum values, small-integer ranges and alternates. List elements have no name, so
 * an enum inside a list reports 'null', exactly as QEMU does.
 */

import { QERR, QmpError, genericError } from '../errors';
import { JsonFloat, JsonValue, isJsonObject, qtypeOf } from '../json/value';
import type { MemberDef, QapiType, ScalarName, StructType, UnionType } from './types';

interface Frame {
  /** the container's own name in its parent (null for the root and list elements) */
  name: string | null;
  dict?: Map<string, JsonValue>;
  visited?: Set<string>;
  list?: JsonValue[];
  index: number;
}

const UINT_MAX: Partial<Record<ScalarName, [number, string]>> = {
  uint8: [0xff, 'uint8_t'],
  uint16: [0xffff, 'uint16_t'],
  uint32: [0xffffffff, 'uint32_t'],
};
const INT_RANGE: Partial<Record<ScalarName, [number, number, string]>> = {
  int8: [-0x80, 0x7f, 'int8_t'],
  int16: [-0x8000, 0x7fff, 'int16_t'],
  int32: [-0x80000000, 0x7fffffff, 'int32_t'],
};

const TWO64 = 2n ** 64n;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

class InputVisitor {
  private readonly stack: Frame[] = [];

  constructor(private readonly root: JsonValue) {}

  /** QEMU qobject-input-visitor.c full_name_nth(qiv, name, 0). */
  fullName(name: string | null): string {
    let err = '';
    for (let i = this.stack.length - 1; i >= 0; i--) {
      const so = this.stack[i];
      if (so.dict) err = `.${name ?? '<anonymous>'}${err}`;
      else err = `[${so.index}]${err}`;
      name = so.name;
    }
    if (name) return name + err;
    if (err.startsWith('.')) return err.slice(1);
    return err || '<anonymous>';
  }

  /** Fetch (and consume) the next value: a dict member or the next list element. */
  private get(name: string | null, consume = true): JsonValue | undefined {
    const tos = this.stack[this.stack.length - 1];
    if (!tos) return this.root;
    if (tos.dict) {
      const v = tos.dict.get(name!);
      if (v !== undefined && consume) tos.visited!.add(name!);
      return v;
    }
    if (!consume) return tos.list![tos.index + 1];
    tos.index++;
    return tos.list![tos.index];
  }

  private need(name: string | null, consume = true): JsonValue {
    const v = this.get(name, consume);
    if (v === undefined) throw genericError(QERR.missingParameter(this.fullName(name)));
    return v;
  }

  visit(type: QapiType, name: string | null): unknown {
    switch (type.kind) {
      case 'scalar':
        return this.scalar(type.scalar, name);
      case 'enum': {
        const s = this.str(name);
        if (!type.values.includes(s)) throw genericError(QERR.enumValue(name ?? 'null', s));
        return s;
      }
      case 'list': {
        const v = this.need(name);
        if (!Array.isArray(v)) throw this.typeError(name, 'array');
        this.stack.push({ name, list: v, index: -1 });
        const out: unknown[] = [];
        for (let i = 0; i < v.length; i++) out.push(this.visit(type.element, null));
        this.stack.pop();
        return out;
      }
      case 'struct':
      case 'union':
        return this.object(type, name);
      case 'alternate': {
        const v = this.need(name, false);
        const qt = qtypeOf(v);
        const alt = type.alternatives.find((a) => accepts(a, qt));
        if (!alt) throw genericError(QERR.invalidParameterType(name ?? 'null', type.name));
        return this.visit(alt, name);
      }
    }
  }

  private typeError(name: string | null, expected: string): QmpError {
    return genericError(QERR.invalidParameterType(this.fullName(name), expected));
  }

  private str(name: string | null): string {
    const v = this.need(name);
    if (typeof v !== 'string') throw this.typeError(name, 'string');
    return v;
  }

  private scalar(s: ScalarName, name: string | null): unknown {
    switch (s) {
      case 'str':
        return this.str(name);
      case 'bool': {
        const v = this.need(name);
        if (typeof v !== 'boolean') throw this.typeError(name, 'boolean');
        return v;
      }
      case 'null': {
        const v = this.need(name);
        if (v !== null) throw this.typeError(name, 'null');
        return null;
      }
      case 'number': {
        const v = this.need(name);
        if (typeof v === 'number') return v;
        if (typeof v === 'bigint') return Number(v);
        if (v instanceof JsonFloat) return v.value;
        throw this.typeError(name, 'number');
      }
      case 'any':
        return this.need(name);
      case 'int':
      case 'int64':
      case 'int8':
      case 'int16':
      case 'int32': {
        const v = this.need(name);
        const n = typeof v === 'number' ? BigInt(v) : typeof v === 'bigint' ? v : undefined;
        if (n === undefined || n < INT64_MIN || n > INT64_MAX) throw this.typeError(name, 'integer');
        const range = INT_RANGE[s];
        if (range && (n < BigInt(range[0]) || n > BigInt(range[1]))) {
          throw genericError(QERR.invalidParameterValue(name ?? 'null', range[2]));
        }
        return Number(n);
      }
      default: {
        // uint8..uint64 and size: QNum as uint64, negative int64 accepted and wrapped
        // "for backward compatibility" (qobject_input_type_uint64).
        const v = this.need(name);
        let n = typeof v === 'number' ? BigInt(v) : typeof v === 'bigint' ? v : undefined;
        if (n === undefined || n < INT64_MIN || n >= TWO64) {
          throw genericError(QERR.invalidParameterValue(this.fullName(name), 'uint64'));
        }
        if (n < 0n) n += TWO64;
        const limit = UINT_MAX[s];
        if (limit && n > BigInt(limit[0])) throw genericError(QERR.invalidParameterValue(name ?? 'null', limit[1]));
        return Number(n);
      }
    }
  }

  private object(type: StructType<unknown> | UnionType<unknown>, name: string | null): Record<string, unknown> {
    const v = this.need(name);
    if (!isJsonObject(v)) throw this.typeError(name, 'object');
    this.stack.push({ name, dict: v, visited: new Set(), index: 0 });
    const out: Record<string, unknown> = {};
    this.members(type, out);
    const tos = this.stack[this.stack.length - 1];
    for (const key of v.keys()) {
      if (!tos.visited!.has(key)) throw genericError(QERR.unexpectedParameter(this.fullName(key)));
    }
    this.stack.pop();
    return out;
  }

  /** Visit the members of a struct, or of a union (base, then the selected variant). */
  private members(type: StructType<unknown> | UnionType<unknown>, out: Record<string, unknown>): void {
    for (const m of type.members) this.member(m, out);
    if (type.kind === 'union') {
      const variant = type.variants[out[type.discriminator] as string];
      if (variant) this.members(variant, out);
    }
  }

  private member(m: MemberDef, out: Record<string, unknown>): void {
    const tos = this.stack[this.stack.length - 1];
    if (m.optional && !tos.dict!.has(m.name)) return;
    out[m.name] = this.visit(m.type, m.name);
  }
}

/** Which alternative takes a value of this JSON type (qapi alternate dispatch on QType). */
function accepts(t: QapiType, qt: ReturnType<typeof qtypeOf>): boolean {
  switch (t.kind) {
    case 'scalar':
      switch (t.scalar) {
        case 'str': return qt === 'string';
        case 'bool': return qt === 'bool';
        case 'null': return qt === 'null';
        case 'any': return true;
        default: return qt === 'num';
      }
    case 'enum':
      return qt === 'string';
    case 'list':
      return qt === 'list';
    default:
      return qt === 'dict';
  }
}

/**
 * Validate a command's "arguments" object against its argument struct. A command without
 * arguments still refuses unknown members. Throws QmpError; returns the typed arguments.
 */
export function validateArgs(type: StructType<unknown> | undefined, args: JsonValue | undefined): Record<string, unknown> {
  const root = args ?? new Map<string, JsonValue>();
  const v = new InputVisitor(root);
  return v.visit(type ?? EMPTY, null) as Record<string, unknown>;
}

/** Validate any value against a type (events in tests, HMP-built arguments). */
export function validateValue(type: QapiType, value: JsonValue): unknown {
  return new InputVisitor(value).visit(type, null);
}

const EMPTY: StructType<unknown> = { kind: 'struct', name: 'q_empty', members: [], doc: '' };
