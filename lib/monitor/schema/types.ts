/**
 * The QAPI-like type system the schema is written in (QEMU docs/devel/qapi-code-gen.rst).
 *
 * Every command and event is declared once, with typed members and docs. From those
 * declarations come: argument validation (schema/visit.ts), output member order
 * (schema/output.ts), query-commands, HMP argument mapping, and — through the phantom
 * `__t` member below — the TypeScript types of handler arguments and results, so a handler
 * cannot disagree with its declaration.
 *
 *   built-in scalars  str int int8..int64 uint8..uint64 size number bool null any
 *   enum              a fixed set of strings
 *   struct            named members, each required or optional ('*name' in QAPI)
 *   union             a struct whose discriminator member selects extra variant members
 *   alternate         one of several types, told apart by JSON type (StrOrNull)
 *   list              [T]
 */

export type ScalarName =
  | 'str'
  | 'int'
  | 'int8'
  | 'int16'
  | 'int32'
  | 'int64'
  | 'uint8'
  | 'uint16'
  | 'uint32'
  | 'uint64'
  | 'size'
  | 'number'
  | 'bool'
  | 'null'
  | 'any';

export interface TypeBase<T> {
  /** Phantom: the TypeScript type of a value of this QAPI type. Never set at runtime. */
  readonly __t?: T;
  readonly name: string;
  readonly doc: string;
}

export interface ScalarType<T> extends TypeBase<T> {
  readonly kind: 'scalar';
  readonly scalar: ScalarName;
}

export interface EnumType<V extends string> extends TypeBase<V> {
  readonly kind: 'enum';
  readonly values: readonly V[];
}

export interface ListType<T> extends TypeBase<T[]> {
  readonly kind: 'list';
  readonly element: QapiType;
}

export interface MemberDef {
  readonly name: string;
  readonly type: QapiType;
  readonly optional: boolean;
  readonly doc: string;
  readonly features?: readonly string[];
}

export interface StructType<T> extends TypeBase<T> {
  readonly kind: 'struct';
  readonly members: readonly MemberDef[];
}

export interface UnionType<T> extends TypeBase<T> {
  readonly kind: 'union';
  /** base members, the discriminator among them */
  readonly members: readonly MemberDef[];
  readonly discriminator: string;
  readonly variants: Readonly<Record<string, StructType<unknown> | UnionType<unknown>>>;
}

export interface AlternateType<T> extends TypeBase<T> {
  readonly kind: 'alternate';
  readonly alternatives: readonly QapiType[];
}

export type QapiType =
  | ScalarType<any>
  | EnumType<any>
  | ListType<any>
  | StructType<any>
  | UnionType<any>
  | AlternateType<any>;

export type ValueOf<X> = X extends TypeBase<infer T> ? T : never;

/* ---- scalars ---- */

const scalar = <T>(s: ScalarName, doc: string): ScalarType<T> => ({ kind: 'scalar', scalar: s, name: s, doc });

export const str = scalar<string>('str', 'a JSON string');
export const int = scalar<number>('int', 'a JSON integer (int64)');
export const int64 = scalar<number>('int64', 'a 64-bit signed integer');
export const uint8 = scalar<number>('uint8', 'an 8-bit unsigned integer');
export const uint16 = scalar<number>('uint16', 'a 16-bit unsigned integer');
export const uint32 = scalar<number>('uint32', 'a 32-bit unsigned integer');
export const uint64 = scalar<number>('uint64', 'a 64-bit unsigned integer');
export const size = scalar<number>('size', 'a size in bytes (uint64)');
export const number = scalar<number>('number', 'a JSON number (double)');
export const bool = scalar<boolean>('bool', 'a JSON boolean');
export const qnull = scalar<null>('null', 'JSON null');
export const any = scalar<unknown>('any', 'any JSON value');

/* ---- members ---- */

export interface MemberSpec<T extends QapiType = QapiType, O extends boolean = boolean> {
  readonly type: T;
  readonly optional: O;
  readonly doc: string;
  readonly features?: readonly string[];
}

export type MembersSpec = Record<string, MemberSpec>;

