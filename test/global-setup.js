// Workers and child processes run compiled code; make sure dist/ matches the sources.
const { execFileSync } = require('node:child_process');
const path = require('node:path');

module.exports = async () => {
  const root = path.resolve(__dirname, '..');
  execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.json'], {
    cwd: root,
    stdio: 'inherit',
  });
  for (const bin of module.exports.binaries) {
    const file = path.join(root, bin);
    if (require('node:fs').existsSync(file)) require('node:fs').chmodSync(file, 0o755);
  }
};

// Spawned as programs by the end-to-end tests (like an installed bin).
module.exports.binaries = ['dist/lib/cli/livemig.js', 'dist/lib/cli/analyze.js'];
