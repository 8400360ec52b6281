/**
 * Every guest on livemig prints exactly what it printed on the reference machine (QEMU 7.2,
 * recorded in guests/expected/runs.json), and exits with the same status. The runs are
 * replayed through the same harness with livemig as the binary.
 */
import { captureRun, expectedOf, loadRuns, QemuGuest } from '../../guests/qemu-run';
import { LIVEMIG } from './helpers';

// The harness spawns `qemu`; point it at livemig (same option spelling).
process.env.LIVEMIG_QEMU = LIVEMIG;

describe('guests on livemig print what they print on QEMU', () => {
  const runs = loadRuns();
  it.each(runs.map((r) => [r.name, r] as const))('%s', async (_name, run) => {
    const r = await captureRun(run);
    expect(r.output.toString('latin1')).toBe(expectedOf(run).toString('latin1'));
    if (run.match === 'exact') expect(r.code).toBe(run.exitCode);
  });
});

describe('livemig command line', () => {
  it('hello with -nographic prints the greeting and exits 0', async () => {
    const g = new QemuGuest({ elf: 'hello', qemu: LIVEMIG });
    const status = await g.exited;
    expect(g.output.toString()).toBe('Hello from livemig guest, hart 0\n');
    expect(status.code).toBe(0);
  });
});
