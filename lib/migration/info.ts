/**
 * query-migrate's answer (QEMU MigrationInfo, qapi/migration.json), built from an outgoing
 * migration's figures or an incoming one's state. Which members appear follows QEMU
 * (migration.c fill_source_migration_info / fill_destination_migration_info):
 *
 *   source       setup → status only; active, pre-switchover, device, completed → times and
 *                `ram`; failed, cancelled, cancelling → status (+ error-desc when failed)
 *   destination  status, socket-address while listening, error-desc when failed
 */
import type { OutgoingStats } from './outgoing';
import type { MigrationStatus } from './state';

export interface MigrationRamInfo {
  transferred: number;
  remaining: number;
  total: number;
  duplicate: number;
  normal: number;
  'normal-bytes': number;
  'dirty-pages-rate': number;
  mbps: number;
  'dirty-sync-count': number;
  'postcopy-requests': number;
  'page-size': number;
  'multifd-bytes': number;
  'pages-per-second': number;
  'precopy-bytes': number;
  'downtime-bytes': number;
  'postcopy-bytes': number;
  'dirty-sync-missed-zero-copy': number;
}

export type ListenSocketAddress = { type: 'inet'; host: string; port: string } | { type: 'unix'; path: string };

export interface MigrationInfo {
  status?: MigrationStatus;
  ram?: MigrationRamInfo;
  'total-time'?: number;
  'expected-downtime'?: number;
  downtime?: number;
  'setup-time'?: number;
  'cpu-throttle-percentage'?: number;
  'error-desc'?: string;
  'socket-address'?: ListenSocketAddress[];
  'postcopy-blocktime'?: number;
  'postcopy-vcpu-blocktime'?: number[];
  'postcopy-latency'?: number;
  'postcopy-vcpu-latency'?: number[];
  'postcopy-non-vcpu-latency'?: number;
  'postcopy-latency-dist'?: number[];
}

export function sourceInfo(status: MigrationStatus, s: OutgoingStats, autoConverge: boolean): MigrationInfo {
  const info: MigrationInfo = { status };
  if (status === 'failed' || status === 'cancelled' || status === 'cancelling') {
    if (s.errorDesc && status === 'failed') info['error-desc'] = s.errorDesc;
    return info;
  }
  if (status === 'setup') return info;
  info['total-time'] = Math.round(s.totalTime);
  // QEMU shows the downtime once the guest has stopped for good: completed, or in postcopy.
  if (status === 'completed' || status.startsWith('postcopy-')) info.downtime = Math.round(s.downtime);
  else info['expected-downtime'] = Math.round(s.expectedDowntime);
  if (status === 'postcopy-paused' && s.errorDesc) info['error-desc'] = s.errorDesc;
  info['setup-time'] = Math.round(s.setupTime);
  info.ram = {
    transferred: s.transferred,
    remaining: s.remaining,
    total: s.total,
    duplicate: s.duplicate,
    normal: s.normal,
    'normal-bytes': s.normal * 4096,
    'dirty-pages-rate': s.dirtyPagesRate,
    mbps: s.mbps,
    'dirty-sync-count': s.dirtySyncCount,
    'postcopy-requests': s.postcopyRequests,
    'page-size': 4096,
    'multifd-bytes': s.multifdBytes,
    'pages-per-second': Math.round(s.pagesPerSecond),
    'precopy-bytes': s.precopyBytes,
    'downtime-bytes': s.downtimeBytes,
    'postcopy-bytes': s.postcopyBytes,
    'dirty-sync-missed-zero-copy': 0,
  };
  if (s.throttlePercentage > 0 || autoConverge) info['cpu-throttle-percentage'] = s.throttlePercentage;
  return info;
}
