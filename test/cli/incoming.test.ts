/** -incoming as QEMU reads it: URIs, defer, and MigrationChannel in JSON or keyval form. */
import { parseIncoming } from '../../lib/cli/incoming';
import { OptionError, parseArgs } from '../../lib/cli/options';

const unix = (path: string) => ({ transport: 'socket', type: 'unix', path });

test('a URI or defer is the main channel; the last one wins, as in QEMU', () => {
  expect(parseIncoming(['unix:/a'])).toEqual({ main: unix('/a') });
  expect(parseIncoming(['defer'])).toEqual({ main: 'defer' });
  expect(parseIncoming(['unix:/a', 'tcp:h:5'])).toEqual({ main: { transport: 'socket', type: 'inet', host: 'h', port: '5' } });
  expect(parseIncoming([])).toEqual({});
});

test('JSON channels, double or single quoted, main and cpr', () => {
  const cpr = '{"channel-type": "cpr", "addr": {"transport": "socket", "type": "unix", "path": "/c"}}';
  expect(parseIncoming(['defer', cpr])).toEqual({ main: 'defer', cpr: unix('/c') });
  expect(parseIncoming(["{'channel-type': 'main', 'addr': {'transport': 'file', 'filename': '/f', 'offset': 4096}}"])).toEqual({
    main: { transport: 'file', filename: '/f', offset: 4096 },
  });
});

test("keyval channels (QEMU's qtest spelling), with the channel type implied", () => {
  expect(parseIncoming(['unix:/m', 'cpr,addr.transport=socket,addr.type=fd,addr.str=3'])).toEqual({
    main: unix('/m'),
    cpr: { transport: 'socket', type: 'fd', str: '3' },
  });
  expect(parseIncoming(['main,addr.transport=exec,addr.args.0=cat,addr.args.1=/f'])).toEqual({ main: { transport: 'exec', args: ['cat', '/f'] } });
  expect(parseIncoming(['main,addr.transport=file,addr.filename=/f,,x,addr.offset=8'])).toEqual({ main: { transport: 'file', filename: '/f,x', offset: 8 } });
});

test.each([
  ['{"channel-type": "cpr"}', "Parameter 'addr' is missing"],
  ['{"channel-type": "side", "addr": {}}', "Parameter 'channel-type' does not accept value 'side'"],
  ['cpr,addr.transport=socket,addr.type=unix', "Parameter 'addr.path' is missing"],
  ['cpr,addr.transport=socket,addr.type=unix,addr.path=/c,addr.colour=red', "Parameter 'addr.colour' is unexpected"],
  ['main,addr.transport=rdma,addr.host=h,addr.port=1', "migration transport 'rdma' is not supported"],
  ['main,addr.transport=socket,addr.type=vsock,addr.cid=3,addr.port=1', "socket type 'vsock' is not supported"],
  ['main,addr.transport=socket,addr.type=unix,addr.path=x,addr.abstract=on', 'abstract unix sockets are not supported'],
  ['{"channel-type": "cpr", ', 'JSON parse error'],
  ['bogus:x', 'unknown migration protocol: bogus:x'],
])('%s is refused: %s', (spec, text) => {
  expect(() => parseIncoming([spec])).toThrow(OptionError);
  expect(() => parseIncoming([spec])).toThrow(text);
});

test('a cpr channel alone is refused; the command line reports it under -incoming', () => {
  const cpr = 'cpr,addr.transport=socket,addr.type=unix,addr.path=/c';
  expect(() => parseIncoming([cpr])).toThrow("a 'cpr' channel needs a main channel too");
  expect(() => parseArgs(['-kernel', 'k', '-incoming', cpr])).toThrow("-incoming: a 'cpr' channel needs a main channel too");
  expect(parseArgs(['-kernel', 'k', '-incoming', 'defer', '-incoming', cpr]).incomingChannels).toEqual({ main: 'defer', cpr: unix('/c') });
});
