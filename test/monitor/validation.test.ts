import { checkParameters, defaultCapabilities, defaultParameters } from '../../lib/migration';
import { Monitor } from '../../lib/monitor';
import type { QmpSessionState } from '../../lib/monitor/dispatcher';
import { NamedFdTable } from '../../lib/monitor/fd-table';
import { fromPlain } from '../../lib/monitor/json/value';
import { JsonMessageParser } from '../../lib/monitor/json/parser';
import { FakeBackend } from './helpers';

let backend: FakeBackend;
let monitor: Monitor;

beforeEach(() => {
  backend = new FakeBackend();
  monitor = new Monitor({ backend });
  backend.attach(monitor.events);
});

async function run(execute: string, args?: unknown): Promise<any> {
  const session: QmpSessionState = { commandMode: true, oobEnabled: false, oobOffered: true };
  const req: Record<string, unknown> = { execute };
  if (args !== undefined) req.arguments = args;
  return monitor.dispatcher.dispatch(fromPlain(req), session, { monitor: 'qmp', fds: new NamedFdTable() });
}

async function err(execute: string, args?: unknown): Promise<string> {
  const r = await run(execute, args);
  expect(r.error?.class).toBe('GenericError');
  return r.error.desc;
}

const main = (addr: unknown) => ({ 'channel-type': 'main', addr });

