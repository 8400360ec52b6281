import { PassThrough } from 'node:stream';
import { Monitor } from '../../lib/monitor';
import { sizeToStr } from '../../lib/monitor/hmp/info';
import { FakeBackend, RawClient, tmpSocketPath } from './helpers';

let backend: FakeBackend;
let monitor: Monitor;

beforeEach(() => {
  backend = new FakeBackend();
  monitor = new Monitor({ backend, hmpPollMs: 20 });
  backend.attach(monitor.events);
});

afterEach(() => monitor.close());

const hmp = (line: string) => monitor.humanMonitorCommand(line);
const lines = (...l: string[]) => l.map((x) => `${x}\r\n`).join('');
const params = () => backend.migration.config.parameterValues();

describe('HMP info commands (migration-hmp-cmds.c formats)', () => {
  test('info status and info version', async () => {
    expect(await hmp('info status')).toBe('VM status: running\r\n');
    await hmp('stop');
    expect(await hmp('info status')).toBe('VM status: paused\r\n');
    backend.state = 'postmigrate';
    expect(await hmp('info status')).toBe('VM status: paused (postmigrate)\r\n');
    expect(await hmp('info version')).toBe('10.2.0\r\n');
  });

  test('info migrate_capabilities', async () => {
    await hmp('migrate_set_capability events on');
    const out = await hmp('info migrate_capabilities');
    expect(out.startsWith(lines('xbzrle: off', 'rdma-pin-all: off', 'auto-converge: off', 'events: on'))).toBe(true);
    expect(out.split('\r\n').filter(Boolean)).toHaveLength(21);
  });

  test('info migrate_parameters with the defaults', async () => {
    expect(await hmp('info migrate_parameters')).toBe(
      lines(
        'announce-initial: 50 ms',
        'announce-max: 550 ms',
        'announce-rounds: 5',
        'announce-step: 100 ms',
        'throttle-trigger-threshold: 50',
        'cpu-throttle-initial: 20',
        'cpu-throttle-increment: 10',
        'cpu-throttle-tailslow: off',
        'max-cpu-throttle: 99',
        "tls-creds: ''",
        "tls-hostname: ''",
        "tls-authz: ''",
        'max-bandwidth: 134217728 bytes/second',
        'avail-switchover-bandwidth: 0 bytes/second',
        'max-postcopy-bandwidth: 0 bytes/second',
        'downtime-limit: 300 ms',
        'x-checkpoint-delay: 20000 ms',
        'multifd-channels: 2',
        'multifd-compression: none',
        'zero-page-detection: multifd',
        'xbzrle-cache-size: 67108864 bytes',
        'x-vcpu-dirty-limit-period: 1000 ms',
        'vcpu-dirty-limit: 1 MB/s',
        'mode: normal',
        'direct-io: off',
        'cpr-exec-command:',
      ),
    );
  });

  test('info migrate: nothing before the first migration, QEMU 10.2 layout after', async () => {
    expect(await hmp('info migrate')).toBe('');
    await hmp('migrate -d unix:/tmp/x');
    backend.migration.status = 'active';
    expect(await hmp('info migrate')).toBe(
      lines(
        'Status: \t\tactive',
        'Time (ms): \t\ttotal=1234, setup=12, exp_down=300',
        'RAM info:',
        '  Throughput (Mbps): \t811.50',
        '  Sizes: \t\tpagesize=4 KiB, total=128 MiB',
        '  Transfers: \t\ttransferred=1.5 KiB, remain=0 B',
        '    Channels: \t\tprecopy=1.5 KiB, multifd=0 B, postcopy=0 B',
        '    Page Types: \tnormal=3, zero=10',
        '  Page Rates (pps): \ttransfer=7',
        '  Others: \t\tdirty_syncs=2',
      ),
    );
    const all = await hmp('info migrate -a');
    expect(all).toContain(lines('Globals:', '  store-global-state: on', '  only-migratable: off', '  send-configuration: on'));
    expect(all).toContain('  send-switchover-start: on\r\n');
    backend.migration.status = 'failed';
    backend.migration.errorDesc = 'Unable to write to socket: Broken pipe';
    expect(await hmp('info migrate')).toBe('Status: \t\tfailed (Unable to write to socket: Broken pipe)\r\n');
  });

  test('size_to_str as QEMU prints it', () => {
    expect(sizeToStr(0)).toBe('0 B');
    expect(sizeToStr(999)).toBe('999 B');
    expect(sizeToStr(1000)).toBe('0.977 KiB');
    expect(sizeToStr(4096)).toBe('4 KiB');
    expect(sizeToStr(1536)).toBe('1.5 KiB');
    expect(sizeToStr(2 ** 30)).toBe('1 GiB');
    expect(sizeToStr(1234567890)).toBe('1.15 GiB');
  });
});

