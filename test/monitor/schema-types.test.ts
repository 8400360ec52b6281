/**
 * The handler types are derived from the schema declarations; the assignments below only
 * compile if the derivation is right. ts-jest transpiles without type checking, so the
 * last test runs the compiler over this file.
 */

import * as path from 'node:path';
import * as ts from 'typescript';
import type { ArgsOf, EventData, ReturnOf } from '../../lib/monitor/schema';
import { COMMANDS, EVENTS } from '../../lib/monitor/schema';

describe('types derived from the schema', () => {
  test('arguments, results and event data', () => {
    const caps: ArgsOf<'migrate-set-capabilities'> = { capabilities: [{ capability: 'events', state: true }] };
    const mig: ArgsOf<'migrate'> = {
      channels: [{ 'channel-type': 'main', addr: { transport: 'socket', type: 'inet', host: 'h', port: '1' } }],
    };
    const status: ReturnOf<'query-status'> = { running: true, status: 'running' };
    const params: ArgsOf<'migrate-set-parameters'> = { 'tls-creds': null, 'downtime-limit': 5, 'multifd-compression': 'zlib' };
    const shutdown: EventData<'SHUTDOWN'> = { guest: false, reason: 'host-qmp-quit' };
    const hmc: ReturnOf<'human-monitor-command'> = 'x';
    // @ts-expect-error not a MigrationStatus
    const bad: ArgsOf<'migrate-continue'> = { state: 'bogus' };
    // @ts-expect-error 'path' is not a member of the exec variant
    const badVariant: ArgsOf<'migrate'> = { channels: [{ 'channel-type': 'main', addr: { transport: 'exec', path: 'x' } }] };
    expect([caps, mig, status, params, shutdown, hmc, bad, badVariant]).toHaveLength(8);
  });

  test('names follow QEMU, historic underscores included', () => {
    const names = COMMANDS.map((c) => c.name);
    for (const n of ['qmp_capabilities', 'migrate_cancel', 'system_reset', 'human-monitor-command', 'query-migrate',
      'migrate-set-capabilities', 'migrate-set-parameters', 'migrate-incoming', 'migrate-continue', 'getfd', 'closefd',
      'pmemsave', 'query-version', 'query-commands', 'query-status', 'stop', 'cont', 'quit', 'migrate-recover',
      'migrate-pause', 'migrate-start-postcopy', 'query-migrate-capabilities', 'query-migrate-parameters', 'migrate']) {
      expect(names).toContain(n);
    }
    expect(new Set(names).size).toBe(names.length);
    expect(EVENTS.map((e) => e.name)).toEqual(['STOP', 'RESUME', 'SHUTDOWN', 'RESET', 'MIGRATION', 'MIGRATION_PASS']);
    expect(COMMANDS.filter((c) => c.allowOob).map((c) => c.name)).toEqual(['migrate-recover', 'migrate-pause']);
    for (const c of COMMANDS) expect(c.doc.length).toBeGreaterThan(10);
  });

  test('this file type-checks (the @ts-expect-error lines must be errors)', () => {
    const configPath = path.join(__dirname, '..', 'tsconfig.json');
    const cfg = ts.readConfigFile(configPath, ts.sys.readFile);
    const parsed = ts.parseJsonConfigFileContent(cfg.config, ts.sys, path.dirname(configPath));
    const program = ts.createProgram([__filename], { ...parsed.options, noEmit: true, incremental: false });
    const diags = ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
    expect(diags).toEqual([]);
  }, 60000);
});
