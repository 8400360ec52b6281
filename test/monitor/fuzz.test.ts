/**
 * Hostile input: random bytes, mangled JSON and schema-shaped nonsense, fed to the parser,
 * to the dispatcher, and over real sockets to a monitor in its own process. Nothing a
 * client sends may crash the process or produce a reply that is not one well-formed JSON
 * object per CRLF line. Seeds are fixed so a failure reproduces.
 */

import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { Monitor } from '../../lib/monitor';
import type { QmpSessionState } from '../../lib/monitor/dispatcher';
import { ERROR_CLASSES } from '../../lib/monitor/errors';
import { NamedFdTable } from '../../lib/monitor/fd-table';
import { JsonMessageParser } from '../../lib/monitor/json/parser';
import { fromPlain } from '../../lib/monitor/json/value';
import { COMMANDS } from '../../lib/monitor/schema';
import { FakeBackend, RawClient, tmpSocketPath } from './helpers';

/** mulberry32 */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ATOMS = ['{', '}', '[', ']', ':', ',', '"', "'", '\\', 'true', 'null', 'fals', '-', '0', '1.5e3', '01', '"\\u', 'd83d',
  '\u00ff', '\x00', '\x01', '\xfe', 'é', '"execute"', '"arguments"', '"id"', '"exec-oob"', ' ', '\n', '\r\n'];

const NAMES = [...COMMANDS.map((c) => c.name), 'bogus', ''];
const KEYS = ['uri', 'channels', 'capabilities', 'capability', 'state', 'command-line', 'cpu-index', 'enable', 'fdname',
  'downtime-limit', 'tls-creds', 'multifd-channels', 'mode', 'addr', 'transport', 'type', 'path', 'channel-type', 'val',
  'size', 'filename', 'resume', 'x'];

function randomValue(r: () => number, depth: number): unknown {
  const k = Math.floor(r() * (depth > 4 ? 6 : 9));
  switch (k) {
    case 0: return null;
    case 1: return r() < 0.5;
    case 2: return Math.floor((r() - 0.5) * 2 ** (1 + r() * 70));
    case 3: return r() * 1e6;
    case 4: return KEYS[Math.floor(r() * KEYS.length)];
    case 5: return NAMES[Math.floor(r() * NAMES.length)];
    case 6:
    case 7: {
      const o: Record<string, unknown> = {};
      const n = Math.floor(r() * 4);
      for (let i = 0; i < n; i++) o[KEYS[Math.floor(r() * KEYS.length)]] = randomValue(r, depth + 1);
      return o;
    }
    default:
      return Array.from({ length: Math.floor(r() * 4) }, () => randomValue(r, depth + 1));
  }
}

function randomRequest(r: () => number): Record<string, unknown> {
  const req: Record<string, unknown> = {};
  req[r() < 0.85 ? 'execute' : 'exec-oob'] = r() < 0.9 ? NAMES[Math.floor(r() * NAMES.length)] : randomValue(r, 3);
  if (r() < 0.7) req.arguments = r() < 0.9 ? randomValue(r, 0) : [];
  if (r() < 0.5) req.id = randomValue(r, 2);
  if (r() < 0.05) req.junk = 1;
  return req;
}

function mangle(r: () => number, text: string): string {
  if (r() < 0.5) return text;
  const pos = Math.floor(r() * text.length);
  const atom = ATOMS[Math.floor(r() * ATOMS.length)];
  return r() < 0.5 ? text.slice(0, pos) + atom + text.slice(pos) : text.slice(0, pos) + text.slice(pos + 1);
}

function checkReply(line: string): void {
  expect(line.endsWith('\r\n')).toBe(true);
  expect(line.indexOf('\n')).toBe(line.length - 1);
  expect(/^[\x20-\x7e]*\r\n$/.test(line)).toBe(true); // ASCII only
  const m = JSON.parse(line);
  expect(typeof m).toBe('object');
  if ('error' in m) {
    expect(ERROR_CLASSES).toContain(m.error.class);
    expect(typeof m.error.desc).toBe('string');
  } else if (!('return' in m) && !('event' in m) && !('QMP' in m)) {
    throw new Error(`unexpected message ${line}`);
  }
}

