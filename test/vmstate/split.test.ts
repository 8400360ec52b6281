/** The loader gives the same result whatever way the input is cut: parsers are incremental. */
import { CASES } from './corpus';
import { loadBytes, saveBytes } from './helpers';

/** Deterministic PRNG for the random multi-split runs. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
}

describe.each(CASES)('split input: $name', ({ vmsd, make, receiver }) => {
  const { bytes } = saveBytes(vmsd, make());
  let whole: any;

  beforeAll(async () => {
    whole = receiver();
    const f = await loadBytes(vmsd, whole, bytes);
    expect(f.position).toBe(bytes.length);
  });

  test('one byte at a time', async () => {
    const dst = receiver();
    const f = await loadBytes(vmsd, dst, bytes, { split: 1 });
    expect(f.position).toBe(bytes.length);
    expect(dst).toEqual(whole);
  });

  test('at every single split point', async () => {
    for (let k = 1; k < bytes.length; k++) {
      const dst = receiver();
      const f = await loadBytes(vmsd, dst, bytes, { split: [k] });
      expect(f.position).toBe(bytes.length);
      expect(dst).toEqual(whole);
    }
  });

  test('at every pair of split points (bounded) and at random multi-splits', async () => {
    const n = Math.min(bytes.length, 48);
    for (let a = 1; a < n; a++) {
      for (let b = a + 1; b < n; b++) {
        const dst = receiver();
        await loadBytes(vmsd, dst, bytes, { split: [a, b] });
        expect(dst).toEqual(whole);
      }
    }
    const r = rng(42);
    for (let i = 0; i < 200; i++) {
      const cuts = Array.from({ length: 1 + Math.floor(r() * 8) }, () => 1 + Math.floor(r() * (bytes.length - 1))).sort((x, y) => x - y);
      const dst = receiver();
      await loadBytes(vmsd, dst, bytes, { split: cuts });
      expect(dst).toEqual(whole);
    }
  });
});
