/**
 * The guests on the reference machine. Needs qemu-system-riscv64 (Debian/Ubuntu package
 * qemu-system-misc); skipped with the reason in the suite name when it is absent.
 *  - every run in guests/expected/runs.json prints what was recorded there
 *  - RAM read back from a stopped QEMU satisfies ram-check.js (A/B invariant, fill pattern)
 */
import {
  QemuGuest,
  captureRun,
  expectedOf,
  findQemu,
  loadRuns,
} from '../../guests/qemu-run';
import { KIND, RAM_BASE, STATE, checkAb, checkFill, readInfo } from '../../guests/ram-check';

const qemu = findQemu();
const describeQemu = qemu ? describe : describe.skip;

const SKIP_REASON = 'skipped: qemu-system-riscv64 not installed (apt-get install qemu-system-misc, or set LIVEMIG_QEMU)';

if (!qemu) {
  // Jest does not list the names of a file's tests when all are skipped: say why here too.
  process.stderr.write(`qemu.test.ts: ${SKIP_REASON}\n`);
  describe('guests under QEMU', () => {
    it.skip(SKIP_REASON, () => {});
  });
}

const MiB = 1024 * 1024;

describeQemu('expected UART output under QEMU', () => {
  const runs = qemu ? loadRuns() : [];
  it.each(runs.map((r) => [r.name, r] as const))('%s', async (_name, run) => {
    const r = await captureRun(run);
    expect(r.output.toString('latin1')).toBe(expectedOf(run).toString('latin1'));
    if (run.match === 'exact') expect(r.code).toBe(run.exitCode);
  });
});

describeQemu('guest RAM under QEMU', () => {
  let g: QemuGuest | undefined;
  afterEach(async () => {
    await g?.kill();
    g = undefined;
  });

  async function stoppedRam(mem: number): Promise<Buffer> {
    await g!.qmp('stop');
    return g!.pmem(RAM_BASE, mem);
  }

  it('ab: the A/B invariant and the fill hold, and a stopped guest stops changing', async () => {
    g = new QemuGuest({ elf: 'ab', mem: '64M', smp: 2, append: 'size=4M seed=11', qmp: true });
    await g.waitFor((out) => /^AB{20}/.test(out.toString()), 20000);
    const ram = await stoppedRam(64 * MiB);
    const ab = checkAb(ram);
    expect(ab.errors).toEqual([]);
    expect(ab.passes).toBeGreaterThanOrEqual(20n);
    expect(ab.pages).toBe(1024);
    expect(checkFill(ram).errors).toEqual([]);
    const info = readInfo(ram)!;
    expect(info).toMatchObject({ kind: KIND.AB, state: STATE.RUNNING, seed: 11n, ramSize: 64 * MiB, fdtAddr: 0x83e00000, harts: 2 });
    expect(info.rangeEnd - info.rangeStart).toBe(4 * MiB);
    await new Promise((r) => setTimeout(r, 300));
    expect((await g.pmem(RAM_BASE, 64 * MiB)).equals(ram)).toBe(true);
  });

  it('ab: default range runs from the image end to the FDT slot', async () => {
    g = new QemuGuest({ elf: 'ab', mem: '128M', qmp: true });
    await g.waitFor('AB', 20000);
    const info = readInfo(await stoppedRam(128 * MiB))!;
    expect(info.rangeStart).toBe(info.imageEnd);
    expect(info.rangeEnd).toBe(0x87e00000);
    expect(info.fdtAddr).toBe(0x87e00000);
  });

  it('dirty: pages carry the DRTY tag and the rest of the fill is intact', async () => {
    g = new QemuGuest({ elf: 'dirty', mem: '32M', append: 'size=8M rate=20', qmp: true });
    await g.waitFor('tick 1\n', 20000);
    const ram = await stoppedRam(32 * MiB);
    const r = checkFill(ram);
    expect(r.errors).toEqual([]);
    expect(r.dirtiedPages).toBeGreaterThan(1000);
    expect(r.info!.param).toBe(20n);
    // 1 s at 20 pages/ms is 20,000 writes, less whatever a late wakeup on a busy host dropped
    // (the guest catches up at most 10 ms of backlog).
    expect(r.info!.counter).toBeGreaterThan(10000n);
    expect(r.info!.counter).toBeLessThanOrEqual(20000n + 20n * 500n); // stop lands within 0.5 s
  });

  it('idle: counts timer ticks in the info block', async () => {
    g = new QemuGuest({ elf: 'idle', mem: '16M', append: 'size=1M', qmp: true });
    await g.waitFor('tick 2\n', 20000);
    const ram = await stoppedRam(16 * MiB);
    expect(checkFill(ram).errors).toEqual([]);
    expect(readInfo(ram)!.counter).toBeGreaterThanOrEqual(2n);
  });
});
