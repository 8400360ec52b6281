#!/usr/bin/env node
// Builds the addon with cmake-js, offline: cmake-js's own Node-API headers (package.json
// declares napi_versions, so nothing is downloaded) plus Node's include directory beside the
// running node binary for uv.h.
//   node scripts/build-cmake.js          → build/Release/livemig.node
//   node scripts/build-cmake.js --asan   → build-asan/Release/livemig.node (ASan + UBSan)
'use strict';
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const asan = process.argv.includes('--asan');
const nodeInclude = path.resolve(process.execPath, '..', '..', 'include', 'node');

const args = [
  require.resolve('cmake-js/bin/cmake-js'),
  'rebuild',
  '--config', 'Release',
  '--out', asan ? 'build-asan' : 'build',
  `--CDLIVEMIG_NODE_INCLUDE=${nodeInclude}`,
  `--CDLIVEMIG_SANITIZE=${asan ? 'ON' : 'OFF'}`,
];
const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);
