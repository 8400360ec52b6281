/**
 * Shape handler results and event data for output: struct members in declaration order
 * (QEMU's output visitor walks the schema, so query-migrate-parameters lists members in
 * QAPI order whatever order the backend built its object in), absent members dropped.
 * Members the schema does not know are kept, after the known ones, so a backend adding a
 * statistic does not lose it.
 */

import type { QapiType, StructType, UnionType } from './types';

export function shapeOutput(type: QapiType | undefined, value: unknown): unknown {
  if (value === undefined || value === null || !type) return value;
  switch (type.kind) {
    case 'list':
      return Array.isArray(value) ? value.map((x) => shapeOutput(type.element, x)) : value;
    case 'struct':
    case 'union':
      return typeof value === 'object' && !Array.isArray(value) && !(value instanceof Map)
        ? shapeObject(type, value as Record<string, unknown>)
        : value;
    case 'alternate': {
      const t = type.alternatives.find((a) => a.kind !== 'scalar' && typeof value === 'object');
      return shapeOutput(t, value);
    }
    default:
      return value;
  }
}

function shapeObject(type: StructType<unknown> | UnionType<unknown>, v: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const addMembers = (t: StructType<unknown> | UnionType<unknown>) => {
    for (const m of t.members) {
      if (v[m.name] !== undefined) out[m.name] = shapeOutput(m.type, v[m.name]);
    }
    if (t.kind === 'union') {
      const variant = t.variants[v[t.discriminator] as string];
      if (variant) addMembers(variant);
    }
  };
  addMembers(type);
  for (const [k, x] of Object.entries(v)) {
    if (x !== undefined && !(k in out)) out[k] = x;
  }
  return out;
}
