/**
 * Save to and restore from `file:` (the idle guest, 1 GiB and 4 GiB: 1022 MiB of pseudo-random
 * data either way, see bench/precopy.ts), next to plain sequential file I/O of the same size
 * in the same directory and run, and to faulting in fresh memory.
 *
 *   save:    the idle guest is stopped, then `migrate file:PATH`; time = query-migrate total-time
 *   restore: a new process with `-incoming defer`, `migrate-incoming file:PATH`, timed until its
 *            status is completed
 *
 * The ceilings are measured first, each from the page-cache state of the run it bounds:
 *   write (plain write; save): nothing anywhere waiting for writeback (sync), the file absent;
 *          both write through the page cache without fsync, as `migrate file:` does.
 *   read (plain read; restore): none of the file in the page cache (fdatasync, then
 *          POSIX_FADV_DONTNEED), so both read it from the disk, as the restore of a file saved
 *          earlier does.
 *
 * One JSON line per result. Usage: node dist/bench/file.js [--mem 1G,4G] [--dir DIR]
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MemfdMapping } from '../lib/host';
import { arg, report, ROOT, sleep, tmpdir, VmProcess } from './harness';

/** Faulting in `bytes` of fresh guest-RAM-like memory (memfd, MADV_POPULATE_WRITE), GB/s: a
 * restore writes every page of a new process's RAM, so it cannot beat this. */
function freshMemory(bytes: number): number {
  const m = MemfdMapping.create({ name: 'bench', size: bytes });
  const t0 = performance.now();
  m.populate();
  const gbps = bytes / ((performance.now() - t0) / 1000) / 1e9;
  m.close();
  return gbps;
}

/** Write back dirty pages before a timed write, so neither side pays for the other's writeback. */
function flushPageCache(): void {
  try {
    execFileSync('sync');
  } catch {
    /* no sync(1): measure as is */
  }
}

/** Writes `file` back and drops its pages from the page cache: dd's nocache flag is
 * posix_fadvise(POSIX_FADV_DONTNEED), which Node does not offer, and fdatasync first makes
 * every page clean so that it can be dropped. Throws if it cannot: a read ceiling from the
 * cache next to a restore from the disk would compare two different things. */
function dropFromPageCache(file: string): void {
  execFileSync('dd', [`of=${file}`, 'oflag=nocache', 'conv=notrunc,fdatasync', 'count=0', 'status=none']);
}

/** Sequential write then read of `bytes` through 1 MiB buffers, GB/s each. */
function plainFileIo(file: string, bytes: number): { write: number; read: number } {
  const buf = Buffer.alloc(2 ** 20, 0x5a);
  flushPageCache();
  let fd = fs.openSync(file, 'w');
  let t0 = performance.now();
  // No fsync: the save does not sync either; both go through the page cache.
  for (let off = 0; off < bytes; off += buf.length) fs.writeSync(fd, buf, 0, Math.min(buf.length, bytes - off));
  fs.closeSync(fd);
  const write = bytes / ((performance.now() - t0) / 1000) / 1e9;
  dropFromPageCache(file);
  fd = fs.openSync(file, 'r');
  t0 = performance.now();
  while (fs.readSync(fd, buf) > 0) {
    /* read it all */
  }
  fs.closeSync(fd);
  const read = bytes / ((performance.now() - t0) / 1000) / 1e9;
  fs.rmSync(file);
  return { write, read };
}

/** The bytes of data in the idle guest's RAM, from the range it reports filling. The saved
 * file is these plus page headers and zero-page records, under 1% more: close enough for the
 * page cache to treat both files alike, and known before the save, which the file size is not. */
function guestDataBytes(output: string): number {
  const m = /idle: start=0x([0-9a-f]+) end=0x([0-9a-f]+)/.exec(output);
  if (!m) throw new Error('idle guest did not report its range');
  return parseInt(m[2], 16) - parseInt(m[1], 16);
}

async function one(mem: string, dir: string): Promise<void> {
  const file = path.join(dir, `guest-${mem}.mig`);
  const kernel = path.join(ROOT, 'guests', 'idle.elf');
  const common = ['-M', 'virt', '-m', mem, '-bios', 'none', '-kernel', kernel, '-display', 'none', '-serial', 'stdio', '-monitor', 'none'];
  const src = new VmProcess(path.join(dir, 'src.qmp'), common);
  let saveInfo: any;
  let plain: { write: number; read: number };
  let fresh: number;
  let plainBytes: number;
  try {
    await src.connect();
    await src.waitOutput(/tick 1\n/);
    await src.qmp.execute('stop');
    plainBytes = guestDataBytes(src.output);
    plain = plainFileIo(path.join(dir, 'plain.bin'), plainBytes);
    fresh = freshMemory(Math.ceil(plainBytes / 4096) * 4096);
    await src.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 0 });
    flushPageCache();
    await src.qmp.execute('migrate', { uri: `file:${file}` });
    for (;;) {
      saveInfo = await src.qmp.execute('query-migrate');
      if (saveInfo.status === 'completed' || saveInfo.status === 'failed') break;
      await sleep(10);
    }
  } finally {
    src.kill();
  }
  const size = fs.statSync(file).size;
  dropFromPageCache(file);
  const dst = new VmProcess(path.join(dir, 'dst.qmp'), [...common, '-incoming', 'defer']);
  let restoreMs = NaN;
  let restored = 'unknown';
  try {
    await dst.connect();
    const t0 = performance.now();
    await dst.qmp.execute('migrate-incoming', { uri: `file:${file}` });
    for (;;) {
      const info = await dst.qmp.execute('query-migrate');
      restored = info.status;
      if (info.status === 'completed' || info.status === 'failed') break;
      await sleep(5);
    }
    restoreMs = performance.now() - t0;
    await dst.qmp.execute('cont');
    await dst.waitOutput(/tick/, 5000);
  } finally {
    dst.kill();
  }
  fs.rmSync(file, { force: true });
  const saveGBps = size / (saveInfo['total-time'] / 1000) / 1e9;
  const restoreGBps = size / (restoreMs / 1000) / 1e9;
  report({
    bench: 'file-save',
    params: { mem, guest: 'idle', uri: 'file:', 'page-cache': 'written back first (sync), no fsync' },
    figures: { status: saveInfo.status, 'GBps': +saveGBps.toFixed(3), 'time-ms': saveInfo['total-time'], bytes: size },
    ceiling: { 'plain-write-GBps': +plain.write.toFixed(3), 'plain-bytes': plainBytes },
    ratio: +(saveGBps / plain.write).toFixed(3),
  });
  report({
    bench: 'file-restore',
    params: { mem, guest: 'idle', uri: 'file:', 'page-cache': 'file dropped first (from disk)' },
    figures: { status: restored, 'GBps': +restoreGBps.toFixed(3), 'time-ms': Math.round(restoreMs), bytes: size },
    ceiling: { 'plain-read-GBps': +plain.read.toFixed(3), 'plain-bytes': plainBytes, 'fresh-memory-populate-GBps': +fresh.toFixed(3) },
    ratio: +(restoreGBps / plain.read).toFixed(3),
  });
}

async function main(): Promise<void> {
  const dir = arg('dir', tmpdir());
  for (const mem of arg('mem', '1G,4G').split(',')) await one(mem, dir);
}

main().catch((e) => {
  process.stderr.write(`file bench: ${e instanceof Error ? e.stack : e}\n`);
  process.exit(1);
});
