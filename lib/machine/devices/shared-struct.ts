/**
 * Typed register structs over a SharedArrayBuffer. A device declares its state once:
 *
 *   const UART_STATE = defineStruct({ lock: 'i32', divider: 'u16', rxData: ['u8', 16] });
 *   const buf = UART_STATE.create();          // main thread, once; postMessage'd to workers
 *   const s = UART_STATE.view(buf);           // every thread: s.divider, s.rxData[3], ...
 *
 * Layout: 8-byte slots (u64, f64 and their arrays) first, then one 4-byte word per 32-bit or
 * narrower scalar (u8/u16/u32/i32/bool) and 32-bit arrays, then byte arrays. Scalars in words
 * and u64s are read and written with Atomics (sequentially consistent, never torn); f64 and
 * array elements are plain accesses, which callers order with a lock or an Atomics op.
 *
 * Views are plain property bags, so VMState fields can reach them with `key` (when the opaque is
 * the view) or with `viaState(key)` (when the opaque is a device holding the view in `state`).
 * Array properties return the live typed array; assigning an ArrayLike of the right length
 * copies it in.
 */

export type ScalarType = 'u8' | 'u16' | 'u32' | 'i32' | 'bool' | 'f64' | 'u64';
export type ArrayType = 'u8' | 'u32' | 'i32' | 'f64' | 'u64';
export type FieldSpec = ScalarType | readonly [ArrayType, number];
export type StructSpec = Readonly<Record<string, FieldSpec>>;

type ArrayOf<T> = T extends 'u8'
  ? Uint8Array
  : T extends 'u32'
    ? Uint32Array
    : T extends 'i32'
      ? Int32Array
      : T extends 'f64'
        ? Float64Array
        : BigUint64Array;
type ValueOf<F> = F extends readonly [infer A, number]
  ? ArrayOf<A>
  : F extends 'bool'
    ? boolean
    : F extends 'u64'
      ? bigint
      : number;

export type StructView<S extends StructSpec> = { -readonly [K in keyof S]: ValueOf<S[K]> } & {
  readonly $buffer: SharedArrayBuffer;
  readonly $i32: Int32Array;
};

interface Slot {
  readonly name: string;
  readonly spec: FieldSpec;
  /** Byte offset in the buffer. */
  readonly offset: number;
}

const WORD_MASK: Record<string, number> = { u8: 0xff, u16: 0xffff };

export class SharedStruct<S extends StructSpec> {
  readonly byteLength: number;
  private readonly slots: readonly Slot[];
  private readonly proto: object;

  constructor(readonly spec: S) {
    const wide: string[] = [];
    const word: string[] = [];
    const bytes: string[] = [];
    for (const [name, f] of Object.entries(spec)) {
      const t = typeof f === 'string' ? f : f[0];
      (t === 'u64' || t === 'f64' ? wide : t === 'u8' && typeof f !== 'string' ? bytes : word).push(name);
    }
    const slots: Slot[] = [];
    let off = 0;
    for (const group of [wide, word, bytes]) {
      for (const name of group) {
        const f = spec[name];
        slots.push({ name, spec: f, offset: off });
        const elem = typeof f === 'string' ? (f === 'u64' || f === 'f64' ? 8 : 4) : f[0] === 'u8' ? 1 : f[0] === 'u32' || f[0] === 'i32' ? 4 : 8;
        off += elem * (typeof f === 'string' ? 1 : f[1]);
      }
      off = (off + 7) & ~7;
    }
    this.byteLength = Math.max(off, 8);
    this.slots = slots;
    this.proto = this.buildProto();
  }

  /** A fresh zeroed buffer for this struct (main thread, once per device). */
  create(): SharedArrayBuffer {
    return new SharedArrayBuffer(this.byteLength);
  }

