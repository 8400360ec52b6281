#!/usr/bin/env node
/**
 * `livemig`: run a virt machine with QEMU's option spelling.
 *
 *   livemig -M virt -m 1G -smp 2 -kernel guests/ab.elf -serial stdio \
 *           -qmp unix:/run/src.qmp,server=on,wait=off
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { OptionError, parseArgs, type LivemigConfig } from './options';
import { Runtime } from './runtime';

const PROG = 'livemig';

function fail(msg: string): never {
  process.stderr.write(`${PROG}: ${msg}\n`);
  process.exit(1);
}

/**
 * -daemonize: like QEMU, the parent returns only once the child has set up (so a script can
 * connect to its sockets right away). The child reports through an extra pipe (fd 3).
 */
async function daemonize(argv: string[]): Promise<never> {
  const child = spawn(process.execPath, [...process.execArgv, __filename, ...argv], {
    detached: true,
    stdio: ['ignore', 'ignore', 'inherit', 'pipe'],
    env: { ...process.env, LIVEMIG_DAEMON_CHILD: '1' },
  });
  const pipe = child.stdio[3] as NodeJS.ReadableStream;
  let status = '';
  pipe.on('data', (b) => (status += b.toString()));
  const code = await new Promise<number>((resolve) => {
    pipe.on('end', () => resolve(status.startsWith('ok') ? 0 : 1));
    child.on('exit', (c) => resolve(c ?? 1));
  });
  if (code === 0) child.unref();
  process.exit(code);
}

function daemonReady(ok: boolean): void {
  if (process.env.LIVEMIG_DAEMON_CHILD !== '1') return;
  try {
    fs.writeSync(3, ok ? 'ok\n' : 'fail\n');
    fs.closeSync(3);
  } catch {
    /* parent gone */
  }
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  let cfg: LivemigConfig;
  try {
    cfg = parseArgs(argv);
  } catch (e) {
    if (e instanceof OptionError) fail(e.message);
    throw e;
  }
  if (cfg.daemonize && process.env.LIVEMIG_DAEMON_CHILD !== '1') {
    if (cfg.serial.some((s) => s.kind === 'stdio') || cfg.monitor.some((s) => s.kind === 'stdio')) {
      fail('-nographic, -serial stdio and -monitor stdio cannot be used with -daemonize');
    }
    await daemonize(argv);
  }
  let rt: Runtime;
  try {
    rt = await Runtime.start(cfg);
  } catch (e) {
    daemonReady(false);
    fail(e instanceof Error ? e.message : String(e));
  }
  daemonReady(true);
  let signalled = false;
  const quit = (sig: string) => {
    if (signalled) return;
    signalled = true;
    process.stderr.write(`${PROG}: terminating on signal ${sig}\n`);
    void rt.quit(0);
  };
  process.on('SIGINT', () => quit('2'));
  process.on('SIGTERM', () => quit('15'));
  process.on('SIGHUP', () => quit('1'));
}

void main().catch((e) => fail(e instanceof Error ? (e.stack ?? e.message) : String(e)));
