/**
 * The HMP command table (QEMU hmp-commands.hx / hmp-commands-info.hx entries for the
 * commands this monitor has): name with aliases, args_type, params, help, and the handler.
 * Every handler reaches the machine through a QMP command, so HMP and QMP share one
 * validation and one backend path, as in QEMU.
 */

import type { MigrationInfo } from '../backend';
import { genericError } from '../errors';
import { MigrationCapability, MigrationStatus, type CommandName, type ReturnOf } from '../schema';
import { splitWords } from './args';
import { formatCapabilities, formatMigrate, formatParameters, formatStatus, formatVersion } from './info';
import { hmpParameter } from './set-parameter';

export interface HmpIo {
  print(text: string): void;
  /** run a QMP command (arguments as plain data); throws QmpError. The caller holds the lock. */
  call<N extends CommandName>(name: N, args?: Record<string, unknown>): Promise<ReturnOf<N>>;
  /** the same, taking the command lock first: for work deferred past the command */
  callLocked<N extends CommandName>(name: N, args?: Record<string, unknown>): Promise<ReturnOf<N>>;
  /** false for human-monitor-command, which cannot suspend (monitor_suspend fails) */
  readonly interactive: boolean;
  /** keep this monitor busy until `wait` settles; its result is printed then */
  defer(wait: Promise<string>): void;
  readonly globals: () => import('../../migration').MigrationGlobals;
  /** migrate's poll interval (QEMU: 1000 ms) */
  readonly pollMs: number;
  /** "help" needs the table */
  help(words: string[]): void;
}

export interface HmpCommand {
  name: string;
  args: string;
  params: string;
  help: string;
  run?: (args: Record<string, string | boolean>, io: HmpIo) => Promise<void>;
  sub?: HmpCommand[];
}

const simple = (name: string, help: string, qmp: CommandName): HmpCommand => ({
  name,
  args: '',
  params: '',
  help,
  run: async (_a, io) => {
    await io.call(qmp);
  },
});

/**
 * hmp_migrate_status_cb(): poll until the status leaves setup/active, then report. QEMU
 * polls from a timer under the big lock; each poll here takes the command lock.
 */
async function waitForMigration(io: HmpIo): Promise<string> {
  for (let first = true; ; first = false) {
    if (!first) await new Promise((r) => setTimeout(r, io.pollMs));
    let info: MigrationInfo;
    try {
      info = await io.callLocked('query-migrate');
    } catch {
      return '';
    }
    if (info.status === undefined || info.status === 'active' || info.status === 'setup') continue;
    return info['error-desc'] !== undefined ? `${info['error-desc']}\n` : '';
  }
}

const INFO: HmpCommand[] = [
  {
    name: 'version',
    args: '',
    params: '',
    help: 'show the version of QEMU',
    run: async (_a, io) => io.print(formatVersion(await io.call('query-version'))),
  },
  {
    name: 'status',
    args: '',
    params: '',
    help: 'show the current VM status (running|paused)',
    run: async (_a, io) => io.print(formatStatus(await io.call('query-status'))),
  },
  {
    name: 'name',
    args: '',
    params: '',
    help: 'show the current VM name',
    // hmp_info_name(): prints nothing when the guest has no name.
    run: async (_a, io) => {
      const n = await io.call('query-name');
      if (n.name !== undefined) io.print(`${n.name}\n`);
    },
  },
  {
    name: 'uuid',
    args: '',
    params: '',
    help: 'show the current VM UUID',
    run: async (_a, io) => io.print(`${(await io.call('query-uuid')).UUID}\n`),
  },
  {
    name: 'migrate',
    args: 'all:-a',
    params: '[-a]',
    help: 'show migration status (-a: all, dump all status)',
    run: async (a, io) => io.print(formatMigrate(await io.call('query-migrate'), a.all === true, io.globals())),
  },
  {
    name: 'migrate_capabilities',
    args: '',
    params: '',
    help: 'show current migration capabilities',
    run: async (_a, io) => io.print(formatCapabilities(await io.call('query-migrate-capabilities'))),
  },
  {
    name: 'migrate_parameters',
    args: '',
    params: '',
    help: 'show current migration parameters',
    run: async (_a, io) => io.print(formatParameters(await io.call('query-migrate-parameters'))),
  },
];