/** A required member. */
export function req<T extends QapiType>(type: T, doc = '', features?: string[]): MemberSpec<T, false> {
  return { type, optional: false, doc, features };
}

/** An optional member ('*name' in QAPI). */
export function opt<T extends QapiType>(type: T, doc = '', features?: string[]): MemberSpec<T, true> {
  return { type, optional: true, doc, features };
}

type Simplify<T> = { [K in keyof T]: T[K] } & {};

export type StructValue<M extends MembersSpec> = Simplify<
  { -readonly [K in keyof M as M[K]['optional'] extends true ? never : K]: ValueOf<M[K]['type']> } & {
    -readonly [K in keyof M as M[K]['optional'] extends true ? K : never]?: ValueOf<M[K]['type']>;
  }
>;

const toMembers = (m: MembersSpec): MemberDef[] =>
  Object.entries(m).map(([name, s]) => ({ name, type: s.type, optional: s.optional, doc: s.doc, features: s.features }));

/* ---- complex types ---- */

export function enumType<const V extends readonly string[]>(name: string, values: V, doc = ''): EnumType<V[number]> {
  return { kind: 'enum', name, values, doc };
}

export function list<T extends QapiType>(element: T): ListType<ValueOf<T>> {
  return { kind: 'list', name: `${element.name}List`, element, doc: `a list of ${element.name}` };
}

export function struct<const M extends MembersSpec>(name: string, members: M, doc = ''): StructType<StructValue<M>> {
  return { kind: 'struct', name, members: toMembers(members), doc };
}

/** A struct extending another ('base' in QAPI): base members come first. */
export function extend<B, const M extends MembersSpec>(
  name: string,
  base: StructType<B>,
  members: M,
  doc = '',
): StructType<Simplify<B & StructValue<M>>> {
  return { kind: 'struct', name, members: [...base.members, ...toMembers(members)], doc };
}

type Variant = StructType<any> | UnionType<any>;

type UnionValue<B extends MembersSpec, D extends keyof B, V extends Record<string, Variant>> = {
  [K in keyof V]: Simplify<Omit<StructValue<B>, D> & { [P in D]: K } & ValueOf<V[K]>>;
}[keyof V];

export function union<const B extends MembersSpec, const D extends keyof B & string, const V extends Record<string, Variant>>(
  name: string,
  spec: { base: B; discriminator: D; variants: V },
  doc = '',
): UnionType<UnionValue<B, D, V>> {
  return { kind: 'union', name, members: toMembers(spec.base), discriminator: spec.discriminator, variants: spec.variants, doc };
}

export function alternate<T>(name: string, alternatives: QapiType[], doc = ''): AlternateType<T> {
  return { kind: 'alternate', name, alternatives, doc };
}

/* ---- commands and events ---- */

export type Empty = Record<string, never>;

export interface CommandDef<N extends string = string, A = any, R = any> {
  readonly name: N;
  readonly args?: StructType<A>;
  readonly returns?: QapiType;
  /** may run out-of-band ('allow-oob' in QAPI) */
  readonly allowOob: boolean;
  readonly doc: string;
  readonly features?: readonly string[];
  readonly __args?: A;
  readonly __ret?: R;
}

export function command<const N extends string, A = Empty, R = Empty>(
  name: N,
  spec: { args?: StructType<A>; returns?: QapiType & TypeBase<R>; allowOob?: boolean; doc: string; features?: string[] },
): CommandDef<N, A, R> {
  return { name, args: spec.args, returns: spec.returns, allowOob: spec.allowOob ?? false, doc: spec.doc, features: spec.features };
}

/** The implicit argument struct of a command ("q_obj_<name>-arg" in QEMU). */
export function args<const M extends MembersSpec>(command: string, members: M): StructType<StructValue<M>> {
  return struct(`q_obj_${command}-arg`, members);
}

export interface EventDef<N extends string = string, D = any> {
  readonly name: N;
  readonly data?: StructType<D>;
  readonly doc: string;
  readonly __data?: D;
}

export function event<const N extends string, D = Empty>(name: N, spec: { data?: StructType<D>; doc: string }): EventDef<N, D> {
  return { name, data: spec.data, doc: spec.doc };
}
