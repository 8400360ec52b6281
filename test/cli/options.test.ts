import { parseArgs, OptionError } from '../../lib/cli/options';
import { parseSize } from '../../lib/util/size';

describe('livemig options', () => {
  test('QEMU spelling of a typical command line', () => {
    const c = parseArgs(['-M', 'virt,aux-ram-share=on', '-m', '1G', '-smp', '2', '-kernel', 'g.elf', '-bios', 'none',
      '-serial', 'unix:/tmp/s,server=on,wait=off', '-nodefaults', '-display', 'none', '-S', '-name', 'src']);
    expect(c.machine).toEqual({ type: 'virt', auxRamShare: true });
    expect(c.memSize).toBe(2 ** 30);
    expect(c.smp).toBe(2);
    expect(c.serial).toEqual([{ kind: 'unix', path: '/tmp/s', server: true, wait: false }]);
    expect(c.startPaused).toBe(true);
    expect(c.name).toBe('src');
  });

  test('-m defaults to MiB, sizes take suffixes', () => {
    expect(parseArgs(['-m', '512']).memSize).toBe(512 * 2 ** 20);
    expect(parseArgs(['-m', 'size=2G']).memSize).toBe(2 * 2 ** 30);
    expect(parseSize('1.5G')).toBe(1.5 * 2 ** 30);
    expect(parseSize('0x1000')).toBe(4096);
  });

  test('memory backends as QEMU spells them', () => {
    const c = parseArgs(['-object', 'memory-backend-memfd,id=mem0,size=256M,share=on', '-machine', 'virt,memory-backend=mem0']);
    expect(c.objects[0]).toMatchObject({ qomType: 'memory-backend-memfd', id: 'mem0', size: 256 * 2 ** 20, share: true });
    expect(c.memSize).toBe(256 * 2 ** 20);
  });

  test('-nographic sends the serial port to stdio', () => {
    expect(parseArgs(['-nographic']).serial).toEqual([{ kind: 'stdio' }]);
  });

  test.each([
    [['-frobnicate'], '-frobnicate'],
    [['-m'], '-m'],
    [['-m', 'lots'], '-m'],
    [['-smp', '9'], '-smp'],
    [['-M', 'virt,bogus=1'], '-M'],
    [['-serial', 'pty'], '-serial'],
    [['-object', 'memory-backend-memfd,id=m'], '-object'],
    [['-machine', 'memory-backend=nope'], 'memory-backend'],
  ])('%j is refused with a message naming the option', (argv, name) => {
    expect(() => parseArgs(argv)).toThrow(OptionError);
    try {
      parseArgs(argv);
    } catch (e) {
      expect((e as Error).message).toContain(name);
    }
  });
});
