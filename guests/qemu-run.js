#!/usr/bin/env node
'use strict';
/**
 * Runs a livemig guest on the reference machine, QEMU:
 *   qemu-system-riscv64 -M virt -bios none -m MEM -smp N -kernel ELF -display none -serial stdio
 * and captures the bytes it writes on its UART. Plain Node, no dependencies. Also a tiny QMP
 * client (stop, pmemsave, migrate to a file) for tests and guests/make-qemu-stream.sh.
 *
 *   node guests/qemu-run.js run [--mem 128M] [--smp N] [--append ARGS] [--seconds S]
 *                               [--until TEXT] ELF          UART bytes to stdout
 *   node guests/qemu-run.js record [NAME...]               re-record guests/expected/*
 *   node guests/qemu-run.js check [NAME...]                compare QEMU with guests/expected/*
 *   node guests/qemu-run.js stream --out FILE [--mem 16M] [--append ARGS] [--until TEXT] ELF
 *                                                          QEMU migration stream of a stopped guest
 *
 * The qemu binary is $LIVEMIG_QEMU, else qemu-system-riscv64 on PATH. Everything that needs it
 * reports "qemu-system-riscv64 not found" through findQemu() returning null, so tests can skip.
 */

const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const GUESTS_DIR = __dirname;
const EXPECTED_DIR = path.join(GUESTS_DIR, 'expected');
const RUNS_FILE = path.join(EXPECTED_DIR, 'runs.json');
const NOT_FOUND = 'qemu-system-riscv64 not found (set LIVEMIG_QEMU or install qemu-system-misc)';

/** Path of the qemu-system-riscv64 binary, or null when it is not installed. */
function findQemu() {
  const env = process.env.LIVEMIG_QEMU;
  if (env) return fs.existsSync(env) ? env : null;
  for (const dir of (process.env.PATH || '').split(path.delimiter)) {
    if (!dir) continue;
    const p = path.join(dir, 'qemu-system-riscv64');
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      /* keep looking */
    }
  }
  return null;
}

function qemuVersion(qemu = findQemu()) {
  if (!qemu) return null;
  const out = execFileSync(qemu, ['--version'], { encoding: 'utf8' });
  const m = /version (\S+)/.exec(out);
  return m ? m[1] : out.split('\n')[0];
}

/** The QEMU command line for a guest (without the binary). */
function qemuArgs({ elf, mem = '128M', smp = 1, append, qmp, extra = [] }) {
  const args = ['-M', 'virt', '-bios', 'none', '-m', String(mem), '-smp', String(smp),
    '-kernel', elf, '-display', 'none', '-serial', 'stdio', '-monitor', 'none'];
  if (append) args.push('-append', append);
  if (qmp) args.push('-qmp', `unix:${qmp},server=on,wait=off`);
  return args.concat(extra);
}

function resolveElf(elf) {
  if (path.isAbsolute(elf) || fs.existsSync(elf)) return path.resolve(elf);
  return path.join(GUESTS_DIR, elf.endsWith('.elf') ? elf : `${elf}.elf`);
}

/**
 * A running QEMU guest: `output` accumulates UART bytes; `exited` resolves with
 * {code, signal}. Use waitFor() to wait for output, qmp() to manage it, kill() to end it.
 */