describe('HMP migrate_set_capability / migrate_set_parameter', () => {
  test('capabilities', async () => {
    expect(await hmp('migrate_set_capability auto-converge on')).toBe('');
    expect(backend.migration.config.capability('auto-converge')).toBe(true);
    expect(await hmp('migrate_set_capability bogus on')).toBe('Error: invalid parameter value: bogus\r\n');
    expect(await hmp('migrate_set_capability events maybe')).toBe(
      lines("Expected 'on' or 'off'", 'Try "help migrate_set_capability" for more information'),
    );
    expect(await hmp('migrate_set_capability switchover-ack on')).toBe(
      "Error: Capability 'switchover-ack' requires capability 'return-path'\r\n",
    );
  });

  test.each<[string, string, number | boolean | string | string[]]>([
    ['max-bandwidth', '100', 100 * 2 ** 20],
    ['max-bandwidth', '1G', 2 ** 30],
    ['max-bandwidth', '100k', 102400],
    ['max-bandwidth', '1.5', 1.5 * 2 ** 20],
    ['avail-switchover-bandwidth', '8', 8 * 2 ** 20],
    ['max-postcopy-bandwidth', '4096', 4096],
    ['max-postcopy-bandwidth', '1M', 2 ** 20],
    ['downtime-limit', '500', 500],
    ['xbzrle-cache-size', '1M', 2 ** 20],
    ['announce-step', '20', 20],
    ['cpu-throttle-tailslow', 'on', true],
    ['cpu-throttle-tailslow', 'YES', true],
    ['direct-io', 'false', false],
    ['cpu-throttle-initial', '0x10', 16],
    ['multifd-channels', '8', 8],
    ['x-checkpoint-delay', '100', 100],
    ['tls-creds', 'tls0', 'tls0'],
    ['mode', 'cpr-transfer', 'cpr-transfer'],
    ['zero-page-detection', 'legacy', 'legacy'],
    ['multifd-compression', 'zlib', 'zlib'],
    ['cpr-exec-command', `qemu -incoming 'file:/a b'`, ['qemu', '-incoming', 'file:/a b']],
  ])('migrate_set_parameter %s %s', async (name, value, expected) => {
    expect(await hmp(`migrate_set_parameter ${name} ${value.includes(' ') ? `"${value}"` : value}`)).toBe('');
    expect(params()[name as keyof ReturnType<typeof params>]).toEqual(expected);
  });

  test.each<[string, string]>([
    ['bogus 1', 'Error: invalid parameter value: bogus'],
    ['max-bandwidth abc', 'Error: Invalid size abc'],
    ['max-bandwidth -1', 'Error: Invalid size -1'],
    ['downtime-limit x', "Error: Parameter 'downtime-limit' expects a non-negative number below 2^64"],
    ['downtime-limit 3000000', 'Error: Option downtime_limit expects an integer in the range of 0 to (2000 * 1000) ms'],
    ['cpu-throttle-initial 300', "Error: Parameter 'cpu-throttle-initial' expects uint8_t"],
    ['cpu-throttle-initial x', "Error: Parameter 'cpu-throttle-initial' expects uint64"],
    ['cpu-throttle-initial 0', 'Error: Option cpu_throttle_initial expects an integer in the range of 1 to 99'],
    ['cpu-throttle-tailslow maybe', "Error: Invalid parameter type for 'cpu-throttle-tailslow', expected: boolean"],
    ['mode bogus', "Error: Parameter 'mode' does not accept value 'bogus'"],
    ['block-bitmap-mapping x', 'Error: The block-bitmap-mapping parameter can only be set through QMP'],
    ['xbzrle-cache-size 1000', 'Error: Option xbzrle_cache_size expects a power of two no less than the target page size'],
  ])('migrate_set_parameter %s', async (args, out) => {
    expect(await hmp(`migrate_set_parameter ${args}`)).toBe(`${out}\r\n`);
  });

  test('a missing value', async () => {
    expect(await hmp('migrate_set_parameter downtime-limit')).toBe(
      lines('migrate_set_parameter: string expected', 'Try "help migrate_set_parameter" for more information'),
    );
  });

  test('info shows what was set', async () => {
    await hmp('migrate_set_parameter cpr-exec-command "qemu -S"');
    await hmp('migrate_set_parameter max-bandwidth 1G');
    const out = await hmp('info migrate_parameters');
    expect(out).toContain('max-bandwidth: 1073741824 bytes/second\r\n');
    expect(out).toContain('cpr-exec-command: qemu -S\r\n');
  });
});