describe('argument validation (QEMU qobject-input-visitor texts)', () => {
  test.each<[string, unknown, string]>([
    ['migrate', { uri: 1 }, "Invalid parameter type for 'uri', expected: string"],
    ['migrate-recover', {}, "Parameter 'uri' is missing"],
    ['stop', { foo: 1 }, "Parameter 'foo' is unexpected"],
    ['migrate', { uri: 'x', foo: 1 }, "Parameter 'foo' is unexpected"],
    ['migrate-set-capabilities', { capabilities: [{ capability: 'bogus', state: true }] },
      "Parameter 'capability' does not accept value 'bogus'"],
    ['migrate-set-capabilities', { capabilities: [{ capability: 'events', state: 'yes' }] },
      "Invalid parameter type for 'capabilities[0].state', expected: boolean"],
    ['migrate-set-capabilities', { capabilities: {} }, "Invalid parameter type for 'capabilities', expected: array"],
    ['migrate-set-capabilities', { capabilities: [1] }, "Invalid parameter type for 'capabilities[0]', expected: object"],
    ['migrate-set-capabilities', { capabilities: [{ capability: 'events' }] }, "Parameter 'capabilities[0].state' is missing"],
    ['migrate-set-capabilities', { capabilities: [{ capability: 'events', state: true, x: 1 }] },
      "Parameter 'capabilities[0].x' is unexpected"],
    ['migrate-set-capabilities', { capabilities: [{ capability: 7, state: true }] },
      "Invalid parameter type for 'capabilities[0].capability', expected: string"],
    ['migrate-set-parameters', { 'multifd-channels': 256 }, "Parameter 'multifd-channels' expects uint8_t"],
    ['migrate-set-parameters', { 'multifd-channels': -1 }, "Parameter 'multifd-channels' expects uint8_t"],
    ['migrate-set-parameters', { 'multifd-channels': '2' }, "Parameter 'multifd-channels' expects uint64"],
    ['migrate-set-parameters', { 'downtime-limit': 1.5 }, "Parameter 'downtime-limit' expects uint64"],
    ['migrate-set-parameters', { 'downtime-limit': '1k' }, "Parameter 'downtime-limit' expects uint64"],
    ['migrate-set-parameters', { 'x-checkpoint-delay': 2 ** 32 }, "Parameter 'x-checkpoint-delay' expects uint32_t"],
    ['migrate-set-parameters', { 'cpu-throttle-tailslow': 1 }, "Invalid parameter type for 'cpu-throttle-tailslow', expected: boolean"],
    ['migrate-set-parameters', { 'tls-creds': 5 }, "Invalid parameter type for 'tls-creds', expected: StrOrNull"],
    ['migrate-set-parameters', { mode: 'cpr-magic' }, "Parameter 'mode' does not accept value 'cpr-magic'"],
    ['migrate-set-parameters', { 'zero-page-detection': 'fast' }, "Parameter 'zero-page-detection' does not accept value 'fast'"],
    ['migrate-set-parameters', { 'multifd-compression': 'qpl' }, "Parameter 'multifd-compression' does not accept value 'qpl'"],
    ['migrate-set-parameters', { 'cpr-exec-command': ['a', 1] }, "Invalid parameter type for 'cpr-exec-command[1]', expected: string"],
    ['human-monitor-command', { 'command-line': 'x', 'cpu-index': 'x' }, "Invalid parameter type for 'cpu-index', expected: integer"],
    ['human-monitor-command', { 'command-line': 'x', 'cpu-index': 1.5 }, "Invalid parameter type for 'cpu-index', expected: integer"],
    ['migrate-continue', { state: 'sleeping' }, "Parameter 'state' does not accept value 'sleeping'"],
    ['migrate', { channels: [main({ transport: 'carrier-pigeon' })] }, "Parameter 'transport' does not accept value 'carrier-pigeon'"],
    ['migrate', { channels: [main({ transport: 'socket', host: 'h' })] }, "Parameter 'channels[0].addr.type' is missing"],
    ['migrate', { channels: [main({ transport: 'socket', type: 'inet', host: 'h', port: 1 })] },
      "Invalid parameter type for 'channels[0].addr.port', expected: string"],
    ['migrate', { channels: [main({ transport: 'exec', args: ['cat'], path: 'x' })] }, "Parameter 'channels[0].addr.path' is unexpected"],
    ['migrate', { channels: [main({ transport: 'file', filename: 'f' })] }, "Parameter 'channels[0].addr.offset' is missing"],
    ['migrate', { channels: [{ 'channel-type': 'side', addr: {} }] }, "Parameter 'channel-type' does not accept value 'side'"],
  ])('%s %j', async (cmd, args, desc) => {
    expect(await err(cmd, args)).toBe(desc);
  });

  test('a JSON double is not an integer, even 1.0 (QNum kinds)', async () => {
    let parsed: any;
    new JsonMessageParser((v) => (parsed = v)).feed(
      Buffer.from('{"execute": "migrate-set-parameters", "arguments": {"multifd-channels": 1.0}}'),
    );
    const session: QmpSessionState = { commandMode: true, oobEnabled: false, oobOffered: true };
    const r = await monitor.dispatcher.dispatch(parsed, session, { monitor: 'qmp', fds: new NamedFdTable() });
    expect(r).toEqual({ error: { class: 'GenericError', desc: "Parameter 'multifd-channels' expects uint64" } });
  });

  test('valid arguments reach the backend typed', async () => {
    expect(await run('migrate', { channels: [main({ transport: 'socket', type: 'unix', path: '/tmp/m' })], resume: false }))
      .toEqual({ return: {} });
    expect(backend.migration.lastMigrate).toEqual({
      main: { 'channel-type': 'main', addr: { transport: 'socket', type: 'unix', path: '/tmp/m' } },
      cpr: undefined,
      resume: false,
    });
    expect(await run('pmemsave', { val: 4096, size: 16, filename: 'dump' })).toEqual({ return: {} });
    expect(backend.calls).toContain('pmemsave 4096 16 dump');
  });

  test("migrate's uri/channels rules (qmp_migrate, migrate_channels_parse)", async () => {
    const unix = main({ transport: 'socket', type: 'unix', path: 'p' });
    const cpr = { 'channel-type': 'cpr', addr: { transport: 'socket', type: 'unix', path: 'c' } };
    expect(await err('migrate', {})).toBe("need either 'uri' or 'channels' argument");
    expect(await err('migrate', { uri: 'unix:p', channels: [unix] })).toBe("need either 'uri' or 'channels' argument");
    expect(await err('migrate', { channels: [unix, unix] })).toBe('Channel list has more than one main entry');
    expect(await err('migrate', { channels: [cpr] })).toBe('Channel list has no main entry');
    expect(await err('migrate-incoming', { channels: [unix, cpr] })).toBe("Channel list must have only one entry, for type 'main'");
    expect(await run('migrate-set-parameters', { mode: 'cpr-transfer' })).toEqual({ return: {} });
    expect(await err('migrate', { uri: 'unix:p' })).toBe("missing 'cpr' migration channel");
    expect(await run('migrate', { channels: [cpr, unix] })).toEqual({ return: {} });
    expect(backend.migration.lastMigrate?.cpr).toEqual(cpr);
    expect(await run('migrate-incoming', { uri: 'tcp:0:4444' })).toEqual({ return: {} });
    expect(backend.migration.lastIncoming).toEqual({ uri: 'tcp:0:4444', main: undefined, exitOnError: true });
  });

  test('migrate-set-parameters: tls null means "", ranges are checked on the merged values', async () => {
    expect(await run('migrate-set-parameters', { 'tls-creds': 'tls0', 'tls-hostname': null })).toEqual({ return: {} });
    let p = (await run('query-migrate-parameters')).return;
    expect(p['tls-creds']).toBe('tls0');
    expect(p['tls-hostname']).toBe('');
    await run('migrate-set-parameters', { 'tls-creds': null });
    p = (await run('query-migrate-parameters')).return;
    expect(p['tls-creds']).toBe('');
  });
});

