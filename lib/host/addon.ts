/**
 * Loads the native addon once per thread and says what it tried when it cannot.
 *
 * Order: `LIVEMIG_ADDON` (a path to a .node file, e.g. the sanitizer build in build-asan/),
 * else node-gyp-build on the package root, which looks in build/Release (node-gyp and cmake-js
 * both write there), build/Debug, then prebuilds/<platform>-<arch>/.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { HostError } from './errors';
import type { NativeAddon } from './native';

// node-gyp-build ships no types: (dir) → the loaded module.
// eslint-disable-next-line @typescript-eslint/no-var-requires
const nodeGypBuild: (dir: string) => unknown = require('node-gyp-build');

/** The package root: the nearest directory above this file holding binding.gyp. */
function packageRoot(): string {
  let dir = __dirname;
  for (;;) {
    if (fs.existsSync(path.join(dir, 'binding.gyp'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`livemig: no package root (binding.gyp) above ${__dirname}`);
    dir = up;
  }
}

function load(): NativeAddon {
  const override = process.env.LIVEMIG_ADDON;
  if (override) {
    const file = path.resolve(override);
    try {
      return require(file) as NativeAddon;
    } catch (e) {
      throw new Error(`livemig: cannot load the native addon from LIVEMIG_ADDON=${file}: ${(e as Error).message}`);
    }
  }
  const root = packageRoot();
  try {
    return nodeGypBuild(root) as NativeAddon;
  } catch (e) {
    const tried = ['build/Release', 'build/Debug', `prebuilds/${process.platform}-${process.arch}`]
      .map((p) => path.join(root, p))
      .join(', ');
    throw new Error(
      `livemig: cannot load the native addon (tried ${tried}; set LIVEMIG_ADDON to a .node file ` +
        `to override). Build it with "npm run build:gyp". Cause: ${(e as Error).message}`,
    );
  }
}

function init(): NativeAddon {
  const addon = load();
  addon.setErrorClass(HostError);
  return addon;
}

/** The addon for this thread, with errors arriving as HostError. */
export const native: NativeAddon = init();
