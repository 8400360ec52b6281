/** The figures bench/postcopy.ts derives: percentiles of exact samples and of the destination's
 * log2 histogram, and where a background stream caught up with the stride guest. */
import { caughtUp, histogramDelta, histogramObject, histogramPercentile, percentile } from '../../bench/postcopy-measure';

const hist = (counts: Record<number, number>) => Array.from({ length: 24 }, (_, n) => counts[n] ?? 0);

test('percentile: nearest rank over the samples, null without any', () => {
  const xs = Array.from({ length: 100 }, (_, i) => 100 - i); // 100 … 1, unsorted on purpose
  expect(percentile(xs, 50)).toBe(51);
  expect(percentile(xs, 99)).toBe(100);
  expect(percentile([], 50)).toBeNull();
});

test('histogram percentile: the bounds of the bucket holding it, bucket 0 from 0, the last open', () => {
  // 60 faults in [64, 128) µs, 39 in [128, 256), 1 in [4096, 8192)
  const h = hist({ 6: 60, 7: 39, 12: 1 });
  expect(histogramPercentile(h, 50)).toEqual([64, 128]);
  expect(histogramPercentile(h, 90)).toEqual([128, 256]);
  expect(histogramPercentile(h, 99.5)).toEqual([4096, 8192]);
  expect(histogramPercentile(hist({ 0: 3 }), 50)).toEqual([0, 2]);
  expect(histogramPercentile(hist({ 23: 1 }), 50)).toEqual([2 ** 23, null]);
  expect(histogramPercentile(hist({}), 50)).toBeNull();
});

test('histogram delta and the named buckets that counted', () => {
  const d = histogramDelta(hist({ 6: 10, 7: 5 }), hist({ 6: 4 }));
  expect(histogramObject(d)).toEqual({ '64-128us': 6, '128-256us': 5 });
  expect(histogramDelta(hist({ 1: 2 }), undefined)).toEqual(hist({ 1: 2 }));
});

test('caughtUp: cuts the trailing run of touches that found their page present', () => {
  const faults = [300, 250, 4, 280, 310]; // one quick touch among faults is not the end
  expect(caughtUp([...faults, 1, 1, 1, 1, 1, 1, 1, 1, 1], 10)).toBe(5);
  // a slow touch (a preempted thread) inside the present run does not end it
  expect(caughtUp([...faults, 1, 1, 1, 40, 1, 1, 1, 1, 1, 1, 1, 1, 1], 10)).toBe(5);
  expect(caughtUp(faults, 10)).toBe(5);
  expect(caughtUp([1, 1, 1], 10)).toBe(0);
});
