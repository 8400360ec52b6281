/**
 * Transport throughput: the RAM stream's shape (8-byte header + 4 KiB page view per record,
 * put through QemuFileWriter, parsed by QemuFileReader) pushed through each socket transport
 * to a destination in another process, next to a raw net.Socket piping the same bytes in
 * 256 KiB writes to a receiver that only counts them (the ceiling).
 *
 *   npm run build:ts && node dist/bench/transport.js [GiB=1] [unix,tcp] [reps=3] [fd,stream]
 *
 * Two channels are measured in the same rounds: `fd` is what connectAddress/listenAddress
 * give (FdChannel, the addon's own socket), `stream` the previous StreamChannel over a
 * net.Socket (netSocketChannel), so a busy machine slows both alike.
 *
 * One JSON line per transport and channel: {"bench","params","figures","ceiling","ratio"};
 * best of `reps` runs each (this machine's memory is slow right after it was freed, so single
 * runs wander). On a shared machine the wall-clock figures follow whoever else runs; the
 * `*GBPerCpuSecond` figures (bytes moved per CPU-second of that side's process, from
 * process.cpuUsage) depend much less on it and compare the two channels' costs directly.
 * The time runs from the first byte until the destination's acknowledgement comes back on
 * the return path, so it includes parsing every record and placing each page in the
 * destination's RAM. Where the difference goes: `senderOnlyGbps` is our source (writer +
 * channel) into the counting receiver, `receiverOnlyGbps` the raw sender into our destination
 * (channel + reader + page placement), `channelReadGbps` the raw sender into our channel
 * alone (read() and count, nothing parsed).
 */
import { spawn } from 'node:child_process';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { QemuFileReader, QemuFileWriter } from '../lib/stream';
import type { ByteChannel } from '../lib/stream';
import { connectAddress, listenAddress, netSocketChannel, type MigrationAddress } from '../lib/transport';

const PAGE = 4096;
const REC = PAGE + 8;
const RAM_BYTES = 64 * 1024 * 1024; // "guest RAM" walked repeatedly
const RAW_WRITE = 256 * 1024;
const RAM_SAVE_FLAG_PAGE = 0x08;

type Kind = 'unix' | 'tcp';
/** Which channel our side uses: FdChannel (what the transports make) or StreamChannel. */
type Chan = 'fd' | 'stream';
/** raw: plain net.Socket; our sender/destination over a channel; `read-*`: read() and count. */
type Mode = 'raw' | Chan | `read-${Chan}`;

function address(kind: Kind): MigrationAddress {
  return kind === 'unix'
    ? { transport: 'socket', type: 'unix', path: path.join(os.tmpdir(), `livemig-bench-${process.pid}.sock`) }
    : { transport: 'socket', type: 'inet', host: '127.0.0.1', port: '0' };
}

function makeRam(): Uint8Array {
  const ram = new Uint8Array(RAM_BYTES);
  for (let i = 0; i < ram.length; i += 64) ram[i] = (i >> 6) & 0xff;
  return ram;
}

/* ------------------------------------------------------------------------------------------ */
/* Destination (child process)                                                                 */

/** The acknowledgement: bytes seen, and CPU microseconds this process spent since `cpu0`. */
function ackBytes(n: number, cpu0: NodeJS.CpuUsage): Buffer {
  const cpu = process.cpuUsage(cpu0);
  const ack = Buffer.alloc(16);
  ack.writeBigUInt64BE(BigInt(n), 0);
  ack.writeBigUInt64BE(BigInt(cpu.user + cpu.system), 8);
  return ack;
}

