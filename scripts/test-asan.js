#!/usr/bin/env node
// Runs the test/host suite against the AddressSanitizer + UBSan build of the addon.
//
// The sanitizer build lives in build-asan/ (scripts/build-cmake.js --asan), apart from the
// normal build, and the loader is pointed at it with LIVEMIG_ADDON; nothing else changes.
// node itself is not instrumented, so g++'s libasan is preloaded (it must come first) and leak
// detection is off (node's own allocations at exit are not ours to judge). Any sanitizer report
// aborts the process and fails the run. Extra arguments go to jest.
'use strict';
const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const addon = path.join(root, 'build-asan', 'Release', 'livemig.node');

function newestSource() {
  const dir = path.join(root, 'native');
  const files = [...fs.readdirSync(dir).map((f) => path.join(dir, f)), path.join(root, 'CMakeLists.txt')];
  return Math.max(...files.map((f) => fs.statSync(f).mtimeMs));
}

if (!fs.existsSync(addon) || fs.statSync(addon).mtimeMs < newestSource()) {
  const r = spawnSync(process.execPath, [path.join(__dirname, 'build-cmake.js'), '--asan'], {
    cwd: root,
    stdio: 'inherit',
  });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

const libasan = execFileSync('g++', ['-print-file-name=libasan.so'], { encoding: 'utf8' }).trim();
if (!path.isAbsolute(libasan) || !fs.existsSync(libasan)) {
  console.error(`test:asan: g++ does not know where libasan.so is (got "${libasan}")`);
  process.exit(1);
}

const env = {
  ...process.env,
  LD_PRELOAD: libasan,
  ASAN_OPTIONS: 'detect_leaks=0:abort_on_error=1',
  UBSAN_OPTIONS: 'print_stacktrace=1:halt_on_error=1',
  LIVEMIG_ADDON: addon,
};
const jest = require.resolve('jest/bin/jest');
const r = spawnSync(process.execPath, [jest, 'test/host', ...process.argv.slice(2)], { cwd: root, env, stdio: 'inherit' });
process.exit(r.status ?? 1);
