/**
 * Migration types (qapi/migration.json as of QEMU 10.2): statuses, capabilities, parameters,
 * channels and MigrationInfo. Member order is QEMU's; query output follows it.
 */

import { MIGRATION_CAPABILITIES } from '../../migration/options/capabilities';
import { MIGRATION_STATUSES } from '../../migration/state';
import * as zlib from 'node:zlib';
import { SocketAddress, InetSocketAddress } from './sockets';
import {
  alternate, bool, EnumType, enumType, int, list, number, opt, qnull, req, size, str, struct, uint32, uint64, uint8, union,
} from './types';

export const MigrationStatus = enumType('MigrationStatus', MIGRATION_STATUSES, 'An enumeration of migration status.');

export const MigrationCapability = enumType(
  'MigrationCapability',
  MIGRATION_CAPABILITIES,
  'Migration capabilities enumeration.',
);

export const MigrationCapabilityStatus = struct('MigrationCapabilityStatus', {
  capability: req(MigrationCapability, 'capability enum'),
  state: req(bool, 'capability state bool'),
});

/*
 * QEMU builds zstd, qpl, uadk and qatzip only when their libraries are present ('if':
 * CONFIG_ZSTD ...); an absent one is not a value of the enum at all. We can offer zstd when
 * Node's zlib has it, and never the hardware accelerators.
 */
const hasZstd = typeof (zlib as unknown as Record<string, unknown>).zstdCompressSync === 'function';
export const MultiFDCompression: EnumType<'none' | 'zlib' | 'zstd'> = enumType(
  'MultiFDCompression',
  hasZstd ? (['none', 'zlib', 'zstd'] as const) : (['none', 'zlib'] as const),
  'An enumeration of multifd compression methods.',
);

export const MigMode = enumType(
  'MigMode',
  ['normal', 'cpr-reboot', 'cpr-transfer', 'cpr-exec'] as const,
  'Migration mode.',
);

export const ZeroPageDetection = enumType(
  'ZeroPageDetection',
  ['none', 'legacy', 'multifd'] as const,
  'Whether and how to detect zero pages.',
);

export const StrOrNull = alternate<string | null>(
  'StrOrNull',
  [str, qnull],
  'This is a string value or the explicit lack of a string (null pointer in C).',
);

export const BitmapMigrationBitmapAliasTransform = struct('BitmapMigrationBitmapAliasTransform', {
  persistent: opt(bool, 'make the bitmap persistent or transient'),
});

export const BitmapMigrationBitmapAlias = struct('BitmapMigrationBitmapAlias', {
  name: req(str, 'The name of the bitmap.'),
  alias: req(str, 'An alias name for migration.'),
  transform: opt(BitmapMigrationBitmapAliasTransform, 'Allows the modification of the migrated bitmap.'),
});

export const BitmapMigrationNodeAlias = struct('BitmapMigrationNodeAlias', {
  'node-name': req(str, 'A block node name.'),
  alias: req(str, 'An alias block node name for migration.'),
  bitmaps: req(list(BitmapMigrationBitmapAlias), 'Mappings for the bitmaps on this node.'),
});

/*
 * MigrationParameters: one struct for migrate-set-parameters (boxed, every member optional)
 * and query-migrate-parameters (every member present, as QEMU 10.x prints them). The TLS
 * members are StrOrNull on input; null means "" (QEMU tls_opt_to_str).
 */
