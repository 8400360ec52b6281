/**
 * Save/load through a VMState description's accessors only, the way the vmstate layer walks
 * it, without encoding bytes: `capture` runs preSave, reads every field (get/key, nested
 * structs, subsections whose `needed` holds) into detached plain data, runs postSave;
 * `restore` runs preLoad, writes every field into a (fresh) opaque, then postLoad.
 */
import type { VMStateDescription, VMStateField } from '../../../lib/vmstate/types';

export interface Captured {
  name: string;
  version: number;
  fields: Record<string, unknown>;
  subsections: Captured[];
}

function read(f: VMStateField, o: any): unknown {
  return f.get ? f.get(o) : o[f.key ?? f.name];
}

function write(f: VMStateField, o: any, v: unknown): void {
  if (f.set) f.set(o, v);
  else o[f.key ?? f.name] = v;
}

function detach(v: unknown): unknown {
  if (ArrayBuffer.isView(v)) return Array.from(v as unknown as ArrayLike<number | bigint>);
  return v;
}

export function capture<T>(d: VMStateDescription<T>, o: T): Captured {
  d.preSave?.(o);
  const fields: Record<string, unknown> = {};
  for (const f of d.fields) {
    if (f.kind === 'struct') fields[f.name] = capture(f.struct!, read(f, o));
    else if (f.kind === 'scalar' || f.kind === 'buffer') fields[f.name] = detach(read(f, o));
  }
  const subsections = (d.subsections ?? []).filter((s) => !s.needed || s.needed(o)).map((s) => capture(s, o));
  d.postSave?.(o);
  return { name: d.name, version: d.versionId, fields, subsections };
}

export function restore<T>(d: VMStateDescription<T>, o: T, c: Captured): void {
  if (c.name !== d.name) throw new Error(`expected ${d.name}, got ${c.name}`);
  d.preLoad?.(o);
  for (const f of d.fields) {
    if (!(f.name in c.fields)) continue;
    const v = c.fields[f.name];
    if (f.kind === 'struct') restore(f.struct!, read(f, o), v as Captured);
    else if (f.kind === 'buffer') write(f, o, Uint8Array.from(v as number[]));
    else write(f, o, v);
  }
  for (const sc of c.subsections) {
    const s = (d.subsections ?? []).find((x) => x.name === sc.name);
    if (!s) throw new Error(`unknown subsection ${sc.name}`);
    restore(s, o, sc);
  }
  d.postLoad?.(o, c.version);
}

/** Names of the subsections a capture carries (recursively). */
export function subsectionNames(c: Captured): string[] {
  const nested = Object.values(c.fields).flatMap((v) =>
    v && typeof v === 'object' && 'subsections' in (v as object) ? subsectionNames(v as Captured) : [],
  );
  return [...c.subsections.map((s) => s.name), ...nested];
}