describe('query-migrate-parameters / -capabilities', () => {
  test('defaults, in QEMU member order', async () => {
    const p = (await run('query-migrate-parameters')).return;
    expect(Object.keys(p)).toEqual([
      'announce-initial', 'announce-max', 'announce-rounds', 'announce-step', 'throttle-trigger-threshold',
      'cpu-throttle-initial', 'cpu-throttle-increment', 'cpu-throttle-tailslow', 'tls-creds', 'tls-hostname',
      'tls-authz', 'max-bandwidth', 'avail-switchover-bandwidth', 'downtime-limit', 'x-checkpoint-delay',
      'multifd-channels', 'xbzrle-cache-size', 'max-postcopy-bandwidth', 'max-cpu-throttle', 'multifd-compression',
      'multifd-zlib-level', 'multifd-qatzip-level', 'multifd-zstd-level', 'x-vcpu-dirty-limit-period',
      'vcpu-dirty-limit', 'mode', 'zero-page-detection', 'direct-io', 'cpr-exec-command', 'x-postcopy-placement',
    ]);
    expect(p).toMatchObject({
      'announce-initial': 50, 'announce-max': 550, 'announce-rounds': 5, 'announce-step': 100,
      'throttle-trigger-threshold': 50, 'cpu-throttle-initial': 20, 'cpu-throttle-increment': 10,
      'max-cpu-throttle': 99, 'max-bandwidth': 134217728, 'downtime-limit': 300, 'x-checkpoint-delay': 20000,
      'multifd-channels': 2, 'xbzrle-cache-size': 67108864, 'max-postcopy-bandwidth': 0,
      'multifd-compression': 'none', mode: 'normal', 'zero-page-detection': 'multifd', 'direct-io': false,
      'vcpu-dirty-limit': 1, 'x-vcpu-dirty-limit-period': 1000, 'cpr-exec-command': [], 'x-postcopy-placement': 'copy',
    });
  });

  test('block-bitmap-mapping shows only once set; a node it names must exist (there are none)', async () => {
    expect((await run('query-migrate-parameters')).return['block-bitmap-mapping']).toBeUndefined();
    expect(await run('migrate-set-parameters', { 'block-bitmap-mapping': [] })).toEqual({ return: {} });
    expect((await run('query-migrate-parameters')).return['block-bitmap-mapping']).toEqual([]);
    const mapping = [{ 'node-name': 'n0', alias: 'a0', bitmaps: [{ name: 'b', alias: 'ba' }] }];
    expect(await err('migrate-set-parameters', { 'block-bitmap-mapping': mapping })).toBe("Block node 'n0' not found");
  });

  test('capabilities: all off, QAPI order', async () => {
    const caps = (await run('query-migrate-capabilities')).return;
    expect(caps[0]).toEqual({ capability: 'xbzrle', state: false });
    expect(caps.map((c: { capability: string }) => c.capability)).toContain('postcopy-preempt');
    expect(caps.every((c: { state: boolean }) => c.state === false)).toBe(true);
  });
});

