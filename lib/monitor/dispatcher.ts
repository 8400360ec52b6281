/**
 * Command dispatch: QEMU's qapi/qmp-dispatch.c and monitor/qmp.c monitor_qmp_dispatch(),
 * driven by the schema.
 *
 *   request ─▶ must be an object ─▶ members: execute | exec-oob | arguments | id only
 *           ─▶ command known in this mode? ─▶ OOB allowed? ─▶ arguments match schema?
 *           ─▶ handler ─▶ {"return": shaped result} or {"error": {class, desc}}, + "id"
 *
 * In capabilities negotiation mode only qmp_capabilities exists; any CommandNotFound there
 * is rewritten to "Expecting capabilities negotiation with 'qmp_capabilities'".
 *
 * In-band commands from every monitor take one global lock, as QEMU runs them one at a time
 * under the big QEMU lock; out-of-band commands do not take it.
 */

import type { Awaitable, CommandContext } from './backend';
import { QmpError, toQmpError } from './errors';
import type { FdReceiver } from './fd-table';
import { JsonValue, isJsonObject } from './json/value';
import { COMMANDS, findCommand, type ArgsOf, type CommandName, type ReturnOf } from './schema';
import { shapeOutput } from './schema/output';
import { validateArgs } from './schema/visit';

/** Per-connection QMP state the dispatcher and qmp_capabilities look at. */
export interface QmpSessionState {
  commandMode: boolean;
  oobEnabled: boolean;
  readonly oobOffered: boolean;
  readonly fdReceiver?: FdReceiver;
}

export interface HandlerEnv {
  readonly ctx: CommandContext;
  /** present when the command came over QMP */
  readonly session?: QmpSessionState;
}

export type CommandHandlers = {
  [N in CommandName]: (args: ArgsOf<N>, env: HandlerEnv) => Awaitable<ReturnOf<N> | void>;
};

/** FIFO mutex: in-band commands from all monitors run one at a time. */
export class CommandLock {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(fn: () => Awaitable<T>): Promise<T> {
    const result = this.tail.then(fn, fn);
    this.tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }
}

export type QmpResponse = Record<string, unknown>;

function checkRequest(req: Map<string, JsonValue>, allowOob: boolean): { name: string; oob: boolean } {
  let execKey: string | undefined;
  for (const [key, v] of req) {
    if (key === 'execute' || (key === 'exec-oob' && allowOob)) {
      if (typeof v !== 'string') throw new QmpError('GenericError', `QMP input member '${key}' must be a string`);
      if (execKey) throw new QmpError('GenericError', `QMP input member '${key}' clashes with '${execKey}'`);
      execKey = key;
    } else if (key === 'arguments') {
      if (!isJsonObject(v)) throw new QmpError('GenericError', "QMP input member 'arguments' must be an object");
    } else if (key !== 'id') {
      throw new QmpError('GenericError', `QMP input member '${key}' is unexpected`);
    }
  }
  if (!execKey) throw new QmpError('GenericError', "QMP input lacks member 'execute'");
  return { name: req.get(execKey) as string, oob: execKey === 'exec-oob' };
}

export class Dispatcher {
  readonly lock = new CommandLock();

  constructor(private readonly handlers: CommandHandlers) {}

  /** Names of all commands, in declaration order (query-commands). */
  commandNames(): string[] {
    return COMMANDS.map((c) => c.name);
  }

  /** Does this request ask for out-of-band execution? (qmp_is_oob) */
  static isOob(req: JsonValue): boolean {
    return isJsonObject(req) && req.has('exec-oob') && !req.has('execute');
  }

  /** qmp_dispatch(): never throws; always produces the response object. */
  async dispatch(req: JsonValue, session: QmpSessionState, ctx: CommandContext): Promise<QmpResponse> {
    const id = isJsonObject(req) ? req.get('id') : undefined;
    let rsp: QmpResponse;
    try {
      if (!isJsonObject(req)) throw new QmpError('GenericError', 'QMP input must be a JSON object');
      const { name, oob } = checkRequest(req, session.oobEnabled);
      const args = req.get('arguments');
      const ret = oob
        ? await this.execute(name, args, session, ctx, true)
        : await this.lock.run(() => this.execute(name, args, session, ctx, false));
      rsp = { return: ret };
    } catch (e) {
      const err = toQmpError(e);
      let desc = err.desc;
      if (!session.commandMode && err.errorClass === 'CommandNotFound') {
        desc = "Expecting capabilities negotiation with 'qmp_capabilities'";
      }
      rsp = { error: { class: err.errorClass, desc } };
    }
    if (id !== undefined) rsp.id = id;
    return rsp;
  }

  private async execute(
    name: string,
    args: JsonValue | undefined,
    session: QmpSessionState,
    ctx: CommandContext,
    oob: boolean,
  ): Promise<unknown> {
    const cmd = findCommand(name);
    const available = session.commandMode ? !!cmd : name === 'qmp_capabilities';
    if (!cmd || !available) throw new QmpError('CommandNotFound', `The command ${name} has not been found`);
    if (oob && !cmd.allowOob) throw new QmpError('GenericError', `The command ${name} does not support OOB`);
    return this.call(name as CommandName, args, { ctx, session });
  }

  /** Validate and run a command; the result is shaped for output. Throws QmpError. */
  async call(name: CommandName, args: JsonValue | undefined, env: HandlerEnv): Promise<unknown> {
    const cmd = findCommand(name)!;
    const typed = validateArgs(cmd.args, args);
    const handler = this.handlers[name] as (a: unknown, e: HandlerEnv) => Awaitable<unknown>;
    const ret = await handler(typed, env);
    if (!cmd.returns) return {};
    return shapeOutput(cmd.returns, ret);
  }
}
