import { formatAddress, parseUri, resolveChannels, UriError } from '../../lib/transport/uri';

describe('migration URIs', () => {
  test.each([
    ['tcp:127.0.0.1:4444', { transport: 'socket', type: 'inet', host: '127.0.0.1', port: '4444' }],
    ['tcp:[::1]:0', { transport: 'socket', type: 'inet', host: '::1', port: '0' }],
    ['tcp:localhost:5,to=9', { transport: 'socket', type: 'inet', host: 'localhost', port: '5' }],
    ['unix:/run/mig.sock', { transport: 'socket', type: 'unix', path: '/run/mig.sock' }],
    ['fd:migfd', { transport: 'socket', type: 'fd', str: 'migfd' }],
    ['exec:cat > x', { transport: 'exec', args: ['/bin/sh', '-c', 'cat > x'] }],
    ['file:/x/y', { transport: 'file', filename: '/x/y', offset: 0 }],
    ['file:/x,y,offset=0x1000', { transport: 'file', filename: '/x,y', offset: 4096 }],
    ['file:/x,offset=1M', { transport: 'file', filename: '/x', offset: 2 ** 20 }],
  ])('%s', (uri, want) => {
    const a = parseUri(uri);
    expect(a).toEqual(want);
  });

  test('formats back', () => {
    expect(formatAddress(parseUri('tcp:[::1]:7'))).toBe('tcp:[::1]:7');
    expect(formatAddress(parseUri('exec:cat >f'))).toBe('exec:cat >f');
    expect(formatAddress(parseUri('file:/a,offset=4096'))).toBe('file:/a,offset=4096');
  });

  test.each(['bogus', 'rdma2:x', 'tcp:nohost', 'tcp:h:99999', 'unix:', 'file:/x,offset=12Q', 'exec:'])('%s is refused', (uri) => {
    expect(() => parseUri(uri)).toThrow(UriError);
  });

  test('uri and channels are exclusive, one main channel required', () => {
    expect(() => resolveChannels('unix:/a', [])).toThrow(/mutually exclusive/);
    expect(() => resolveChannels(undefined, undefined)).toThrow(/either/);
    const r = resolveChannels(undefined, [
      { 'channel-type': 'main', addr: { transport: 'socket', type: 'unix', path: '/m' } },
      { 'channel-type': 'cpr', addr: { transport: 'socket', type: 'unix', path: '/c' } },
    ]);
    expect(r.main).toEqual({ transport: 'socket', type: 'unix', path: '/m' });
    expect(r.cpr).toEqual({ transport: 'socket', type: 'unix', path: '/c' });
  });
});
