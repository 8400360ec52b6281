/**
 * livemig-analyze as a library: read a savevm/migration stream (plain or gzip) and report what
 * is in it — device state decoded by the stream's vmdesc or by livemig's own descriptions, RAM
 * statistics, the record list, and optionally each RAM block's contents. See docs/analyze.md.
 *
 *   const r = await analyzeFile('vm.mig');           // or analyzeStream(bytesInput(buf))
 *   r.ram?.blocks[0].normal; r.state.get('cpu (5)'); renderStateJson(r);
 */
import { analyzeStream, type AnalyzeOptions } from './analyzer';
import { openFileInput } from './input';
import type { AnalyzeResult } from './types';

export { analyzeStream, DEFAULT_PAGE_SIZE, PREFETCH, RECORDS_MAX } from './analyzer';
export type { AnalyzeOptions } from './analyzer';
export type { AnalyzeResult, StreamRecord, RecordKind } from './types';
export { AnalyzeError } from './errors';
export type { AnalyzeErrorCode, AnalyzeErrorInfo } from './errors';
export { openFileInput, bytesInput } from './input';
export type { StreamInput, StreamTail } from './input';
export { locateVmdesc, VMDESC_TAIL_MAX } from './vmdesc-find';
export type { RamStats, RamBlockStats } from './ram';
export { RAM_PAGES_MAX, RAM_BLOCKS_MAX } from './ram';
export type { ConfigurationInfo } from './configuration';
export { blockFileName } from './extract';
export { DEVICE_STATE_MAX, DEVICE_VALUES_MAX, DEPTH_MAX } from './decode-common';
export { LIVEMIG_SECTION_VMSDS, LivemigDescriptions } from './livemig-sections';
export { printJson, renderState, renderLeaf } from './values';
export type { Leaf, StateValue, StateDict, JsonValue } from './values';
export { renderStateJson, renderDescJson, renderRamReport, formatRecord, commandSummary, SECTIONS_HEADER } from './report';

/** Analyze a file (plain or gzip). */
export async function analyzeFile(path: string, opts: AnalyzeOptions = {}): Promise<AnalyzeResult> {
  return analyzeStream(await openFileInput(path), opts);
}
