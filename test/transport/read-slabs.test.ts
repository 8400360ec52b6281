/**
 * FdChannel's read slabs: a chunk the reader kept a view of is never read into again, and the
 * slabs forget every chunk handed back, kept or not (a kept one used to stay listed, with its
 * 1 MiB slab, for the channel's whole life).
 */
import { ReadSlabs } from '../../lib/transport/read-slabs';

test('a kept chunk is never overwritten, and nothing handed back stays listed', () => {
  const s = new ReadSlabs();
  let r = s.room();
  r.buf.fill(1, r.at, r.at + 300_000);
  const kept = s.take(r.at, 300_000);
  s.recycle(kept, false);
  for (let i = 0; i < 40; i++) {
    r = s.room();
    const n = Math.min(r.len, 400_000);
    r.buf.fill(2, r.at, r.at + n);
    s.recycle(s.take(r.at, n));
  }
  expect(kept.every((b) => b === 1)).toBe(true);
  expect((s as unknown as { out: Map<unknown, unknown> }).out.size).toBe(0);
});

test('chunks handed back reusable let their slab be read into again', () => {
  const s = new ReadSlabs();
  const first = s.room().buf;
  const seen = new Set<Buffer>([first]);
  for (let i = 0; i < 40; i++) {
    const r = s.room();
    seen.add(r.buf);
    s.recycle(s.take(r.at, Math.min(r.len, 400_000)));
  }
  // 16 MB went through; a handful of slabs carried it.
  expect(seen.size).toBeLessThanOrEqual(4);
});
