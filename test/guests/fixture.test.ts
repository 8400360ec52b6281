/** The QEMU-written migration stream fixture (made by guests/make-qemu-stream.sh). */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';

const FIXTURE = path.resolve(__dirname, '../fixtures/qemu-7.2-virt-idle.mig');

describe('test/fixtures/qemu-7.2-virt-idle.mig.gz', () => {
  const meta = JSON.parse(fs.readFileSync(`${FIXTURE}.json`, 'utf8'));
  const gz = fs.readFileSync(`${FIXTURE}.gz`);
  const stream = zlib.gunzipSync(gz);

  it('is small and matches its sidecar', () => {
    expect(gz.length).toBeLessThan(1 << 20);
    expect(gz.length).toBe(meta.gzipBytes);
    expect(stream.length).toBe(meta.bytes);
    expect(crypto.createHash('sha256').update(stream).digest('hex')).toBe(meta.sha256);
    expect(meta.qemu).toMatch(/^7\.2\./);
    expect(meta.migrate.status).toBe('completed');
  });

  it('starts with QEVM v3 and the "virt" configuration, ends with the vmdesc JSON', () => {
    expect(stream.subarray(0, 8)).toEqual(Buffer.from([0x51, 0x45, 0x56, 0x4d, 0, 0, 0, 3]));
    expect(stream[8]).toBe(0x07); // QEMU_VM_CONFIGURATION
    expect(stream.readUInt32BE(9)).toBe(4);
    expect(stream.toString('latin1', 13, 17)).toBe('virt');
    const json = stream.toString('latin1', stream.lastIndexOf('{"page_size"'));
    const desc = JSON.parse(json);
    expect(desc.page_size).toBe(4096);
    expect(desc.devices.map((d: { name: string }) => d.name)).toContain('riscv_mtimer');
  });
});
