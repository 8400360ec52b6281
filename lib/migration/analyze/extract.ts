/**
 * `-x DIR`: each RAM block's final contents in DIR/<idstr>.bin, as analyze-migration.py's
 * extract mode writes them. Files are created at the block list with the block's length (so
 * pages never sent read as zeros, sparsely), and every page record is written where it
 * belongs, in stream order, so a page sent again overwrites the earlier copy. A zero page is
 * written only over a page that was written before.
 *
 * Page bytes go from the reader's chunk into one staging buffer (a native memcpy per page,
 * no per-page objects); runs of consecutive pages of one block leave in a single pwrite.
 *
 * Block names become file names with every byte outside [A-Za-z0-9._:@+-] replaced by "_"
 * (so "0000:00:02.0/vga.vram" is "0000:00:02.0_vga.vram.bin"): a name from the file can
 * never point outside DIR.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { QemuFileReader } from '../../stream';
import { AnalyzeError } from './errors';

const STAGING = 1 << 20;

export function blockFileName(idstr: string): string {
  return idstr.replace(/[^A-Za-z0-9._:@+-]/g, '_') + '.bin';
}

function ioError(what: string, e: unknown): AnalyzeError {
  const err = e as NodeJS.ErrnoException;
  return new AnalyzeError('EANALYZE_IO', `${what}: ${err.code ?? err.message ?? String(e)}`, { cause: e });
}

export class BlockExtractor {
  private fds: number[] = [];
  readonly files: string[] = [];
  private readonly staging = Buffer.alloc(STAGING);
  private runBlock = -1;
  private runStart = 0;
  private runLen = 0;

  constructor(readonly dir: string) {
    try {
      fs.mkdirSync(dir, { recursive: true });
    } catch (e) {
      throw ioError(`cannot create '${dir}'`, e);
    }
  }

  /** Create one file per block (index = position in the block list). */
  open(blocks: readonly { idstr: string; size: number }[]): void {
    this.close();
    const names = new Set<string>();
    for (const b of blocks) {
      const name = blockFileName(b.idstr);
      if (names.has(name)) throw new AnalyzeError('EANALYZE_IO', `two RAM blocks would be extracted to '${name}'`, { section: 'ram', field: b.idstr });
      names.add(name);
      const file = path.join(this.dir, name);
      try {
        const fd = fs.openSync(file, 'w');
        this.fds.push(fd);
        fs.ftruncateSync(fd, b.size);
      } catch (e) {
        throw ioError(`cannot write '${file}'`, e);
      }
      this.files.push(file);
    }
  }

  /** The next `n` bytes of `f` are the page at `offset` of block `block`. */
  page(block: number, offset: number, f: QemuFileReader, n: number): void {
    this.reserve(block, offset, n);
    f.getRangeInto(this.staging, this.runLen, n);
    this.runLen += n;
  }

  /** The page at `offset` is zero again. */
  zero(block: number, offset: number, n: number): void {
    this.reserve(block, offset, n);
    this.staging.fill(0, this.runLen, this.runLen + n);
    this.runLen += n;
  }

  flush(): void {
    if (this.runLen === 0) return;
    try {
      let done = 0;
      while (done < this.runLen) done += fs.writeSync(this.fds[this.runBlock], this.staging, done, this.runLen - done, this.runStart + done);
    } catch (e) {
      throw ioError(`cannot write '${this.files[this.runBlock]}'`, e);
    }
    this.runLen = 0;
  }

  close(): void {
    this.flush();
    for (const fd of this.fds) fs.closeSync(fd);
    this.fds = [];
    this.runBlock = -1;
  }

  /** Make room for `n` bytes at (block, offset) at the end of the current run. */
  private reserve(block: number, offset: number, n: number): void {
    if (this.runLen > 0 && (block !== this.runBlock || offset !== this.runStart + this.runLen || this.runLen + n > STAGING)) this.flush();
    if (this.runLen === 0) {
      this.runBlock = block;
      this.runStart = offset;
    }
  }
}
