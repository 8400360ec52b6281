/**
 * Printing an analysis, one function per CLI mode:
 *
 *   -d state     JSON: { "idstr (section_id)": state, … } in stream order, as
 *                analyze-migration.py prints it (RAM as {"section sizes": {block: "0x…"}})
 *   -d desc      the vmdesc JSON, pretty
 *   -d ram       RAM table: per block size, pages, normal / zero / XBZRLE / resent records,
 *                stream bytes; iterations (START/PART/END) and the commands seen
 *   -d sections  one line per record in stream order: offset, length, type, id, idstr,
 *                instance, version, and a note (machine type, command value, decoder)
 */
import type { RamStats } from './ram';
import type { AnalyzeResult, StreamRecord } from './types';
import { printJson, renderState, type JsonValue } from './values';

export function renderStateJson(r: AnalyzeResult): string {
  const out = new Map<string, JsonValue>();
  for (const [k, v] of r.state) out.set(k, renderState(v));
  return printJson(out);
}

export function renderDescJson(r: AnalyzeResult): string {
  return printJson((r.vmdesc ?? null) as unknown as JsonValue);
}

function hex(n: number, digits: number): string {
  return '0x' + n.toString(16).padStart(digits, '0');
}

function table(rows: string[][], right: boolean[]): string[] {
  const w = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => '  ' + r.map((c, i) => (right[i] ? c.padStart(w[i]) : c.padEnd(w[i]))).join('  ').trimEnd());
}

/** Commands seen, in order of first appearance, with counts and PING values. */
export function commandSummary(records: readonly StreamRecord[]): string {
  const seen = new Map<string, { n: number; values: number[] }>();
  for (const c of records) {
    if (c.kind !== 'command') continue;
    const e = seen.get(c.name!) ?? { n: 0, values: [] };
    e.n++;
    if (c.name === 'PING' && c.value !== undefined) e.values.push(c.value);
    seen.set(c.name!, e);
  }
  if (seen.size === 0) return 'none';
  return [...seen].map(([name, e]) => `${name}${e.n > 1 ? ` x${e.n}` : ''}${e.values.length ? ` (${e.values.map((v) => hex(v, 0)).join(', ')})` : ''}`).join(', ');
}

export function renderRamReport(r: AnalyzeResult): string {
  const ram: RamStats | null = r.ram;
  const lines: string[] = [];
  if (!ram) {
    lines.push('no RAM section in this stream');
  } else {
    lines.push(`RAM: section 'ram' (id ${ram.sectionId}), version ${ram.version}, page size ${ram.pageSize}`);
    const totalPages = ram.blocks.reduce((n, b) => n + b.pages, 0);
    lines.push(`  total ${hex(ram.totalBytes, 16)} (${ram.totalBytes} bytes, ${totalPages} pages) in ${ram.blocks.length} block${ram.blocks.length === 1 ? '' : 's'}`);
    const rows = [['block', 'size', 'pages', 'normal', 'zero', 'xbzrle', 'resent', 'unsent', 'bytes']];
    const sum = { normal: 0, zero: 0, xbzrle: 0, resent: 0, unsent: 0, bytes: 0 };
    for (const b of ram.blocks) {
      const unsent = b.pages - b.received;
      rows.push([b.idstr, hex(b.size, 8), String(b.pages), String(b.normal), String(b.zero), String(b.xbzrle), String(b.resent), String(unsent), String(b.bytes)]);
      sum.normal += b.normal;
      sum.zero += b.zero;
      sum.xbzrle += b.xbzrle;
      sum.resent += b.resent;
      sum.unsent += unsent;
      sum.bytes += b.bytes;
    }
    rows.push(['total', '', String(totalPages), String(sum.normal), String(sum.zero), String(sum.xbzrle), String(sum.resent), String(sum.unsent), String(sum.bytes)]);
    lines.push(...table(rows, [false, true, true, true, true, true, true, true, true]));
    lines.push(`  normal pages ${sum.normal} (${sum.normal * ram.pageSize} bytes of page data), zero pages ${sum.zero}, pages sent more than once ${sum.resent}`);
    lines.push(`  sections: START ${ram.starts}, PART ${ram.parts} (iterations), END ${ram.ends}; EOS ${ram.eos}, MULTIFD_FLUSH ${ram.flushes}; ${ram.bodyBytes} bytes of RAM section bodies`);
  }
  lines.push(`commands: ${commandSummary(r.records)}`);
  const full = r.records.filter((x) => x.kind === 'full');
  const fullBytes = full.reduce((n, x) => n + x.length, 0);
  lines.push(`device state: ${full.length} FULL sections, ${fullBytes} bytes; vmdesc: ${r.vmdesc ? `${r.vmdesc.devices.length} devices at offset ${r.vmdescOffset}` : 'none'}`);
  lines.push(`stream: ${r.streamBytes} bytes${r.eofOffset !== null ? `, EOF at offset ${r.eofOffset}` : ''}${r.trailingBytes ? `, ${r.trailingBytes} trailing bytes` : ''}`);
  return lines.join('\n');
}

const TYPE_NAMES: Record<StreamRecord['kind'], string> = {
  header: 'HEADER',
  configuration: 'CONFIGURATION',
  start: 'SECTION_START',
  part: 'SECTION_PART',
  end: 'SECTION_END',
  full: 'SECTION_FULL',
  command: 'COMMAND',
  eof: 'EOF',
  vmdesc: 'VMDESCRIPTION',
};

export const SECTIONS_HEADER = `${'offset'.padStart(12)} ${'length'.padStart(10)}  ${'type'.padEnd(14)} ${'id'.padStart(4)}  ${'idstr'.padEnd(28)} ${'inst'.padStart(4)} ${'ver'.padStart(3)}  note`;

/** One line of `-d sections`. */
export function formatRecord(r: StreamRecord): string {
  let note = '';
  if (r.kind === 'configuration') note = `machine '${r.name}'`;
  else if (r.kind === 'command') note = `${r.name}${r.value !== undefined ? ` ${r.name === 'PACKAGED' ? `${r.value} bytes` : r.name === 'POSTCOPY_RAM_DISCARD' ? `${r.value} ranges` : hex(r.value, 0)}` : ''}`;
  else if (r.decodedBy) note = `decoded by ${r.decodedBy === 'vmdesc' ? 'vmdesc' : "livemig's description"}`;
  if (r.depth) note = `(in PACKAGED) ${note}`;
  const opt = (v: number | undefined, w: number) => (v === undefined ? '' : String(v)).padStart(w);
  return `${String(r.offset).padStart(12)} ${String(r.length).padStart(10)}  ${TYPE_NAMES[r.kind].padEnd(14)} ${opt(r.sectionId, 4)}  ${(r.idstr ?? '').padEnd(28)} ${opt(r.instanceId, 4)} ${opt(r.versionId, 3)}  ${note}`.trimEnd();
}
