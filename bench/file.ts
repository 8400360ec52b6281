/**
 * Save to and restore from `file:` (1 GiB and 4 GiB guests with random-filled RAM), next to a
 * plain sequential write and read of a file of the same size in the same directory and run.
 *
 *   save:    the idle guest is stopped, then `migrate file:PATH`; time = query-migrate total-time
 *   restore: a new process with `-incoming defer`, `migrate-incoming file:PATH`, timed until its
 *            status is completed
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

/** Sequential write then read of `bytes` through 1 MiB buffers, GB/s each. */
function plainFileIo(file: string, bytes: number): { write: number; read: number } {
  const buf = Buffer.alloc(2 ** 20, 0x5a);
  flushPageCache();
  let fd = fs.openSync(file, 'w');
  let t0 = performance.now();
  // No fsync: the save does not sync either; both go through the page cache.
  for (let off = 0; off < bytes; off += buf.length) fs.writeSync(fd, buf);
  fs.closeSync(fd);
  const write = bytes / ((performance.now() - t0) / 1000) / 1e9;
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

async function one(mem: string, dir: string): Promise<void> {
  const file = path.join(dir, `guest-${mem}.mig`);
  const kernel = path.join(ROOT, 'guests', 'idle.elf');
  const common = ['-M', 'virt', '-m', mem, '-bios', 'none', '-kernel', kernel, '-display', 'none', '-serial', 'stdio', '-monitor', 'none'];
  const src = new VmProcess(path.join(dir, 'src.qmp'), common);
  let saveInfo: any;
  try {
    await src.connect();
    await src.waitOutput(/tick 1\n/);
    await src.qmp.execute('stop');
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
  const plain = plainFileIo(path.join(dir, 'plain.bin'), size);
  const fresh = freshMemory(Math.ceil(size / 4096) * 4096);
  fs.rmSync(file, { force: true });
  const saveGBps = size / (saveInfo['total-time'] / 1000) / 1e9;
  const restoreGBps = size / (restoreMs / 1000) / 1e9;
  report({
    bench: 'file-save',
    params: { mem, guest: 'idle', uri: 'file:' },
    figures: { status: saveInfo.status, 'GBps': +saveGBps.toFixed(3), 'time-ms': saveInfo['total-time'], bytes: size },
    ceiling: { 'plain-write-GBps': +plain.write.toFixed(3) },
    ratio: +(saveGBps / plain.write).toFixed(3),
  });
  report({
    bench: 'file-restore',
    params: { mem, guest: 'idle', uri: 'file:' },
    figures: { status: restored, 'GBps': +restoreGBps.toFixed(3), 'time-ms': Math.round(restoreMs), bytes: size },
    ceiling: { 'plain-read-GBps': +plain.read.toFixed(3), 'fresh-memory-populate-GBps': +fresh.toFixed(3) },
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
