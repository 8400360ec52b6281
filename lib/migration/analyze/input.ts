/**
 * Where the analyzer's bytes come from: a file, plain or gzip-compressed (recognised by its
 * magic 1f 8b, not its name), or bytes in memory.
 *
 * The stream is read front to back once, through a ByteSource of fresh 1 MiB chunks (the
 * reader keeps views into them, so a chunk is never reused). The vmdesc JSON sits after EOF at
 * the very end, yet is needed when the first device section is reached; so an input can also
 * hand out its last bytes:
 *
 *   plain file    pread the tail at any time — no second pass
 *   gzip file     the tail of what has been decompressed so far is kept (a list of the last
 *                 chunks, no copies); once the source reached its end that is the file's
 *                 tail. Before that, `readTail` decompresses the file a second time.
 *   memory        trivially
 */
import * as fs from 'node:fs';
import * as zlib from 'node:zlib';
import type { ByteSource } from '../../stream';
import { AnalyzeError } from './errors';
import { VMDESC_TAIL_MAX } from './vmdesc-find';

const CHUNK = 1 << 20;
const GZIP_MAGIC0 = 0x1f;
const GZIP_MAGIC1 = 0x8b;

/** The last bytes of the stream: `bytes[0]` is at stream offset `offset`, and the stream is
 * `offset + bytes.length` bytes long. */
export interface StreamTail {
  readonly bytes: Uint8Array;
  readonly offset: number;
}

export interface StreamInput {
  /** For messages: the file name, or "<memory>". */
  readonly name: string;
  readonly compressed: boolean;
  /** The stream from offset 0 (read it once). */
  readonly source: ByteSource;
  /** The last `max` bytes if they can be had without another pass over the stream; null if
   * not (a compressed file whose source has not reached its end yet). */
  knownTail(max: number): Promise<StreamTail | null>;
  /** The last `max` bytes, reading the stream a second time if that is the only way. */
  readTail(max: number): Promise<StreamTail>;
  close(): Promise<void>;
}

/** Keeps references to the last chunks a source produced, enough to cover `max` bytes. */
class TailKeeper implements ByteSource {
  private chunks: Uint8Array[] = [];
  private kept = 0;
  total = 0;
  ended = false;

  constructor(
    private readonly inner: ByteSource,
    private readonly max: number,
  ) {}

  async read(): Promise<Uint8Array | null> {
    const c = await this.inner.read();
    if (c === null) {
      this.ended = true;
      return null;
    }
    this.total += c.length;
    this.chunks.push(c);
    this.kept += c.length;
    while (this.chunks.length > 1 && this.kept - this.chunks[0].length >= this.max) this.kept -= this.chunks.shift()!.length;
    return c;
  }

  tail(max: number): StreamTail {
    const n = Math.min(max, this.kept);
    const out = new Uint8Array(n);
    let at = n;
    for (let i = this.chunks.length - 1; i >= 0 && at > 0; i--) {
      const c = this.chunks[i];
      const k = Math.min(at, c.length);
      out.set(c.subarray(c.length - k), at - k);
      at -= k;
    }
    return { bytes: out, offset: this.total - n };
  }
}

function iterSource(it: AsyncIterator<Buffer>): ByteSource {
  return {
    async read() {
      const r = await it.next();
      return r.done ? null : r.value;
    },
  };
}

function gunzipSource(path: string): { source: ByteSource; destroy(): void } {
  const file = fs.createReadStream(path, { highWaterMark: CHUNK });
  const gz = zlib.createGunzip({ chunkSize: 256 * 1024 });
  file.on('error', (e) => gz.destroy(e));
  file.pipe(gz);
  return {
    source: iterSource(gz[Symbol.asyncIterator]()),
    destroy: () => {
      file.destroy();
      gz.destroy();
    },
  };
}

function ioError(path: string, e: unknown): AnalyzeError {
  const err = e as NodeJS.ErrnoException;
  return new AnalyzeError('EANALYZE_IO', `cannot read '${path}': ${err.code ?? err.message ?? String(e)}`, { cause: e });
}

/** Open a migration stream file (plain or gzip). `tailMax`: how many final bytes of a gzip
 * stream to keep while reading it (default: enough for the largest vmdesc). */
export async function openFileInput(path: string, opts: { tailMax?: number } = {}): Promise<StreamInput> {
  let fh: fs.promises.FileHandle;
  try {
    fh = await fs.promises.open(path, 'r');
  } catch (e) {
    throw ioError(path, e);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new AnalyzeError('EANALYZE_IO', `'${path}' is not a regular file`);
    const magic = Buffer.alloc(2);
    const { bytesRead } = await fh.read(magic, 0, 2, 0);
    if (bytesRead === 2 && magic[0] === GZIP_MAGIC0 && magic[1] === GZIP_MAGIC1) {
      await fh.close();
      return gzipInput(path, opts.tailMax ?? VMDESC_TAIL_MAX);
    }
    return plainInput(path, fh, st.size);
  } catch (e) {
    await fh.close().catch(() => undefined);
    throw e instanceof AnalyzeError ? e : ioError(path, e);
  }
}

function plainInput(path: string, fh: fs.promises.FileHandle, size: number): StreamInput {
  let pos = 0;
  const source: ByteSource = {
    async read() {
      if (pos >= size) return null;
      const buf = Buffer.allocUnsafe(Math.min(CHUNK, size - pos));
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) return null;
      pos += bytesRead;
      return bytesRead === buf.length ? buf : buf.subarray(0, bytesRead);
    },
  };
  const tail = async (max: number): Promise<StreamTail> => {
    const n = Math.min(max, size);
    const buf = Buffer.alloc(n);
    try {
      await fh.read(buf, 0, n, size - n);
    } catch (e) {
      throw ioError(path, e);
    }
    return { bytes: buf, offset: size - n };
  };
  return { name: path, compressed: false, source, knownTail: tail, readTail: tail, close: () => fh.close() };
}

function gzipInput(path: string, tailMax: number): StreamInput {
  const main = gunzipSource(path);
  const keeper = new TailKeeper(main.source, tailMax);
  return {
    name: path,
    compressed: true,
    source: keeper,
    async knownTail(max) {
      return keeper.ended && max <= tailMax ? keeper.tail(max) : null;
    },
    async readTail(max) {
      if (keeper.ended && max <= tailMax) return keeper.tail(max);
      const again = gunzipSource(path);
      const k = new TailKeeper(again.source, max);
      try {
        while ((await k.read()) !== null) {
          /* only the tail is kept */
        }
      } catch (e) {
        throw ioError(path, e);
      } finally {
        again.destroy();
      }
      return k.tail(max);
    },
    async close() {
      main.destroy();
    },
  };
}

/** A stream already in memory, optionally fed in pieces (tests split input at every
 * boundary this way). */
export function bytesInput(bytes: Uint8Array, split?: number): StreamInput {
  let at = 0;
  const step = split && split > 0 ? split : Math.max(1, bytes.length);
  const tail = async (max: number): Promise<StreamTail> => {
    const n = Math.min(max, bytes.length);
    return { bytes: bytes.subarray(bytes.length - n), offset: bytes.length - n };
  };
  return {
    name: '<memory>',
    compressed: false,
    source: {
      async read() {
        if (at >= bytes.length) return null;
        const c = bytes.subarray(at, Math.min(bytes.length, at + step));
        at += c.length;
        return c;
      },
    },
    knownTail: tail,
    readTail: tail,
    close: async () => undefined,
  };
}