describe('HMP commands and parsing (monitor/hmp.c)', () => {
  test('migrate, its flags and errors', async () => {
    expect(await hmp('migrate -d unix:/tmp/a')).toBe('');
    expect(backend.migration.lastMigrate).toEqual({ uri: 'unix:/tmp/a', resume: false });
    await hmp('migrate_cancel');
    expect(await hmp('migrate -r -d tcp:h:1')).toBe(lines('migrate: extraneous characters at the end of line',
      'Try "help migrate" for more information'));
    expect(await hmp('migrate -d -r tcp:h:1')).toBe('');
    expect(backend.migration.lastMigrate).toEqual({ uri: 'tcp:h:1', resume: true });
    expect(await hmp('migrate')).toBe(lines('migrate: string expected', 'Try "help migrate" for more information'));
    expect(await hmp('migrate -x uri')).toBe(lines('migrate: unsupported option -x', 'Try "help migrate" for more information'));
    expect(await hmp('migrate -d "unix:/tmp/with space"')).toBe("Error: There's a migration process in progress\r\n");
  });

  test('migrate without -d cannot wait inside human-monitor-command', async () => {
    expect(await hmp('migrate unix:/tmp/b')).toBe('terminal does not allow synchronous migration, continuing detached\r\n');
  });

  test('the other migration commands map onto QMP', async () => {
    expect(await hmp('migrate_incoming tcp:0:4444')).toBe('');
    expect(backend.migration.lastIncoming).toEqual({ uri: 'tcp:0:4444', exitOnError: true });
    expect(await hmp('migrate_recover tcp:0:5555')).toBe('');
    expect(await hmp('migrate_start_postcopy')).toBe('');
    expect(await hmp('migrate_continue pre-switchover')).toBe('Error: Migration not in expected state: none\r\n');
    expect(await hmp('migrate_continue nonsense')).toBe('Error: invalid parameter value: nonsense\r\n');
    expect(await hmp('migrate_pause')).toBe(
      'Error: migrate-pause is currently only supported during postcopy-active or postcopy-recover state\r\n',
    );
    expect(backend.migration.calls).toEqual(['incoming', 'recover tcp:0:5555', 'postcopy']);
  });

  test('run-state commands and their aliases', async () => {
    expect(await hmp('s')).toBe('');
    expect(await hmp('c')).toBe('');
    expect(await hmp('system_reset')).toBe('');
    expect(await hmp('q')).toBe('');
    expect(backend.calls).toEqual(['stop', 'cont', 'system_reset', 'quit']);
  });

  test('unknown commands', async () => {
    expect(await hmp('frobnicate now')).toBe("unknown command: 'frobnicate'\r\n");
    expect(await hmp('info frobnicate')).toBe("unknown command: 'info frobnicate'\r\n");
    expect(await hmp('')).toBe('');
    expect(await hmp('   ')).toBe('');
    expect(await hmp('stop now')).toBe(lines('stop|s: extraneous characters at the end of line',
      'Try "help stop" for more information'));
  });

  test('help', async () => {
    const all = await hmp('help');
    expect(all).toContain('migrate [-d] [-r] uri -- migrate to URI (using -d to not wait for completion)\r\n\t\t\t -r to resume a paused postcopy migration\r\n');
    expect(all).toContain('quit|q  -- quit the emulator\r\n');
    expect(all).toContain('info [subcommand] -- show various information about the system state\r\n');
    expect(await hmp('help migrate_set_parameter')).toBe('migrate_set_parameter parameter value -- Set the parameter for migration\r\n');
    expect(await hmp('? info status')).toBe('info status  -- show the current VM status (running|paused)\r\n');
    expect(await hmp('help nope')).toBe("unknown command: 'nope'\r\n");
    expect(await hmp('info')).toBe(await hmp('help info'));
    expect(await hmp('info')).toContain('info migrate [-a] -- show migration status (-a: all, dump all status)\r\n');
  });
});

