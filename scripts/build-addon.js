#!/usr/bin/env node
// Builds the native addon offline through node-gyp (via node-gyp-build, which skips the
// build when a usable prebuild exists). Node's own headers are used: the ones next to the
// running node binary, so node-gyp never downloads a header tarball.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const force = process.argv.includes('--force');

function nodeDir() {
  if (process.env.npm_config_nodedir) return process.env.npm_config_nodedir;
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  if (fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h'))) return prefix;
  return undefined;
}

if (!fs.existsSync(path.join(root, 'binding.gyp'))) process.exit(0);

const env = { ...process.env };
const dir = nodeDir();
if (dir) env.npm_config_nodedir = dir;
else console.warn('build-addon: no Node headers beside the node binary; node-gyp may try to download them');

const cmd = force
  ? [require.resolve('node-gyp/bin/node-gyp.js'), 'rebuild']
  : [require.resolve('node-gyp-build/bin.js')];
const r = spawnSync(process.execPath, cmd, { cwd: root, env, stdio: 'inherit' });
process.exit(r.status ?? 1);