async function receiver(mode: Mode, kind: Kind): Promise<void> {
  const addr = address(kind);
  if (mode === 'raw') {
    const server = net.createServer({ allowHalfOpen: true }, (sock) => {
      const cpu0 = process.cpuUsage();
      let n = 0;
      sock.on('data', (d: Buffer) => (n += d.length));
      sock.on('end', () => sock.end(ackBytes(n, cpu0), () => process.exit(0)));
    });
    const where = await new Promise<string | net.AddressInfo | null>((resolve) => {
      if (addr.transport === 'socket' && addr.type === 'unix') server.listen(addr.path, () => resolve(server.address()));
      else server.listen(0, '127.0.0.1', () => resolve(server.address()));
    });
    console.log(JSON.stringify(typeof where === 'string' ? { type: 'unix', path: where } : { type: 'inet', host: '127.0.0.1', port: String(where!.port) }));
    return;
  }
  const chan: Chan = mode.endsWith('stream') ? 'stream' : 'fd';
  const ch = await acceptOne(chan, kind, addr);
  const cpu0 = process.cpuUsage();
  if (mode.startsWith('read-')) {
    // The transport alone: count what read() hands over, parse nothing.
    let n = 0;
    for (let c = await ch.read(); c; c = await ch.read()) n += c.length;
    ch.write(ackBytes(n, cpu0));
    await ch.end();
    process.exit(0);
  }
  const f = new QemuFileReader(ch);
  const ram = new Uint8Array(RAM_BYTES);
  let records = 0;
  for (;;) {
    if (!f.has(REC) && !(await f.ensure(REC))) break;
    const hdr = f.getBe64Number();
    const off = (hdr - (hdr % PAGE)) % RAM_BYTES;
    f.getBufferInto(ram.subarray(off, off + PAGE));
    records++;
  }
  if (f.buffered !== 0) throw new Error(`destination: ${f.buffered} stray bytes`);
  ch.write(ackBytes(records * REC, cpu0));
  await ch.end();
  ch.destroy();
  process.exit(0);
}

/** Listen, print where (the parent's first line), accept one connection as a channel. */
async function acceptOne(chan: Chan, kind: Kind, addr: MigrationAddress): Promise<ByteChannel> {
  if (chan === 'fd') {
    const listener = await listenAddress(addr);
    console.log(JSON.stringify(listener.addresses[0]));
    const ch = await listener.accept();
    await listener.close();
    return ch;
  }
  return new Promise((resolve) => {
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (sock) => {
      server.close();
      resolve(netSocketChannel(sock, kind));
    });
    const announce = (): void => {
      const a = server.address();
      console.log(JSON.stringify(typeof a === 'string' ? { type: 'unix', path: a } : { type: 'inet', host: '127.0.0.1', port: String(a!.port) }));
    };
    if (addr.transport === 'socket' && addr.type === 'unix') server.listen(addr.path, announce);
    else server.listen(0, '127.0.0.1', announce);
  });
}

async function connectChannel(chan: Chan, where: MigrationAddress): Promise<ByteChannel> {
  if (chan === 'fd') return connectAddress(where);
  const unix = where.transport === 'socket' && where.type === 'unix';
  const sock = unix
    ? net.connect({ path: where.path, allowHalfOpen: true })
    : net.connect({ host: '127.0.0.1', port: Number((where as { port: string }).port), allowHalfOpen: true });
  await new Promise((resolve) => sock.once('connect', resolve));
  return netSocketChannel(sock, unix ? 'unix' : 'tcp');
}

/* ------------------------------------------------------------------------------------------ */
/* Source (this process)                                                                       */

function startReceiver(mode: Mode, kind: Kind): Promise<{ where: MigrationAddress; done: Promise<void> }> {
  const child = spawn(process.execPath, [__filename, '--receiver', mode, kind], { stdio: ['ignore', 'pipe', 'inherit'] });
  const done = new Promise<void>((resolve, reject) =>
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`receiver exited ${code}`)))),
  );
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve({ where: { transport: 'socket', ...JSON.parse(out.slice(0, nl)) }, done });
    });
    done.catch(reject);
  });
}

/** One run: wall time, and CPU microseconds of the sending and the receiving process. */
interface Run {
  ns: number;
  txCpu: number;
  rxCpu: number;
}