describe('HMP on a chardev', () => {
  test('banner, prompt, and a migrate that waits for the result', async () => {
    const p = tmpSocketPath('hmp.sock');
    await monitor.addHmp({ kind: 'unix', path: p, server: true, wait: false });
    const c = await RawClient.connect(p);
    const read = async (n: number) => {
      let s = '';
      while (s.length < n) s += await c.line().catch(() => '');
      return s;
    };
    expect(await c.line()).toBe("QEMU 10.2.0 monitor - type 'help' for more information\r\n");
    c.send('info status\n');
    expect(await c.line()).toBe('(qemu) VM status: running\r\n');
    backend.migration.onMigrate = (m) => {
      setTimeout(() => m.setStatus('active'), 30);
      setTimeout(() => {
        m.errorDesc = 'Connection refused';
        m.setStatus('failed');
      }, 90);
    };
    const t0 = Date.now();
    c.send('migrate unix:/tmp/nowhere\ninfo status\r\n');
    expect(await c.line()).toBe('(qemu) Connection refused\r\n');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(80);
    expect(await read(1)).toBe('(qemu) VM status: running\r\n');
    c.close();
  });

  test('lines sent before a half-close still run', async () => {
    const p = tmpSocketPath('hmp2.sock');
    await monitor.addHmp({ kind: 'unix', path: p, server: true, wait: false });
    const c = await RawClient.connect(p);
    c.send('stop\ninfo status\n');
    c.sock.end();
    expect(await c.line()).toBe("QEMU 10.2.0 monitor - type 'help' for more information\r\n");
    expect(await c.line()).toBe('(qemu) (qemu) VM status: paused\r\n');
    await expect(c.line(2000)).rejects.toThrow('connection closed');
  });

  test('stdio', async () => {
    const stdin = new PassThrough();
    const stdout = new PassThrough();
    const m = new Monitor({ backend, stdin, stdout });
    await m.addHmp({ kind: 'stdio' });
    let out = '';
    stdout.on('data', (d) => (out += d.toString()));
    stdin.write('info version\n');
    await new Promise((r) => setTimeout(r, 30));
    expect(out).toBe("QEMU 10.2.0 monitor - type 'help' for more information\r\n(qemu) 10.2.0\r\n(qemu) ");
    await m.close();
  });
});
