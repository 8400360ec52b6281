import * as fs from 'node:fs';
import { PassThrough } from 'node:stream';
import * as net from 'node:net';
import { Monitor } from '../../lib/monitor';
import { COMMANDS } from '../../lib/monitor/schema';
import type { MigrationBackend } from '../../lib/monitor/backend';
import { FakeBackend, RawClient, tmpSocketPath } from './helpers';

const GREETING =
  '{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 10}, "package": ""}, "capabilities": ["oob"]}}\r\n';

let backend: FakeBackend;
let monitor: Monitor | undefined;
let target: string | { port: number };
const clients: RawClient[] = [];

async function client(): Promise<RawClient> {
  const c = await RawClient.connect(target);
  clients.push(c);
  return c;
}

/** The shared monitor, on a unix socket or on TCP (an ephemeral port). */
async function startMonitor(transport: 'unix' | 'tcp'): Promise<void> {
  backend = new FakeBackend();
  monitor = new Monitor({ backend, clock: () => ({ seconds: 1700000000, microseconds: 123456 }) });
  backend.attach(monitor.events);
  if (transport === 'unix') {
    target = tmpSocketPath('qmp.sock');
    await monitor.addQmp({ kind: 'unix', path: target, server: true, wait: false });
  } else {
    const s = await monitor.addQmp({ kind: 'tcp', host: '127.0.0.1', port: 0, server: true, wait: false });
    target = { port: (s.address() as net.AddressInfo).port };
  }
}

const extraMonitors: Monitor[] = [];

/** A monitor closed after the test whatever happens (an open server keeps jest alive). */
function track(m: Monitor): Monitor {
  extraMonitors.push(m);
  return m;
}

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await monitor?.close();
  monitor = undefined;
  for (const m of extraMonitors.splice(0)) await m.close();
});

