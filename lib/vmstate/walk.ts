/**
 * What save and load share about walking a description (migration/vmstate.c):
 * value access, field existence, element counts, vmdesc naming and compression.
 */
import type { VMStateDescription, VMStateField } from './types';

/** The field's value in `opaque` (its `get`, else `opaque[key ?? name]`). */
export function getValue(field: VMStateField, opaque: any): unknown {
  if (field.get) return field.get(opaque);
  return opaque == null ? undefined : opaque[field.key ?? field.name];
}

/** Store a value (its `set`, else `opaque[key ?? name] = value`). */
export function setValue(field: VMStateField, opaque: any, value: unknown): void {
  if (field.set) field.set(opaque, value);
  else opaque[field.key ?? field.name] = value;
}

/**
 * vmstate_field_exists(): "If there's the function checker, that's the solo truth";
 * otherwise the field exists when its version ("exists since", default 0) ≤ stream version.
 */
export function fieldExists(field: VMStateField, opaque: any, versionId: number): boolean {
  if (field.exists) return !!field.exists(opaque, versionId);
  return (field.version ?? 0) <= versionId;
}

/** Whether the field is an array (one entry per element), as opposed to a single value. */
export function isArrayField(field: VMStateField): boolean {
  return field.num !== undefined || field.numFrom !== undefined;
}

/**
 * vmsd_can_compress(): an array is described by one vmdesc entry with `array_len` unless its
 * field has an existence test, or it is a struct whose fields cannot compress or which has
 * subsections ("Subsections may come and go, better don't compress").
 */
export function canCompress(field: VMStateField): boolean {
  if (field.exists || field.kind === 'validate') return false;
  if (field.kind === 'struct' && field.struct) {
    for (const sf of field.struct.fields) if (!canCompress(sf)) return false;
    if (field.struct.subsections && field.struct.subsections.length > 0) return false;
  }
  return true;
}

const describedNames = new WeakMap<VMStateDescription, string[]>();

/** vmdesc names of a description's fields: a name used more than once becomes `name[k]`,
 * k = its occurrence index (vmfield_name_num / vmfield_name_is_unique). */
export function vmdescNames(vmsd: VMStateDescription): string[] {
  let names = describedNames.get(vmsd);
  if (names) return names;
  const total = new Map<string, number>();
  for (const f of vmsd.fields) total.set(f.name, (total.get(f.name) ?? 0) + 1);
  const seen = new Map<string, number>();
  names = vmsd.fields.map((f) => {
    if (total.get(f.name)! === 1) return f.name;
    const k = seen.get(f.name) ?? 0;
    seen.set(f.name, k + 1);
    return `${f.name}[${k}]`;
  });
  describedNames.set(vmsd, names);
  return names;
}

/** vmdesc `type` of a field (vmfield_get_type_name; VMSTATE_UNUSED is "unused_buffer"). */
export function vmdescType(field: VMStateField): string {
  switch (field.kind) {
    case 'struct':
      return 'struct';
    case 'tmp':
      return 'tmp';
    case 'buffer':
      return 'buffer';
    case 'unused':
      return 'unused_buffer';
    case 'capability':
      return 'capability';
    case 'fd':
      return 'fd';
    case 'qlist':
      return 'qlist';
    case 'scalar':
      return field.info ?? 'unknown';
    default:
      return 'unknown';
  }
}

/** Path of a subsection below the path of its parent: the part of its name after the
 * parent's name ("cpu" + "cpu/pmp" → "cpu/pmp"; "x/env.pmu[2]" + "cpu/pmu/y" → ".../y"). */
export function subsectionPath(parentPath: string, parent: VMStateDescription, sub: VMStateDescription): string {
  return sub.name.startsWith(parent.name) ? parentPath + sub.name.slice(parent.name.length) : `${parentPath}/${sub.name}`;
}

export function elementPath(base: string, field: VMStateField, i: number, isArray: boolean): string {
  return isArray ? `${base}/${field.name}[${i}]` : `${base}/${field.name}`;
}
