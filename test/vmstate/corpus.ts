/** Descriptions and states shared by the split, hostile and fuzz tests. */
import { F, type VMStateDescription } from '../../lib/vmstate';

export const inner: VMStateDescription = {
  name: 'inner',
  versionId: 1,
  minimumVersionId: 1,
  fields: [F.uint16('a'), F.bool('b')],
};

/** One description with every field kind. */
export const everything: VMStateDescription = {
  name: 'everything',
  versionId: 1,
  minimumVersionId: 1,
  fields: [
    F.bool('b'),
    F.int8('i8'),
    F.int16('i16'),
    F.int32('i32'),
    F.int64('i64'),
    F.uint8('u8'),
    F.uint16('u16'),
    F.uint32('u32'),
    F.uint64('u64'),
    F.timer('t'),
    F.uint8Equal('e8'),
    F.uint16Equal('e16'),
    F.uint32Equal('e32'),
    F.int32Equal('ei32'),
    F.uint64Equal('e64'),
    F.int32Le('le'),
    F.boolArray('ba', 3),
    F.uint8Array('a8', 2),
    F.uint16Array('a16', 2),
    F.uint32Array('a32', 2),
    F.uint64Array('a64', 2),
    F.int32Array('ai32', 2),
    F.int64Array('ai64', 2),
    F.uint8('vn'),
    F.varray('va', 'uint16', (o: any) => o.vn),
    F.uint32('blen'),
    F.vbuffer('vb', (o: any) => o.blen),
    F.buffer('fb', 5),
    F.unused(3),
    F.struct('s', inner),
    F.structArray('sa', 2, inner),
    F.structVarray('sv', (o: any) => o.vn, inner),
    F.validate('check', (o: any) => o.u8 < 200),
  ],
};

export function sample(): any {
  return {
    b: true,
    i8: -5,
    i16: -300,
    i32: -70000,
    i64: -(2n ** 60n),
    u8: 199,
    u16: 0xbeef,
    u32: 0xdeadbeef,
    u64: 2n ** 63n + 5n,
    t: -1n,
    e8: 1,
    e16: 2,
    e32: 3,
    ei32: -4,
    e64: 2n ** 64n - 1n,
    le: 7,
    ba: [true, false, true],
    a8: new Uint8Array([1, 2]),
    a16: new Uint16Array([3, 4]),
    a32: new Uint32Array([5, 6]),
    a64: new BigUint64Array([7n, 2n ** 64n - 1n]),
    ai32: new Int32Array([-1, 2]),
    ai64: new BigInt64Array([-1n, 2n]),
    vn: 3,
    va: new Uint16Array([10, 11, 12]),
    blen: 4,
    vb: new Uint8Array([0xaa, 0xbb, 0xcc, 0xdd]),
    fb: new Uint8Array([1, 2, 3, 4, 5]),
    s: { a: 1, b: true },
    sa: [{ a: 2, b: false }, { a: 3, b: true }],
    sv: [{ a: 4, b: false }, { a: 5, b: true }, { a: 6, b: false }],
  };
}

/** A receiver: configuration values (equal/le bounds) set, everything else blank. */
export function receiver(): any {
  return { e8: 1, e16: 2, e32: 3, ei32: -4, e64: 2n ** 64n - 1n, le: 100 };
}


const deep: VMStateDescription = {
  name: 'dev/a/deep',
  versionId: 1,
  minimumVersionId: 1,
  needed: (o: any) => o.d !== 0,
  fields: [F.uint8('d')],
};
/** Nested subsections, a struct with its own subsection, and a tmp field. */
export const layered: VMStateDescription = {
  name: 'dev',
  versionId: 3,
  minimumVersionId: 1,
  fields: [
    F.uint32('x'),
    F.struct('n', {
      name: 'dev-inner',
      versionId: 1,
      minimumVersionId: 1,
      fields: [F.uint16('i'), F.uint8('cnt'), F.varray('list', 'uint32', (o: any) => o.cnt)],
      subsections: [{ name: 'dev-inner/extra', versionId: 2, minimumVersionId: 1, fields: [F.int64('e')], needed: (o: any) => o.e !== 0n }],
    }),
    F.withTmp((p: any) => ({ parent: p, v: 0 }), {
      name: 'dev/tmp',
      versionId: 1,
      minimumVersionId: 1,
      preSave: (t: any) => (t.v = t.parent.x ^ 0xffff),
      postLoad: (t: any) => (t.parent.y = t.v),
      fields: [F.uint32('v')],
    }),
  ],
  subsections: [
    { name: 'dev/a', versionId: 1, minimumVersionId: 1, fields: [F.uint16('a')], subsections: [deep] },
    { name: 'dev/b', versionId: 2, minimumVersionId: 2, fields: [F.bool('b'), F.buffer('bb', 3)] },
  ],
};
export function layeredSample(): any {
  return { x: 0x12345678, n: { i: 7, cnt: 2, list: [1, 0xffffffff], e: -9n }, a: 0xabc, d: 5, b: true, bb: new Uint8Array([1, 2, 3]) };
}
export function layeredReceiver(): any {
  return { n: {} };
}

export interface Case {
  name: string;
  vmsd: VMStateDescription;
  make: () => any;
  receiver: () => any;
}
export const CASES: Case[] = [
  { name: 'everything', vmsd: everything, make: sample, receiver },
  { name: 'layered', vmsd: layered, make: layeredSample, receiver: layeredReceiver },
];
