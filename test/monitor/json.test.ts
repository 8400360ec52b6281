import { JsonMessageParser } from '../../lib/monitor/json/parser';
import { formatG, quoteString, toJson } from '../../lib/monitor/json/encode';
import { JsonFloat, JsonValue } from '../../lib/monitor/json/value';

type Out = { v?: JsonValue; e?: string };

function parseAll(input: string | Uint8Array, limits = {}): Out[] {
  const out: Out[] = [];
  const p = new JsonMessageParser((v, e) => out.push(e !== undefined ? { e } : { v }), limits);
  p.feed(typeof input === 'string' ? Buffer.from(input, 'utf8') : input);
  return out;
}

/** Plain form for comparisons: Maps become objects, JsonFloat a tagged object. */
function plain(v: JsonValue | undefined): unknown {
  if (v instanceof Map) return Object.fromEntries([...v].map(([k, x]) => [k, plain(x)]));
  if (Array.isArray(v)) return v.map(plain);
  if (v instanceof JsonFloat) return { float: v.value };
  return v;
}

const values = (input: string) => parseAll(input).map((o) => (o.e !== undefined ? { e: o.e } : plain(o.v)));

describe('JSON lexer and parser (QEMU json-lexer.c / json-parser.c)', () => {
  test('objects, arrays, scalars, whitespace between messages', () => {
    expect(values(' {"a": [1, -2, true, false, null, "x"]}\r\n\t{}[] ')).toEqual([
      { a: [1, -2, true, false, null, 'x'] },
      {},
      [],
    ]);
  });

  test('single-quoted strings and the \\\' escape are accepted', () => {
    expect(values(`{'execute': 'it\\'s "q"'}`)).toEqual([{ execute: 'it\'s "q"' }]);
  });

  test('numbers keep their lexical kind: int64, uint64 (bigint), doubles', () => {
    expect(values('[0, -0, 9007199254740993, 18446744073709551615, 18446744073709551616, 1.0, 1e3, -2.5E-1]')).toEqual([
      [0, 0, 9007199254740993n, 18446744073709551615n, { float: 18446744073709551616 }, { float: 1 }, { float: 1000 },
        { float: -0.25 }],
    ]);
  });

  test('a scalar at top level is emitted once the next byte shows it ended', () => {
    expect(values('42 true "s"')).toEqual([42, true, 's']);
  });

  test('escapes, surrogate pairs and modified UTF-8', () => {
    expect(values('["\\u00e9\\ud83d\\ude00\\n\\t\\/\\b\\f\\r", "é😀"]')).toEqual([['é😀\n\t/\b\f\r', 'é😀']]);
    expect(parseAll(Buffer.from([0x22, 0xc0, 0x80, 0x22, 0x20]))).toEqual([{ v: '\u0000' }]);
  });

  test.each([
    ['{"execute": }', 'JSON parse error, expecting value'],
    ['{"a" 1}', 'JSON parse error, missing : in object pair'],
    ['{"a": 1 "b": 2}', 'JSON parse error, expected separator in dict'],
    ['[1 2]', 'JSON parse error, expected separator in list'],
    ['{1: 2}', 'JSON parse error, key is not a string in object'],
    ['{[1]: 2}', 'JSON parse error, key is not a string in object'],
    ['{"a": 1, "a": 2}', 'JSON parse error, duplicate key'],
    ['[nul]', "JSON parse error, invalid keyword 'nul'"],
    ['["\\x"]', 'JSON parse error, invalid escape sequence in string'],
    ['["\\ud800"]', 'JSON parse error, \\ud800 is not a valid Unicode character'],
    ['["\\uffff"]', 'JSON parse error, \\uffff is not a valid Unicode character'],
    ['[1,]', 'JSON parse error, expecting value'],
    ['}', 'JSON parse error, expecting value'],
  ])('syntax error %s', (input, error) => {
    expect(parseAll(input)[0]).toEqual({ e: error });
  });

  test('invalid UTF-8 in a string', () => {
    expect(parseAll(Buffer.from([0x22, 0xc3, 0x28, 0x22, 0x20]))).toEqual([{ e: 'JSON parse error, invalid UTF-8 sequence in string' }]);
    // overlong "/" is refused
    expect(parseAll(Buffer.from([0x22, 0xc0, 0xaf, 0x22]))).toEqual([{ e: 'JSON parse error, invalid UTF-8 sequence in string' }]);
  });

  test('lexical error reports the stray bytes, recovery resumes at a structural char', () => {
    expect(values('{"execute": XYZ} {"a":1}')).toEqual([
      { e: "JSON parse error, stray 'X'" },
      // QEMU's streamer restarts after the error, so the lone closer is a second error
      { e: 'JSON parse error, expecting value' },
      { a: 1 },
    ]);
  });

  test('a control character forces the parser back into a known state (qmp-spec.rst)', () => {
    expect(values('{"execute": "qmp_capa\x01 {"ok": 1}')).toEqual([
      { e: 'JSON parse error, stray \'"qmp_capa\x01\'' },
      { ok: 1 },
    ]);
    expect(parseAll(Buffer.concat([Buffer.from('[1, '), Buffer.from([0xff]), Buffer.from('[2]')]))).toEqual([
      { e: "JSON parse error, stray '\u00ff'" },
      { v: [2] },
    ]);
  });

  test('number lexing errors', () => {
    expect(values('01 ')[0]).toEqual({ e: "JSON parse error, stray '01'" });
    expect(values('[-a]')[0]).toEqual({ e: "JSON parse error, stray '-a'" });
    expect(values('[1.e5]')[0]).toEqual({ e: "JSON parse error, stray '1.e'" });
  });

  test('nesting depth limit (1024) and recovery after it', () => {
    const out = parseAll('['.repeat(1025) + ']'.repeat(1025) + '{"ok":true}');
    expect(out[0]).toEqual({ e: 'JSON nesting depth limit exceeded' });
    expect(plain(out[out.length - 1].v)).toEqual({ ok: true });
    expect(parseAll('['.repeat(1024) + ']'.repeat(1024))).toHaveLength(1);
  });

  test('token size and token count limits', () => {
    expect(parseAll('["' + 'a'.repeat(200) + '"]', { maxTokenSize: 100 })[0]).toEqual({ e: 'JSON token size limit exceeded' });
    expect(parseAll('[' + '1,'.repeat(100) + '1]', { maxTokenCount: 50 })[0]).toEqual({ e: 'JSON token count limit exceeded' });
  });

  test('input split at every byte boundary gives the same messages', () => {
    const input = Buffer.from(`{"execute":"migrate","arguments":{"uri":"tcp:h:1","x":[1.5,-3,'é']},"id":{"n":[]}} bad {"a":"\\u00e9"}`);
    const whole = parseAll(input).map((o) => (o.e ?? plain(o.v)));
    for (let i = 0; i <= input.length; i++) {
      const out: unknown[] = [];
      const p = new JsonMessageParser((v, e) => out.push(e ?? plain(v)));
      p.feed(input.subarray(0, i));
      p.feed(input.subarray(i));
      expect(out).toEqual(whole);
    }
    const out: unknown[] = [];
    const p = new JsonMessageParser((v, e) => out.push(e ?? plain(v)));
    for (const b of input) p.feed(Uint8Array.of(b));
    expect(out).toEqual(whole);
  });

  test('__proto__ is an ordinary key', () => {
    const [o] = parseAll('{"__proto__": {"polluted": 1}}');
    expect(o.v instanceof Map && o.v.get('__proto__')).toBeInstanceOf(Map);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('JSON output (QEMU qjson.c)', () => {
  test('QEMU spacing and member order', () => {
    expect(toJson({ return: {}, id: 1 })).toBe('{"return": {}, "id": 1}');
    expect(toJson({ a: [1, 2], b: null, c: undefined })).toBe('{"a": [1, 2], "b": null}');
    expect(toJson(new Map([['x', new JsonFloat(0.5)]]))).toBe('{"x": 0.5}');
  });

  test('ASCII output with upper-case \\u escapes and surrogate pairs', () => {
    expect(quoteString('a"\\\n\u0001é😀\u007f/')).toBe('"a\\"\\\\\\n\\u0001\\u00E9\\uD83D\\uDE00\\u007F/"');
  });

  test('doubles use %.17g, integers print in full', () => {
    expect(toJson(new JsonFloat(0.1))).toBe('0.10000000000000001');
    expect(toJson(new JsonFloat(1.5))).toBe('1.5');
    expect(toJson(new JsonFloat(100))).toBe('100');
    expect(toJson(new JsonFloat(1e300))).toBe('1.0000000000000001e+300');
    expect(toJson(2 ** 64 - 2048)).toBe('18446744073709549568');
    expect(toJson(18446744073709551615n)).toBe('18446744073709551615');
    expect(formatG(0.977, 3)).toBe('0.977');
    expect(formatG(1.2345e-7, 3)).toBe('1.23e-07');
    expect(formatG(128, 3)).toBe('128');
  });
});
