/**
 * Live precopy between two processes, measured against the machine and against QEMU in the
 * same run:
 *
 *   idle:  the idle guest, 1 GiB and 4 GiB. What its RAM holds: the guest fills its default
 *          range, from 0x8001_5000 (above its image and stacks) to RAM end − 2 MiB or the FDT
 *          at 0xbfe0_0000, whichever is lower, with xorshift64 words (byte 0 of every page 0):
 *          at both sizes 261,611 pages (1022 MiB) of pseudo-random data, none of it zero.
 *          Besides that only the image, the stacks and the FDT; the FDT's 2 MiB slot and, with
 *          4 GiB, the 3 GiB above it were never written (memfd holes, sent as zero pages
 *          without being read). Reported: the stream rate (bytes transferred ÷ total time,
 *          every channel), next to a raw unix-socket stream of the same bytes in the same
 *          process layout measured in the same round (`ratio`); guest-RAM throughput (RAM size
 *          ÷ total time); downtime.
 *   ab:    the busy ab guest (QEMU's migration-test workload) rewriting all of its RAM every
 *          pass, so it never converges on its own: downtime-limit is raised to its maximum
 *          after --switch-after seconds (20), forcing the switchover, whose downtime is then
 *          the time to send the whole final dirty set. Stream rate, passes, downtime.
 *   dirty: the dirty guest at 50, 250, 1000 pages/ms with downtime-limit 300 and 50 ms: does it
 *          converge, real downtime vs the limit, and expected-downtime (the last value seen
 *          while active) vs the real one. downtime-limit is a limit the engine aims under,
 *          not a ceiling of the machine: it goes in the line's `limit`, and `ceiling` is null.
 *
 * --channels 0,1,2 runs each case with the main channel only (0) and with multifd over 1 and 2
 * channels; --qemu runs QEMU (qemu-system-riscv64) the same way, with --qemu-channels (0), and
 * skips it with a note when QEMU is not installed; --other PATH runs another livemig build
 * (its dist/lib/cli/livemig.js) the same way, as 'other', for before/after in one run. --repeat N runs N rounds, each engine and
 * channel count in turn within a round (so a busy spell hits them alike), then prints one
 * `-summary` line per configuration: median, lowest and highest of each figure, and the
 * median stream rate and downtime as ratios of QEMU's and of the main-channel-only run's.
 *
 * One JSON line per result. Usage:
 *   node dist/bench/precopy.js [--case idle|ab|dirty|all] [--mem 1G,4G] [--ab-mem 1G]
 *     [--channels 0] [--qemu] [--qemu-channels 0] [--repeat 1] [--switch-after 20]
 *     [--transport unix|tcp] [--other PATH] [--dirty-mem 1G] [--rates 50,250,1000] [--limits 300,50]
 *     [--timeout 180] [--no-auto-converge]
 */
import { parseSize } from '../lib/util/size';
import { arg, flag, RAW_CEILING, rawUnixStream, report, spread, tmpdir } from './harness';
import { findQemu, gbps, runLabel, runMigration, type Engine, type MigrationOutcome } from './migrate-run';

interface Config {
  engine: Engine;
  channels: number;
  otherScript?: string;
}

type Line = { config: Config; figures: Record<string, number | null>; ratio: number | null };

const transport = arg('transport', 'unix') as 'unix' | 'tcp';
const timeoutS = Number(arg('timeout', '180'));

function configs(): Config[] {
  const list = arg('channels', '0').split(',').map(Number);
  const out: Config[] = list.map((channels) => ({ engine: 'livemig' as Engine, channels }));
  const other = arg('other', '');
  if (other) out.unshift({ engine: 'other', channels: 0, otherScript: other });
  if (flag('qemu')) {
    if (findQemu()) for (const channels of arg('qemu-channels', '0').split(',').map(Number)) out.unshift({ engine: 'qemu', channels });
    else report({ bench: 'precopy', params: { qemu: 'skipped' }, figures: { note: 'qemu-system-riscv64 not found: QEMU runs skipped' }, ceiling: null, ratio: null });
  }
  return out;
}

function common(r: MigrationOutcome): Record<string, number | null> {
  const info = r.info;
  const gb = (info.ram?.transferred ?? 0) / 1e9;
  // CPU seconds per GB moved, each side, guest excluded: what the migration cost the machine,
  // which a busy spell does not inflate the way it stretches wall time.
  const perGb = (side: Record<string, number>) => (gb > 0 ? +((Object.values(side).reduce((a, b) => a + b, 0) - side.guest) / gb).toFixed(3) : null);
  return {
    'src-cpu-s-per-GB': perGb(r.cpu.src),
    'dst-cpu-s-per-GB': perGb(r.cpu.dst),
    'stream-GBps': gbps(info.ram?.transferred ?? 0, info['total-time']),
    'total-time-ms': info['total-time'] ?? null,
    'downtime-ms': info.downtime ?? null,
    'setup-time-ms': info['setup-time'] ?? null,
    transferred: info.ram?.transferred ?? null,
    'multifd-bytes': info.ram?.['multifd-bytes'] ?? null,
    passes: r.passes,
  };
}

async function idleRound(mem: string, round: number, cs: Config[], lines: Line[]): Promise<void> {
  // The ceiling for this round first: ~1 GiB through a raw unix socket between two processes.
  const ceiling = await rawUnixStream(1073700000, tmpdir());
  for (const c of cs) {
    const r = await runMigration({ ...c, guest: 'idle', mem, transport, downtimeLimit: 300, ready: /tick 1\n/, timeoutS });
    const f: Record<string, number | null> = { ...common(r), 'guest-ram-GBps': gbps(parseSize(mem, 2 ** 20), r.info['total-time']) };
    const stream = f['stream-GBps'];
    const ratio = stream !== null && ceiling > 0 ? +(stream / ceiling).toFixed(3) : null;
    lines.push({ config: c, figures: f, ratio });
    report({
      bench: 'precopy-idle',
      params: { mem, guest: 'idle', engine: c.engine, channels: c.channels, transport, 'downtime-limit': 300, round, status: r.info.status },
      figures: { ...f, cpu: r.cpu },
      ceiling: { 'raw-unix-socket-GBps': +ceiling.toFixed(3), kind: RAW_CEILING.kind },
      ratio,
    });
  }
}

