/**
 * exec:CMDLINE — QEMU's migration/exec.c over io/channel-command.c: `/bin/sh -c CMDLINE`,
 * spawned read-write on both sides. What the channel writes goes to the command's stdin,
 * what it reads comes from the command's stdout; stderr stays connected to ours ("Leave
 * stderr connected to qemu's stderr").
 *
 *   outgoing:  migration stream ─▶ stdin   CMD   stdout ─▶ return path (if CMD relays one)
 *   incoming:  migration stream ◀─ stdout  CMD   stdin  ◀─ return path (if CMD relays one)
 *
 * The command's exit status is part of the stream (QEMU waits for the pid on close but does
 * not look at the status; a failing `gzip -dc` would then pass for a short stream). Here a
 * non-zero exit is EXEC_EXIT and a death by signal EXEC_SIGNAL, reported on whichever side
 * carries the migration stream:
 *   - outgoing: end() closes stdin and resolves only once the command exited successfully;
 *     stdout EOF (end of the return path) is reported at once, as the command may still be
 *     consuming the stream.
 *   - incoming: EOF on stdout is reported only once the command exited successfully, so a
 *     command that fails after writing part of a stream never looks like a complete one.
 * On both sides a failure exit while anything is pending rejects it at once. Writes into a
 * command that stopped reading fail with the OS's EPIPE, unless the exit was seen first.
 *
 * destroy() closes both pipes and sends SIGTERM, then SIGKILL if the command still runs a
 * second later (qio_channel_command_abort).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { ByteChannel } from '../stream';
import { TransportError } from './errors';
import { singleChannelListener } from './single-listener';
import { StreamChannel } from './stream-channel';
import type { ChannelOptions, IncomingListener } from './types';

export type ExecRole = 'outgoing' | 'incoming';

const KILL_GRACE_MS = 1000;

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

function exitError(st: ExitStatus, pid: number | undefined): TransportError | null {
  if (st.signal) {
    return new TransportError('EXEC_SIGNAL', `exec: command (pid ${pid}) killed by ${st.signal}`, { signal: st.signal });
  }
  if (st.code !== 0) {
    const code = st.code ?? -1;
    return new TransportError('EXEC_EXIT', `exec: command (pid ${pid}) exited with status ${code}`, { exitCode: code });
  }
  return null;
}

export class ExecChannel extends StreamChannel {
  private status: ExitStatus | null = null;
  private readonly exited: Promise<void>;
  private eofWaiting = false;
  private killTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly child: ChildProcess,
    private readonly role: ExecRole,
    opts: ChannelOptions = {},
  ) {
    super({
      input: child.stdout,
      output: detachStdin(child),
      label: 'exec',
      highWaterMark: opts.highWaterMark,
      readHighWaterMark: opts.readHighWaterMark,
    });
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.onExit({ code, signal });
        resolve();
      });
    });
    // kill(2) failures and the like; spawn errors were handled before we got here.
    child.on('error', (e) => this.fail(TransportError.from(e, 'exec')));
  }

  /** The command's process id. */
  get pid(): number | undefined {
    return this.child.pid;
  }

  /** The exit status, once the command has exited. */
  get exitStatus(): ExitStatus | null {
    return this.status;
  }

  /** Resolves with the exit status when the command has exited (whatever the status). */
  async wait(): Promise<ExitStatus> {
    await this.exited;
    return this.status!;
  }

  protected override inputEnded(): void {
    if (this.role === 'outgoing' || this.status) this.finishRead();
    else this.eofWaiting = true;
  }

  protected override async afterEnd(): Promise<void> {
    await this.exited;
    if (this.failure) throw this.failure;
  }

  protected override onDestroy(): void {
    if (this.status) return;
    this.child.kill('SIGTERM');
    this.killTimer = setTimeout(() => this.child.kill('SIGKILL'), KILL_GRACE_MS);
    this.killTimer.unref();
  }

  private onExit(st: ExitStatus): void {
    this.status = st;
    if (this.killTimer) clearTimeout(this.killTimer);
    const err = exitError(st, this.child.pid);
    if (err) this.fail(err);
    else if (this.eofWaiting) this.finishRead();
  }
}

/**
 * Node destroys `child.stdin` as soon as the child exits. The pipe may still have a reader
 * (a background job of the shell relaying the return path), and QEMU keeps its end open
 * until the channel is closed; so the channel takes the stream off the ChildProcess and
 * closes it itself, on end() or destroy().
 */
function detachStdin(child: ChildProcess): ChildProcess['stdin'] {
  const stdin = child.stdin;
  child.stdin = null;
  return stdin;
}

/** Spawn `args` (['/bin/sh', '-c', CMDLINE] from the URI) with both pipes. */
export function spawnExec(args: readonly string[], role: ExecRole, opts: ChannelOptions = {}): Promise<ExecChannel> {
  return new Promise((resolve, reject) => {
    if (args.length === 0) return reject(new TransportError('EINVAL', 'exec: empty command'));
    let child: ChildProcess;
    try {
      child = spawn(args[0], args.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] });
    } catch (e) {
      return reject(TransportError.from(e, `exec: spawn ${args[0]}`));
    }
    const onError = (e: Error): void => {
      child.off('spawn', onSpawn);
      reject(TransportError.from(e, `exec: spawn ${args[0]}`));
    };
    const onSpawn = (): void => {
      child.off('error', onError);
      resolve(new ExecChannel(child, role, opts));
    };
    child.once('error', onError);
    child.once('spawn', onSpawn);
  });
}

/** Outgoing exec: (QEMU: exec_start_outgoing_migration). */
export function connectExec(addr: { args: string[] }, opts: ChannelOptions = {}): Promise<ByteChannel> {
  return spawnExec(addr.args, 'outgoing', opts);
}

/** Incoming exec: (QEMU: exec_start_incoming_migration): the command starts at once. */
export async function listenExec(addr: { args: string[] }, opts: ChannelOptions = {}): Promise<IncomingListener> {
  return singleChannelListener('exec', await spawnExec(addr.args, 'incoming', opts));
}
