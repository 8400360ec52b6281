/** Helpers for end-to-end tests: the compiled livemig binary and temporary directories. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export const ROOT = path.resolve(__dirname, '../..');
export const LIVEMIG = path.join(ROOT, 'dist/lib/cli/livemig.js');
export const ANALYZE = path.join(ROOT, 'dist/lib/cli/analyze.js');

export function guest(name: string): string {
  return path.join(ROOT, 'guests', `${name}.elf`);
}

export function tmpdir(prefix = 'livemig-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}