export const HMP_COMMANDS: HmpCommand[] = [
  {
    name: 'help|?',
    args: 'name:S?',
    params: '[cmd]',
    help: 'show the help',
    run: async (a, io) => io.help(typeof a.name === 'string' ? splitHelp(a.name) : []),
  },
  simple('quit|q', 'quit the emulator', 'quit'),
  simple('stop|s', 'stop emulation', 'stop'),
  simple('cont|c', 'resume emulation', 'cont'),
  simple('system_reset', 'reset the system', 'system_reset'),
  {
    name: 'migrate',
    args: 'detach:-d,resume:-r,uri:s',
    params: '[-d] [-r] uri',
    help: 'migrate to URI (using -d to not wait for completion)\n\t\t\t -r to resume a paused postcopy migration',
    async run(a, io) {
      await io.call('migrate', { uri: a.uri, resume: a.resume === true });
      if (a.detach === true) return;
      if (!io.interactive) {
        io.print('terminal does not allow synchronous migration, continuing detached\n');
        return;
      }
      io.defer(waitForMigration(io));
    },
  },
  simple('migrate_cancel', 'cancel the current VM migration', 'migrate_cancel'),
  {
    name: 'migrate_continue',
    args: 'state:s',
    params: 'state',
    help: 'Continue migration from the given paused state',
    async run(a, io) {
      await io.call('migrate-continue', { state: enumArg(a.state as string, 'migrate-continue') });
    },
  },
  {
    name: 'migrate_incoming',
    args: 'uri:s',
    params: 'uri',
    help: 'Continue an incoming migration from an -incoming defer',
    run: async (a, io) => void (await io.call('migrate-incoming', { uri: a.uri })),
  },
  {
    name: 'migrate_recover',
    args: 'uri:s',
    params: 'uri',
    help: 'Continue a paused incoming postcopy migration',
    run: async (a, io) => void (await io.call('migrate-recover', { uri: a.uri })),
  },
  simple('migrate_pause', 'Pause an ongoing migration (postcopy-only)', 'migrate-pause'),
  {
    name: 'migrate_set_capability',
    args: 'capability:s,state:b',
    params: 'capability state',
    help: 'Enable/Disable the usage of a capability for migration',
    async run(a, io) {
      const capability = enumArg(a.capability as string, 'capability');
      await io.call('migrate-set-capabilities', { capabilities: [{ capability, state: a.state }] });
    },
  },
  {
    name: 'migrate_set_parameter',
    args: 'parameter:s,value:s',
    params: 'parameter value',
    help: 'Set the parameter for migration',
    async run(a, io) {
      await io.call('migrate-set-parameters', hmpParameter(a.parameter as string, a.value as string));
    },
  },
  simple(
    'migrate_start_postcopy',
    'Followup to a migration command to switch the migration to postcopy mode. ' +
      'The postcopy-ram capability must be set on both source and destination before the original migration command .',
    'migrate-start-postcopy',
  ),
  {
    name: 'info',
    args: 'item:s?',
    params: '[subcommand]',
    help: 'show various information about the system state',
    run: async (_a, io) => io.help(['info']),
    sub: INFO,
  },
];

/** qapi_enum_parse(): HMP names an unknown value without the parameter name. */
function enumArg(value: string, kind: 'capability' | 'migrate-continue'): string {
  const values: readonly string[] = kind === 'capability' ? MigrationCapability.values : MigrationStatus.values;
  if (!values.includes(value)) throw genericError(`invalid parameter value: ${value}`);
  return value;
}

function splitHelp(text: string): string[] {
  try {
    return splitWords(text);
  } catch {
    return [];
  }
}
