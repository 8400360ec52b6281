/**
 * The postcopy preempt channel (QEMU postcopy-ram.c, ram.c with postcopy_preempt): a second
 * socket on which the source sends the pages the destination asked for, so they never queue
 * behind the background stream. No header or handshake: bare RAM records (see ram-save.ts),
 * each naming its block unless CONTINUE, with the channel's own "last block".
 *
 *   be64 offset | flags  [u8 len, idstr]  payload      PAGE: 4096 bytes, ZERO: u8 0
 *
 * Only PAGE and ZERO (with CONTINUE) are legal, plus EOS, which ends the channel: the source
 * sends it after its last page and before the main stream's EOF, and the destination reads up
 * to it before it finishes, so no page sent here is missed (QEMU postcopy_preempt_shutdown_file
 * and postcopy_qemufile_dst_done). The reader checks each record before it touches memory, like
 * the main stream's loader.
 */
import type { QemuFileReader } from '../../stream';
import { MigrationError } from '../errors';
import { RAM_SAVE_FLAG } from '../wire';

const PAGE_SIZE = 4096;
const FLAG_MASK = PAGE_SIZE - 1;

export interface PreemptBlock {
  readonly name: string;
  readonly size: number;
}

export type PreemptPage = (block: number, page: number, kind: number, bytes: Uint8Array | null) => void;

const bad = (detail: string, at: number, field?: string) => new MigrationError('EMIG_RAM', detail, { section: 'postcopy-preempt', field, position: at });
const truncated = (detail: string, at: number) => new MigrationError('EMIG_TRUNCATED', detail, { section: 'postcopy-preempt', position: at });

/** Read records until the channel ends (null read) or EOS; `onPage` places each. */
export async function readPreemptRecords(f: QemuFileReader, blocks: readonly PreemptBlock[], onPage: PreemptPage): Promise<void> {
  const byName = new Map(blocks.map((b, i) => [b.name, i]));
  let last = -1;
  for (;;) {
    // A requested page travels alone: wait for one record, never for more.
    if (!f.has(8)) await f.fill(8);
    // The channel's end (or its breaking, which the main channel reports too) ends the reader.
    if (f.buffered === 0) return;
    if (!f.has(8)) throw truncated('channel ended inside a record header', f.position);
    const at = f.position;
    const hi = f.getBe32();
    const lo = f.getBe32();
    const flags = lo & FLAG_MASK;
    const offset = hi * 2 ** 32 + (lo - flags);
    const kind = flags & ~RAM_SAVE_FLAG.CONTINUE;
    if (kind === RAM_SAVE_FLAG.EOS && !(flags & RAM_SAVE_FLAG.CONTINUE)) return;
    if (kind !== RAM_SAVE_FLAG.PAGE && kind !== RAM_SAVE_FLAG.ZERO) throw bad(`flags 0x${flags.toString(16)} are not allowed on the preempt channel`, at, 'flags');
    let need = kind === RAM_SAVE_FLAG.ZERO ? 1 : PAGE_SIZE;
    if (!(flags & RAM_SAVE_FLAG.CONTINUE)) {
      if (!f.has(1) && !(await f.ensure(1))) throw truncated('channel ended inside a block name', f.position);
      need += 1 + f.peekU8(0);
    }
    if (!f.has(need) && !(await f.ensure(need))) throw truncated(`channel ended inside the record at 0x${offset.toString(16)}`, f.position);
    let bi = last;
    if (!(flags & RAM_SAVE_FLAG.CONTINUE)) {
      const name = f.getCounted();
      const found = byName.get(name);
      if (found === undefined) throw bad(`Unknown ramblock "${name}"`, at, name);
      bi = found;
    } else if (bi < 0) {
      throw bad('CONTINUE record without a previous block', at, 'flags');
    }
    last = bi;
    const b = blocks[bi];
    if (offset % PAGE_SIZE !== 0 || offset + PAGE_SIZE > b.size) throw bad(`Illegal RAM offset 0x${offset.toString(16)} in block '${b.name}'`, at, b.name);
    if (kind === RAM_SAVE_FLAG.ZERO) {
      const fill = f.getU8();
      if (fill !== 0) throw bad(`Found a zero page with value ${fill}`, at, b.name);
      onPage(bi, offset / PAGE_SIZE, kind, null);
    } else {
      onPage(bi, offset / PAGE_SIZE, kind, f.getBytes(PAGE_SIZE));
    }
  }
}

/**
 * The header of a page record: be64 offset | flags, and the block name unless `cont`. The page
 * itself follows (not included).
 */
export function pageRecordHeader(offset: number, flags: number, block: string, cont: boolean): Uint8Array {
  const name = cont ? null : Buffer.from(block, 'latin1');
  const h = Buffer.alloc(8 + (name ? 1 + name.length : 0));
  h.writeUInt32BE(Math.floor(offset / 2 ** 32), 0);
  h.writeUInt32BE(((offset % 2 ** 32) | flags | (cont ? RAM_SAVE_FLAG.CONTINUE : 0)) >>> 0, 4);
  if (name) {
    h[8] = name.length;
    name.copy(h, 9);
  }
  return h;
}
