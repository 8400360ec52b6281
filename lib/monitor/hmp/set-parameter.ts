/**
 * migrate_set_parameter NAME VALUE: turn the text VALUE into the QMP member, the way
 * hmp_migrate_set_parameter() does with QEMU's string input visitor:
 *
 *   uint8/uint32 members      C integer syntax (0x.., 0..), then the type's range
 *   bool members              on/yes/true, off/no/false (any case)
 *   max-bandwidth,            size, MiB when no suffix (qemu_strtosz_MiB);
 *   avail-switchover-bandwidth   QEMU says "Invalid size VALUE" otherwise
 *   other size/uint64 members size with suffixes, bytes when no suffix (visit_type_size):
 *                             so max-postcopy-bandwidth is in bytes, and downtime-limit
 *                             is in ms but accepts "1k" as 1024 — QEMU's behaviour
 *   enum members              the enum's names
 *   tls-*                     the string as is
 *   cpr-exec-command          split like a shell (g_shell_parse_argv)
 *   block-bitmap-mapping      refused: QMP only
 */

import { QERR, genericError } from '../errors';
import { MigrationParameters, type ArgsOf } from '../schema';
import type { EnumType, ScalarType } from '../schema/types';
import { SizeError, parseSize } from '../../util/size';

type SetArgs = ArgsOf<'migrate-set-parameters'>;

const MiB = 1024 * 1024;

/** qemu_strtou64(str, NULL, 0): the whole string, C base prefixes, wraps negatives. */
function strtou64(s: string): bigint | undefined {
  const m = /^\s*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$/.exec(s);
  if (!m) return undefined;
  const digits = m[2];
  let v: bigint;
  if (/^0[xX]/.test(digits)) v = BigInt(digits);
  else if (digits.length > 1 && digits[0] === '0') v = BigInt(`0o${digits.slice(1)}`);
  else v = BigInt(digits);
  if (v >= 2n ** 64n) return undefined;
  return m[1] === '-' ? (2n ** 64n - v) % 2n ** 64n : v;
}

/** parse_option_size(): the error texts of visit_type_size on a string. */
function optionSize(name: string, value: string): number {
  try {
    return parseSize(value, 1);
  } catch (e) {
    if (e instanceof SizeError && /too large/.test(e.message)) {
      throw genericError(`Value '${value}' is out of range for parameter '${name}'`);
    }
    throw genericError(QERR.invalidParameterValue(name, 'a non-negative number below 2^64'));
  }
}

/** g_shell_parse_argv(), enough for command lines: quotes, backslashes, whitespace. */
export function shellSplit(text: string): string[] {
  const args: string[] = [];
  let cur = '';
  let inWord = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === "'") {
      const end = text.indexOf("'", i + 1);
      if (end < 0) throw genericError(`Text ended before matching quote was found for '. (The text was '${text}')`);
      cur += text.slice(i + 1, end);
      i = end;
      inWord = true;
    } else if (c === '"') {
      let j = i + 1;
      for (; j < text.length && text[j] !== '"'; j++) {
        if (text[j] === '\\' && '"\\$`\n'.includes(text[j + 1] ?? '')) j++;
        cur += text[j];
      }
      if (j >= text.length) throw genericError(`Text ended before matching quote was found for ". (The text was '${text}')`);
      i = j;
      inWord = true;
    } else if (c === '\\' && i + 1 < text.length) {
      cur += text[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) args.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (inWord) args.push(cur);
  if (!args.length) throw genericError('Text was empty (or contained only whitespace)');
  return args;
}

const UINT_MAX: Record<string, [bigint, string]> = {
  uint8: [0xffn, 'uint8_t'],
  uint16: [0xffffn, 'uint16_t'],
  uint32: [0xffffffffn, 'uint32_t'],
};

/** Returns the migrate-set-parameters argument object for `name value`. Throws QmpError. */
export function hmpParameter(name: string, value: string): SetArgs {
  const member = MigrationParameters.members.find((m) => m.name === name);
  if (!member) throw genericError(`invalid parameter value: ${name}`);
  const wrap = (v: unknown) => ({ [name]: v }) as SetArgs;
  if (name === 'block-bitmap-mapping') {
    throw genericError('The block-bitmap-mapping parameter can only be set through QMP');
  }
  if (name === 'cpr-exec-command') return wrap(shellSplit(value));
  if (name === 'max-bandwidth' || name === 'avail-switchover-bandwidth') {
    try {
      return wrap(parseSize(value, MiB));
    } catch {
      throw genericError(`Invalid size ${value}`);
    }
  }
  const t = member.type;
  if (t.kind === 'enum') {
    if (!(t as EnumType<string>).values.includes(value)) throw genericError(QERR.enumValue(name, value));
    return wrap(value);
  }
  if (t.kind === 'alternate') return wrap(value); // tls-*: StrOrNull, given as a string
  switch ((t as ScalarType<unknown>).scalar) {
    case 'bool': {
      const v = value.toLowerCase();
      if (v === 'on' || v === 'yes' || v === 'true') return wrap(true);
      if (v === 'off' || v === 'no' || v === 'false') return wrap(false);
      throw genericError(QERR.invalidParameterType(name, 'boolean'));
    }
    case 'size':
      return wrap(optionSize(name, value));
    case 'uint64':
      // downtime-limit, x-vcpu-dirty-limit-period, vcpu-dirty-limit: QEMU visits them
      // as sizes on the HMP side.
      return wrap(optionSize(name, value));
    default: {
      const n = strtou64(value);
      if (n === undefined) throw genericError(QERR.invalidParameterValue(name, 'uint64'));
      const limit = UINT_MAX[(t as ScalarType<unknown>).scalar];
      if (limit && n > limit[0]) throw genericError(QERR.invalidParameterValue(name, limit[1]));
      return wrap(Number(n));
    }
  }
}
