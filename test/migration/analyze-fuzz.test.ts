/**
 * Damaged streams at scale: truncation at every section boundary (and next to it), at every
 * offset of the header and device-state end of a stream and at a stride through its RAM; and
 * seeded random damage (bytes changed, lengths set to extremes, cuts with garbage appended,
 * vmdesc JSON scrambled). Every outcome is a result or an AnalyzeError — never another
 * exception, never a hang. LIVEMIG_FUZZ_ITERATIONS (default 600) and LIVEMIG_FUZZ_SEED
 * control the random part.
 */
import { analyzeStream, bytesInput, type AnalyzeResult } from '../../lib/migration/analyze';
import { machineStream, smallStream, type MachineStream, type SmallStream } from './analyze-helpers';

const ITERATIONS = Number(process.env.LIVEMIG_FUZZ_ITERATIONS ?? 600);
const SEED = BigInt(process.env.LIVEMIG_FUZZ_SEED ?? 0x5eed);
const HANG_MS = 10000;

type Outcome = { ok: true; r: AnalyzeResult } | { ok: false; e: Error & { code?: string; position?: number } };

async function outcome(bytes: Uint8Array): Promise<Outcome> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`analysis did not finish in ${HANG_MS} ms`)), HANG_MS);
  });
  try {
    const r = await Promise.race([analyzeStream(bytesInput(bytes)), hang]);
    return { ok: true, r };
  } catch (e) {
    return { ok: false, e: e as Error };
  } finally {
    clearTimeout(timer);
  }
}

function expectClean(o: Outcome, what: string): void {
  if (o.ok) return;
  if (o.e.name !== 'AnalyzeError') throw new Error(`${what}: ${o.e.name}: ${o.e.message}\n${o.e.stack}`);
  expect(o.e.message).not.toMatch(/[\r\n]/);
}

/** Offsets worth cutting at: every record boundary and its neighbours. */
function boundaries(r: AnalyzeResult): number[] {
  const out = new Set<number>();
  for (const x of r.records) for (const o of [x.offset, x.offset + x.length]) for (const d of [-1, 0, 1]) out.add(o + d);
  return [...out].filter((o) => o >= 0).sort((a, b) => a - b);
}

describe('truncation', () => {
  let s: SmallStream;
  let r: AnalyzeResult;
  let m: MachineStream;
  let mr: AnalyzeResult;
  beforeAll(async () => {
    s = await smallStream({ kib: 16 });
    r = await analyzeStream(bytesInput(s.bytes));
    m = await machineStream({ guest: 'idle', append: 'size=64K', until: 'idle:', iterations: 1 });
    mr = await analyzeStream(bytesInput(m.bytes));
  }, 60000);

  test('a synthetic stream cut anywhere fails with a position inside what was read', async () => {
    const n = s.bytes.length;
    const cuts = new Set<number>(boundaries(r).filter((o) => o < n));
    for (let o = 0; o < 400; o++) cuts.add(o);
    const tail = r.records.find((x) => x.kind === 'end')!.offset;
    for (let o = tail; o < n; o++) cuts.add(o);
    for (let o = 0; o < n; o += 37) cuts.add(o);
    for (const cut of cuts) {
      const o = await outcome(s.bytes.subarray(0, cut));
      expectClean(o, `cut at ${cut}`);
      // The toy device has no livemig description: even a cut right after EOF cannot decode it.
      expect(o.ok).toBe(false);
      if (!o.ok) expect(o.e.position ?? 0).toBeLessThanOrEqual(cut);
    }
    expect(cuts.size).toBeGreaterThan(1500);
  });

  test('a machine stream cut at every section boundary fails, except right after EOF', async () => {
    const eofEnd = mr.eofOffset! + 1;
    for (const cut of boundaries(mr).filter((o) => o < m.bytes.length)) {
      const o = await outcome(m.bytes.subarray(0, cut));
      expectClean(o, `cut at ${cut}`);
      expect({ cut, ok: o.ok }).toEqual({ cut, ok: cut === eofEnd });
    }
  });
});

describe('seeded random damage', () => {
  let x = SEED || 1n;
  const rand = (n: number): number => {
    x ^= (x << 13n) & 0xffffffffffffffffn;
    x ^= x >> 7n;
    x ^= (x << 17n) & 0xffffffffffffffffn;
    return Number(x % BigInt(n));
  };

  test(`${ITERATIONS} damaged copies of streams end in a result or an AnalyzeError`, async () => {
    // Two bases: a synthetic stream with its vmdesc (decoded by it), and a machine's stream
    // without one (decoded by livemig's descriptions).
    const small = (await smallStream({ kib: 16 })).bytes;
    const machine = await machineStream({ guest: 'idle', append: 'size=64K', until: 'idle:', iterations: 1 });
    const mr = await analyzeStream(bytesInput(machine.bytes));
    const bases = [small, machine.bytes.subarray(0, mr.eofOffset! + 1)];
    const info = await Promise.all(
      bases.map(async (bytes) => {
        const r = await analyzeStream(bytesInput(bytes));
        // Places where structure lives (not inside page payloads): record starts and the
        // device state, EOF and vmdesc at the end.
        const hot: number[] = [];
        for (const rec of r.records) for (let i = 0; i < Math.min(rec.length, 48); i++) hot.push(rec.offset + i);
        for (let o = r.records.find((y) => y.kind === 'full')!.offset; o < bytes.length; o++) hot.push(o);
        return { r, hot };
      }),
    );
    const extremes = [0, 1, 0x7f, 0x80, 0xff, 0x7fffffff, 0xffffffff, 0x10000];
    let resolved = 0;
    for (let i = 0; i < ITERATIONS; i++) {
      const which = rand(2);
      const { r, hot } = info[which];
      let b = Buffer.from(bases[which]);
      const kind = rand(5);
      const at = hot[rand(hot.length)];
      if (kind === 0) {
        for (let k = 1 + rand(4); k > 0; k--) b[hot[rand(hot.length)]] = rand(256);
      } else if (kind === 1) {
        b[rand(b.length)] ^= 1 << rand(8);
      } else if (kind === 2 && at + 4 <= b.length) {
        b.writeUInt32BE(extremes[rand(extremes.length)], at);
      } else if (kind === 3) {
        const junk = Buffer.alloc(rand(64));
        for (let k = 0; k < junk.length; k++) junk[k] = rand(256);
        b = Buffer.concat([b.subarray(0, rand(b.length)), junk]);
      } else if (r.vmdescOffset !== null) {
        // Scramble the vmdesc JSON, keeping its length: other sizes, names, types, nesting.
        const j = r.vmdescOffset + 5 + rand(b.length - r.vmdescOffset - 5);
        b[j] = '{}[]",:0123456789abz'.charCodeAt(rand(21));
      } else {
        b[at] = rand(256);
      }
      const o = await outcome(b);
      expectClean(o, `iteration ${i} (seed ${SEED}, base ${which}, kind ${kind})`);
      if (o.ok) resolved++;
    }
    // Some damage is harmless (a page byte, a value): not every outcome is an error.
    expect(resolved).toBeGreaterThan(0);
  }, 120000);
});