  /** Typed accessors over `buffer`; cheap, build one per thread. */
  view(buffer: SharedArrayBuffer): StructView<S> {
    if (buffer.byteLength !== this.byteLength) {
      throw new RangeError(`shared struct: buffer is ${buffer.byteLength} bytes, layout needs ${this.byteLength}`);
    }
    const v = Object.create(this.proto);
    Object.defineProperties(v, {
      $buffer: { value: buffer },
      $i32: { value: new Int32Array(buffer) },
      $u64: { value: new BigUint64Array(buffer) },
      $f64: { value: new Float64Array(buffer) },
    });
    for (const s of this.slots) {
      if (typeof s.spec === 'string') continue;
      const [t, n] = s.spec;
      const arr =
        t === 'u8'
          ? new Uint8Array(buffer, s.offset, n)
          : t === 'u32'
            ? new Uint32Array(buffer, s.offset, n)
            : t === 'i32'
              ? new Int32Array(buffer, s.offset, n)
              : t === 'f64'
                ? new Float64Array(buffer, s.offset, n)
                : new BigUint64Array(buffer, s.offset, n);
      Object.defineProperty(v, '$' + s.name, { value: arr });
    }
    return v as StructView<S>;
  }

  /** Byte offset of a field in the buffer. */
  offsetOf(name: keyof S & string): number {
    const s = this.slots.find((x) => x.name === name);
    if (!s) throw new Error(`shared struct: no field ${name}`);
    return s.offset;
  }

  /** Index in `view.$i32` of a 32-bit-or-narrower scalar (for a lock or a futex word). */
  wordIndex(name: keyof S & string): number {
    const s = this.slots.find((x) => x.name === name);
    if (!s || typeof s.spec !== 'string' || s.spec === 'u64' || s.spec === 'f64') {
      throw new Error(`shared struct: ${name} is not a word field`);
    }
    return s.offset >> 2;
  }

  private buildProto(): object {
    const proto: PropertyDescriptorMap = {};
    for (const s of this.slots) {
      const f = s.spec;
      if (typeof f !== 'string') {
        const key = '$' + s.name;
        proto[s.name] = {
          get(this: any) {
            return this[key];
          },
          set(this: any, value: ArrayLike<number | bigint>) {
            const arr = this[key];
            if (value.length !== arr.length) {
              throw new RangeError(`shared struct: ${s.name} needs ${arr.length} elements, got ${value.length}`);
            }
            if (value !== arr) arr.set(value);
          },
        };
      } else if (f === 'u64') {
        const i = s.offset >> 3;
        proto[s.name] = {
          get(this: any) {
            return Atomics.load(this.$u64, i);
          },
          set(this: any, v: bigint) {
            Atomics.store(this.$u64, i, BigInt.asUintN(64, v));
          },
        };
      } else if (f === 'f64') {
        const i = s.offset >> 3;
        proto[s.name] = {
          get(this: any) {
            return this.$f64[i];
          },
          set(this: any, v: number) {
            this.$f64[i] = v;
          },
        };
      } else {
        const i = s.offset >> 2;
        proto[s.name] = wordAccessor(f, i);
      }
    }
    return Object.create(Object.prototype, proto);
  }
}

type WordView = { readonly $i32: Int32Array };

function wordAccessor(t: ScalarType, i: number): PropertyDescriptor {
  switch (t) {
    case 'bool':
      return {
        get(this: WordView) {
          return Atomics.load(this.$i32, i) !== 0;
        },
        set(this: WordView, v: boolean) {
          Atomics.store(this.$i32, i, v ? 1 : 0);
        },
      };
    case 'u32':
      return {
        get(this: WordView) {
          return Atomics.load(this.$i32, i) >>> 0;
        },
        set(this: WordView, v: number) {
          Atomics.store(this.$i32, i, v | 0);
        },
      };
    case 'i32':
      return {
        get(this: WordView) {
          return Atomics.load(this.$i32, i);
        },
        set(this: WordView, v: number) {
          Atomics.store(this.$i32, i, v | 0);
        },
      };
    default: {
      const mask = WORD_MASK[t];
      return {
        get(this: WordView) {
          return Atomics.load(this.$i32, i) & mask;
        },
        set(this: WordView, v: number) {
          Atomics.store(this.$i32, i, v & mask);
        },
      };
    }
  }
}

export function defineStruct<const S extends StructSpec>(spec: S): SharedStruct<S> {
  return new SharedStruct(spec);
}

/** VMState accessors for a field kept in `opaque.state[key]` (the device is the opaque). */
export function viaState(key: string) {
  return {
    get: (d: { readonly state: object }) => (d.state as Record<string, unknown>)[key],
    set: (d: { readonly state: object }, v: unknown) => {
      (d.state as Record<string, unknown>)[key] = v;
    },
  };
}
