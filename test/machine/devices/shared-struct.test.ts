import { defineStruct, viaState } from '../../../lib/machine/devices/shared-struct';

describe('shared struct', () => {
  const S = defineStruct({ a: 'u8', b: 'u16', c: 'u32', d: 'i32', e: 'bool', f: 'f64', g: 'u64', arr: ['u8', 5], w: ['u32', 3], q: ['u64', 2] });

  test('typed accessors mask and convert; two views share one buffer', () => {
    const buf = S.create();
    const x = S.view(buf);
    const y = S.view(buf);
    x.a = 0x1ff;
    x.b = 0x1_2345;
    x.c = -1;
    x.d = 0xffff_ffff;
    x.e = true;
    x.f = 1.5;
    x.g = -1n;
    x.arr[4] = 9;
    x.w = Uint32Array.from([1, 2, 3]);
    x.q[1] = 5n;
    expect([y.a, y.b, y.c, y.d, y.e, y.f, y.g]).toEqual([0xff, 0x2345, 0xffff_ffff, -1, true, 1.5, 0xffff_ffff_ffff_ffffn]);
    expect(Array.from(y.arr)).toEqual([0, 0, 0, 0, 9]);
    expect(Array.from(y.w)).toEqual([1, 2, 3]);
    expect(y.q[1]).toBe(5n);
    expect(() => (x.w = Uint32Array.from([1, 2]))).toThrow(RangeError);
    expect(() => S.view(new SharedArrayBuffer(8))).toThrow(RangeError);
  });

  test('word indices and offsets; VMState accessors via viaState', () => {
    const x = S.view(S.create());
    x.d = 42;
    expect(Atomics.load(x.$i32, S.wordIndex('d'))).toBe(42);
    expect(() => S.wordIndex('f')).toThrow();
    expect(S.offsetOf('f') % 8).toBe(0);
    const dev = { state: x };
    const acc = viaState('c');
    acc.set(dev, 7);
    expect(acc.get(dev)).toBe(7);
    expect(x.c).toBe(7);
  });
});
