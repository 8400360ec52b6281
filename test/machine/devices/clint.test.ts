import { HartLines, MIP_MSIP } from '../../../lib/machine/bus';
import { Clint, CLINT_MTIME, CLINT_MTIMECMP_BASE, VMSTATE_CLINT } from '../../../lib/machine/devices/clint';
import { ManualClock } from '../../../lib/machine/devices/host-clock';
import { capture, restore, subsectionNames } from './vmstate-accessors';

function make(harts = 2, migrateTime = true) {
  const lines = new HartLines(harts);
  const clock = new ManualClock(5e9);
  const log: string[] = [];
  const clint = new Clint(Clint.createShare({ harts, compat: { migrateTime } }), {
    lines,
    clock,
    log: (_d, m) => log.push(m),
  });
  return { clint, lines, clock, log };
}

const MS = 1e6; // ns
const cmp = (h: number) => CLINT_MTIMECMP_BASE + 8 * h;

describe('CLINT', () => {
  test('msip bit 0 raises and lowers MSIP on HartLines and kicks the hart', () => {
    const { clint, lines } = make();
    const w1 = Atomics.load(lines.wake, 1);
    clint.write(4, 4, 0xffff_ffff);
    expect(lines.get(1) & MIP_MSIP).toBe(MIP_MSIP);
    expect(lines.get(0) & MIP_MSIP).toBe(0);
    expect(Atomics.load(lines.wake, 1)).toBe(w1 + 1);
    expect(clint.read(4, 4)).toBe(1);
    clint.write(4, 4, 2);
    expect(lines.get(1) & MIP_MSIP).toBe(0);
    expect(clint.read(4, 4)).toBe(0);
  });

  test('mtime stands still until resumeTime, then counts 10 MHz ticks', () => {
    const { clint, clock } = make();
    expect(clint.mtime()).toBe(0);
    clock.advance(3 * MS);
    expect(clint.mtime()).toBe(0);
    clint.resumeTime();
    clock.advance(1 * MS);
    expect(clint.mtime()).toBe(10_000);
    clock.advance(150); // 1.5 ticks
    expect(clint.mtime()).toBe(10_001);
    expect(clint.read64(CLINT_MTIME)).toBe(10_001n);
  });

  test('pause freezes mtime; resume continues from the same value', () => {
    const { clint, clock } = make();
    clint.resumeTime();
    clock.advance(2 * MS);
    clint.pauseTime();
    expect(clint.timeRunning()).toBe(false);
    clock.advance(1000 * MS);
    expect(clint.mtime()).toBe(20_000);
    clint.resumeTime();
    expect(clint.mtime()).toBe(20_000);
    clock.advance(1 * MS);
    expect(clint.mtime()).toBe(30_000);
  });

  test('mtimecmp: due / not due, 32-bit halves, 64-bit access, kicks its hart', () => {
    const { clint, clock, lines } = make();
    clint.resumeTime();
    expect(clint.timecmp(0)).toBe(2 ** 64); // reset: never due
    const w0 = Atomics.load(lines.wake, 0);
    clint.write64(cmp(0), 25_000n);
    expect(Atomics.load(lines.wake, 0)).toBe(w0 + 1);
    expect(clint.timecmp(0)).toBe(25_000);
    clock.advance(2 * MS);
    expect(clint.mtime() >= clint.timecmp(0)).toBe(false);
    clock.advance(1 * MS);
    expect(clint.mtime() >= clint.timecmp(0)).toBe(true);
    // RV32-style update of hart 1's compare register, low half then high half.
    clint.write(cmp(1), 4, 0x89ab_cdef);
    clint.write(cmp(1) + 4, 4, 0x0123_4567);
    expect(clint.read64(cmp(1))).toBe(0x0123_4567_89ab_cdefn);
    expect(clint.read(cmp(1), 4)).toBe(0x89ab_cdef);
    expect(clint.read(cmp(1) + 4, 4)).toBe(0x0123_4567);
    expect(clint.timecmp(1)).toBe(Number(0x0123_4567_89ab_cdefn));
  });

  test('mtime writes (64-bit and halves) move the time base', () => {
    const { clint, clock } = make();
    clint.resumeTime();
    clint.write64(CLINT_MTIME, 0x1_0000_0010n);
    expect(clint.read(CLINT_MTIME, 4)).toBe(0x10);
    expect(clint.read(CLINT_MTIME + 4, 4)).toBe(1);
    clint.write(CLINT_MTIME + 4, 4, 2);
    expect(clint.read64(CLINT_MTIME)).toBe(0x2_0000_0010n);
    clint.write(CLINT_MTIME, 4, 5);
    clock.advance(100);
    expect(clint.read64(CLINT_MTIME)).toBe(0x2_0000_0006n);
  });

  test('bad widths and offsets are guest errors', () => {
    const { clint, log } = make(2);
    expect(clint.read(8, 4)).toBe(0); // no hart 2
    clint.write(2, 4, 1); // unaligned
    expect(clint.read(0, 1)).toBe(0);
    clint.write64(cmp(0) + 4, 1n);
    expect(clint.read64(0x8000)).toBe(0n);
    expect(log.length).toBe(5);
  });

  test('VMState: riscv_mtimer v1 timecmp, time subsection by compat, msip subsection when set', () => {
    const v2 = make(2, true);
    const v1 = make(2, false);
    const s2 = capture(VMSTATE_CLINT, v2.clint);
    const s1 = capture(VMSTATE_CLINT, v1.clint);
    expect(s2.name).toBe('riscv_mtimer');
    expect(s2.version).toBe(1);
    expect(Object.keys(s2.fields)).toEqual(['timecmp']);
    expect((s2.fields.timecmp as bigint[]).length).toBe(2);
    expect(subsectionNames(s2)).toEqual(['riscv_mtimer/time']);
    expect(subsectionNames(s1)).toEqual([]);
    v2.clint.write(0, 4, 1);
    expect(subsectionNames(capture(VMSTATE_CLINT, v2.clint))).toEqual(['riscv_mtimer/time', 'riscv_mtimer/msip']);
  });

  test('round trip: mtime and an armed mtimecmp survive; the timer still fires', () => {
    const a = make(2);
    a.clint.resumeTime();
    a.clock.advance(7 * MS);
    a.clint.write64(cmp(1), 80_000n); // 1 ms after mtime 70000
    a.clint.write(0, 4, 1);
    a.clint.pauseTime();
    const saved = capture(VMSTATE_CLINT, a.clint);

    const b = make(2);
    b.clock.set(123 * 1e9); // a different host, a different clock
    b.lines.raise(1, MIP_MSIP); // stale state on the receiver is overwritten
    restore(VMSTATE_CLINT, b.clint, saved);
    expect(capture(VMSTATE_CLINT, b.clint)).toEqual(saved);
    expect(b.clint.mtime()).toBe(70_000);
    expect(b.lines.get(0) & MIP_MSIP).toBe(MIP_MSIP);
    expect(b.lines.get(1) & MIP_MSIP).toBe(0);
    b.clint.resumeTime();
    b.clock.advance(0.9 * MS);
    expect(b.clint.mtime() >= b.clint.timecmp(1)).toBe(false);
    b.clock.advance(0.1 * MS);
    expect(b.clint.mtime() >= b.clint.timecmp(1)).toBe(true);
  });

  test('compat: a virt-1.0 stream (no time) keeps the receiver time; virt-1.0 loads a virt-2.0 stream', () => {
    const old = make(1, false);
    old.clint.resumeTime();
    old.clock.advance(5 * MS);
    old.clint.pauseTime();
    const fromOld = capture(VMSTATE_CLINT, old.clint);
    const dst = make(1, true);
    dst.clint.write64(CLINT_MTIME, 42n);
    restore(VMSTATE_CLINT, dst.clint, fromOld);
    expect(dst.clint.mtime()).toBe(42); // receiver's own time

    const neu = make(1, true);
    neu.clint.write64(CLINT_MTIME, 777n);
    const fromNew = capture(VMSTATE_CLINT, neu.clint);
    const oldDst = make(1, false);
    restore(VMSTATE_CLINT, oldDst.clint, fromNew);
    expect(oldDst.clint.mtime()).toBe(777);
  });

  test('reset: mtime 0, mtimecmp never due, MSIP low', () => {
    const { clint, lines, clock } = make(1);
    clint.resumeTime();
    clock.advance(MS);
    clint.write64(cmp(0), 5n);
    clint.write(0, 4, 1);
    clint.reset();
    expect(clint.mtime()).toBe(0);
    expect(clint.read64(cmp(0))).toBe(0xffff_ffff_ffff_ffffn);
    expect(lines.get(0) & MIP_MSIP).toBe(0);
    clock.advance(MS);
    expect(clint.mtime()).toBe(10_000);
  });
});
