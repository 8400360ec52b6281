import { FdSocket, MemfdMapping, native } from '../../lib/host';

describe('memfd holes and socket buffers', () => {
  test('dataExtents reports exactly the written pages; the rest are holes', () => {
    const m = MemfdMapping.create({ name: 'extents', size: 16 * 4096 });
    try {
      expect(m.dataExtents()).toEqual([]);
      const u = new Uint8Array(m.window());
      u[2 * 4096 + 7] = 1;
      u[3 * 4096] = 1;
      u[15 * 4096 + 4095] = 1;
      expect(m.dataExtents()).toEqual([2 * 4096, 4 * 4096, 15 * 4096, 16 * 4096]);
      m.punchHole(2 * 4096, 4096);
      expect(m.dataExtents()).toEqual([3 * 4096, 4 * 4096, 15 * 4096, 16 * 4096]);
    } finally {
      m.close();
    }
  });

  test('seekData on a bad fd is a typed error', () => {
    expect(() => native.seekData(987654, 0)).toThrow(expect.objectContaining({ code: 'EBADF', syscall: 'lseek' }));
  });

  test('setSocketBuffers grows a socket\'s kernel buffers and refuses a non-socket', () => {
    const [a, b] = FdSocket.pair('stream');
    try {
      const before = native.setSocketBuffers(a.fd, 0, 0);
      const after = native.setSocketBuffers(a.fd, 1 << 20, 1 << 20);
      expect(after.sndbuf).toBeGreaterThan(before.sndbuf);
      expect(after.rcvbuf).toBeGreaterThanOrEqual(1 << 20);
      const m = MemfdMapping.create({ name: 'notsock', size: 4096 });
      expect(() => native.setSocketBuffers(m.fd, 1 << 20, 0)).toThrow(expect.objectContaining({ code: 'ENOTSOCK' }));
      m.close();
    } finally {
      a.close();
      b.close();
    }
  });
});