export const MigrationParameters = struct(
  'MigrationParameters',
  {
    'announce-initial': opt(size, 'Initial delay (in milliseconds) before sending the first announce'),
    'announce-max': opt(size, 'Maximum delay (in milliseconds) between packets in the announcement'),
    'announce-rounds': opt(size, 'Number of self-announce packets sent after migration'),
    'announce-step': opt(size, 'Increase in delay (in milliseconds) between subsequent packets'),
    'throttle-trigger-threshold': opt(uint8, 'dirty/transferred ratio, in percent, that triggers throttling'),
    'cpu-throttle-initial': opt(uint8, 'Initial percentage of time guest cpus are throttled'),
    'cpu-throttle-increment': opt(uint8, 'throttle percentage increase each time'),
    'cpu-throttle-tailslow': opt(bool, 'make CPU throttling slower at tail stage'),
    'tls-creds': opt(StrOrNull, 'ID of the tls-creds object; empty means plain text'),
    'tls-hostname': opt(StrOrNull, "migration target's hostname for validating the server's certificate"),
    'tls-authz': opt(StrOrNull, "ID of the 'authz' object checking the peer's certificate"),
    'max-bandwidth': opt(size, 'maximum speed for migration, in bytes per second'),
    'avail-switchover-bandwidth': opt(size, 'bandwidth available at switchover, for the switchover decision'),
    'downtime-limit': opt(uint64, 'maximum tolerated downtime, in milliseconds'),
    'x-checkpoint-delay': opt(uint32, 'delay (in ms) between two COLO checkpoints', ['unstable']),
    'multifd-channels': opt(uint8, 'Number of channels used to migrate data in parallel'),
    'xbzrle-cache-size': opt(size, 'cache size to be used by XBZRLE migration'),
    'max-postcopy-bandwidth': opt(size, 'background transfer bandwidth during postcopy, bytes/s'),
    'max-cpu-throttle': opt(uint8, 'maximum cpu throttle percentage'),
    'multifd-compression': opt(MultiFDCompression, 'Which compression method to use'),
    'multifd-zlib-level': opt(uint8, 'zlib compression level, 0..9'),
    'multifd-qatzip-level': opt(uint8, 'QATzip compression level, 1..9'),
    'multifd-zstd-level': opt(uint8, 'zstd compression level, 0..20'),
    'block-bitmap-mapping': opt(list(BitmapMigrationNodeAlias), 'Maps block nodes and bitmaps to aliases'),
    'x-vcpu-dirty-limit-period': opt(uint64, 'Periodic time (in ms) of dirty limit', ['unstable']),
    'vcpu-dirty-limit': opt(uint64, 'Dirtyrate limit (MB/s) during live migration'),
    mode: opt(MigMode, 'Migration mode'),
    'zero-page-detection': opt(ZeroPageDetection, 'Whether and how to detect zero pages'),
    'direct-io': opt(bool, 'Open migration files with O_DIRECT when possible'),
    'cpr-exec-command': opt(list(str), 'Command to start the new QEMU in cpr-exec mode'),
    'x-postcopy-placement': opt(
      enumType('PostcopyPlacement', ['copy', 'minor'] as const, 'How a postcopy destination places pages'),
      'UFFDIO_COPY (copy) or write through a second mapping and UFFDIO_CONTINUE (minor)',
      ['unstable'],
    ),
  },
  'Migration parameters.',
);

export const MigrationStats = struct('MigrationStats', {
  transferred: req(int, 'amount of bytes already transferred to the target VM'),
  remaining: req(int, 'amount of bytes remaining to be transferred'),
  total: req(int, 'total amount of bytes involved in the migration process'),
  duplicate: req(int, 'number of duplicate (zero) pages'),
  normal: req(int, 'number of normal pages'),
  'normal-bytes': req(int, 'number of normal bytes sent'),
  'dirty-pages-rate': req(int, 'number of pages dirtied by second by the guest'),
  mbps: req(number, 'throughput in megabits/sec'),
  'dirty-sync-count': req(int, 'number of times that dirty ram was synchronized'),
  'postcopy-requests': req(int, 'page requests received from the destination'),
  'page-size': req(int, 'bytes per page for the page-based statistics'),
  'multifd-bytes': req(uint64, 'bytes sent through multifd'),
  'pages-per-second': req(uint64, 'memory pages transferred per second'),
  'precopy-bytes': req(uint64, 'bytes sent in the pre-copy phase'),
  'downtime-bytes': req(uint64, 'bytes sent while the guest is paused'),
  'postcopy-bytes': req(uint64, 'bytes sent during the post-copy phase'),
  'dirty-sync-missed-zero-copy': req(uint64, 'dirty syncs that could not avoid copying'),
});

