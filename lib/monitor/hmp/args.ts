/**
 * HMP command-line parsing (QEMU monitor/hmp.c): command names, and arguments described by
 * QEMU's args_type mini-language, e.g. "detach:-d,resume:-r,uri:s".
 *
 *   name:s    one word, or a "double-quoted string" with \n \r \\ \' \" escapes
 *   name:S    the rest of the line
 *   name:b    on | off
 *   name:-x   flag -x (flags must come in declaration order, as in QEMU)
 *   name:s?   optional (any type)
 *
 * Failures print QEMU's message and the caller adds 'Try "help CMD" for more information'.
 */

export class HmpParseError extends Error {}

const isSpace = (c: string | undefined) => c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\v' || c === '\f';

/** QEMU get_str(): the next word or quoted string; undefined if none. buf is 1024 bytes. */
export function getStr(line: string, pos: number): { value: string; pos: number } | undefined {
  let p = pos;
  while (isSpace(line[p])) p++;
  if (p >= line.length) return undefined;
  let out = '';
  if (line[p] === '"') {
    p++;
    while (p < line.length && line[p] !== '"') {
      let c = line[p];
      if (c === '\\') {
        p++;
        c = line[p++];
        switch (c) {
          case 'n': c = '\n'; break;
          case 'r': c = '\r'; break;
          case '\\':
          case "'":
          case '"':
            break;
          default:
            throw new HmpParseError(`unsupported escape code: '\\${c ?? ''}'`);
        }
        out += c;
      } else {
        out += c;
        p++;
      }
    }
    if (line[p] !== '"') throw new HmpParseError('unterminated string');
    p++;
  } else {
    while (p < line.length && !isSpace(line[p])) out += line[p++];
  }
  return { value: out.slice(0, 1023), pos: p };
}

/** Split a line into words the way QEMU's help and completion do (parse_cmdline). */
export function splitWords(line: string): string[] {
  const words: string[] = [];
  let p = 0;
  for (;;) {
    const w = getStr(line, p);
    if (!w) return words;
    words.push(w.value);
    p = w.pos;
  }
}

/** get_command_name(): up to whitespace or '/'. */
export function commandName(line: string, pos: number): { name: string; pos: number } | undefined {
  let p = pos;
  while (isSpace(line[p])) p++;
  if (p >= line.length) return undefined;
  const start = p;
  while (p < line.length && line[p] !== '/' && !isSpace(line[p])) p++;
  return { name: line.slice(start, p), pos: p };
}

/** hmp_compare_cmd(): "quit|q" matches both names. */
export function matchesName(name: string, table: string): boolean {
  return table.split('|').includes(name);
}

/** monitor_parse_arguments() for the types this monitor uses. Throws HmpParseError. */
export function parseArgs(cmdName: string, argsType: string, line: string, pos: number): Record<string, string | boolean> {
  const out: Record<string, string | boolean> = {};
  const specs = argsType ? argsType.split(',') : [];
  let p = pos;
  for (let i = 0; i < specs.length; i++) {
    const [key, type] = specs[i].split(':');
    const c = type[0];
    const optional = type.endsWith('?');
    while (isSpace(line[p])) p++;
    switch (c) {
      case 's':
      case 'F': {
        if (optional && p >= line.length) break;
        const expected = c === 'F' ? `${cmdName}: filename expected` : `${cmdName}: string expected`;
        let w: ReturnType<typeof getStr>;
        try {
          w = getStr(line, p);
        } catch (e) {
          throw new HmpParseError(`${(e as Error).message}\n${expected}`);
        }
        if (!w) throw new HmpParseError(expected);
        out[key] = w.value;
        p = w.pos;
        break;
      }
      case 'S': {
        if (optional && p >= line.length) break;
        if (p >= line.length) throw new HmpParseError(`${cmdName}: string expected`);
        out[key] = line.slice(p);
        p = line.length;
        break;
      }
      case 'b': {
        let e = p;
        while (e < line.length && line.charCodeAt(e) > 0x20 && line.charCodeAt(e) < 0x7f) e++;
        const word = line.slice(p, e);
        if (word === 'on') out[key] = true;
        else if (word === 'off') out[key] = false;
        else throw new HmpParseError("Expected 'on' or 'off'");
        p = e;
        break;
      }
      case '-': {
        const flag = type[1];
        if (line[p] === '-') {
          const given = line[p + 1];
          if (given !== flag) {
            // A later flag of this command? Then this one is absent; else refuse.
            const later = specs.slice(i + 1).some((s) => s.split(':')[1] === `-${given}`);
            if (!later) throw new HmpParseError(`${cmdName}: unsupported option -${given ?? ''}`);
            break;
          }
          out[key] = true;
          p += 2;
        }
        break;
      }
      default:
        throw new HmpParseError(`${cmdName}: unknown type '${c}'`);
    }
  }
  while (isSpace(line[p])) p++;
  if (p < line.length) throw new HmpParseError(`${cmdName}: extraneous characters at the end of line`);
  return out;
}
