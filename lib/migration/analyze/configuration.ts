/**
 * The configuration section (0x07 right after the header; layout in ../configuration.ts):
 *
 *   be32 len │ name[len] │ subsection*
 *     configuration/capabilities     be32 count, count × cstr8
 *     configuration/target-page-bits be32
 *     configuration/uuid             16 bytes
 *
 * With a vmdesc that describes it (newer QEMU, and livemig) it is decoded by that
 * description, as analyze-migration.py does; QEMU 7.2's vmdesc has no "configuration" key, and
 * then the layout above is read directly (the script reads only len and name there; the
 * subsections are read here too, so that x-ignore-shared, which changes the RAM block list, is
 * known either way).
 */
import type { VmdescNode } from '../../vmstate';
import { decodeError, need, peekSubsection, readCapability, readLeaf, readSubsectionHeader, type DecodeCtx } from './decode-common';
import { decodeByVmdesc } from './decode-vmdesc';
import { isLeaf, latin1String, type Leaf, type StateDict, type StateValue } from './values';

/** Machine type names are short ("pc-q35-10.2"); anything longer is not a name. */
export const CONFIG_NAME_MAX = 256;
/** QEMU has a handful of capabilities; a count above this is not a capability list. */
export const CAPABILITIES_MAX = 64;

export interface ConfigurationInfo {
  /** Machine type as sent ("virt" from QEMU 7.2 riscv, "virt-2.0" from livemig). */
  machineType: string;
  /** Validated capabilities (x-ignore-shared, mapped-ram) when sent. */
  capabilities: string[];
  targetPageBits?: number;
  /** 32 hex digits, when sent. */
  uuid?: string;
  /** Decoded by the vmdesc (true) or read directly (false). */
  fromVmdesc: boolean;
}

function leafOf(v: StateValue | undefined): Leaf | undefined {
  return v !== undefined && isLeaf(v) ? v : undefined;
}

function uintOf(l: Leaf | undefined): number | undefined {
  if (!l) return undefined;
  let v = 0;
  for (const b of l.bytes) v = v * 256 + b;
  return v;
}

export async function decodeConfiguration(ctx: DecodeCtx, desc: VmdescNode | undefined): Promise<ConfigurationInfo> {
  if (desc) return fromState(ctx, await decodeByVmdesc(ctx, desc, 'configuration'));
  const start = ctx.f.position;
  await need(ctx, 4, 'configuration/len');
  const len = ctx.f.getBe32();
  if (len > CONFIG_NAME_MAX) throw decodeError(ctx, 'EANALYZE_LIMIT', `machine name length ${len} over ${CONFIG_NAME_MAX}`, 'configuration/len', start);
  const name = await readLeaf(ctx, 'buffer', len, 'configuration/name');
  const info: ConfigurationInfo = { machineType: latin1String(name.bytes), capabilities: [], fromVmdesc: false };
  for (;;) {
    const at = ctx.f.position;
    const hdr = await peekSubsection(ctx, 'configuration');
    if (!hdr || !hdr.name.startsWith('configuration/')) return info;
    readSubsectionHeader(ctx, hdr.len);
    const path = hdr.name;
    switch (hdr.name) {
      case 'configuration/capabilities': {
        await need(ctx, 4, `${path}/caps_count`);
        const n = ctx.f.getBe32();
        if (n > CAPABILITIES_MAX) throw decodeError(ctx, 'EANALYZE_LIMIT', `capability count ${n} over ${CAPABILITIES_MAX}`, `${path}/caps_count`);
        for (let i = 0; i < n; i++) info.capabilities.push(latin1String((await readCapability(ctx, `${path}/capabilities[${i}]`)).bytes));
        break;
      }
      case 'configuration/target-page-bits':
        await need(ctx, 4, `${path}/target_page_bits`);
        info.targetPageBits = ctx.f.getBe32();
        break;
      case 'configuration/uuid':
        info.uuid = Buffer.from((await readLeaf(ctx, 'buffer', 16, `${path}/uuid`)).bytes).toString('hex');
        break;
      default:
        throw decodeError(ctx, 'EANALYZE_CONFIG', `unknown configuration subsection '${hdr.name}'`, 'configuration', at);
    }
  }
}

function fromState(ctx: DecodeCtx, s: StateDict): ConfigurationInfo {
  const name = leafOf(s.get('name'));
  const len = uintOf(leafOf(s.get('len')));
  const bytes = name ? name.bytes.subarray(0, len ?? name.bytes.length) : new Uint8Array(0);
  const info: ConfigurationInfo = { machineType: latin1String(bytes), capabilities: [], fromVmdesc: true };
  const caps = s.get('configuration/capabilities');
  if (caps instanceof Map) {
    const count = uintOf(leafOf(caps.get('caps_count')));
    const list = caps.get('capabilities');
    const items = list === undefined ? [] : Array.isArray(list) ? list : [list];
    for (const c of items) if (!Array.isArray(c) && !(c instanceof Map)) info.capabilities.push(latin1String(c.bytes));
    if (count !== undefined && count !== info.capabilities.length) {
      // analyze-migration.py: "Number of capabilities doesn't match caps_count field"
      throw decodeError(ctx, 'EANALYZE_CONFIG', `caps_count ${count} but ${info.capabilities.length} capabilities`, 'configuration/capabilities');
    }
  }
  const tpb = s.get('configuration/target-page-bits');
  if (tpb instanceof Map) info.targetPageBits = uintOf(leafOf(tpb.get('target_page_bits')));
  const uuid = s.get('configuration/uuid');
  if (uuid instanceof Map) {
    const u = leafOf(uuid.get('uuid'));
    if (u) info.uuid = Buffer.from(u.bytes).toString('hex');
  }
  return info;
}
