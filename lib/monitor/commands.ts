/**
 * Command handlers: each schema command mapped onto the backend. Argument shapes are
 * already checked; here live the checks QEMU makes in the command itself (uri/channels
 * exclusivity, capabilities negotiation, getfd) with QEMU's texts.
 */

import type { IncomingRequest, MigrateRequest, MigrationChannel, MonitorBackend } from './backend';
import type { CommandHandlers, HandlerEnv } from './dispatcher';
import { QERR, QmpError, genericError } from './errors';
import type { ReturnOf } from './schema';

export interface VersionTriple {
  major: number;
  minor: number;
  micro: number;
}

export interface CommandOptions {
  version: VersionTriple;
  package: string;
  /** names for query-commands */
  commandNames: () => string[];
  /** run an HMP command line and return its output (human-monitor-command) */
  hmp: (commandLine: string, env: HandlerEnv) => Promise<string>;
}

/**
 * migrate_channels_parse() and qmp_migrate()'s preliminary checks: exactly one of uri and
 * channels; at most one channel of each type; a main channel; incoming takes only one.
 */
function splitChannels(
  uri: string | undefined,
  channels: MigrationChannel[] | undefined,
  allowCpr: boolean,
): { uri?: string; main?: MigrationChannel; cpr?: MigrationChannel } {
  if ((uri === undefined) === (channels === undefined)) {
    throw genericError("need either 'uri' or 'channels' argument");
  }
  if (uri !== undefined) return { uri };
  const list = channels!;
  if (!allowCpr && list.length > 1) {
    throw genericError("Channel list must have only one entry, for type 'main'");
  }
  const byType: Partial<Record<MigrationChannel['channel-type'], MigrationChannel>> = {};
  for (const c of list) {
    if (byType[c['channel-type']]) {
      throw genericError(`Channel list has more than one ${c['channel-type']} entry`);
    }
    byType[c['channel-type']] = c;
  }
  if (!byType.main) throw genericError('Channel list has no main entry');
  return { main: byType.main, cpr: byType.cpr };
}

export function createHandlers(backend: MonitorBackend, opts: CommandOptions): CommandHandlers {
  const mig = backend.migration;
  return {
    qmp_capabilities(args, env) {
      const s = env.session;
      if (!s || s.commandMode) {
        throw new QmpError('CommandNotFound', 'Capabilities negotiation is already complete, command ignored');
      }
      const wanted = args.enable ?? [];
      // qmp_caps_accept(): name every capability the server did not offer.
      const unavailable = wanted.filter((c) => c === 'oob' && !s.oobOffered);
      if (unavailable.length) throw genericError(`Capability ${unavailable.join(', ')} not available`);
      s.oobEnabled = wanted.includes('oob');
      s.commandMode = true;
    },
    'query-version': () => ({ qemu: { ...opts.version }, package: opts.package }),
    'query-commands': () => opts.commandNames().map((name) => ({ name })),
    'query-status': () => backend.runState(),
    stop: () => backend.stop(),
    cont: () => backend.cont(),
    quit: () => backend.quit(),
    system_reset: () => backend.systemReset(),
    pmemsave: (a) => backend.pmemsave(a.val, a.size, a.filename),
    'query-name': () => {
      const name = backend.guestName?.();
      return name === undefined ? {} : { name };
    },
    'query-uuid': () => ({ UUID: backend.guestUuid?.() ?? '00000000-0000-0000-0000-000000000000' }),
    'x-query-vcpu-times': () => {
      if (!backend.vcpuTimes) throw genericError('vCPU times are not available here');
      return backend.vcpuTimes();
    },
    async 'human-monitor-command'(a, env) {
      if (a['cpu-index'] !== undefined) {
        // monitor_set_cpu(): only an existing CPU can become the default one.
        const n = backend.cpuCount?.() ?? 1;
        if (a['cpu-index'] < 0 || a['cpu-index'] >= n) {
          throw genericError(QERR.invalidParameterValue('cpu-index', 'a CPU number'));
        }
      }
      return opts.hmp(a['command-line'], env);
    },
    getfd(a, env) {
      const fd = env.session?.fdReceiver?.takeFd();
      if (fd === undefined) throw genericError(QERR.fdNotSupplied);
      env.ctx.fds.add(a.fdname, fd);
    },
    closefd: (a, env) => env.ctx.fds.remove(a.fdname),
    migrate(a, env) {
      const ch = splitChannels(a.uri, a.channels, true);
      const req: MigrateRequest = { ...ch, resume: a.resume ?? false };
      if (mig.config.parameter('mode') === 'cpr-transfer' && !req.cpr) {
        throw genericError("missing 'cpr' migration channel");
      }
      return mig.migrate(req, env.ctx);
    },
    'migrate-incoming'(a, env) {
      const ch = splitChannels(a.uri, a.channels, false);
      const req: IncomingRequest = { uri: ch.uri, main: ch.main, exitOnError: a['exit-on-error'] ?? true };
      return mig.incoming(req, env.ctx);
    },
    migrate_cancel: () => mig.cancel(),
    'migrate-continue': (a) => mig.continue(a.state),
    'migrate-set-capabilities': (a) => mig.config.setCapabilities(a.capabilities),
    'query-migrate-capabilities': () => mig.config.capabilityList(),
    'migrate-set-parameters': (a) => mig.config.setParameters(a),
    'query-migrate-parameters': () => mig.config.parameterValues() as ReturnOf<'query-migrate-parameters'>,
    'query-migrate': async (): Promise<ReturnOf<'query-migrate'>> => (await mig.info()) ?? {},
    'migrate-start-postcopy': () => mig.startPostcopy(),
    'migrate-recover': (a, env) => mig.recover(a.uri, env.ctx),
    'migrate-pause': () => mig.pause(),
  };
}
