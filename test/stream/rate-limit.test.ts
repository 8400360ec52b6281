/** QEMU's max-bandwidth: budget = limit/10 per 100 ms window, driven by a fake clock. */
import { BUFFER_DELAY_MS, ManualClock, NullSink, QemuFileWriter, RateLimiter } from '../../lib/stream';

describe('RateLimiter', () => {
  test('budget is max-bandwidth / 10 per window; exceeded means strictly over it', () => {
    const clock = new ManualClock();
    const rl = new RateLimiter(clock, 1_000_000);
    expect(rl.windowBudget).toBe(100_000);
    expect(rl.exceeded(100_000)).toBe(false);
    expect(rl.exceeded(100_001)).toBe(true);
    clock.advance(BUFFER_DELAY_MS); // a new window starts counting from here
    expect(rl.exceeded(100_001)).toBe(false);
    expect(rl.exceeded(200_001)).toBe(false);
    expect(rl.exceeded(200_002)).toBe(true);
  });

  test('0 is unlimited; the limit can change while running', () => {
    const clock = new ManualClock();
    const rl = new RateLimiter(clock, 0);
    expect(rl.exceeded(1e15)).toBe(false);
    rl.reset(0);
    rl.setMaxBandwidth(10_000);
    expect(rl.exceeded(1001)).toBe(true);
    rl.setMaxBandwidth(20_000);
    expect(rl.exceeded(1001)).toBe(false);
    expect(rl.maxBandwidth).toBe(20_000);
    expect(() => rl.setMaxBandwidth(-1)).toThrow(RangeError);
  });

  test('waitForWindow sleeps until the window ends, then restarts it', async () => {
    const clock = new ManualClock(1000);
    const rl = new RateLimiter(clock, 1000);
    clock.advance(30);
    let done = false;
    const p = rl.waitForWindow(() => 555).then(() => (done = true));
    await Promise.resolve();
    expect(done).toBe(false);
    expect(clock.pending).toBe(1);
    clock.advance(69);
    await Promise.resolve();
    expect(done).toBe(false);
    clock.advance(1);
    await p;
    expect(done).toBe(true);
    expect(rl.exceeded(655)).toBe(false); // budget 100 counted from 555
    expect(rl.exceeded(656)).toBe(true);
  });
});

describe('writer rate limiting', () => {
  test('a send loop moves limit/10 bytes per 100 ms window', async () => {
    const clock = new ManualClock();
    const sink = new NullSink();
    const w = new QemuFileWriter(sink, { rateLimiter: new RateLimiter(clock, 4096 * 10 * 10) }); // 10 pages/window
    const page = new Uint8Array(4096);
    const perWindow: number[] = [];
    let sent = 0;
    let windowStart = 0;
    const loop = (async () => {
      while (sent < 35) {
        if (w.rateLimitExceeded()) {
          perWindow.push(sent - windowStart);
          windowStart = sent;
          await w.waitRateLimit();
          continue;
        }
        w.putBufferRef(page);
        sent++;
      }
    })();
    for (let i = 0; i < 10 && sent < 35; i++) {
      await new Promise((r) => setImmediate(r));
      clock.advance(BUFFER_DELAY_MS);
    }
    await loop;
    // used > budget: the page that crosses the budget still goes out (QEMU checks before each).
    expect(perWindow).toEqual([11, 11, 11]);
    w.flush();
    expect(sink.bytes).toBe(35 * 4096);
  });
});
