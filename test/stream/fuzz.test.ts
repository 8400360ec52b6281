/**
 * Fuzz the reader: random inputs, random chunking, random sequences of getters. It never
 * throws, never reads past the input, fails only with typed StreamErrors, and after the first
 * error every getter returns 0. `npm run fuzz` raises the iteration count.
 */
import { COUNTED_STRING_MAX, QemuFileReader, StreamError, bytesSource, checkLimit } from '../../lib/stream';

const ITERATIONS = Number(process.env.LIVEMIG_FUZZ_ITERATIONS ?? 2000);

function rng(seed: number): (n: number) => number {
  let s = seed >>> 0 || 1;
  return (n) => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return Math.floor(((s >>> 0) / 4294967296) * n);
  };
}

const WIDTH = [1, 2, 4, 8, 8, 1, 3];

test(`reader survives ${ITERATIONS} random inputs and op sequences`, async () => {
  const r = rng(0xf00d);
  const codes = new Map<string, number>();
  for (let i = 0; i < ITERATIONS; i++) {
    const input = Buffer.from(Array.from({ length: r(64) }, () => r(256)));
    const f = new QemuFileReader(bytesSource(input, 1 + r(9)));
    for (let op = 0; op < 24 && !f.error; op++) {
      const kind = r(WIDTH.length + 2);
      if (kind === WIDTH.length) {
        // A length-prefixed blob, as a framing parser reads one: check, then read.
        if (!(await f.ensure(4))) break;
        const len = f.getBe32();
        const e = checkLimit(len, 32, 'blob', f.position - 4);
        if (e) f.setError(e);
        else await f.readInto(new Uint8Array(len));
      } else if (kind === WIDTH.length + 1) {
        await f.readCounted();
      } else {
        const w = WIDTH[kind];
        if (r(4) === 0) {
          // sync getter without ensure: may underrun, must not throw
        } else if (!(await f.ensure(w))) break;
        [() => f.getU8(), () => f.getBe16(), () => f.getBe32(), () => f.getBe64(), () => f.getBe64Number(), () => f.peekU8(r(4)), () => f.getBytes(3)][kind]();
      }
      expect(f.position).toBeLessThanOrEqual(input.length);
    }
    if (f.error) {
      expect(f.error).toBeInstanceOf(StreamError);
      const code = (f.error as StreamError).code;
      codes.set(code, (codes.get(code) ?? 0) + 1);
      expect(f.getBe32()).toBe(0);
      expect(f.getBe64()).toBe(0n);
      expect(f.has(1)).toBe(false);
    }
  }
  expect([...codes.keys()].sort()).toEqual(expect.arrayContaining(['ESTREAM_EOF', 'ESTREAM_LIMIT']));
  expect(COUNTED_STRING_MAX).toBe(255);
});
