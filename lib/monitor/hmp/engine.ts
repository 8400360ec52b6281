/**
 * Running one HMP command line (QEMU monitor/hmp.c handle_hmp_command):
 *
 *   name lookup (aliases, "info" sub-table) ─▶ unknown command: 'info foo'
 *   argument parsing (args_type)            ─▶ message + Try "help migrate" for more information
 *   handler, through QMP commands           ─▶ errors printed as "Error: <desc>"
 *
 * Output uses "\n"; the monitor's output path turns each into CRLF as QEMU's
 * monitor_puts() does (human-monitor-command returns "...\r\n" too).
 */

import type { CommandContext } from '../backend';
import type { Dispatcher } from '../dispatcher';
import { toQmpError } from '../errors';
import { fromPlain } from '../json/value';
import type { MigrationGlobals } from '../../migration';
import type { CommandName, ReturnOf } from '../schema';
import { HmpParseError, commandName, matchesName, parseArgs } from './args';
import { HMP_COMMANDS, type HmpCommand, type HmpIo } from './commands';

export interface HmpResult {
  output: string;
  /** the monitor stays busy until this settles, then prints its text (migrate without -d) */
  wait?: Promise<string>;
}

export interface HmpEngineOptions {
  dispatcher: Dispatcher;
  globals: () => MigrationGlobals;
  pollMs?: number;
}

/** monitor_puts(): every "\n" goes out as "\r\n". */
export const toCrlf = (s: string) => s.replace(/\n/g, '\r\n');

export class HmpEngine {
  constructor(private readonly opts: HmpEngineOptions) {}

  /** Execute one line. Never throws. The caller holds the command lock. */
  async execute(line: string, ctx: CommandContext, interactive: boolean): Promise<HmpResult> {
    let output = '';
    let wait: Promise<string> | undefined;
    const print = (t: string) => {
      output += t;
    };
    const found = this.lookup(line, print);
    if (!found) return { output };
    const { cmd, pos, words } = found;
    if (!cmd.run) {
      print(`Command "${words}" is not available.\n`);
      return { output };
    }
    let args: Record<string, string | boolean>;
    try {
      args = parseArgs(cmd.name, cmd.args, line, pos);
    } catch (e) {
      if (!(e instanceof HmpParseError)) throw e;
      print(`${e.message}\nTry "help ${words}" for more information\n`);
      return { output };
    }
    const call = <N extends CommandName>(name: N, a?: Record<string, unknown>) =>
      this.opts.dispatcher.call(name, a ? fromPlain(a) : undefined, { ctx }) as Promise<ReturnOf<N>>;
    const io: HmpIo = {
      print,
      call,
      callLocked: (name, a) => this.opts.dispatcher.lock.run(() => call(name, a)),
      interactive,
      defer: (p) => {
        wait = p;
      },
      globals: this.opts.globals,
      pollMs: this.opts.pollMs ?? 1000,
      help: (w) => this.help(w, print),
    };
    try {
      await cmd.run(args, io);
    } catch (e) {
      // hmp_handle_error(): error_report("Error: %s")
      print(`Error: ${toQmpError(e).desc}\n`);
    }
    return { output, wait };
  }

  /** monitor_parse_command(): find the command, descending into "info". */
  private lookup(
    line: string,
    print: (t: string) => void,
  ): { cmd: HmpCommand; pos: number; words: string } | undefined {
    let table = HMP_COMMANDS;
    let pos = 0;
    // QEMU quotes the line from its very start (cmdp_start), leading blanks included.
    const start = 0;
    for (;;) {
      const n = commandName(line, pos);
      if (!n) return undefined;
      const cmd = table.find((c) => matchesName(n.name, c.name));
      if (!cmd) {
        print(`unknown command: '${line.slice(start, n.pos)}'\n`);
        return undefined;
      }
      pos = n.pos;
      while (/\s/.test(line[pos] ?? '')) pos++;
      if (cmd.sub && pos < line.length) {
        table = cmd.sub;
        continue;
      }
      return { cmd, pos, words: line.slice(start, n.pos) };
    }
  }

  /** help_cmd_dump(): all commands, one command, or a sub-table ("help info"). */
  help(words: string[], print: (t: string) => void): void {
    let table = HMP_COMMANDS;
    for (let i = 0; ; i++) {
      const prefix = words.slice(0, i).map((w) => `${w} `).join('');
      if (i >= words.length) {
        for (const c of table) print(`${prefix}${c.name} ${c.params} -- ${c.help}\n`);
        return;
      }
      const cmd = table.find((c) => matchesName(words[i], c.name));
      if (!cmd) {
        print(`unknown command: '${words.slice(0, i + 1).join(' ')}'\n`);
        return;
      }
      if (!cmd.sub) {
        print(`${prefix}${cmd.name} ${cmd.params} -- ${cmd.help}\n`);
        return;
      }
      table = cmd.sub;
    }
  }
}