describe.each(['unix', 'tcp'] as const)('QMP over %s', (transport) => {
  beforeEach(() => startMonitor(transport));

  test('greeting is QEMU\'s, one object per CRLF-terminated line', async () => {
    const c = await client();
    expect(await c.line()).toBe(GREETING);
  });

  test('capabilities negotiation mode admits only qmp_capabilities', async () => {
    const c = await client();
    await c.msg();
    const notYet = { error: { class: 'CommandNotFound', desc: "Expecting capabilities negotiation with 'qmp_capabilities'" } };
    expect(await c.cmd('query-status')).toEqual(notYet);
    expect(await c.cmd('no-such-command', undefined, 7)).toEqual({ ...notYet, id: 7 });
    expect(await c.cmd('qmp_capabilities', { enable: ['bogus'] })).toEqual({
      error: { class: 'GenericError', desc: "Parameter 'null' does not accept value 'bogus'" },
    });
    // no events before negotiation
    backend.events!.emit('STOP');
    expect(await c.cmd('qmp_capabilities')).toEqual({ return: {} });
    expect(c.pending()).toBe(0);
    expect(await c.cmd('qmp_capabilities')).toEqual({
      error: { class: 'CommandNotFound', desc: 'Capabilities negotiation is already complete, command ignored' },
    });
    expect(await c.cmd('query-status')).toEqual({ return: { running: true, status: 'running' } });
  });

  test('id is echoed whatever JSON value it is, errors included', async () => {
    const c = await client();
    await c.negotiate();
    for (const id of [1, -5, 'abc', { a: [1, { b: null }] }, [1, 2], 1.5, null, true]) {
      expect(await c.cmd('query-status', undefined, id)).toEqual({ return: { running: true, status: 'running' }, id });
    }
    expect(await c.cmd('nope', undefined, { x: 1 })).toEqual({
      error: { class: 'CommandNotFound', desc: 'The command nope has not been found' },
      id: { x: 1 },
    });
    c.send('{"execute": "query-status", "id": 18446744073709551615}');
    expect(await c.line()).toBe('{"return": {"running": true, "status": "running"}, "id": 18446744073709551615}\r\n');
  });

  test('every QMP error class reaches the client', async () => {
    const c = await client();
    await c.negotiate();
    for (const cls of ['GenericError', 'CommandNotFound', 'DeviceNotActive', 'DeviceNotFound', 'KVMMissingCap']) {
      const r = await c.cmd('pmemsave', { val: 0, size: 1, filename: `class:${cls}` });
      expect(r).toEqual({ error: { class: cls, desc: `provoked ${cls}` } });
    }
  });

  test('request shape errors use QEMU\'s texts', async () => {
    const c = await client();
    await c.negotiate();
    const err = (desc: string) => ({ error: { class: 'GenericError', desc } });
    c.send('[1, 2]');
    expect(await c.reply()).toEqual(err('QMP input must be a JSON object'));
    c.send('{"arguments": {}}');
    expect(await c.reply()).toEqual(err("QMP input lacks member 'execute'"));
    c.send('{"execute": 1}');
    expect(await c.reply()).toEqual(err("QMP input member 'execute' must be a string"));
    c.send('{"execute": "stop", "arguments": []}');
    expect(await c.reply()).toEqual(err("QMP input member 'arguments' must be an object"));
    c.send('{"execute": "stop", "extra": 1, "id": 3}');
    expect(await c.reply()).toEqual({ ...err("QMP input member 'extra' is unexpected"), id: 3 });
    c.send('{"exec-oob": "migrate-pause"}');
    expect(await c.reply()).toEqual(err("QMP input member 'exec-oob' is unexpected"));
  });

  test('malformed JSON gets a GenericError and the next object works', async () => {
    const c = await client();
    await c.negotiate();
    c.send('{"execute": }');
    expect(await c.reply()).toEqual({ error: { class: 'GenericError', desc: 'JSON parse error, expecting value' } });
    c.send("{'execute': 'query-status', 'id': 'sq'}");
    expect(await c.reply()).toEqual({ return: { running: true, status: 'running' }, id: 'sq' });
    c.send('{"execute": @@@}');
    expect((await c.reply()).error.desc).toBe("JSON parse error, stray '@'");
    expect((await c.reply()).error.desc).toBe('JSON parse error, expecting value');
    expect(await c.cmd('query-status')).toEqual({ return: { running: true, status: 'running' } });
  });

  test('a request split at every byte boundary is understood', async () => {
    const c = await client();
    await c.negotiate();
    const req = Buffer.from('{"execute":"migrate-set-parameters","arguments":{"downtime-limit":500,"tls-creds":"é"},"id":[1]}\r\n');
    for (let i = 1; i < req.length; i++) {
      c.send(req.subarray(0, i));
      await new Promise((r) => setImmediate(r));
      c.send(req.subarray(i));
      expect(await c.reply()).toEqual({ return: {}, id: [1] });
    }
  });

  test('several objects in one chunk, whitespace between, replies in order', async () => {
    const c = await client();
    await c.negotiate();
    c.send(' {"execute":"query-status","id":1}\n\n\t{"execute":"stop","id":2}  {"execute":"query-status","id":3}');
    expect(await c.reply()).toEqual({ return: { running: true, status: 'running' }, id: 1 });
    expect(await c.reply()).toEqual({ return: {}, id: 2 });
    expect(await c.reply()).toEqual({ return: { running: false, status: 'paused' }, id: 3 });
  });

  test('async handlers keep replies in order', async () => {
    const c = await client();
    await c.negotiate();
    backend.stopDelayMs = 150;
    c.send('{"execute":"stop","id":"a"}{"execute":"query-status","id":"b"}');
    const first = await c.msg();
    expect(first.event).toBe('STOP');
    expect(await c.reply()).toEqual({ return: {}, id: 'a' });
    expect(await c.reply()).toEqual({ return: { running: false, status: 'paused' }, id: 'b' });
  });

  test('exec-oob overtakes a slow in-band command once oob is enabled', async () => {
    const c = await client();
    await c.negotiate(['oob']);
    backend.stopDelayMs = 300;
    backend.migration.status = 'postcopy-active';
    c.send('{"execute":"stop","id":1}{"exec-oob":"migrate-pause","id":2}');
    expect(await c.reply()).toEqual({ return: {}, id: 2 });
    expect(await c.reply()).toEqual({ return: {}, id: 1 });
    expect(await c.cmd('query-status', undefined, 3)).toMatchObject({ id: 3 });
    c.send('{"exec-oob":"query-status","id":4}');
    expect(await c.reply()).toEqual({
      error: { class: 'GenericError', desc: 'The command query-status does not support OOB' },
      id: 4,
    });
    c.send('{"exec-oob":"migrate-pause","execute":"stop"}');
    expect((await c.reply()).error.desc).toBe("QMP input member 'execute' clashes with 'exec-oob'");
  });

  test('events go to every client in command mode, with timestamps', async () => {
    const a = await client();
    const b = await client();
    const late = await client();
    await a.negotiate();
    await b.negotiate();
    await late.msg();
    expect(await a.cmd('stop')).toEqual({ return: {} });
    const stopLine = '{"timestamp": {"seconds": 1700000000, "microseconds": 123456}, "event": "STOP"}\r\n';
    expect(await b.line()).toBe(stopLine);
    backend.events!.emit('SHUTDOWN', { guest: false, reason: 'host-qmp-quit' });
    expect(await b.msg()).toEqual({
      timestamp: { seconds: 1700000000, microseconds: 123456 },
      event: 'SHUTDOWN',
      data: { guest: false, reason: 'host-qmp-quit' },
    });
    expect((await a.msg()).event).toBe('SHUTDOWN');
    expect(late.pending()).toBe(0);
  });

  test('MIGRATION events need the events capability', async () => {
    const c = await client();
    await c.negotiate();
    backend.events!.emit('MIGRATION', { status: 'setup' });
    await c.cmd('migrate-set-capabilities', { capabilities: [{ capability: 'events', state: true }] });
    backend.events!.emit('MIGRATION', { status: 'active' });
    backend.events!.emit('MIGRATION_PASS', { pass: 1 });
    expect((await c.msg()).data).toEqual({ status: 'active' });
    expect((await c.msg()).data).toEqual({ pass: 1 });
  });

  test('query-commands lists every declared command', async () => {
    const c = await client();
    await c.negotiate();
    const r = await c.cmd('query-commands');
    expect(r.return.map((x: { name: string }) => x.name).sort()).toEqual(COMMANDS.map((x) => x.name).sort());
    for (const n of ['qmp_capabilities', 'migrate_cancel', 'system_reset', 'human-monitor-command', 'query-migrate']) {
      expect(r.return).toContainEqual({ name: n });
    }
  });

  test('human-monitor-command round trip', async () => {
    const c = await client();
    await c.negotiate();
    expect(await c.cmd('human-monitor-command', { 'command-line': 'info status' })).toEqual({
      return: 'VM status: running\r\n',
    });
    expect(await c.cmd('human-monitor-command', { 'command-line': 'stop' })).toEqual({ return: '' });
    expect(await c.cmd('human-monitor-command', { 'command-line': 'info status', 'cpu-index': 1 })).toEqual({
      return: 'VM status: paused\r\n',
    });
    expect(await c.cmd('human-monitor-command', { 'command-line': 'info status', 'cpu-index': 5 })).toEqual({
      error: { class: 'GenericError', desc: "Parameter 'cpu-index' expects a CPU number" },
    });
    expect(await c.cmd('human-monitor-command', { 'command-line': 'bogus' })).toEqual({
      return: "unknown command: 'bogus'\r\n",
    });
  });

  test('getfd without a descriptor, closefd of an unknown name', async () => {
    const c = await client();
    await c.negotiate();
    expect((await c.cmd('getfd', { fdname: 'mig' })).error.desc).toBe('No file descriptor supplied via SCM_RIGHTS');
    expect((await c.cmd('closefd', { fdname: 'mig' })).error.desc).toBe("File descriptor named 'mig' not found");
  });

  test('deep nesting and oversized input are refused, then the session goes on', async () => {
    const c = await client();
    await c.negotiate();
    c.send('['.repeat(1025));
    expect(await c.reply()).toEqual({ error: { class: 'GenericError', desc: 'JSON nesting depth limit exceeded' } });
    // QEMU's streamer restarts counting after the error: a control character (a lexical
    // error) is the documented way back to a known state.
    c.send('\x01');
    expect((await c.reply()).error.desc).toBe("JSON parse error, stray '\u0001'");
    expect(await c.cmd('query-status', undefined, 1)).toMatchObject({ id: 1 });
  });

  test('token size limit with a small configured limit', async () => {
    const m = track(new Monitor({ backend: new FakeBackend(), jsonLimits: { maxTokenSize: 4096 } }));
    const p = tmpSocketPath('small.sock');
    await m.addQmp({ kind: 'unix', path: p, server: true, wait: false });
    const c = await RawClient.connect(p);
    clients.push(c);
    await c.negotiate();
    c.send(`{"execute": "migrate", "arguments": {"uri": "${'u'.repeat(10000)}"}}`);
    expect(await c.reply()).toEqual({ error: { class: 'GenericError', desc: 'JSON token size limit exceeded' } });
    // the closers after the oversized token are stray, as they would be in QEMU
    expect((await c.reply()).error.desc).toBe('JSON parse error, expecting value');
    expect((await c.reply()).error.desc).toBe('JSON parse error, expecting value');
    expect(await c.cmd('query-status', undefined, 2)).toMatchObject({ id: 2 });
  });

  test('getfd/closefd with a descriptor receiver; fd: URIs take the named descriptor', async () => {
    const fs = await import('node:fs');
    const pending: number[] = [];
    const m = track(new Monitor({ backend, fdReceiverFactory: () => ({ takeFd: () => pending.pop() }) }));
    backend.attach(m.events);
    const p = tmpSocketPath('fd.sock');
    const qmp = await m.addQmp({ kind: 'unix', path: p, server: true, wait: false });
    const c = await RawClient.connect(p);
    clients.push(c);
    await c.negotiate();
    pending.push(fs.openSync('/dev/null', 'r'));
    expect(await c.cmd('getfd', { fdname: 'mig' })).toEqual({ return: {} });
    pending.push(fs.openSync('/dev/null', 'r'));
    expect(await c.cmd('getfd', { fdname: '0bad' })).toEqual({
      error: { class: 'GenericError', desc: "Parameter 'fdname' expects a name not starting with a digit" },
    });
    expect(qmp.fds.has('mig')).toBe(true);
    let taken: number | undefined;
    backend.migration.onMigrate = () => undefined;
    const orig = backend.migration.migrate.bind(backend.migration);
    (backend.migration as { migrate: MigrationBackend['migrate'] }).migrate = (req, ctx) => {
      taken = ctx.fds.take(req.uri!.slice(3));
      orig(req);
    };
    expect(await c.cmd('migrate', { uri: 'fd:mig' })).toEqual({ return: {} });
    expect(typeof taken).toBe('number');
    fs.closeSync(taken!);
    expect(await c.cmd('closefd', { fdname: 'mig' })).toEqual({
      error: { class: 'GenericError', desc: "File descriptor named 'mig' not found" },
    });
  });

  test('quit: the reply, then SHUTDOWN, then the connection closes', async () => {
    const c = await client();
    await c.negotiate();
    backend.quit = () => {
      setImmediate(async () => {
        backend.events!.emit('SHUTDOWN', { guest: false, reason: 'host-qmp-quit' });
        await monitor!.close();
      });
    };
    c.send('{"execute": "quit", "id": "q"}');
    expect(await c.msg()).toEqual({ return: {}, id: 'q' });
    expect(await c.msg()).toMatchObject({ event: 'SHUTDOWN', data: { guest: false, reason: 'host-qmp-quit' } });
    await expect(c.line(2000)).rejects.toThrow('connection closed');
  });

  test('a broken backend result becomes a GenericError, not a crash', async () => {
    const c = await client();
    await c.negotiate();
    const cyclic: Record<string, unknown> = { status: 'running', running: true };
    cyclic.self = cyclic;
    backend.runState = () => cyclic as never;
    const r = await c.cmd('query-status', undefined, 9);
    expect(r.error.class).toBe('GenericError');
    expect(r.id).toBe(9);
    backend.runState = () => {
      throw new TypeError('boom');
    };
    expect(await c.cmd('query-status')).toEqual({ error: { class: 'GenericError', desc: 'boom' } });
  });

  test('a client that half-closes after its requests still gets every reply', async () => {
    const c = await client();
    await c.msg();
    backend.stopDelayMs = 50;
    c.send('{"execute":"qmp_capabilities"}{"execute":"stop","id":1}{"execute":"query-status","id":2}');
    c.sock.end();
    expect(await c.reply()).toEqual({ return: {} });
    expect(await c.reply()).toEqual({ return: {}, id: 1 });
    expect(await c.reply()).toEqual({ return: { running: false, status: 'paused' }, id: 2 });
    await expect(c.line(2000)).rejects.toThrow('connection closed');
  });

  test('a client closing mid-command does not disturb the others', async () => {
    const a = await client();
    const b = await client();
    await a.negotiate();
    await b.negotiate();
    backend.stopDelayMs = 100;
    a.send('{"execute":"stop"}{"execute":"stop"}{"execute":"cont"}');
    a.close();
    expect(await b.cmd('query-status')).toMatchObject({ return: {} });
  });
});

