/** Shared helpers for the vmstate tests: save to bytes, load from bytes (optionally split). */
import { QemuFileReader, QemuFileWriter, bytesSource, collectingSink } from '../../lib/stream';
import { vmstateLoad, vmstateSave, type VMStateDescription, type VmdescNode } from '../../lib/vmstate';

export function saveBytes(vmsd: VMStateDescription, opaque: unknown): { bytes: Buffer; desc: VmdescNode } {
  const sink = collectingSink();
  const f = new QemuFileWriter(sink);
  const desc = vmstateSave(f, vmsd, opaque)!;
  f.flush();
  expect(f.error).toBeNull();
  return { bytes: sink.bytes(), desc };
}

/** Load `bytes` (cut at `split`, see bytesSource) and return the reader for position checks. */
export async function loadBytes(
  vmsd: VMStateDescription,
  opaque: unknown,
  bytes: Uint8Array,
  opts: { version?: number; split?: number | number[]; idstr?: string } = {},
): Promise<QemuFileReader> {
  const f = new QemuFileReader(bytesSource(bytes, opts.split ?? bytes.length));
  await vmstateLoad(f, vmsd, opaque, opts.version ?? vmsd.versionId, { idstr: opts.idstr });
  return f;
}

/** Load and return the error it fails with (fails the test if it does not fail). */
export async function loadError(
  vmsd: VMStateDescription,
  opaque: unknown,
  bytes: Uint8Array,
  opts: { version?: number; split?: number | number[]; idstr?: string } = {},
): Promise<any> {
  try {
    await loadBytes(vmsd, opaque, bytes, opts);
  } catch (e) {
    return e;
  }
  throw new Error('load unexpectedly succeeded');
}

export function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}