async function abRound(mem: string, round: number, cs: Config[], lines: Line[]): Promise<void> {
  const after = Number(arg('switch-after', '20'));
  for (const c of cs) {
    const r = await runMigration({ ...c, guest: 'ab', mem, transport, downtimeLimit: 300, raiseAfterS: after, ready: /AB/, timeoutS });
    const f = common(r);
    lines.push({ config: c, figures: f, ratio: null });
    report({
      bench: 'precopy-ab',
      params: { mem, guest: 'ab', engine: c.engine, channels: c.channels, transport, 'raise-downtime-limit-after-s': after, round, status: r.info.status, forced: r.forced },
      figures: { ...f, cpu: r.cpu },
      ceiling: null,
      ratio: null,
    });
  }
}

/** One line per configuration: the spread of each figure, and the medians against QEMU's and
 * the main-channel-only run's. */
function summarize(bench: string, params: Record<string, unknown>, lines: Line[]): void {
  const key = (c: Config) => runLabel(c.engine, c.channels);
  const groups = new Map<string, Line[]>();
  for (const l of lines) groups.set(key(l.config), [...(groups.get(key(l.config)) ?? []), l]);
  const median = (label: string, fig: string) => spread((groups.get(label) ?? []).map((l) => l.figures[fig]))?.median ?? null;
  const rel = (a: number | null, b: number | null) => (a !== null && b ? +(a / b).toFixed(3) : null);
  for (const [label, ls] of groups) {
    const figures: Record<string, unknown> = {};
    for (const fig of Object.keys(ls[0].figures)) figures[fig] = spread(ls.map((l) => l.figures[fig]));
    figures.ratio = spread(ls.map((l) => l.ratio));
    const engine = ls[0].config.engine;
    report({
      bench: `${bench}-summary`,
      params: { ...params, config: label, runs: ls.length },
      figures: {
        ...figures,
        'stream-vs-qemu': rel(median(label, 'stream-GBps'), median('qemu', 'stream-GBps')),
        'downtime-vs-qemu': rel(median(label, 'downtime-ms'), median('qemu', 'downtime-ms')),
        'stream-vs-one-channel': rel(median(label, 'stream-GBps'), median(engine, 'stream-GBps')),
      },
      ceiling: null,
      ratio: null,
    });
  }
}

async function dirtyCase(mem: string, rate: number, limit: number, autoConverge: boolean, channels: number): Promise<void> {
  const r = await runMigration({ engine: 'livemig', channels, guest: 'dirty', mem, append: `rate=${rate}`, transport, downtimeLimit: limit, ready: /tick 1\n/, timeoutS, autoConverge });
  const info = r.info;
  const downtime = info.downtime ?? null;
  report({
    bench: 'precopy-dirty',
    params: { mem, guest: 'dirty', rate, 'downtime-limit': limit, transport, channels, 'auto-converge': autoConverge },
    figures: {
      status: info.status,
      converged: info.status === 'completed',
      'downtime-ms': downtime,
      'expected-downtime-ms': r.expectedDowntime,
      'expected-vs-real': downtime && r.expectedDowntime !== null ? +(r.expectedDowntime / downtime).toFixed(2) : null,
      'total-time-ms': info['total-time'] ?? null,
      'cpu-throttle-percentage': r.throttle,
      'stream-GBps': gbps(info.ram?.transferred ?? 0, info['total-time']),
      'guest-ram-GBps': gbps(parseSize(mem, 2 ** 20), info['total-time']),
      passes: r.passes,
      transferred: info.ram?.transferred ?? null,
    },
    ceiling: null,
    ratio: null,
    limit: { 'downtime-limit-ms': limit, 'downtime-vs-limit': downtime !== null ? +(downtime / limit).toFixed(3) : null, within: downtime !== null ? downtime <= limit : null },
  });
}

async function main(): Promise<void> {
  const which = arg('case', 'all');
  const repeat = Number(arg('repeat', '1'));
  const cs = configs();
  if (which === 'idle' || which === 'all') {
    for (const mem of arg('mem', '1G,4G').split(',')) {
      const lines: Line[] = [];
      for (let round = 1; round <= repeat; round++) await idleRound(mem, round, cs, lines);
      if (repeat > 1) summarize('precopy-idle', { mem, transport }, lines);
    }
  }
  if (which === 'ab' || which === 'all') {
    const mem = arg('ab-mem', '1G');
    const lines: Line[] = [];
    for (let round = 1; round <= repeat; round++) await abRound(mem, round, cs, lines);
    if (repeat > 1) summarize('precopy-ab', { mem, transport }, lines);
  }
  if (which === 'dirty' || which === 'all') {
    const mem = arg('dirty-mem', '1G');
    parseSize(mem, 2 ** 20);
    const channels = Number(arg('channels', '0').split(',')[0]);
    for (const limit of arg('limits', '300,50').split(',').map(Number)) {
      for (const rate of arg('rates', '50,250,1000').split(',').map(Number)) await dirtyCase(mem, rate, limit, !flag('no-auto-converge'), channels);
    }
  }
}

main().catch((e) => {
  process.stderr.write(`precopy bench: ${e instanceof Error ? e.stack : e}\n`);
  process.exit(1);
});
