/**
 * `npm start -- --postcopy`: what the demo does differently with postcopy. Both sides get
 * postcopy-ram, postcopy-preempt (requested pages on their own channel) and postcopy-blocktime
 * (the destination measures how long its vCPUs waited). The source is asked for postcopy as
 * soon as the migration runs: asked only after the first pass, it would often finish by
 * precopy instead (a small working set fits under downtime-limit, and completing wins, as in
 * QEMU). The guest then goes on at the destination at once, faulting in what it touches while
 * the rest follows in the background. Afterwards the destination's blocktime and remote-fault
 * latency are printed.
 */
import type { QmpClient } from '../monitor/qmp-client';

export const POSTCOPY_CAPABILITIES = ['postcopy-ram', 'postcopy-preempt', 'postcopy-blocktime'];

/** Right after `migrate`: the switchover comes at the source's next iteration. */
export async function startPostcopy(sq: QmpClient): Promise<void> {
  await sq.execute('migrate-start-postcopy');
}

/** Summary rows the source knows about the postcopy phase. */
export function postcopyRows(info: any): [string, string][] {
  const ram = info.ram ?? {};
  const mib = (b: number) => `${((b ?? 0) / 2 ** 20).toFixed(1)} MiB`;
  return [
    ['precopy bytes', mib(ram['precopy-bytes'])],
    ['postcopy bytes', mib(ram['postcopy-bytes'])],
    ['postcopy requests', String(ram['postcopy-requests'] ?? 0)],
  ];
}

/** The destination's blocktime and latency histogram (query-migrate with postcopy-blocktime);
 * HMP `info migrate` prints the same figures in QEMU's layout. */
export function formatPostcopyFigures(d: any): string {
  const hist: number[] = d['postcopy-latency-dist'] ?? [];
  const faults = hist.reduce((a, b) => a + b, 0);
  const us = (ns: number | undefined) => `${Math.round((ns ?? 0) / 1000)} µs`;
  const lines = [
    'destination postcopy',
    `  ${'blocktime (all vCPUs)'.padEnd(22)} ${d['postcopy-blocktime'] ?? 0} ms`,
    `  ${'blocktime per vCPU'.padEnd(22)} ${(d['postcopy-vcpu-blocktime'] ?? []).join(', ')} ms`,
    `  ${'remote faults'.padEnd(22)} ${faults}`,
    `  ${'average latency'.padEnd(22)} ${us(d['postcopy-latency'])} (per vCPU: ${(d['postcopy-vcpu-latency'] ?? []).map(us).join(', ')})`,
    '  latency histogram (a fault counts in [2^n, 2^(n+1)) µs):',
  ];
  const most = Math.max(1, ...hist);
  hist.forEach((v, n) => {
    if (!v) return;
    const range = `${n === 0 ? 0 : span(2 ** n)} - ${n === hist.length - 1 ? '…' : span(2 ** (n + 1))}`;
    lines.push(`    ${range.padStart(17)}  ${String(v).padStart(7)}  ${'#'.repeat(Math.max(1, Math.round((v / most) * 30)))}`);
  });
  if (!faults) lines.push('    (no remote faults)');
  return lines.join('\n');
}

function span(us: number): string {
  if (us >= 1e6) return `${us / 1e6 >= 10 ? Math.round(us / 1e6) : (us / 1e6).toFixed(1)} s`;
  if (us >= 1e3) return `${us / 1e3 >= 10 ? Math.round(us / 1e3) : (us / 1e3).toFixed(1)} ms`;
  return `${us} µs`;
}
