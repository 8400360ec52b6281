/**
 * Quick local throughput measurement of the stream layer (not a test):
 *   npm run build:ts && node test/stream/throughput.bench.js [GiB]
 * Writer: 4 KiB pages with an 8-byte header each, putBe64Number + putBufferRef into a null sink.
 * Reader: the same records parsed with the synchronous fast path (has() + getters), fed in
 * 256 KiB chunks as a socket would deliver them. Prints one JSON line per figure, with the
 * raw memcpy rate of this machine as the ceiling.
 */
'use strict';
const { QemuFileWriter, QemuFileReader, NullSink, chunkSource } = require('../../dist/lib/stream');

const PAGE = 4096;
const GIB = Number(process.argv[2] || 1);
const TOTAL = Math.round(GIB * 1024 * 1024 * 1024);
const PAGES = TOTAL / PAGE;
const ram = new Uint8Array(64 * 1024 * 1024); // 64 MiB of "guest RAM", walked repeatedly
for (let i = 0; i < ram.length; i += PAGE) ram[i] = i / PAGE;
const RAM_PAGES = ram.length / PAGE;

function gbps(bytes, ns) {
  return +(bytes / (Number(ns) / 1e9) / 1e9).toFixed(2);
}

function memcpyCeiling() {
  const dst = new Uint8Array(ram.length);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < 4; i++) dst.set(ram);
  return gbps(4 * ram.length, process.hrtime.bigint() - t0);
}

function writer() {
  const sink = new NullSink();
  const w = new QemuFileWriter(sink);
  const t0 = process.hrtime.bigint();
  for (let p = 0; p < PAGES; p++) {
    const idx = p % RAM_PAGES;
    w.putBe64Number(idx * PAGE | 0x08); // offset | RAM_SAVE_FLAG_PAGE
    w.putBufferRef(ram.subarray(idx * PAGE, idx * PAGE + PAGE));
  }
  w.flush();
  const ns = process.hrtime.bigint() - t0;
  if (sink.bytes !== PAGES * (PAGE + 8)) throw new Error('byte count mismatch');
  return { ns, bytes: sink.bytes, writes: sink.writes };
}

async function reader() {
  // Build a 64 MiB record stream once and feed it repeatedly in 256 KiB chunks.
  const recs = RAM_PAGES;
  const one = new Uint8Array(recs * (PAGE + 8));
  const dv = new DataView(one.buffer);
  for (let p = 0; p < recs; p++) {
    dv.setUint32(p * (PAGE + 8) + 4, (p * PAGE) | 0x08);
    one.set(ram.subarray(p * PAGE, p * PAGE + PAGE), p * (PAGE + 8) + 8);
  }
  const chunks = [];
  const reps = Math.max(1, Math.round(PAGES / recs));
  for (let r = 0; r < reps; r++) for (let o = 0; o < one.length; o += 256 * 1024) chunks.push(one.subarray(o, Math.min(one.length, o + 256 * 1024)));
  const f = new QemuFileReader(chunkSource(chunks));
  const dst = new Uint8Array(ram.length);
  let n = 0;
  let awaits = 0;
  const t0 = process.hrtime.bigint();
  for (;;) {
    if (!f.has(PAGE + 8)) {
      awaits++;
      if (!(await f.ensure(PAGE + 8))) break;
    }
    const hdr = f.getBe64Number();
    const off = hdr - (hdr & 0xfff);
    f.getBufferInto(dst.subarray(off % dst.length, (off % dst.length) + PAGE));
    n++;
  }
  const ns = process.hrtime.bigint() - t0;
  return { ns, bytes: n * (PAGE + 8), records: n, awaits };
}

(async () => {
  const ceiling = memcpyCeiling();
  writer(); // warm up
  const w = writer();
  console.log(JSON.stringify({ bench: 'stream-writer', params: { GiB: GIB, page: PAGE, header: 8 }, figures: { GBps: gbps(w.bytes, w.ns), pagesPerSec: Math.round(PAGES / (Number(w.ns) / 1e9)), writevCalls: w.writes }, ceiling: { memcpyGBps: ceiling }, ratio: +(gbps(w.bytes, w.ns) / ceiling).toFixed(2) }));
  const r = await reader();
  console.log(JSON.stringify({ bench: 'stream-reader', params: { GiB: GIB, page: PAGE, header: 8, chunk: 256 * 1024 }, figures: { GBps: gbps(r.bytes, r.ns), recordsPerSec: Math.round(r.records / (Number(r.ns) / 1e9)), awaits: r.awaits }, ceiling: { memcpyGBps: ceiling }, ratio: +(gbps(r.bytes, r.ns) / ceiling).toFixed(2) }));
})();
