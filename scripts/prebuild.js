#!/usr/bin/env node
// Makes prebuilds/<platform>-<arch>/livemig.node with prebuildify (Node-API, so one
// binary serves every Node version with napi 9). prebuildify drives node-gyp; like
// build-addon.js, this points node-gyp at the headers beside the running node binary so
// nothing is downloaded. node-gyp-build loads the prebuild when there is no local build.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const env = { ...process.env };
const prefix = path.resolve(path.dirname(process.execPath), '..');
if (fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h'))) env.npm_config_nodedir = prefix;
// prebuildify spawns `node-gyp`: make sure this package's copy is first on PATH.
env.PATH = [path.join(root, 'node_modules', '.bin'), env.PATH].join(path.delimiter);

const bin = require.resolve('prebuildify/bin.js');
const r = spawnSync(process.execPath, [bin, '--napi', '--strip', ...process.argv.slice(2)], {
  cwd: root,
  env,
  stdio: 'inherit',
});
process.exit(r.status ?? 1);