describe('QEMU rules for capabilities and parameters (migration/options.c)', () => {
  const setCaps = (caps: Record<string, boolean>) =>
    run('migrate-set-capabilities', { capabilities: Object.entries(caps).map(([capability, state]) => ({ capability, state })) });
  const capErr = async (caps: Record<string, boolean>) => (await setCaps(caps)).error?.desc;

  test.each<[Record<string, boolean>, string]>([
    [{ 'postcopy-preempt': true }, 'Postcopy preempt requires postcopy-ram'],
    [{ 'switchover-ack': true }, "Capability 'switchover-ack' requires capability 'return-path'"],
    [{ multifd: true, xbzrle: true }, 'Multifd is not compatible with xbzrle'],
    [{ 'mapped-ram': true, xbzrle: true }, 'Mapped-ram migration is incompatible with xbzrle'],
    [{ 'mapped-ram': true, 'postcopy-ram': true }, 'Mapped-ram migration is incompatible with postcopy'],
    [{ 'postcopy-ram': true, 'x-ignore-shared': true }, 'Postcopy is not compatible with ignore-shared'],
    [{ 'dirty-limit': true }, "dirty-limit requires KVM with accelerator property 'dirty-ring-size' set"],
    [{ 'dirty-limit': true, 'auto-converge': true }, 'dirty-limit conflicts with auto-converge either of then available currently'],
    [{ 'x-colo': true }, "QEMU compiled without replication module can't enable COLO"],
    [{ 'background-snapshot': true }, "Capability 'background-snapshot' is not supported by livemig: background snapshots are not implemented"],
    [{ xbzrle: true }, "Capability 'xbzrle' is not supported by livemig: XBZRLE delta encoding is not implemented"],
    [{ 'zero-copy-send': true }, 'Zero copy only available for non-compressed non-TLS multifd migration'],
  ])('%j is refused', async (caps, desc) => {
    expect(await capErr(caps)).toBe(desc);
    // nothing was applied
    expect((await run('query-migrate-capabilities')).return.every((c: { state: boolean }) => !c.state)).toBe(true);
  });

  test('valid combinations apply; capabilities freeze while migrating', async () => {
    expect(await setCaps({ 'auto-converge': true, 'return-path': true, 'switchover-ack': true }))
      .toEqual({ return: {} });
    expect(backend.migration.config.capability('switchover-ack')).toBe(true);
    await run('migrate', { uri: 'unix:/x' });
    expect(await capErr({ events: true })).toBe("There's a migration process in progress");
    // parameters still change while migrating (QEMU applies them live)
    expect(await run('migrate-set-parameters', { 'max-bandwidth': 1 })).toEqual({ return: {} });
  });

  test('capabilities that must precede an incoming migration', async () => {
    backend.migration.incomingStarted = true;
    expect(await capErr({ multifd: true })).toBe('Multifd must be set before incoming starts');
    expect(await capErr({ 'postcopy-ram': true, 'postcopy-preempt': true })).toBe('Postcopy preempt must be set before incoming starts');
  });

  test.each<[Record<string, unknown>, string]>([
    [{ 'cpu-throttle-initial': 0 }, 'Option cpu_throttle_initial expects an integer in the range of 1 to 99'],
    [{ 'cpu-throttle-initial': 100 }, 'Option cpu_throttle_initial expects an integer in the range of 1 to 99'],
    [{ 'cpu-throttle-increment': 0 }, 'Option cpu_throttle_increment expects an integer in the range of 1 to 99'],
    [{ 'throttle-trigger-threshold': 101 }, 'Option throttle_trigger_threshold expects an integer in the range of 1 to 100'],
    [{ 'max-cpu-throttle': 10 }, 'Option max_cpu_throttle expects an integer in the range of cpu_throttle_initial to 99'],
    [{ 'cpu-throttle-initial': 50, 'max-cpu-throttle': 40 }, 'Option max_cpu_throttle expects an integer in the range of cpu_throttle_initial to 99'],
    [{ 'downtime-limit': 2000001 }, 'Option downtime_limit expects an integer in the range of 0 to (2000 * 1000) ms'],
    [{ 'multifd-channels': 0 }, 'Option multifd_channels expects a value between 1 and 255'],
    [{ 'multifd-zlib-level': 10 }, 'Option multifd_zlib_level expects a value between 0 and 9'],
    [{ 'multifd-qatzip-level': 0 }, 'Option multifd_qatzip_level expects a value between 1 and 9'],
    [{ 'multifd-zstd-level': 21 }, 'Option multifd_zstd_level expects a value between 0 and 20'],
    [{ 'xbzrle-cache-size': 1000 }, 'Option xbzrle_cache_size expects a power of two no less than the target page size'],
    [{ 'xbzrle-cache-size': 3 * 4096 }, 'Option xbzrle_cache_size expects a power of two no less than the target page size'],
    [{ 'announce-initial': 100001 }, 'Option announce_initial expects a value between 0 and 100000'],
    [{ 'announce-max': 100001 }, 'Option announce_max expects a value between 0 and 100000'],
    [{ 'announce-rounds': 1001 }, 'Option announce_rounds expects a value between 0 and 1000'],
    [{ 'announce-step': 0 }, 'Option announce_step expects a value between 0 and 10000'],
    [{ 'x-vcpu-dirty-limit-period': 1001 }, 'Option x-vcpu-dirty-limit-period expects a value between 1 and 1000'],
    [{ 'vcpu-dirty-limit': 0 }, "Parameter 'vcpu_dirty_limit' must be greater than 1 MB/s"],
  ])('%j is refused', async (params, desc) => {
    expect(await err('migrate-set-parameters', params)).toBe(desc);
    expect((await run('query-migrate-parameters')).return['cpu-throttle-initial']).toBe(20);
  });

  test('edges that are allowed', async () => {
    for (const p of [
      { 'downtime-limit': 2000000 }, { 'multifd-channels': 255 }, { 'xbzrle-cache-size': 4096 },
      { 'cpu-throttle-initial': 99 }, { 'max-cpu-throttle': 99 }, { 'multifd-compression': 'zlib' },
    ]) {
      expect(await run('migrate-set-parameters', p)).toEqual({ return: {} });
    }
  });

  test('zero-copy-send refuses compression once set (the rule itself: both are refused by livemig)', () => {
    const caps = { ...defaultCapabilities(), multifd: true, 'zero-copy-send': true };
    expect(() => checkParameters({ ...defaultParameters(), 'multifd-compression': 'zlib' }, caps))
      .toThrow('Zero copy only available for non-compressed non-TLS multifd migration');
    expect(() => checkParameters({ ...defaultParameters(), 'tls-creds': 'x' }, caps))
      .toThrow('Zero copy only available for non-compressed non-TLS multifd migration');
  });

  test('the engine is told what changed', async () => {
    const seen: unknown[] = [];
    backend.migration.config.subscribe((c: unknown) => seen.push(c));
    await setCaps({ events: true, xbzrle: false });
    await run('migrate-set-parameters', { 'max-bandwidth': 1000, 'downtime-limit': 10 });
    expect(seen).toEqual([
      { kind: 'capabilities', changed: ['events'] },
      { kind: 'parameters', changed: ['max-bandwidth', 'downtime-limit'] },
    ]);
    expect(backend.migration.config.parameter('downtime-limit')).toBe(10);
  });
});
