#!/usr/bin/env node
// `npm run bench`: every benchmark in turn, each printing JSON lines to stdout.
//
//   npm run bench [-- cpu vcpu host precopy postcopy file cpr] [--save [--label L]] [bench flags...]
//
// Names pick benchmarks (default: all). Any other argument is passed to every benchmark picked
// (`--mem 256M` to precopy and file alike), so give flags to one benchmark at a time when
// their meanings differ (`--case` is cpu's and precopy's).
//
// --save appends each benchmark's lines to bench/results/YYYY-MM-NAME[-L].jsonl, after one
// line saying which run they came from: {"run": {bench, args, commit, node, cpus, cpu, load,
// time}}. The tables in docs/benchmarks.md are read from these files, so a run on a busy
// machine or at reduced sizes gets a label (`--label smoke`) that keeps it apart from them.
'use strict';
const { execFileSync, spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.join(__dirname, '..');
const ALL = ['cpu', 'vcpu', 'host', 'precopy', 'postcopy', 'file', 'cpr'];

function parseArgs(argv) {
  const names = [];
  const rest = [];
  let save = false;
  let label = null;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (ALL.includes(a)) names.push(a);
    else if (a === '--save') save = true;
    else if (a === '--label') label = argv[++i];
    else rest.push(a);
  }
  if (label !== null && !/^[a-z0-9][a-z0-9-]*$/.test(label ?? '')) {
    throw new Error(`--label wants lower-case letters, digits and dashes, got ${JSON.stringify(label)}`);
  }
  if (label !== null && !save) throw new Error('--label names a saved file: give --save too');
  return { names: names.length ? names : ALL, rest, save, label };
}

function commit() {
  try {
    const head = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: ROOT, encoding: 'utf8' }).trim() !== '';
    return dirty ? `${head}+changes` : head;
  } catch {
    return null; // not a git checkout (an installed package)
  }
}

function resultsFile(name, label) {
  const month = new Date().toISOString().slice(0, 7);
  return path.join(ROOT, 'bench', 'results', `${month}-${name}${label ? `-${label}` : ''}.jsonl`);
}

/** Runs one benchmark; with `file`, appends its JSON lines there as they arrive. */
function run(name, args, file) {
  const script = path.join(ROOT, 'dist', 'bench', `${name}.js`);
  const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  let pending = '';
  child.stdout.on('data', (d) => {
    process.stdout.write(d);
    if (!file) return;
    pending += d.toString();
    const lines = pending.split('\n');
    pending = lines.pop();
    const json = lines.filter((l) => l.startsWith('{'));
    if (json.length) fs.appendFileSync(file, json.map((l) => l + '\n').join(''));
  });
  return new Promise((resolve) => child.on('close', (code) => resolve(code === 0)));
}

async function main() {
  const { names, rest, save, label } = parseArgs(process.argv.slice(2));
  let failed = 0;
  for (const name of names) {
    process.stderr.write(`bench: ${name}\n`);
    let file = null;
    if (save) {
      file = resultsFile(name, label);
      fs.mkdirSync(path.dirname(file), { recursive: true });
      const cpus = os.cpus();
      const meta = { bench: name, args: rest, commit: commit(), node: process.version, cpus: cpus.length, cpu: cpus[0]?.model ?? null, load: os.loadavg()[0], time: new Date().toISOString() };
      fs.appendFileSync(file, JSON.stringify({ run: meta }) + '\n');
      process.stderr.write(`bench: ${name} → ${path.relative(ROOT, file)}\n`);
    }
    if (!(await run(name, rest, file))) failed++;
  }
  process.exit(failed ? 1 : 0);
}

main().catch((e) => {
  process.stderr.write(`bench: ${e.message}\n`);
  process.exit(2);
});
