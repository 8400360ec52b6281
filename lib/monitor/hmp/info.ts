/**
 * HMP "info" output, as QEMU 10.2 prints it (migration/migration-hmp-cmds.c
 * hmp_info_migrate, hmp_info_migrate_capabilities, hmp_info_migrate_parameters;
 * system/runstate-hmp-cmds.c hmp_info_status; monitor/hmp-cmds.c hmp_info_version).
 * Field names, tabs and units are QEMU's; tools scrape these.
 */

import type { MigrationInfo, StatusInfo } from '../backend';
import { formatG } from '../json/encode';
import type { MigrationGlobals } from '../../migration';
import type { ReturnOf } from '../schema';

/** util/cutils.c size_to_str(): "%0.3g %sB" with binary prefixes, switching at 1000. */
export function sizeToStr(val: number): string {
  const suffixes = ['', 'Ki', 'Mi', 'Gi', 'Ti', 'Pi', 'Ei'];
  // frexp(val / (1000.0 / 1024.0)) exponent, minus one, over ten.
  const x = val / (1000 / 1024);
  const exp = x === 0 ? 0 : Math.floor(Math.log2(x)) + 1;
  const i = Math.min(Math.trunc((exp - 1) / 10), suffixes.length - 1);
  const div = 2 ** (i * 10);
  return `${formatG(val / div, 3)} ${suffixes[i]}B`;
}

export function formatStatus(s: StatusInfo): string {
  let out = `VM status: ${s.running ? 'running' : 'paused'}`;
  if (!s.running && s.status !== 'paused') out += ` (${s.status})`;
  return `${out}\n`;
}

export function formatVersion(v: ReturnOf<'query-version'>): string {
  return `${v.qemu.major}.${v.qemu.minor}.${v.qemu.micro}${v.package}\n`;
}

export function formatCapabilities(caps: ReturnOf<'query-migrate-capabilities'>): string {
  return caps.map((c) => `${c.capability}: ${c.state ? 'on' : 'off'}\n`).join('');
}

export function formatParameters(p: ReturnOf<'query-migrate-parameters'>): string {
  const onOff = (b: boolean | undefined) => (b ? 'on' : 'off');
  const lines = [
    `announce-initial: ${p['announce-initial']} ms`,
    `announce-max: ${p['announce-max']} ms`,
    `announce-rounds: ${p['announce-rounds']}`,
    `announce-step: ${p['announce-step']} ms`,
    `throttle-trigger-threshold: ${p['throttle-trigger-threshold']}`,
    `cpu-throttle-initial: ${p['cpu-throttle-initial']}`,
    `cpu-throttle-increment: ${p['cpu-throttle-increment']}`,
    `cpu-throttle-tailslow: ${onOff(p['cpu-throttle-tailslow'])}`,
    `max-cpu-throttle: ${p['max-cpu-throttle']}`,
    `tls-creds: '${p['tls-creds'] ?? ''}'`,
    `tls-hostname: '${p['tls-hostname'] ?? ''}'`,
    `tls-authz: '${p['tls-authz'] ?? ''}'`,
    `max-bandwidth: ${p['max-bandwidth']} bytes/second`,
    `avail-switchover-bandwidth: ${p['avail-switchover-bandwidth']} bytes/second`,
    `max-postcopy-bandwidth: ${p['max-postcopy-bandwidth']} bytes/second`,
    `downtime-limit: ${p['downtime-limit']} ms`,
    `x-checkpoint-delay: ${p['x-checkpoint-delay']} ms`,
    `multifd-channels: ${p['multifd-channels']}`,
    `multifd-compression: ${p['multifd-compression']}`,
    `zero-page-detection: ${p['zero-page-detection']}`,
    `xbzrle-cache-size: ${p['xbzrle-cache-size']} bytes`,
  ];
  if (p['block-bitmap-mapping']) {
    lines.push('block-bitmap-mapping:');
    for (const n of p['block-bitmap-mapping']) {
      lines.push(`  '${n['node-name']}' -> '${n.alias}'`);
      for (const b of n.bitmaps) lines.push(`    '${b.name}' -> '${b.alias}'`);
    }
  }
  lines.push(
    `x-vcpu-dirty-limit-period: ${p['x-vcpu-dirty-limit-period']} ms`,
    `vcpu-dirty-limit: ${p['vcpu-dirty-limit']} MB/s`,
    `mode: ${p.mode}`,
  );
  if (p['direct-io'] !== undefined) lines.push(`direct-io: ${onOff(p['direct-io'])}`);
  lines.push(`cpr-exec-command:${(p['cpr-exec-command'] ?? []).map((a) => ` ${a}`).join('')}`);
  return lines.map((l) => `${l}\n`).join('');
}

type SocketAddr = NonNullable<MigrationInfo['socket-address']>[number];

/** util/qemu-sockets.c socket_uri() */
function socketUri(a: SocketAddr): string {
  switch (a.type) {
    case 'inet': return `tcp:${a.host}:${a.port}`;
    case 'unix': return `unix:${a.path}`;
    case 'fd': return `fd:${a.str}`;
    case 'vsock': return `vsock:${a.cid}:${a.port}`;
  }
}

/** format_time_str(): microseconds scaled to us/ms/sec. */
function timeStr(us: number): string {
  const units = ['us', 'ms', 'sec'];
  let i = 0;
  while (us >= 1000 && i + 1 < units.length) {
    us = Math.floor(us / 1000);
    i++;
  }
  return `${us} ${units[i]}`;
}

/** Ten vCPU values per line: " [a, b, ...,\n  k, ...]" */
function vcpuList(values: readonly number[]): string {
  let s = ' [';
  values.forEach((v, n) => {
    if (n) s += n % 10 === 0 ? ',\n  ' : ', ';
    s += String(v);
  });
  return `${s}]\n`;
}

