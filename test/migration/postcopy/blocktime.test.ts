/**
 * Postcopy blocktime accounting (lib/migration/postcopy/blocktime.ts), driven with explicit
 * times (ms): per-vCPU blocktime, the whole-VM blocktime (only while every vCPU is blocked),
 * latency of vCPU and non-vCPU faults, one thread faulting twice on a page, a vCPU the tracker
 * sees blocked on two pages at once, and the 24 log2-µs latency buckets at their edges
 * (QEMU postcopy-ram.c mark_postcopy_blocktime_begin/end, blocktime_latency_account).
 */
import { BlocktimeTracker, bucket, LATENCY_BUCKETS } from '../../../lib/migration/postcopy/blocktime';

const A = 10;
const B = 11;
const C = 12;

test('one vCPU, one fault: blocked from the fault to the placement, and so is the VM', () => {
  const t = new BlocktimeTracker(1);
  t.fault(A, 0, 100);
  expect(t.pending).toBe(1);
  t.placed(A, 130);
  expect(t.pending).toBe(0);
  expect(t.stats).toMatchObject({ vcpuBlocktime: [30], totalBlocktime: 30, faults: 1, latencySum: 30, vcpuFaults: [1], vcpuLatencySum: [30] });
});

test('overlapping faults of two vCPUs: the VM is blocked only while both are', () => {
  //  v0  ──A──────────────┐ 130
  //  v1        ──B(110)───────────┐ 150
  //  all blocked: 110 .. 130
  const t = new BlocktimeTracker(2);
  t.fault(A, 0, 100);
  t.fault(B, 1, 110);
  t.placed(A, 130);
  t.placed(B, 150);
  expect(t.stats.vcpuBlocktime).toEqual([30, 40]);
  expect(t.stats.totalBlocktime).toBe(20);
  expect(t.stats.faults).toBe(2);
  expect(t.stats.latencySum).toBe(70);
});

test('two vCPUs waiting for one page are both released by its placement', () => {
  const t = new BlocktimeTracker(2);
  t.fault(A, 0, 100);
  t.fault(A, 1, 105);
  expect(t.pending).toBe(1);
  t.placed(A, 125);
  expect(t.stats.vcpuBlocktime).toEqual([25, 20]);
  expect(t.stats.totalBlocktime).toBe(20);
  expect(t.stats.vcpuFaults).toEqual([1, 1]);
});

test('the VM-wide figure adds up each period in which every vCPU was blocked', () => {
  const t = new BlocktimeTracker(2);
  t.fault(A, 0, 0);
  t.fault(B, 1, 10);
  t.placed(B, 20); // all blocked 10..20
  t.fault(C, 1, 30);
  t.placed(A, 45); // all blocked 30..45
  t.placed(C, 50);
  expect(t.stats.totalBlocktime).toBe(25);
  expect(t.stats.vcpuBlocktime).toEqual([45, 30]);
});

test('a fault by a thread that is not a vCPU counts for latency only', () => {
  const t = new BlocktimeTracker(2);
  t.fault(A, -1, 100);
  t.fault(B, 7, 100); // an index beyond the vCPUs is not a vCPU either
  t.fault(C, 0, 100);
  t.placed(A, 104);
  t.placed(B, 108);
  t.placed(C, 110);
  expect(t.stats).toMatchObject({ nonVcpuFaults: 2, nonVcpuLatencySum: 12, faults: 3, latencySum: 22, vcpuBlocktime: [10, 0], totalBlocktime: 0 });
});

test('a vCPU faulting again on the page it waits for is one wait', () => {
  const t = new BlocktimeTracker(1);
  t.fault(A, 0, 100);
  t.fault(A, 0, 120);
  t.placed(A, 150);
  expect(t.stats).toMatchObject({ faults: 1, latencySum: 50, vcpuBlocktime: [50], totalBlocktime: 50, vcpuFaults: [1] });
});

test('a vCPU seen blocked on two pages: its next fault can arrive before the first placement is reported', () => {
  //  v0  ──A(0)──┐ placed at 10, reported late   ──B(12)─────────┐ 30
  // The placement of A ends v0's wait for A; v0 is still blocked on B (QEMU counts outstanding
  // faults per vCPU: the vCPU runs again only when the last one is resolved).
  const t = new BlocktimeTracker(1);
  t.fault(A, 0, 0);
  t.fault(B, 0, 12);
  t.placed(A, 10);
  expect(t.pending).toBe(1);
  t.placed(B, 30);
  expect(t.stats.vcpuFaults).toEqual([2]);
  expect(t.stats.vcpuLatencySum).toEqual([28]);
  expect(t.stats.vcpuBlocktime).toEqual([28]);
  // One vCPU: the VM was blocked as long as it was, from its first fault to the last placement.
  expect(t.stats.totalBlocktime).toBe(30);
  // Blocked again afterwards: a new period starts.
  t.fault(C, 0, 40);
  t.placed(C, 45);
  expect(t.stats.vcpuBlocktime).toEqual([33]);
  expect(t.stats.totalBlocktime).toBe(35);
});

test('a placement nobody waited for changes nothing; waitingPages lists what is still missing', () => {
  const t = new BlocktimeTracker(2);
  t.placed(A, 10);
  t.fault(B, 0, 0);
  t.fault(C, -1, 0);
  expect(t.waitingPages().sort()).toEqual([B, C]);
  expect(t.stats.faults).toBe(0);
});

describe('latency histogram: bucket N counts [2^N, 2^(N+1)) µs', () => {
  test('each edge, just below it, zero, and everything past the last bucket', () => {
    expect(LATENCY_BUCKETS).toBe(24);
    expect(bucket(0)).toBe(0);
    expect(bucket(0.001)).toBe(0);
    for (let n = 1; n < LATENCY_BUCKETS; n++) {
      expect([n, bucket(2 ** n / 1000)]).toEqual([n, n]);
      expect([n, bucket((2 ** n - 0.5) / 1000)]).toEqual([n, n - 1]);
      expect([n, bucket((2 ** (n + 1) - 0.5) / 1000)]).toEqual([n, Math.min(n, LATENCY_BUCKETS - 1)]);
    }
    expect(bucket(2 ** 24 / 1000)).toBe(23);
    expect(bucket(3600e3)).toBe(23);
  });

  test('placements land in their buckets', () => {
    const t = new BlocktimeTracker(1);
    t.fault(A, 0, 0);
    t.placed(A, 0.0015); // 1.5 µs
    t.fault(B, -1, 0);
    t.placed(B, 1.024); // 1024 µs
    t.fault(C, -1, 0);
    t.placed(C, 60e3); // a minute
    const h = t.stats.latencyHistogram;
    expect(h).toHaveLength(24);
    expect(h[0]).toBe(1);
    expect(h[10]).toBe(1);
    expect(h[23]).toBe(1);
    expect(h.reduce((a, b) => a + b, 0)).toBe(3);
  });
});