async function sendRaw(where: MigrationAddress, stream: Uint8Array, total: number): Promise<Run> {
  const sock =
    where.transport === 'socket' && where.type === 'unix'
      ? net.connect({ path: where.path, allowHalfOpen: true })
      : net.connect({ host: '127.0.0.1', port: Number((where as { port: string }).port), allowHalfOpen: true, noDelay: true });
  await new Promise((resolve) => sock.once('connect', resolve));
  const ack = new Promise<Buffer>((resolve) => {
    const parts: Buffer[] = [];
    sock.on('data', (d: Buffer) => parts.push(d));
    sock.on('end', () => resolve(Buffer.concat(parts)));
  });
  const t0 = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  let sent = 0;
  while (sent < total) {
    const o = sent % stream.length;
    const n = Math.min(RAW_WRITE, stream.length - o, total - sent);
    sent += n;
    if (!sock.write(stream.subarray(o, o + n))) await new Promise((resolve) => sock.once('drain', resolve));
  }
  sock.end();
  const reply = await ack;
  const ns = process.hrtime.bigint() - t0;
  const cpu = process.cpuUsage(cpu0);
  const got = reply.readBigUInt64BE(0);
  if (got !== BigInt(total)) throw new Error(`raw: receiver counted ${got} of ${total}`);
  sock.destroy();
  return { ns: Number(ns), txCpu: cpu.user + cpu.system, rxCpu: Number(reply.readBigUInt64BE(8)) };
}

async function sendLivemig(chan: Chan, where: MigrationAddress, ram: Uint8Array, pages: number): Promise<Run> {
  const ch = await connectChannel(chan, where);
  const w = new QemuFileWriter(ch);
  const ramPages = ram.length / PAGE;
  const t0 = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  for (let p = 0; p < pages; p++) {
    const idx = p % ramPages;
    w.putBe64Number(idx * PAGE + RAM_SAVE_FLAG_PAGE);
    w.putBufferRef(ram.subarray(idx * PAGE, idx * PAGE + PAGE));
    if (w.needsDrain) await w.drain();
  }
  const err = await w.close();
  if (err) throw err;
  const parts: Uint8Array[] = []; // the return path
  for (let c = await ch.read(); c; c = await ch.read()) parts.push(c);
  const ns = process.hrtime.bigint() - t0;
  const cpu = process.cpuUsage(cpu0);
  const reply = Buffer.concat(parts);
  const got = reply.length === 16 ? reply.readBigUInt64BE(0) : -1n;
  if (got !== BigInt(pages * REC)) throw new Error(`livemig: destination parsed ${got} of ${pages * REC} bytes`);
  ch.destroy();
  return { ns: Number(ns), txCpu: cpu.user + cpu.system, rxCpu: Number(reply.readBigUInt64BE(8)) };
}

/** The record stream as the writer lays it out, for the raw sender to pipe as-is. */
function recordStream(ram: Uint8Array): Uint8Array {
  const pages = ram.length / PAGE;
  const out = new Uint8Array(pages * REC);
  const dv = new DataView(out.buffer);
  for (let p = 0; p < pages; p++) {
    dv.setUint32(p * REC + 4, p * PAGE + RAM_SAVE_FLAG_PAGE);
    out.set(ram.subarray(p * PAGE, (p + 1) * PAGE), p * REC + 8);
  }
  return out;
}

function gbps(bytes: number, ns: number): number {
  return +(bytes / (ns / 1e9) / 1e9).toFixed(2);
}

/** GB moved per CPU-second (cpu in microseconds). */
function perCpu(bytes: number, cpuUs: number): number {
  return +(bytes / (cpuUs / 1e6) / 1e9).toFixed(2);
}

type Combo = readonly [send: Mode, recv: Mode];