class QemuGuest {
  constructor(opts) {
    const qemu = opts.qemu || findQemu();
    if (!qemu) throw new Error(NOT_FOUND);
    this.tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'livemig-qemu-'));
    this.qmpPath = opts.qmp ? path.join(this.tmp, 'qmp.sock') : null;
    this.args = qemuArgs({ ...opts, elf: resolveElf(opts.elf), qmp: this.qmpPath });
    this.output = Buffer.alloc(0);
    this.stderr = '';
    this.waiters = [];
    this.proc = spawn(qemu, this.args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc.stdout.on('data', (d) => {
      this.output = Buffer.concat([this.output, d]);
      this.poke();
    });
    this.proc.stderr.on('data', (d) => {
      this.stderr += d.toString();
    });
    this.exited = new Promise((resolve) => {
      this.proc.on('exit', (code, signal) => {
        this.exitStatus = { code, signal };
        this.poke();
        resolve(this.exitStatus);
      });
    });
  }

  poke() {
    for (const w of this.waiters.slice()) w();
  }

  /** Resolves when the output contains `text` (string) or `pred(output)` is true. */
  waitFor(text, timeoutMs = 10000) {
    const pred = typeof text === 'function' ? text : (out) => out.includes(text);
    return new Promise((resolve, reject) => {
      const check = () => {
        if (pred(this.output)) return done(null);
        if (this.exitStatus) {
          const status = JSON.stringify(this.exitStatus);
          return done(new Error(`qemu exited (${status}) before ${text}; output: ${this.output}`));
        }
        return undefined;
      };
      const timer = setTimeout(() => {
        const sofar = this.output.toString().slice(0, 200);
        done(new Error(`timeout waiting for ${text}; output so far: ${sofar}`));
      }, timeoutMs);
      const done = (err) => {
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== check);
        if (err) reject(err);
        else resolve(this.output);
      };
      this.waiters.push(check);
      check();
    });
  }

  /** Sends one QMP command and resolves with its "return" value (rejects on "error"). */
  async qmp(execute, args) {
    if (!this.qmpClient) this.qmpClient = await QmpClient.connect(this.qmpPath);
    return this.qmpClient.command(execute, args);
  }

  /** Saves guest physical [addr, addr+size) to `file` (QMP pmemsave) and reads it back. */
  async pmem(addr, size) {
    const file = path.join(this.tmp, `pmem-${addr.toString(16)}-${size}.bin`);
    await this.qmp('pmemsave', { val: addr, size, filename: file });
    const data = fs.readFileSync(file);
    fs.unlinkSync(file);
    return data;
  }

  /** Migrates to `file` through `exec:cat > file`, waiting until QEMU reports completed. */
  async migrateToFile(file, pollMs = 50, timeoutMs = 60000) {
    const quoted = `'${path.resolve(file).replace(/'/g, "'\\''")}'`;
    await this.qmp('migrate', { uri: `exec:cat > ${quoted}` });
    const t0 = Date.now();
    for (;;) {
      const info = await this.qmp('query-migrate');
      if (info.status === 'completed') return info;
      if (info.status === 'failed' || info.status === 'cancelled') {
        throw new Error(`migration ${info.status}: ${info['error-desc'] || ''}`);
      }
      if (Date.now() - t0 > timeoutMs) throw new Error(`migration still ${info.status} after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, pollMs));
    }
  }

  async kill() {
    if (this.qmpClient) this.qmpClient.close();
    if (!this.exitStatus) this.proc.kill('SIGTERM');
    const status = await this.exited;
    fs.rmSync(this.tmp, { recursive: true, force: true });
    return status;
  }
}

/** Minimal QMP client: greeting, qmp_capabilities, then one command at a time. */
class QmpClient {
  static async connect(sockPath, timeoutMs = 5000) {
    const t0 = Date.now();
    for (;;) {
      try {
        const sock = await new Promise((resolve, reject) => {
          const s = net.createConnection(sockPath);
          s.once('connect', () => resolve(s));
          s.once('error', reject);
        });
        const c = new QmpClient(sock);
        await c.next(); // greeting
        await c.command('qmp_capabilities');
        return c;
      } catch (e) {
        if (Date.now() - t0 > timeoutMs) throw e;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  }

  constructor(sock) {
    this.sock = sock;
    this.buf = '';
    this.queue = [];
    this.waiting = null;
    this.events = [];
    sock.setEncoding('utf8');
    sock.on('data', (d) => {
      this.buf += d;
      let nl;
      while ((nl = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, nl).trim();
        this.buf = this.buf.slice(nl + 1);
        if (!line) continue;
        const msg = JSON.parse(line);
        if (msg.event) this.events.push(msg);
        else this.queue.push(msg);
      }
      if (this.waiting && this.queue.length) {
        const w = this.waiting;
        this.waiting = null;
        w(this.queue.shift());
      }
    });
  }

  next() {
    if (this.queue.length) return Promise.resolve(this.queue.shift());
    return new Promise((resolve) => {
      this.waiting = resolve;
    });
  }

  async command(execute, args) {
    this.sock.write(JSON.stringify(args ? { execute, arguments: args } : { execute }) + '\n');
    const msg = await this.next();
    if (msg.error) throw new Error(`QMP ${execute}: ${msg.error.class}: ${msg.error.desc}`);
    return msg.return;
  }

  close() {
    this.sock.destroy();
  }
}

/**
 * Runs a guest for at most `seconds`, or until `until` appears in its output, or until it powers
 * off. Returns {output, code, signal, exited} where `exited` says it powered off by itself.
 */
async function runGuest(opts) {
  const g = new QemuGuest(opts);
  const ms = (opts.seconds ?? 5) * 1000;
  let timer;
  const timeout = new Promise((r) => { timer = setTimeout(r, ms); });
  const seen = opts.until ? g.waitFor(opts.until, ms).catch(() => {}) : timeout;
  await Promise.race([g.exited, seen, timeout]);
  clearTimeout(timer);
  const exited = Boolean(g.exitStatus);
  const status = await g.kill();
  return { output: g.output, code: status.code, signal: status.signal, exited, stderr: g.stderr };
}

/** guests/expected/runs.json: the recorded QEMU runs. */
function loadRuns() {
  return JSON.parse(fs.readFileSync(RUNS_FILE, 'utf8')).runs;
}

/** Output of one recorded run, cut the way the run says (prefix runs stop after `until`). */
async function captureRun(run) {
  const r = await runGuest({ elf: run.elf, mem: run.mem, smp: run.smp, append: run.append,
    seconds: run.seconds, until: run.until });
  let out = r.output;
  if (run.match === 'prefix') {
    const i = out.indexOf(run.until);
    if (i < 0) throw new Error(`${run.name}: "${run.until}" not seen in ${run.seconds}s: ${out.toString().slice(0, 200)}`);
    out = out.subarray(0, i + Buffer.byteLength(run.until));
  } else if (!r.exited) {
    throw new Error(`${run.name}: did not power off within ${run.seconds}s`);
  }
  return { ...r, output: out };
}

function expectedOf(run) {
  return fs.readFileSync(path.join(EXPECTED_DIR, run.file));
}

function pickRuns(names) {
  const runs = loadRuns();
  return names.length ? runs.filter((r) => names.includes(r.name)) : runs;
}

async function record(names) {
  for (const run of pickRuns(names)) {
    const r = await captureRun(run);
    if (run.match === 'exact' && r.code !== run.exitCode) {
      throw new Error(`${run.name}: exit status ${r.code}, expected ${run.exitCode}`);
    }
    fs.writeFileSync(path.join(EXPECTED_DIR, run.file), r.output);
    process.stdout.write(`${run.name}: ${r.output.length} bytes -> expected/${run.file}\n`);
  }
}

async function check(names) {
  let bad = 0;
  for (const run of pickRuns(names)) {
    const r = await captureRun(run);
    const same = r.output.equals(expectedOf(run)) && (run.match !== 'exact' || r.code === run.exitCode);
    if (!same) bad++;
    process.stdout.write(`${run.name}: ${same ? 'same' : 'DIFFERENT'}\n`);
  }
  return bad;
}

/**
 * Starts a guest with a QMP socket, waits for `until` in its output, stops it and migrates it to
 * `out` (exec:cat). Returns the query-migrate result, the UART output and the command line with
 * this machine's paths replaced (ELF relative to the repository, QMP socket as QMP.sock).
 */
async function stream(opts) {
  const g = new QemuGuest({ ...opts, qmp: true });
  try {
    await g.qmp('query-status');
    if (opts.until) await g.waitFor(opts.until, 30000);
    await g.qmp('stop');
    const info = await g.migrateToFile(opts.out);
    const repo = path.dirname(GUESTS_DIR);
    const elf = resolveElf(opts.elf);
    const args = g.args.map((a) => a.replace(g.qmpPath, 'QMP.sock').replace(elf, path.relative(repo, elf)));
    return { info, output: g.output.toString(), command: ['qemu-system-riscv64', ...args] };
  } finally {
    await g.kill();
  }
}

function parseCli(argv) {
  const opts = { rest: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a.startsWith('--')) opts[a.slice(2)] = argv[++i];
    else opts.rest.push(a);
  }
  return opts;
}

async function main() {
  const [cmd, ...argv] = process.argv.slice(2);
  const o = parseCli(argv);
  if (!findQemu() && cmd !== 'help') {
    process.stderr.write(`${NOT_FOUND}\n`);
    process.exit(77);
  }
  if (cmd === 'run') {
    const r = await runGuest({ elf: o.rest[0], mem: o.mem, smp: o.smp, append: o.append,
      seconds: o.seconds ? Number(o.seconds) : 5, until: o.until });
    process.stdout.write(r.output);
    process.exitCode = r.exited ? r.code ?? 1 : 0;
  } else if (cmd === 'record') {
    await record(o.rest);
  } else if (cmd === 'check') {
    process.exitCode = (await check(o.rest)) ? 1 : 0;
  } else if (cmd === 'stream') {
    const r = await stream({ elf: o.rest[0], mem: o.mem || '16M', smp: o.smp, append: o.append,
      until: o.until, out: o.out });
    const meta = { qemu: qemuVersion(), command: r.command, uart: r.output, migrate: r.info };
    process.stdout.write(JSON.stringify(meta, null, 2) + '\n');
  } else {
    process.stderr.write('usage: qemu-run.js run|record|check|stream ... (see the header comment)\n');
    process.exit(2);
  }
}

module.exports = { findQemu, qemuVersion, qemuArgs, QemuGuest, QmpClient, runGuest, loadRuns, captureRun, expectedOf };

if (require.main === module) {
  main().catch((e) => {
    process.stderr.write(`${e.stack || e}\n`);
    process.exit(1);
  });
}
