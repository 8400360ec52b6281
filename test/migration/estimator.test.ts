/**
 * The switchover rule and the expected-downtime model (lib/migration/outgoing/estimator.ts),
 * driven by a manual clock: bandwidth windows, the lower of window and pass rate,
 * avail-switchover-bandwidth, the threshold with its fixed switchover cost, and predictions
 * that follow passes shrinking (or not) under a dirty rate. Also auto-converge's tailslow step.
 */
import { SWITCHOVER_OVERHEAD_MS, SwitchoverEstimator, predictDowntime, switchoverThreshold } from '../../lib/migration/outgoing/estimator';
import { MigrationOptions } from '../../lib/migration/options';
import { Throttle } from '../../lib/migration/throttle';
import type { VirtMachine } from '../../lib/machine/virt';

const PAGE = 4096;

function setup(opts: { limit?: number; avail?: number; dirtyPages?: number; totalPages?: number; peek?: number } = {}) {
  let t = 0;
  const dirty = { dirtyPages: opts.dirtyPages ?? 0, totalBytes: (opts.totalPages ?? 262144) * PAGE, peekDirtied: () => opts.peek ?? 0 };
  const est = new SwitchoverEstimator(
    { downtimeLimit: () => opts.limit ?? 300, availSwitchoverBandwidth: () => opts.avail ?? 0 },
    dirty,
    () => t,
  );
  return { est, dirty, advance: (ms: number) => (t += ms), now: () => t };
}

describe('switchover threshold', () => {
  test('bandwidth × (downtime-limit − the fixed switchover cost), never negative', () => {
    expect(switchoverThreshold(1e6, 300)).toBe(1e6 * (300 - SWITCHOVER_OVERHEAD_MS));
    expect(switchoverThreshold(1e6, 5)).toBe(0);
  });

  test('re-estimated only once a 100 ms window has passed; the lower of window and pass rate', () => {
    const { est, advance } = setup({ limit: 115 });
    est.onSync(1, 0, false); // pass 1 begins at t=0
    est.start(0, 0);
    advance(50);
    est.update(50e6, 0);
    expect(est.bandwidth).toBe(0); // under 100 ms: no estimate yet
    advance(50);
    est.update(100e6, 0); // 100 MB in 100 ms: 1e6 bytes/ms in the window and over the pass
    expect(est.bandwidth).toBe(1e6);
    expect(est.threshold).toBe(1e6 * 100);
    expect(est.fits(100e6)).toBe(true);
    expect(est.fits(100e6 + 1)).toBe(false);
    advance(100);
    est.update(300e6, 0); // a fast window (2e6/ms) but the pass so far averaged 1.5e6/ms
    expect(est.bandwidth).toBe(1.5e6);
    expect(est.mbps).toBeCloseTo((200e6 * 8) / 0.1 / 1e6);
  });

  test('avail-switchover-bandwidth replaces the estimate (bytes/s)', () => {
    const { est, advance } = setup({ limit: 115, avail: 2e9 });
    est.onSync(1, 0, false);
    est.start(0, 0);
    advance(100);
    est.update(1e6, 0);
    expect(est.bandwidth).toBe(2e6);
    expect(est.threshold).toBe(2e6 * 100);
  });
});

describe('expected downtime', () => {
  test('an idle guest: what is dirty at the last sync, sent at the bandwidth, plus the fixed cost', () => {
    const { est, dirty, advance } = setup({ totalPages: 262144 });
    est.onSync(1, 0, false);
    est.start(0, 0);
    advance(100);
    est.update(1e8, 0); // 1e6 bytes/ms
    advance(1000);
    dirty.dirtyPages = 1000;
    est.onSync(2, 1e9, false); // 1000 pages dirtied in the 1100 ms since the last sync
    const bwPages = 1e6 / PAGE;
    // The threshold (1e6 × 285 bytes ≈ 69580 pages) holds 1000 pages: stop after this pass.
    expect(est.expectedDowntime).toBeCloseTo(SWITCHOVER_OVERHEAD_MS + 1000 / bwPages, 6);
  });

  test('passes shrink toward the threshold under a dirty rate (predictDowntime)', () => {
    const bandwidth = 1e6; // bytes per ms → 244 pages/ms
    const threshold = switchoverThreshold(bandwidth, 50); // 35 ms → ~8545 pages
    const pages = 262144;
    // 100k dirty pages, guest dirtying 50 pages/ms: each pass shrinks by ~5×.
    const d = predictDowntime({ dirtyPages: 100000, dirtyRate: 50, bandwidth, threshold, pages });
    expect(d).toBeLessThanOrEqual(threshold / bandwidth);
    expect(d).toBeGreaterThan(0);
    // A guest dirtying faster than the link never converges: the estimate is a stop now.
    const never = predictDowntime({ dirtyPages: 100000, dirtyRate: 1000, bandwidth, threshold, pages });
    expect(never).toBeCloseTo(100000 / (bandwidth / PAGE), 6);
  });

  test('during the first pass: what was dirtied so far, scaled to the whole pass', () => {
    const { est, advance } = setup({ dirtyPages: 200000, totalPages: 262144, peek: 500 });
    est.onSync(1, 0, false);
    est.start(0, 0);
    advance(100);
    est.update(1e8, 0);
    // 500 pages in 100 ms → 5 pages/ms; the pass still has 200000 pages (≈819 ms) to go.
    const rate = 5;
    const passMs = 100 + (200000 * PAGE) / 1e6;
    const atEnd = 262144 * (1 - Math.exp((-rate * passMs) / 262144));
    expect(est.expectedDowntime).toBeCloseTo(SWITCHOVER_OVERHEAD_MS + atEnd / (1e6 / PAGE), 3);
  });

  test('the final sync (guest stopped) does not count as a pass', () => {
    const { est, dirty, advance } = setup();
    est.onSync(1, 0, false);
    est.start(0, 0);
    advance(100);
    est.update(1e8, 0);
    const before = est.expectedDowntime;
    advance(500);
    dirty.dirtyPages = 99999;
    est.onSync(2, 1e9, true);
    expect(est.expectedDowntime).toBe(before);
  });
});

describe('auto-converge steps', () => {
  function steps(tailslow: boolean, dirtyPerPeriod: number): number[] {
    const o = new MigrationOptions();
    o.setCapabilities([{ capability: 'auto-converge', state: true }]);
    o.setParameters({ 'cpu-throttle-tailslow': tailslow, 'cpu-throttle-increment': 30 });
    const seen: number[] = [];
    let t = 0;
    const th = new Throttle(o, { setThrottle: (p: number) => seen.push(p) } as unknown as VirtMachine, () => t);
    // Each 1 s period: `dirtyPerPeriod` pages dirtied, 1000 pages' worth of bytes sent.
    for (let i = 1; i <= 6; i++) {
      t += 1000;
      th.onSync(dirtyPerPeriod, i * 1000 * PAGE);
    }
    return seen;
  }

  test('without tailslow: initial, then + increment every second high period', () => {
    expect(steps(false, 600)).toEqual([20, 50, 80]);
  });

  test('with tailslow the step is what brings dirtying down to the threshold, at most the increment', () => {
    // 600 dirty vs a 500-page threshold: cpu_now 80 → ideal floor(80 × 500/600) = 66 → +14.
    expect(steps(true, 600)).toEqual([20, 34, 45]);
    // Far from converging, the step is the increment.
    expect(steps(true, 5000)).toEqual([20, 50, 80]);
  });
});
