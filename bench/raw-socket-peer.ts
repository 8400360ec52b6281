/**
 * One end of the raw unix-socket ceiling for bench/precopy.ts, run as its own process so the
 * ceiling has the migration's process layout: a writer process and a reader process, with the
 * bench process only starting them.
 *
 *   node dist/bench/raw-socket-peer.js read  SOCK BYTES BUFFER
 *        listens on SOCK (as the destination does), reads BYTES into a BUFFER-byte buffer
 *        (wrapping), prints "ready\n" once listening and {"bytes","ms"} once the writer has
 *        closed; ms runs from accepting the connection to the last byte copied
 *   node dist/bench/raw-socket-peer.js write SOCK BYTES BUFFER
 *        connects to SOCK and sends BYTES as 256 KiB views of a BUFFER-byte buffer, then closes
 *
 * Each side stands for what the migration's does with the bytes and nothing more. The reader
 * takes Node's 'data' chunks (one read(2) each, as the destination's channel does) and copies
 * each into its buffer, as the destination copies pages into guest RAM; the writer hands the
 * socket views of its buffer, as the source hands it views of guest pages. Both buffers are
 * faulted in before the clock starts, as the destination's RAM is (its populate thread) and
 * the source's is (the guest filled it).
 */
import * as net from 'node:net';
import { native } from '../lib/host';
import { SOCKET_BUFFER_BYTES } from '../lib/transport/socket';
import { socketFd } from '../lib/transport/stream-channel';

const WRITE_BYTES = 256 * 1024;

/** The migration's sockets get these kernel buffers (lib/transport/socket.ts); a ceiling with
 * the kernel defaults would be a different, slower socket. */
function growBuffers(sock: net.Socket): void {
  const fd = socketFd(sock);
  if (fd !== undefined) native.setSocketBuffers(fd, SOCKET_BUFFER_BYTES, SOCKET_BUFFER_BYTES);
}

function faultedIn(bytes: number, fill: number): Buffer {
  const buf = Buffer.allocUnsafe(bytes);
  buf.fill(fill);
  return buf;
}

function read(sockPath: string, bytes: number, bufferBytes: number): void {
  const ram = faultedIn(bufferBytes, 0x11);
  const server = net.createServer({ allowHalfOpen: true }, (sock) => {
    server.close();
    growBuffers(sock);
    const t0 = performance.now();
    let got = 0;
    let off = 0;
    sock.on('data', (chunk: Buffer) => {
      for (let p = 0; p < chunk.length; ) {
        const n = Math.min(chunk.length - p, ram.length - off);
        chunk.copy(ram, off, p, p + n);
        p += n;
        off = (off + n) % ram.length;
      }
      got += chunk.length;
    });
    sock.on('end', () => {
      const ms = performance.now() - t0;
      process.stdout.write(JSON.stringify({ bytes: got, ms }) + '\n');
      sock.end();
    });
  });
  server.listen(sockPath, () => process.stdout.write('ready\n'));
}

function write(sockPath: string, bytes: number, bufferBytes: number): void {
  const ram = faultedIn(bufferBytes, 0x5a);
  const sock = net.connect({ path: sockPath, allowHalfOpen: true });
  let left = bytes;
  let off = 0;
  const pump = (): void => {
    while (left > 0) {
      const n = Math.min(WRITE_BYTES, left, ram.length - off);
      const view = ram.subarray(off, off + n);
      left -= n;
      off = (off + n) % ram.length;
      if (!sock.write(view)) {
        sock.once('drain', pump);
        return;
      }
    }
    sock.end();
  };
  sock.on('connect', () => {
    growBuffers(sock);
    pump();
  });
  // The reader half-closes back once it has everything; nothing else comes.
  sock.on('data', () => {});
}

const [mode, sockPath, bytesArg, bufferArg] = process.argv.slice(2);
const bytes = Number(bytesArg);
const bufferBytes = Number(bufferArg);
if (!sockPath || !(bytes > 0) || !(bufferBytes > 0) || (mode !== 'read' && mode !== 'write')) {
  process.stderr.write('usage: raw-socket-peer.js read|write SOCK BYTES BUFFER\n');
  process.exit(2);
}
(mode === 'read' ? read : write)(sockPath, bytes, bufferBytes);