/** Best time (and, separately, least CPU) of each combination over `reps` rounds; a round
 * runs every combination once, so a slow spell on a shared machine hits all of them alike. */
async function bestOf(
  kind: Kind,
  combos: readonly Combo[],
  reps: number,
  run: (s: Mode, w: MigrationAddress) => Promise<Run>,
): Promise<Run[]> {
  const best = combos.map(() => ({ ns: Infinity, txCpu: Infinity, rxCpu: Infinity }));
  for (let r = 0; r < reps; r++) {
    for (let i = 0; i < combos.length; i++) {
      const rx = await startReceiver(combos[i][1], kind);
      const got = await run(combos[i][0], rx.where);
      await rx.done;
      best[i] = { ns: Math.min(best[i].ns, got.ns), txCpu: Math.min(best[i].txCpu, got.txCpu), rxCpu: Math.min(best[i].rxCpu, got.rxCpu) };
    }
  }
  return best;
}

async function main(): Promise<void> {
  const gib = Number(process.argv[2] || 1);
  const kinds = (process.argv[3] || 'unix,tcp').split(',') as Kind[];
  const reps = Math.max(1, Number(process.argv[4] || 3));
  const chans = (process.argv[5] || 'fd,stream').split(',') as Chan[];
  const pages = Math.round((gib * 2 ** 30) / PAGE);
  const total = pages * REC;
  const ram = makeRam();
  const stream = recordStream(ram);
  const run = (s: Mode, w: MigrationAddress): Promise<Run> =>
    s === 'raw' ? sendRaw(w, stream, total) : sendLivemig(s as Chan, w, ram, pages);
  for (const kind of kinds) {
    // Per channel, besides the full path, where the difference goes: our sender into the
    // counting receiver, the raw sender into our destination (which parses every record and
    // copies each page into its RAM), and the raw sender into our channel alone.
    const combos: Combo[] = [['raw', 'raw']];
    for (const c of chans) combos.push([c, c], [c, 'raw'], ['raw', c], ['raw', `read-${c}`]);
    const runs = await bestOf(kind, combos, reps, run);
    const raw = runs[0];
    const ceiling = gbps(total, raw.ns);
    chans.forEach((chan, i) => {
      const [ours, senderOnly, receiverOnly, channelRead] = runs.slice(1 + 4 * i, 5 + 4 * i);
      const figure = gbps(total, ours.ns);
      console.log(
        JSON.stringify({
          bench: 'transport',
          params: {
            transport: kind,
            channel: chan === 'fd' ? 'FdChannel' : 'StreamChannel (net.Socket)',
            bytes: total,
            record: '8-byte header + 4 KiB page view',
            reps,
            peer: 'child process',
            load: os.loadavg()[0],
          },
          figures: {
            gbps: figure,
            seconds: +(ours.ns / 1e9).toFixed(3),
            senderOnlyGbps: gbps(total, senderOnly.ns),
            receiverOnlyGbps: gbps(total, receiverOnly.ns),
            channelReadGbps: gbps(total, channelRead.ns),
            senderGBPerCpuSecond: perCpu(total, senderOnly.txCpu),
            destinationGBPerCpuSecond: perCpu(total, receiverOnly.rxCpu),
            channelReadGBPerCpuSecond: perCpu(total, channelRead.rxCpu),
          },
          ceiling: {
            gbps: ceiling,
            seconds: +(raw.ns / 1e9).toFixed(3),
            senderGBPerCpuSecond: perCpu(total, raw.txCpu),
            receiverGBPerCpuSecond: perCpu(total, raw.rxCpu),
            what: 'raw net.Socket, 256 KiB writes of the same bytes, counting receiver',
          },
          ratio: +(figure / ceiling).toFixed(2),
        }),
      );
    });
  }
}

if (process.argv[2] === '--receiver') {
  receiver(process.argv[3] as Mode, process.argv[4] as Kind).catch((e) => {
    console.error(e);
    process.exit(1);
  });
} else {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
