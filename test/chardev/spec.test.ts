/** The chardev spelling -serial, -monitor and -qmp share, parsed once below both. */
import { disconnectedFilename, parseChardev } from '../../lib/chardev';
import { OptionError } from '../../lib/util/keyval';

describe('parseChardev', () => {
  test.each([
    ['stdio', { kind: 'stdio' }],
    ['null', { kind: 'null' }],
    ['none', null],
    ['file:out.log', { kind: 'file', path: 'out.log' }],
    ['unix:s.sock', { kind: 'unix', path: 's.sock', server: false, wait: true }],
    ['unix:s.sock,server=on,wait=off', { kind: 'unix', path: 's.sock', server: true, wait: false }],
    ['unix:a,,b.sock,server', { kind: 'unix', path: 'a,b.sock', server: true, wait: true }],
    ['tcp::4444,server=on', { kind: 'tcp', host: '0.0.0.0', port: 4444, server: true, wait: true }],
    ['tcp:[::1]:5555', { kind: 'tcp', host: '::1', port: 5555, server: false, wait: true }],
  ])('%s', (text, spec) => {
    expect(parseChardev(text)).toEqual(spec);
  });

  test.each(['pty', 'unix:', 'tcp:host', 'tcp:h:70000', 'unix:s,reconnect=1', 'unix:s,server=maybe'])(
    '%s is refused',
    (text) => {
      expect(() => parseChardev(text)).toThrow(OptionError);
    },
  );

  test("QEMU's name for a listener without a client", () => {
    expect(disconnectedFilename({ kind: 'unix', path: 'q.sock', server: true, wait: true })).toBe(
      'disconnected:unix:q.sock,server=on',
    );
    expect(disconnectedFilename({ kind: 'tcp', host: '127.0.0.1', port: 4444, server: true, wait: true })).toBe(
      'disconnected:tcp:127.0.0.1:4444,server=on',
    );
  });
});