describe('QMP endpoints', () => {
  beforeEach(() => {
    backend = new FakeBackend();
  });

  test('tcp with several clients and an ephemeral port', async () => {
    const b = new FakeBackend();
    const m = track(new Monitor({ backend: b }));
    b.attach(m.events);
    const s = await m.addQmp({ kind: 'tcp', host: '127.0.0.1', port: 0, server: true, wait: false });
    const port = (s.address() as net.AddressInfo).port;
    const cs = await Promise.all([1, 2, 3].map(() => RawClient.connect({ port })));
    for (const c of cs) expect(await c.line()).toBe(GREETING);
    for (const c of cs) expect(await c.cmd('qmp_capabilities')).toEqual({ return: {} });
    cs[0].send('{"execute": "stop"}');
    for (const c of cs) expect((await c.msg()).event).toBe('STOP');
    expect(await cs[0].msg()).toEqual({ return: {} });
    for (const c of cs) c.close();
    await m.close();
  });

  test('wait=on: ready resolves only once a client connects', async () => {
    const p = tmpSocketPath('wait.sock');
    const logs: string[] = [];
    const m2 = track(new Monitor({ backend: new FakeBackend(), log: (l) => logs.push(l) }));
    await m2.addQmp({ kind: 'unix', path: p, server: true, wait: true });
    let ready = false;
    void m2.ready.then(() => (ready = true));
    await new Promise((r) => setTimeout(r, 50));
    expect(ready).toBe(false);
    expect(logs[0]).toBe(`QEMU waiting for connection on: disconnected:unix:${p},server=on`);
    const c = await RawClient.connect(p);
    await m2.ready;
    expect(await c.line()).toBe(GREETING);
    c.close();
    await m2.close();
  });

  test('a stale socket file is replaced', async () => {
    const p = tmpSocketPath('stale.sock');
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(p, r));
    // leave the file behind as a crashed process would
    (srv as unknown as { _handle: { close(): void } })._handle.close();
    const m = track(new Monitor({ backend: new FakeBackend() }));
    await m.addQmp({ kind: 'unix', path: p, server: true, wait: false });
    const c = await RawClient.connect(p);
    expect(await c.line()).toBe(GREETING);
    c.close();
    await m.close();
  });

  test('server=off: the monitor connects out and greets the listener', async () => {
    const p = tmpSocketPath('out.sock');
    const listener = net.createServer();
    const accepted = new Promise<net.Socket>((r) => listener.once('connection', r));
    await new Promise<void>((r) => listener.listen(p, r));
    try {
      const m = track(new Monitor({ backend: new FakeBackend() }));
      await m.addQmp({ kind: 'unix', path: p, server: false, wait: true });
      await m.ready;
      const sock = await accepted;
      let got = '';
      sock.on('data', (d) => (got += d));
      for (let i = 0; i < 100 && !got.includes('\r\n'); i++) await new Promise((r) => setTimeout(r, 10));
      expect(got).toBe(GREETING);
      sock.destroy();
      await m.close();
      expect(fs.existsSync(p)).toBe(true); // not ours to remove: we only connected
    } finally {
      listener.close();
    }
  });

  test('stdio', async () => {
    const stdin = new PassThrough();
    const stdout = new PassThrough();
    const m = track(new Monitor({ backend: new FakeBackend(), stdin, stdout }));
    await m.addQmp({ kind: 'stdio' });
    let out = '';
    stdout.on('data', (d) => (out += d.toString()));
    stdin.write('{"execute":"qmp_capabilities"}\n{"execute":"query-version","id":1}\n');
    await new Promise((r) => setTimeout(r, 50));
    expect(out.split('\r\n')).toEqual([
      GREETING.trimEnd(),
      '{"return": {}}',
      '{"return": {"qemu": {"major": 10, "minor": 2, "micro": 0}, "package": ""}, "id": 1}',
      '',
    ]);
    await m.close();
  });
});