export const XBZRLECacheStats = struct('XBZRLECacheStats', {
  'cache-size': req(size, 'XBZRLE cache size'),
  bytes: req(int, 'amount of bytes already transferred'),
  pages: req(int, 'amount of pages transferred'),
  'cache-miss': req(int, 'number of cache misses'),
  'cache-miss-rate': req(number, 'rate of cache misses'),
  'encoding-rate': req(number, 'rate of encoded bytes'),
  overflow: req(int, 'number of overflows'),
});

export const VfioStats = struct('VfioStats', {
  transferred: req(int, 'bytes transferred by VFIO devices'),
});

export const MigrationInfo = struct('MigrationInfo', {
  status: opt(MigrationStatus, 'current migration status; absent if none was ever started'),
  ram: opt(MigrationStats, 'RAM migration statistics'),
  vfio: opt(VfioStats, 'VFIO statistics'),
  'xbzrle-cache': opt(XBZRLECacheStats, 'XBZRLE statistics'),
  'total-time': opt(int, 'milliseconds since migration started (final value once ended)'),
  'expected-downtime': opt(int, 'expected downtime in milliseconds, while active'),
  downtime: opt(int, 'total downtime in milliseconds, once completed'),
  'setup-time': opt(int, 'setup time in milliseconds'),
  'cpu-throttle-percentage': opt(int, 'percentage of time guest cpus are being throttled'),
  'error-desc': opt(str, 'the human readable error description'),
  'blocked-reasons': opt(list(str), 'reasons an outgoing migration is blocked'),
  'postcopy-blocktime': opt(uint32, 'total time when all vCPUs were blocked during postcopy (ms)'),
  'postcopy-vcpu-blocktime': opt(list(uint32), 'postcopy blocktime per vCPU (ms)'),
  'postcopy-latency': opt(uint64, 'average remote page fault latency (ns)'),
  'postcopy-latency-dist': opt(list(uint64), 'remote page fault latency distribution, log2 buckets'),
  'postcopy-vcpu-latency': opt(list(uint64), 'average page fault latency per vCPU (ns)'),
  'postcopy-non-vcpu-latency': opt(uint64, 'average page fault latency of non-vCPU threads (ns)'),
  'socket-address': opt(list(SocketAddress), 'the real listening addresses (destination)'),
  'dirty-limit-throttle-time-per-round': opt(uint64, 'maximum vCPU throttle time per dirty ring round (us)'),
  'dirty-limit-ring-full-time': opt(uint64, 'estimated average dirty ring full time (us)'),
});

/* ---- channels ---- */

export const MigrationAddressType = enumType('MigrationAddressType', ['socket', 'exec', 'rdma', 'file'] as const);

export const FileMigrationArgs = struct('FileMigrationArgs', {
  filename: req(str, 'The file to receive the migration stream'),
  offset: req(uint64, 'The file offset where the migration stream will start'),
});

export const MigrationExecCommand = struct('MigrationExecCommand', {
  args: req(list(str), 'command (list head) and arguments to execute'),
});

export const MigrationAddress = union(
  'MigrationAddress',
  {
    base: { transport: req(MigrationAddressType, 'The migration stream transport mechanism') },
    discriminator: 'transport',
    variants: {
      socket: SocketAddress,
      exec: MigrationExecCommand,
      rdma: InetSocketAddress,
      file: FileMigrationArgs,
    },
  },
  'Migration endpoint configuration.',
);

export const MigrationChannelType = enumType('MigrationChannelType', ['main', 'cpr'] as const);

export const MigrationChannel = struct('MigrationChannel', {
  'channel-type': req(MigrationChannelType, 'Channel type for transferring packet information'),
  addr: req(MigrationAddress, 'Migration endpoint configuration on destination interface'),
});
