/** guests/ram-check.js on synthetic RAM images: the checks migration tests rely on. */
import {
  DEFAULT_SEED,
  KIND,
  PAGE_SIZE,
  RAM_BASE,
  STATE,
  checkAb,
  checkAbRelative,
  checkFill,
  fillRange,
  readInfo,
  writeInfo,
  xorshift64,
} from '../../guests/ram-check';

const RAM = 1 << 20; // a 1 MiB image is enough
const START = RAM_BASE + 0x10000;
const END = RAM_BASE + 0x10000 + 64 * PAGE_SIZE;
const N = (END - START) / PAGE_SIZE;

/** An `ab` guest stopped after `passes` passes with `step` pages of the next one done. */
function abImage(passes: number, step: number, seed: bigint | number = 7): Uint8Array {
  const ram = new Uint8Array(RAM);
  writeInfo(ram, { kind: KIND.AB, state: STATE.RUNNING, rangeStart: START, rangeEnd: END, seed, counter: passes });
  fillRange(ram, START, END, seed);
  for (let i = 0; i < N; i++) ram[START - RAM_BASE + i * PAGE_SIZE] = (passes + (i < step ? 1 : 0)) & 0xff;
  return ram;
}

const byte0 = (ram: Uint8Array, i: number) => START - RAM_BASE + i * PAGE_SIZE;

describe('xorshift64 fill', () => {
  it('matches the BigInt reference and the guest (byte 0 of each page cleared)', () => {
    const ram = new Uint8Array(RAM);
    fillRange(ram, START, START + 2 * PAGE_SIZE, 0); // seed 0 means the default
    const v = new DataView(ram.buffer);
    let x = DEFAULT_SEED;
    for (let w = 0; w < (2 * PAGE_SIZE) / 8; w++) {
      x = xorshift64(x);
      const want = w % 512 === 0 ? x & ~0xffn : x;
      expect(v.getBigUint64(START - RAM_BASE + w * 8, true)).toBe(want);
    }
  });

  it('first outputs for seed 1 are the textbook xorshift64 values', () => {
    expect(xorshift64(1n)).toBe(0x40822041n);
    expect(xorshift64(0x40822041n)).toBe(0x100041060c011441n);
  });
});

describe('checkAb (exact form, with the pass counter)', () => {
  it.each([
    [0, 0],
    [0, 1],
    [3, 17],
    [3, N],
    [255, 10], // byte wraps: 0 before the step, 255 after
    [256, 0],
    [1000, N - 1],
  ])('accepts passes=%d step=%d', (passes, step) => {
    const r = checkAb(abImage(passes, step));
    expect(r.errors).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.step).toBe(step);
    expect(r.passes).toBe(BigInt(passes));
    expect(checkFill(abImage(passes, step)).ok).toBe(true);
  });

  it('finds a page that missed an increment (lost page on the destination)', () => {
    const ram = abImage(5, 20);
    ram[byte0(ram, 10)] = 5;
    const r = checkAb(ram);
    expect(r.ok).toBe(false);
    expect(r.errorCount).toBeGreaterThan(0);
  });

  it('finds a page from an older pass after the step', () => {
    const ram = abImage(5, 20);
    ram[byte0(ram, 40)] = 4;
    expect(checkAb(ram).ok).toBe(false);
  });

  it('finds a counter that disagrees with the pages', () => {
    const ram = abImage(5, 20);
    writeInfo(ram, { kind: KIND.AB, state: STATE.RUNNING, rangeStart: START, rangeEnd: END, seed: 7, counter: 9 });
    expect(checkAb(ram).ok).toBe(false);
  });

  it('refuses images without an info block, of another guest, or not yet running', () => {
    expect(checkAb(new Uint8Array(RAM)).errors[0]).toMatch(/no info block/);
    const ram = abImage(1, 1);
    writeInfo(ram, { kind: KIND.AB, state: STATE.FILLING, rangeStart: START, rangeEnd: END });
    expect(checkAb(ram).ok).toBe(false);
    writeInfo(ram, { kind: KIND.IDLE, state: STATE.RUNNING, rangeStart: START, rangeEnd: END });
    expect(checkAb(ram).ok).toBe(false);
    writeInfo(ram, { kind: KIND.AB, state: STATE.RUNNING, rangeStart: START, rangeEnd: RAM_BASE + 2 * RAM });
    expect(checkAb(ram).ok).toBe(false);
  });
});

describe('checkAbRelative (QEMU form)', () => {
  it('allows one step down, in either byte-wrap position', () => {
    expect(checkAbRelative([4, 4, 3, 3]).ok).toBe(true);
    expect(checkAbRelative([0, 0, 255, 255]).ok).toBe(true);
    expect(checkAbRelative([7, 7, 7]).edges).toEqual([]);
  });
  it('rejects two steps, a step up, or a jump', () => {
    expect(checkAbRelative([5, 4, 3]).ok).toBe(false);
    expect(checkAbRelative([4, 5]).ok).toBe(false);
    expect(checkAbRelative([9, 7]).ok).toBe(false);
  });
});

describe('checkFill', () => {
  it('finds a corrupted word anywhere in a page', () => {
    const ram = abImage(2, 3);
    ram[byte0(ram, 7) + 1234] ^= 1;
    const r = checkFill(ram);
    expect(r.ok).toBe(false);
    expect(r.errors[0]).toMatch(/0x80017/);
  });

  it('finds a page that never arrived (all zero)', () => {
    const ram = abImage(2, 3);
    ram.fill(0, byte0(ram, 9), byte0(ram, 10));
    expect(checkFill(ram).ok).toBe(false);
  });

  it('accepts dirty-guest tags up to the counter and rejects later ones', () => {
    const ram = new Uint8Array(RAM);
    writeInfo(ram, { kind: KIND.DIRTY, state: STATE.RUNNING, rangeStart: START, rangeEnd: END, seed: 3, counter: 100, param: 10 });
    fillRange(ram, START, END, 3);
    const v = new DataView(ram.buffer);
    v.setBigUint64(byte0(ram, 2), 0x5954524400000000n | 100n, true);
    v.setBigUint64(byte0(ram, 5), 0x5954524400000000n | 1n, true);
    const ok = checkFill(ram);
    expect(ok.errors).toEqual([]);
    expect(ok.dirtiedPages).toBe(2);
    v.setBigUint64(byte0(ram, 6), 0x5954524400000000n | 101n, true);
    expect(checkFill(ram).ok).toBe(false);
  });
});

describe('readInfo', () => {
  it('round-trips writeInfo', () => {
    const ram = new Uint8Array(RAM);
    writeInfo(ram, { kind: KIND.IDLE, state: STATE.RUNNING, rangeStart: START, rangeEnd: END, seed: 99n, counter: 4n, harts: 2, fdtAddr: 0x87e00000 });
    const info = readInfo(ram);
    expect(info).toMatchObject({ version: 1, kind: KIND.IDLE, rangeStart: START, rangeEnd: END, seed: 99n, counter: 4n, harts: 2, fdtAddr: 0x87e00000 });
  });
});
