/**
 * Fuzz the loader with mutated valid encodings (bit flips, byte sets, truncations, insertions,
 * duplications, deletions). Every failure must be a typed VMStateError with a known code and a
 * message naming section and offset; nothing may throw anything else or hang.
 * Iterations: 2,000 per case by default; `npm run fuzz` raises it (LIVEMIG_FUZZ_ITERATIONS).
 */
import { VMStateError, vmstateLoad } from '../../lib/vmstate';
import { QemuFileReader, bytesSource } from '../../lib/stream';
import { CASES } from './corpus';
import { saveBytes } from './helpers';

const ITERATIONS = Number(process.env.LIVEMIG_FUZZ_ITERATIONS ?? 2000);
const SEED = Number(process.env.LIVEMIG_FUZZ_SEED ?? 0x5eed);
const CODES = new Set([
  'EVMSTATE_VERSION',
  'EVMSTATE_EQUAL',
  'EVMSTATE_RANGE',
  'EVMSTATE_VALIDATE',
  'EVMSTATE_SUBSECTION',
  'EVMSTATE_TRUNCATED',
  'EVMSTATE_LIMIT',
]);

function rng(seed: number): (n: number) => number {
  let s = seed >>> 0 || 1;
  return (n: number) => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return Math.floor(((s >>> 0) / 4294967296) * n);
  };
}

function mutate(src: Uint8Array, r: (n: number) => number): Buffer {
  let b = Buffer.from(src);
  const rounds = 1 + r(4);
  for (let i = 0; i < rounds; i++) {
    const at = r(b.length + 1);
    switch (r(6)) {
      case 0: // bit flip
        if (b.length) b[at % b.length] ^= 1 << r(8);
        break;
      case 1: // interesting byte
        if (b.length) b[at % b.length] = [0, 1, 5, 0x7f, 0x80, 0xff][r(6)];
        break;
      case 2: // truncate
        b = b.subarray(0, at);
        break;
      case 3: // insert random bytes
        b = Buffer.concat([b.subarray(0, at), Buffer.from(Array.from({ length: 1 + r(8) }, () => r(256))), b.subarray(at)]);
        break;
      case 4: // duplicate a slice
        b = Buffer.concat([b.subarray(0, at), b.subarray(r(b.length + 1), at + r(16)), b.subarray(at)]);
        break;
      default: // delete a slice
        b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + r(8)))]);
    }
  }
  return b;
}

describe.each(CASES)('fuzz: $name', ({ vmsd, make, receiver }) => {
  const { bytes } = saveBytes(vmsd, make());
  test(`${ITERATIONS} mutated inputs fail only with typed errors`, async () => {
    const r = rng(SEED ^ bytes.length);
    const seen = new Map<string, number>();
    for (let i = 0; i < ITERATIONS; i++) {
      const input = mutate(bytes, r);
      const f = new QemuFileReader(bytesSource(input, 1 + r(16)));
      let outcome = 'ok';
      try {
        await vmstateLoad(f, vmsd, receiver(), r(8) === 0 ? r(5) : vmsd.versionId, { idstr: 'fuzz' });
      } catch (e: any) {
        if (!(e instanceof VMStateError) || !CODES.has(e.code)) {
          throw new Error(`iteration ${i}: untyped or unexpected failure ${e?.code}: ${e?.stack ?? e}\ninput ${input.toString('hex')}`);
        }
        expect(e.message).toContain(`section '${vmsd.name}'`);
        expect(e.position).toBeGreaterThanOrEqual(0);
        expect(e.position).toBeLessThanOrEqual(input.length);
        expect(f.error).toBe(e);
        outcome = e.code;
      }
      seen.set(outcome, (seen.get(outcome) ?? 0) + 1);
    }
    // The mutations must actually reach the checks, not only truncate.
    expect(seen.get('EVMSTATE_TRUNCATED')).toBeGreaterThan(0);
    expect(seen.size).toBeGreaterThan(2);
  });
});
