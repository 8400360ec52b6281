import { HartLines, MIP_MEIP } from '../../../lib/machine/bus';
import {
  MIP_SEIP,
  PLIC_CONTEXT_BASE,
  PLIC_CONTEXT_STRIDE,
  PLIC_ENABLE_BASE,
  PLIC_ENABLE_STRIDE,
  PLIC_PENDING_BASE,
  Plic,
  VMSTATE_PLIC,
} from '../../../lib/machine/devices/plic';
import { capture, restore } from './vmstate-accessors';

const enableAt = (ctx: number, word = 0) => PLIC_ENABLE_BASE + PLIC_ENABLE_STRIDE * ctx + 4 * word;
const thresholdAt = (ctx: number) => PLIC_CONTEXT_BASE + PLIC_CONTEXT_STRIDE * ctx;
const claimAt = (ctx: number) => thresholdAt(ctx) + 4;

function make(harts = 2) {
  const lines = new HartLines(harts);
  const log: string[] = [];
  const share = Plic.createShare({ harts });
  const plic = new Plic(share, { lines, log: (d, m) => log.push(`${d}: ${m}`) });
  return { plic, lines, log, share };
}

describe('PLIC', () => {
  test('QEMU virt geometry: 96 sources, 2 contexts per hart, 3 bitfield words', () => {
    const { plic } = make(2);
    expect(plic.numSources).toBe(96);
    expect(plic.numContexts).toBe(4);
    expect(plic.bitfieldWords).toBe(3);
  });

  test('priorities are WARL 0..7; threshold likewise', () => {
    const { plic } = make();
    plic.write(4 * 10, 4, 9);
    expect(plic.read(4 * 10, 4)).toBe(1); // 9 % 8
    plic.write(thresholdAt(0), 4, 7);
    expect(plic.read(thresholdAt(0), 4)).toBe(7);
  });

  test('pending needs priority > threshold and enable to raise MEIP', () => {
    const { plic, lines } = make();
    plic.setIrq(10, true);
    expect(plic.read(PLIC_PENDING_BASE, 4)).toBe(1 << 10);
    expect(lines.get(0) & MIP_MEIP).toBe(0); // priority 0: never
    plic.write(4 * 10, 4, 1);
    expect(lines.get(0) & MIP_MEIP).toBe(0); // not enabled
    plic.write(enableAt(0), 4, 1 << 10);
    expect(lines.get(0) & MIP_MEIP).toBe(MIP_MEIP);
    plic.write(thresholdAt(0), 4, 1); // priority must exceed the threshold
    expect(lines.get(0) & MIP_MEIP).toBe(0);
    plic.write(thresholdAt(0), 4, 0);
    expect(lines.get(0) & MIP_MEIP).toBe(MIP_MEIP);
    expect(lines.get(1) & MIP_MEIP).toBe(0); // hart 1's contexts have nothing enabled
  });

  test('claim returns the highest priority pending source, lowest id on ties', () => {
    const { plic } = make();
    for (const [src, prio] of [
      [5, 2],
      [40, 6],
      [41, 6],
      [70, 3],
    ]) {
      plic.write(4 * src, 4, prio);
      plic.setIrq(src, true);
    }
    plic.write(enableAt(0, 0), 4, 1 << 5);
    plic.write(enableAt(0, 1), 4, (1 << (40 - 32)) | (1 << (41 - 32)));
    plic.write(enableAt(0, 2), 4, 1 << (70 - 64));
    expect(plic.read(claimAt(0), 4)).toBe(40);
    expect(plic.read(claimAt(0), 4)).toBe(41);
    expect(plic.read(claimAt(0), 4)).toBe(70);
    expect(plic.read(claimAt(0), 4)).toBe(5);
    expect(plic.read(claimAt(0), 4)).toBe(0);
  });

  test('claim clears pending and lowers MEIP; complete re-pends a still-high line', () => {
    const { plic, lines } = make();
    plic.write(4 * 10, 4, 1);
    plic.write(enableAt(0), 4, 1 << 10);
    plic.setIrq(10, true);
    const wake0 = Atomics.load(lines.wake, 0);
    expect(lines.get(0) & MIP_MEIP).toBe(MIP_MEIP);
    expect(Atomics.load(lines.wake, 0)).toBe(wake0);
    expect(plic.read(claimAt(0), 4)).toBe(10);
    expect(plic.read(PLIC_PENDING_BASE, 4)).toBe(0);
    expect(lines.get(0) & MIP_MEIP).toBe(0);
    // Claimed: another claim sees nothing even though the line is high.
    expect(plic.read(claimAt(0), 4)).toBe(0);
    plic.write(claimAt(0), 4, 10); // complete
    expect(plic.read(PLIC_PENDING_BASE, 4)).toBe(1 << 10);
    expect(lines.get(0) & MIP_MEIP).toBe(MIP_MEIP);
    // Line goes low: pending clears, MEIP drops.
    plic.setIrq(10, false);
    expect(plic.read(PLIC_PENDING_BASE, 4)).toBe(0);
    expect(lines.get(0) & MIP_MEIP).toBe(0);
    // Complete of a low line: nothing pends.
    plic.setIrq(10, true);
    expect(plic.read(claimAt(0), 4)).toBe(10);
    plic.setIrq(10, false);
    plic.write(claimAt(0), 4, 10);
    expect(lines.get(0) & MIP_MEIP).toBe(0);
  });

  test('raising MEIP kicks the hart', () => {
    const { plic, lines } = make();
    plic.write(4 * 3, 4, 1);
    plic.write(enableAt(2), 4, 1 << 3); // hart 1 M context
    const before = Atomics.load(lines.wake, 1);
    plic.setIrq(3, true);
    expect(lines.get(1) & MIP_MEIP).toBe(MIP_MEIP);
    expect(Atomics.load(lines.wake, 1)).toBe(before + 1);
  });

  test('S contexts drive SEIP', () => {
    const { plic, lines } = make();
    plic.write(4 * 3, 4, 1);
    plic.write(enableAt(1), 4, 1 << 3); // hart 0 S context
    plic.setIrq(3, true);
    expect(lines.get(0) & MIP_SEIP).toBe(MIP_SEIP);
    expect(lines.get(0) & MIP_MEIP).toBe(0);
  });

  test('guest errors are logged, not thrown', () => {
    const { plic, log } = make();
    plic.write(PLIC_PENDING_BASE, 4, 1);
    expect(plic.read(0x1f_0000, 4)).toBe(0);
    expect(plic.read(0, 1)).toBe(0);
    plic.write(enableAt(0, 5), 4, 1); // word beyond the bitfield
    expect(log.length).toBe(4);
    expect(() => plic.setIrq(0, true)).toThrow(RangeError); // a wiring bug, not a guest error
  });

  test('state round trip through the VMState accessors', () => {
    const a = make();
    a.plic.write(4 * 10, 4, 3);
    a.plic.write(4 * 20, 4, 5);
    a.plic.write(enableAt(0), 4, (1 << 10) | (1 << 20));
    a.plic.write(enableAt(3), 4, 1 << 20);
    a.plic.write(thresholdAt(3), 4, 2);
    a.plic.setIrq(10, true);
    a.plic.setIrq(20, true);
    expect(a.plic.read(claimAt(0), 4)).toBe(20);
    const saved = capture(VMSTATE_PLIC, a.plic);
    expect(Object.keys(saved.fields)).toEqual(['source_priority', 'target_priority', 'pending', 'claimed', 'enable']);
    expect((saved.fields.enable as number[]).length).toBe(3 * 4);

    const b = make();
    restore(VMSTATE_PLIC, b.plic, saved);
    expect(b.lines.get(0) & MIP_MEIP).toBe(MIP_MEIP); // source 10 still pending for ctx 0
    expect(capture(VMSTATE_PLIC, b.plic)).toEqual(saved);
    expect(b.plic.read(claimAt(0), 4)).toBe(10);
    expect(b.plic.read(claimAt(0), 4)).toBe(0); // 20 stays claimed
    b.plic.write(claimAt(0), 4, 20);
    expect(a.plic.read(claimAt(0), 4)).toBe(10);
  });
});
