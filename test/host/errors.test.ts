/**
 * Misuse is a typed HostError (errno name in `code`, the system call in `syscall`), never a
 * crash: bad fds, misaligned or out-of-range addresses, double unmap, oversize windows, ranges
 * registered twice, and garbage arguments to every native function.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';

import { HOST_PAGE_SIZE, HostError, MemfdMapping, Userfaultfd, native } from '../../lib/host';
import { DIST_HOST, hostErrorOf } from './helpers';

const PAGE = HOST_PAGE_SIZE;

describe('host errors', () => {
  let m: MemfdMapping;
  beforeEach(() => {
    m = MemfdMapping.create({ name: 'err-ram', size: 16 * PAGE });
  });
  afterEach(() => {
    if (m.isMapped) m.close();
  });

  test('a HostError carries errno, code and syscall', () => {
    const e = hostErrorOf(() => native.fdSize(987654));
    expect(e).toBeInstanceOf(HostError);
    expect(e).toBeInstanceOf(Error);
    expect(e).toMatchObject({ name: 'HostError', errno: 9, code: 'EBADF', syscall: 'fstat' });
  });

  test('bad fds', () => {
    expect(hostErrorOf(() => MemfdMapping.fromFd(987654)).code).toBe('EBADF');
    expect(hostErrorOf(() => native.uffdRegister(987654, m.addr, PAGE, 1)).code).toBe('EBADF');
    expect(hostErrorOf(() => native.uffdCopy(987654, m.addr, new Uint8Array(PAGE), PAGE)).code).toBe('EBADF');
    expect(hostErrorOf(() => native.close(-1)).code).toBe('EBADF');
    expect(hostErrorOf(() => new native.FdWatcher(-5, () => {})).code).toBe('EBADF');
    // A uffd ioctl on a file that is not a uffd.
    const fd = fs.openSync('/dev/null', 'r');
    try {
      expect(hostErrorOf(() => native.uffdRegister(fd, m.addr, PAGE, 1)).code).toBe('ENOTTY');
    } finally {
      fs.closeSync(fd);
    }
  });

  test('misaligned addresses and lengths', () => {
    const uffd = Userfaultfd.open();
    try {
      expect(hostErrorOf(() => uffd.register(m.addr + 1, PAGE, ['missing'])).code).toBe('EINVAL');
      uffd.register(m.addr, m.size, ['missing']);
      expect(hostErrorOf(() => uffd.copy(m.addr + 8, new Uint8Array(2 * PAGE), PAGE)).code).toBe('EINVAL');
      expect(hostErrorOf(() => uffd.copy(m.addr, new Uint8Array(PAGE), 100)).code).toBe('EINVAL');
      expect(hostErrorOf(() => m.dontNeed(1, PAGE)).code).toBe('EINVAL');
      expect(hostErrorOf(() => MemfdMapping.fromFd(m.fd, { offset: 100, length: PAGE })).code).toBe('EINVAL');
    } finally {
      uffd.close();
    }
  });

  test('addresses outside any live mapping are EFAULT, before any system call', () => {
    const uffd = Userfaultfd.open();
    try {
      expect(hostErrorOf(() => m.window(15 * PAGE, 2 * PAGE)).code).toBe('EFAULT');
      expect(hostErrorOf(() => native.window(4096, 0, 4096)).code).toBe('EFAULT');
      expect(hostErrorOf(() => uffd.register(m.addr, 17 * PAGE, ['missing'])).code).toBe('EFAULT');
      expect(hostErrorOf(() => native.dontNeed(4096, 4096)).code).toBe('EFAULT');
      expect(hostErrorOf(() => native.populateWrite(m.addr + 16 * PAGE, PAGE)).code).toBe('EFAULT');
      // COPY's source, when an address, must also lie in a live mapping.
      uffd.register(m.addr, m.size, ['missing']);
      expect(hostErrorOf(() => uffd.copy(m.addr, 4096, PAGE)).code).toBe('EFAULT');
      expect(hostErrorOf(() => uffd.copy(m.addr, new Uint8Array(100), PAGE)).code).toBe('EINVAL');
    } finally {
      uffd.close();
    }
  });

  test('double unmap is EINVAL; windows of an unmapped mapping are refused', () => {
    const addr = m.addr;
    m.unmap();
    expect(hostErrorOf(() => m.unmap()).code).toBe('EINVAL');
    expect(hostErrorOf(() => native.unmap(addr)).code).toBe('EINVAL');
    expect(hostErrorOf(() => native.window(addr, 0, PAGE)).code).toBe('EFAULT');
    m.close(); // closes the fd; does not unmap again
    expect(m.isMapped).toBe(false);
  });

  test('a window over 4 GiB is ERANGE (checked before N-API could double-free)', () => {
    expect(hostErrorOf(() => native.window(m.addr, 0, 2 ** 32 + 1)).code).toBe('ERANGE');
    expect(hostErrorOf(() => native.window(m.addr, 0, 2 ** 40)).code).toBe('ERANGE');
    expect(() => m.windows(2 ** 33)).toThrow(RangeError);
  });

  test('registering a range twice: EBUSY from another uffd (kernel) and from the same one', () => {
    const a = Userfaultfd.open();
    const b = Userfaultfd.open();
    try {
      a.register(m.addr, 8 * PAGE, ['missing']);
      const other = hostErrorOf(() => b.register(m.addr + 4 * PAGE, 4 * PAGE, ['missing']));
      expect(other).toMatchObject({ code: 'EBUSY', syscall: 'ioctl(UFFDIO_REGISTER)' });
      expect(hostErrorOf(() => a.register(m.addr + 7 * PAGE, 2 * PAGE, ['wp'])).code).toBe('EBUSY');
      a.register(m.addr + 8 * PAGE, 8 * PAGE, ['missing']); // adjacent is fine
      a.unregister(m.addr, 4 * PAGE);
      a.register(m.addr, 2 * PAGE, ['minor']); // the freed part can be registered again
    } finally {
      a.close();
      b.close();
    }
  });

  test('resolving twice is EEXIST; resolving an unregistered range is ENOENT', () => {
    const uffd = Userfaultfd.open();
    try {
      uffd.register(m.addr, 8 * PAGE, ['missing']);
      expect(uffd.copy(m.addr, new Uint8Array(PAGE), PAGE)).toBe(PAGE);
      expect(hostErrorOf(() => uffd.copy(m.addr, new Uint8Array(PAGE), PAGE)).code).toBe('EEXIST');
      expect(hostErrorOf(() => uffd.zeropage(m.addr, PAGE)).code).toBe('EEXIST');
      expect(hostErrorOf(() => uffd.copy(m.addr + 9 * PAGE, new Uint8Array(PAGE), PAGE)).code).toBe('ENOENT');
    } finally {
      uffd.close();
    }
  });

  test('features: an unknown name or bit, and UFFDIO_API twice, are EINVAL', () => {
    expect(hostErrorOf(() => Userfaultfd.open(['NOPE' as never])).code).toBe('EINVAL');
    const fd = native.uffdOpen();
    try {
      expect(hostErrorOf(() => native.uffdApi(fd, 1 << 30)).code).toBe('EINVAL');
      native.uffdApi(fd, 0);
      expect(hostErrorOf(() => native.uffdApi(fd, 0)).code).toBe('EINVAL');
    } finally {
      native.close(fd);
    }
  });

  test('hugetlb memfd without reserved huge pages fails typed', () => {
    const reserved = Number(fs.readFileSync('/proc/sys/vm/nr_hugepages', 'utf8'));
    if (reserved > 0) return; // the machine has huge pages: nothing to check here
    expect(hostErrorOf(() => MemfdMapping.create({ name: 'huge', size: 2 << 20, hugetlb: true })).code).toBe('ENOMEM');
  });

  test('garbage arguments to every native function: a HostError or a value, never a crash', () => {
    const garbage: unknown[] = [undefined, null, 'x', -1, NaN, 1.5, 2 ** 60, {}, [], 123456789];
    const skip = new Set(['setErrorClass']);
    let thrown = 0;
    for (const [name, fn] of Object.entries(native)) {
      if (typeof fn !== 'function' || skip.has(name)) continue;
      for (const g of garbage) {
        const args = Array.from({ length: 10 }, () => g);
        try {
          const r = name === 'FdWatcher' ? new (fn as any)(...args) : (fn as any)(...args);
          // Close what a call opened (uffdOpen, pagemapOpen, socketPair with defaults).
          if (typeof r === 'number' && r > 2 && name !== 'gettid') native.close(r);
          if (Array.isArray(r)) r.forEach((fd) => native.close(fd));
        } catch (e) {
          expect(e).toBeInstanceOf(HostError);
          thrown++;
        }
      }
    }
    expect(thrown).toBeGreaterThan(100);
  });

  test('the loader says what it tried when the addon cannot be loaded', () => {
    const r = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(DIST_HOST)})`], {
      env: { ...process.env, LIVEMIG_ADDON: '/nonexistent/livemig.node' },
      encoding: 'utf8',
    });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('cannot load the native addon from LIVEMIG_ADDON=/nonexistent/livemig.node');
  });
});