function formatBlocktime(info: MigrationInfo): string {
  let s = '';
  if (info['postcopy-blocktime'] !== undefined) s += `Postcopy Blocktime (ms): ${info['postcopy-blocktime']}\n`;
  if (info['postcopy-vcpu-blocktime']) s += `Postcopy vCPU Blocktime (ms):\n${vcpuList(info['postcopy-vcpu-blocktime'])}`;
  if (info['postcopy-latency'] !== undefined) s += `Postcopy Latency (ns): ${info['postcopy-latency']}\n`;
  if (info['postcopy-non-vcpu-latency'] !== undefined) {
    s += `Postcopy non-vCPU Latencies (ns): ${info['postcopy-non-vcpu-latency']}\n`;
  }
  if (info['postcopy-vcpu-latency']) s += `Postcopy vCPU Latencies (ns):\n${vcpuList(info['postcopy-vcpu-latency'])}`;
  if (info['postcopy-latency-dist']) {
    s += 'Postcopy Latency Distribution:\n';
    info['postcopy-latency-dist'].forEach((v, n) => {
      const from = timeStr(2 ** n).padStart(8);
      const to = timeStr(2 ** (n + 1)).padStart(8);
      s += `  [ ${from} - ${to} ]: ${String(v).padStart(10)}\n`;
    });
  }
  return s;
}

export function formatMigrate(info: MigrationInfo, all: boolean, globals: MigrationGlobals): string {
  let s = '';
  if (info['blocked-reasons']) {
    s += 'Outgoing migration blocked:\n';
    for (const r of info['blocked-reasons']) s += `  ${r}\n`;
  }
  if (info.status !== undefined) {
    s += `Status: \t\t${info.status}`;
    const withError = info.status === 'failed' || info.status === 'postcopy-paused';
    s += withError && info['error-desc'] !== undefined ? ` (${info['error-desc']})\n` : '\n';
    if (info['total-time']) {
      s += `Time (ms): \t\ttotal=${info['total-time']}`;
      if (info['setup-time'] !== undefined) s += `, setup=${info['setup-time']}`;
      if (info['expected-downtime'] !== undefined) s += `, exp_down=${info['expected-downtime']}`;
      if (info.downtime !== undefined) s += `, down=${info.downtime}`;
      s += '\n';
    }
  }
  if (info['socket-address']) {
    s += 'Sockets: [\n';
    for (const a of info['socket-address']) s += `\t${socketUri(a)}\n`;
    s += ']\n';
  }
  const ram = info.ram;
  if (ram) {
    s += 'RAM info:\n';
    s += `  Throughput (Mbps): \t${ram.mbps.toFixed(2)}\n`;
    s += `  Sizes: \t\tpagesize=${sizeToStr(ram['page-size'])}, total=${sizeToStr(ram.total)}\n`;
    s += `  Transfers: \t\ttransferred=${sizeToStr(ram.transferred)}, remain=${sizeToStr(ram.remaining)}\n`;
    s += `    Channels: \t\tprecopy=${sizeToStr(ram['precopy-bytes'])}, multifd=${sizeToStr(ram['multifd-bytes'])}`;
    s += `, postcopy=${sizeToStr(ram['postcopy-bytes'])}`;
    if (info.vfio) s += `, vfio=${sizeToStr(info.vfio.transferred)}`;
    s += '\n';
    s += `    Page Types: \tnormal=${ram.normal}, zero=${ram.duplicate}\n`;
    s += `  Page Rates (pps): \ttransfer=${ram['pages-per-second']}`;
    if (ram['dirty-pages-rate']) s += `, dirty=${ram['dirty-pages-rate']}`;
    s += '\n';
    s += `  Others: \t\tdirty_syncs=${ram['dirty-sync-count']}`;
    if (ram['postcopy-requests']) s += `, postcopy_req=${ram['postcopy-requests']}`;
    if (ram['downtime-bytes']) s += `, downtime_bytes=${ram['downtime-bytes']}`;
    if (ram['dirty-sync-missed-zero-copy']) s += `, zerocopy_fallbacks=${ram['dirty-sync-missed-zero-copy']}`;
    s += '\n';
  }
  if (!all) return s;
  s += 'Globals:\n';
  const onOff = (b: boolean) => (b ? 'on' : 'off');
  s += `  store-global-state: ${onOff(globals['store-global-state'])}\n`;
  s += `  only-migratable: ${onOff(globals['only-migratable'])}\n`;
  s += `  send-configuration: ${onOff(globals['send-configuration'])}\n`;
  s += `  send-section-footer: ${onOff(globals['send-section-footer'])}\n`;
  s += `  send-switchover-start: ${onOff(globals['send-switchover-start'])}\n`;
  const x = info['xbzrle-cache'];
  if (x) {
    s += `XBZRLE: size=${x['cache-size']}, transferred=${x.bytes}, pages=${x.pages}, miss=${x['cache-miss']}\n`;
    s += `  miss_rate=${x['cache-miss-rate'].toFixed(2)}, encode_rate=${x['encoding-rate'].toFixed(2)}, overflow=${x.overflow}\n`;
  }
  if (info['cpu-throttle-percentage'] !== undefined) s += `CPU Throttle (%): ${info['cpu-throttle-percentage']}\n`;
  if (info['dirty-limit-throttle-time-per-round'] !== undefined) {
    s += `Dirty-limit Throttle (us): ${info['dirty-limit-throttle-time-per-round']}\n`;
  }
  if (info['dirty-limit-ring-full-time'] !== undefined) {
    s += `Dirty-limit Ring Full (us): ${info['dirty-limit-ring-full-time']}\n`;
  }
  return s + formatBlocktime(info);
}