describe('fuzzing', () => {
  test('parser: random bytes never throw; every message is a value or an error', () => {
    const r = rng(1);
    for (let round = 0; round < 3000; round++) {
      const bytes = new Uint8Array(Math.floor(r() * 200));
      for (let i = 0; i < bytes.length; i++) {
        bytes[i] = r() < 0.5 ? Math.floor(r() * 256) : '{}[]:,"\'\\ 0123456789.eE-+truefalsn'.charCodeAt(Math.floor(r() * 36));
      }
      let bad = 0;
      const p = new JsonMessageParser((v, e) => {
        if ((v === undefined) === (e === undefined)) bad++;
      }, { maxNesting: 8, maxTokenCount: 50, maxTokenSize: 100 });
      p.feed(bytes); // throwing fails the test
      if (bad) throw new Error(`round ${round}: a message with neither or both value and error`);
    }
  });

  test('dispatcher: random requests always get a well-formed response', async () => {
    const backend = new FakeBackend();
    const monitor = new Monitor({ backend });
    backend.attach(monitor.events);
    const r = rng(2);
    const session: QmpSessionState = { commandMode: true, oobEnabled: true, oobOffered: true };
    for (let i = 0; i < 3000; i++) {
      const req = r() < 0.9 ? randomRequest(r) : randomValue(r, 0);
      if ((req as { execute?: string } | null)?.execute === 'quit') continue;
      const rsp = await monitor.dispatcher.dispatch(fromPlain(req), session, { monitor: 'qmp', fds: new NamedFdTable() });
      expect('return' in rsp || 'error' in rsp).toBe(true);
      session.commandMode = true;
    }
  });

  describe('over sockets, server in its own process', () => {
    let child: ChildProcess;
    let qmpPath: string;
    let hmpPath: string;
    let stderr = '';

    beforeAll(async () => {
      qmpPath = tmpSocketPath('fuzz.qmp');
      hmpPath = tmpSocketPath('fuzz.hmp');
      child = spawn(process.execPath, [path.join(__dirname, 'fuzz-server.js'), qmpPath, hmpPath], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      child.stderr!.on('data', (d) => (stderr += d));
      await new Promise<void>((res, rej) => {
        child.stdout!.once('data', () => res());
        child.once('exit', (code) => rej(new Error(`server exited ${code}: ${stderr}`)));
      });
    });

    afterAll(() => {
      child.kill('SIGKILL');
    });

    async function stillServing(): Promise<void> {
      expect(child.exitCode).toBeNull();
      const c = await RawClient.connect(qmpPath);
      await c.negotiate();
      expect(await c.cmd('query-version', undefined, 'alive')).toMatchObject({ id: 'alive' });
      c.close();
    }

    test('random bytes, mangled requests and oversized input', async () => {
      const r = rng(3);
      for (let conn = 0; conn < 12; conn++) {
        const c = await RawClient.connect(qmpPath);
        checkReply(await c.line());
        if (conn % 2) await c.cmd('qmp_capabilities', conn % 4 === 1 ? { enable: ['oob'] } : undefined);
        const sent: string[] = [];
        for (let i = 0; i < 150; i++) {
          let chunk: string | Uint8Array;
          const kind = r();
          if (kind < 0.2) {
            chunk = Uint8Array.from({ length: Math.floor(r() * 64) }, () => Math.floor(r() * 256));
          } else if (kind < 0.25) {
            chunk = '['.repeat(1000 + Math.floor(r() * 3000));
          } else if (kind < 0.27) {
            chunk = `"${'x'.repeat(1100000)}"`;
          } else {
            const req = randomRequest(r);
            if (req.execute === 'quit' || req['exec-oob'] === 'quit') continue;
            chunk = mangle(r, JSON.stringify(req));
          }
          sent.push(typeof chunk === 'string' ? chunk.slice(0, 80) : '<bytes>');
          // split anywhere
          const bytes = typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : Buffer.from(chunk);
          const cut = Math.floor(r() * bytes.length);
          c.send(bytes.subarray(0, cut));
          c.send(bytes.subarray(cut));
        }
        // A control character is a lexical error anywhere, so it resets the parser
        // (qmp-spec.rst, "Forcing the JSON parser into known-good state").
        c.send('\x01');
        c.send('{"execute": "query-status", "id": "sentinel"}');
        for (;;) {
          const line = await c.line(20000);
          checkReply(line);
          if (line.includes('"sentinel"')) break;
        }
        c.close();
      }
      await stillServing();
      expect(stderr).toBe('');
    }, 120000);

    test('clients that vanish mid-request, and one that never reads', async () => {
      for (let i = 0; i < 20; i++) {
        const c = await RawClient.connect(qmpPath);
        c.send('{"execute":"qmp_capabilities"}{"execute":"stop"}{"execute":"query-status"');
        if (i % 2) c.sock.destroy();
        else c.sock.end();
      }
      const lazy = await RawClient.connect(qmpPath);
      lazy.sock.pause();
      lazy.send('{"execute":"qmp_capabilities"}');
      const flood = Buffer.from(']'.repeat(1 << 20));
      for (let i = 0; i < 8; i++) lazy.send(flood);
      await new Promise((r) => setTimeout(r, 300));
      await stillServing();
      lazy.close();
    }, 60000);

    test('HMP: random lines', async () => {
      const r = rng(4);
      const c = await RawClient.connect(hmpPath);
      await c.line();
      const words = ['info', 'migrate', 'status', 'help', '-d', '-r', '-a', '"', '\\x', 'migrate_set_parameter',
        'max-bandwidth', '1G', 'migrate_set_capability', 'on', 'off', 'bogus', 'x'.repeat(5000), 'é', '\u0000'];
      for (let i = 0; i < 300; i++) {
        const n = Math.floor(r() * 5);
        const line = Array.from({ length: n }, () => words[Math.floor(r() * words.length)]).join(' ');
        c.send(`${line.replace(/^migrate (?!_)/, 'migrate -d ')}\n`);
      }
      c.send('info version\n');
      let seen = '';
      while (!seen.includes('10.2.0\r\n')) seen = await c.line(20000);
      c.close();
      await stillServing();
    }, 60000);
  });
});
