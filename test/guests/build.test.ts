/**
 * The committed ELFs are what `make -C guests` builds from the committed sources. Needs
 * riscv64-unknown-elf-gcc and make; skipped with the reason in the suite name otherwise.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const GUESTS = path.resolve(__dirname, '../../guests');
const has = (cmd: string) => spawnSync(cmd, ['--version'], { stdio: 'ignore' }).status === 0;
const tools = has('riscv64-unknown-elf-gcc') && has('make');
const describeBuild = tools ? describe : describe.skip;

const SKIP_REASON = 'skipped: riscv64-unknown-elf-gcc or make not installed (the committed ELFs are used as they are)';

if (!tools) {
  // Jest does not list the names of a file's tests when all are skipped: say why here too.
  process.stderr.write(`build.test.ts: ${SKIP_REASON}\n`);
  describe('make -C guests', () => {
    it.skip(SKIP_REASON, () => {});
  });
}

describeBuild('make -C guests', () => {
  it('rebuilds byte-identical ELFs in another directory', () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'livemig-guests-'));
    try {
      const copy = path.join(tmp, 'guests');
      fs.cpSync(GUESTS, copy, { recursive: true, filter: (src) => !src.endsWith('.elf') });
      execFileSync('make', ['-s', '-C', copy], { stdio: 'pipe' });
      execFileSync('make', ['-s', '-C', copy, 'check'], { stdio: 'pipe' });
      const elfs = fs.readdirSync(GUESTS).filter((f) => f.endsWith('.elf'));
      expect(elfs.length).toBe(8);
      for (const f of elfs) {
        expect({ f, same: fs.readFileSync(path.join(copy, f)).equals(fs.readFileSync(path.join(GUESTS, f))) }).toEqual({ f, same: true });
      }
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
});
