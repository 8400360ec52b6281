#!/usr/bin/env node
// `npm run bench`: every benchmark in turn, each printing JSON lines to stdout.
//   npm run bench [-- cpu host precopy file cpr]   (default: all)
'use strict';
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const all = ['cpu', 'vcpu', 'host', 'precopy', 'file', 'cpr'];
const want = process.argv.slice(2).filter((a) => all.includes(a));
let failed = 0;
for (const name of want.length ? want : all) {
  const script = path.join(__dirname, '..', 'dist', 'bench', `${name}.js`);
  process.stderr.write(`bench: ${name}\n`);
  const r = spawnSync(process.execPath, [script], { stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);
