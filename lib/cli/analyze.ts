#!/usr/bin/env node
/**
 * `livemig-analyze`: what is in a savevm / migration stream file — livemig's counterpart of
 * QEMU's scripts/analyze-migration.py (same JSON for `-d state` and `-d desc`).
 *
 *   livemig-analyze [-d state|desc|ram|sections] [-x DIR] FILE
 *
 * Exit status: 0 on success; 1 when the file cannot be analysed (one line on stderr naming the
 * section, field and byte offset); 2 on a usage error.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  AnalyzeError,
  SECTIONS_HEADER,
  analyzeFile,
  formatRecord,
  renderDescJson,
  renderRamReport,
  renderStateJson,
  type AnalyzeOptions,
} from '../migration/analyze';

const PROG = 'livemig-analyze';
const MODES = ['state', 'desc', 'ram', 'sections'] as const;
type Mode = (typeof MODES)[number];

const USAGE = `usage: ${PROG} [-d state|desc|ram|sections] [-x DIR] FILE

Analyze a QEMU/livemig savevm or migration stream (plain, or gzip-compressed).

  -d, --dump WHAT     state     device state as JSON (default; the output of QEMU's
                                scripts/analyze-migration.py -d state)
                      desc      the stream's vmdesc JSON
                      ram       RAM statistics: per block normal / zero / resent pages,
                                iterations, commands
                      sections  one line per section: offset, length, type, id, idstr,
                                instance, version
      --ram           same as -d ram
      --sections      same as -d sections
  -x, --extract DIR   write each RAM block's final contents to DIR/<idstr>.bin, and
                      DIR/state.json and DIR/desc.json
  -f, --file FILE     the stream (or give it as the last argument)
  -h, --help          this text
`;

class UsageError extends Error {}

interface Args {
  file: string;
  mode: Mode;
  extract?: string;
}

function parse(argv: string[]): Args | null {
  let file: string | undefined;
  let mode: Mode = 'state';
  let extract: string | undefined;
  const value = (i: number, opt: string): string => {
    if (i >= argv.length) throw new UsageError(`option ${opt} needs a value`);
    return argv[i];
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const eq = a.startsWith('--') ? a.indexOf('=') : -1;
    const opt = eq > 0 ? a.slice(0, eq) : a;
    const inline = eq > 0 ? a.slice(eq + 1) : undefined;
    switch (opt) {
      case '-h':
      case '--help':
        return null;
      case '-d':
      case '--dump': {
        const m = inline ?? value(++i, opt);
        if (!(MODES as readonly string[]).includes(m)) throw new UsageError(`-d takes ${MODES.join(', ')}; not '${m}'`);
        mode = m as Mode;
        break;
      }
      case '--ram':
        mode = 'ram';
        break;
      case '--sections':
        mode = 'sections';
        break;
      case '-x':
      case '--extract':
        extract = inline ?? value(++i, opt);
        break;
      case '-f':
      case '--file':
        file = inline ?? value(++i, opt);
        break;
      default:
        if (a.startsWith('-') && a !== '-') throw new UsageError(`unknown option '${a}'`);
        if (file !== undefined) throw new UsageError(`more than one file ('${file}', '${a}')`);
        file = a;
    }
  }
  if (file === undefined) throw new UsageError('no file given');
  return { file, mode, extract };
}

/** One line, whatever bytes a hostile file put into a name. */
function oneLine(s: string): string {
  return s.replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

function out(s: string): void {
  process.stdout.write(s + '\n');
}

async function run(args: Args): Promise<void> {
  const opts: AnalyzeOptions = {};
  if (args.mode === 'desc' && !args.extract) opts.descOnly = true;
  if (args.extract) opts.extractDir = args.extract;
  if (args.mode === 'sections' && !args.extract) {
    out(SECTIONS_HEADER);
    opts.onRecord = (r) => out(oneLine(formatRecord(r)));
  }
  const r = await analyzeFile(args.file, opts);
  if (args.extract) {
    const files = [...r.extracted];
    if (r.vmdesc) {
      const desc = path.join(args.extract, 'desc.json');
      fs.writeFileSync(desc, renderDescJson(r) + '\n');
      files.push(desc);
    }
    const state = path.join(args.extract, 'state.json');
    fs.writeFileSync(state, renderStateJson(r) + '\n');
    files.push(state);
    for (const f of files) out(f);
    return;
  }
  switch (args.mode) {
    case 'state':
      return out(renderStateJson(r));
    case 'desc':
      return out(renderDescJson(r));
    case 'ram':
      return out(renderRamReport(r));
    case 'sections':
      if (r.recordsDropped) out(`(${r.recordsDropped} records not kept)`);
      return;
  }
}

async function main(): Promise<void> {
  process.stdout.on('error', (e: NodeJS.ErrnoException) => process.exit(e.code === 'EPIPE' ? 0 : 1));
  let args: Args | null;
  try {
    args = parse(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`${PROG}: ${(e as Error).message}\n${USAGE}`);
    process.exit(2);
  }
  if (!args) {
    process.stdout.write(USAGE);
    return;
  }
  try {
    await run(args);
  } catch (e) {
    const msg = e instanceof AnalyzeError ? e.message : `internal error: ${e instanceof Error ? e.message : String(e)}`;
    process.stderr.write(`${PROG}: ${oneLine(args.file)}: ${oneLine(msg)}\n`);
    if (process.env.LIVEMIG_DEBUG && e instanceof Error) process.stderr.write(`${e.stack}\n`);
    process.exit(1);
  }
}

void main();
