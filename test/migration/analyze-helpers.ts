/**
 * Streams for the analyzer's tests, made by livemig's own save path (SaveVm + RamSaver +
 * SectionRegistry):
 *  - machineStream: a real VirtMachine running a guest, saved while it runs (so pages are
 *    dirtied and sent again) and completed stopped, like a precopy migration;
 *  - smallStream: a tiny synthetic stream (two RAM blocks, one device with a subsection),
 *    cheap enough to cut at every offset.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EmulatorDirtyLog } from '../../lib/machine/dirty';
import { RamBlock } from '../../lib/machine/ram';
import { VirtMachine } from '../../lib/machine/virt';
import { ConfigurationState } from '../../lib/migration/configuration';
import { GlobalState, VMSTATE_GLOBALSTATE } from '../../lib/migration/globalstate';
import { RamSaver } from '../../lib/migration/ram-save';
import { SectionRegistry } from '../../lib/migration/registry';
import { SaveVm } from '../../lib/migration/savevm';
import { MIG_CMD, RAM_SECTION_VERSION } from '../../lib/migration/wire';
import { collectingSink, QemuFileWriter } from '../../lib/stream';
import { F, type VMStateDescription } from '../../lib/vmstate';

export const ROOT = path.resolve(__dirname, '../..');
export const FIXTURE = path.join(ROOT, 'test/fixtures/qemu-7.2-virt-idle.mig.gz');
export const FIXTURE_JSON = path.join(ROOT, 'test/fixtures/qemu-7.2-virt-idle.mig.json');
export const MiB = 2 ** 20;

export interface MachineStream {
  bytes: Buffer;
  /** Each block's contents when the machine was saved (stopped). */
  ram: Map<string, Buffer>;
  saver: RamSaver;
  serial: string;
}

async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Run `guest` on a `mem`-sized virt machine until its UART shows `until`, then save it the
 * way a precopy migration does: setup and `iterations` PART sections while it runs, then stop,
 * END and the device sections. */
export async function machineStream(opts: { guest: string; mem?: number; smp?: number; append?: string; until: string; iterations?: number; vmdesc?: boolean }): Promise<MachineStream> {
  const m = await VirtMachine.create({
    memSize: opts.mem ?? 16 * MiB,
    smp: opts.smp ?? 1,
    kernel: fs.readFileSync(path.join(ROOT, 'guests', `${opts.guest}.elf`)),
    append: opts.append,
  });
  let serial = '';
  m.on('serial', (b: Uint8Array) => (serial += Buffer.from(b).toString('latin1')));
  try {
    m.cont();
    await waitFor(() => serial.includes(opts.until), 20000, `'${opts.until}' on the UART`);
    const sink = collectingSink();
    const f = new QemuFileWriter(sink);
    const reg = new SectionRegistry();
    const saver = new RamSaver(m.ramBlocks, { makeLog: (b) => m.makeDirtyLog(b), zeroPageDetection: () => 'legacy' });
    reg.registerLive('ram', 0, RAM_SECTION_VERSION, saver);
    for (const s of m.vmstateSections()) reg.registerVmsd(s.idstr, s.instanceId, s.vmsd, s.opaque);
    reg.registerVmsd('globalstate', 0, VMSTATE_GLOBALSTATE, new GlobalState(() => 'running'));
    const s = new SaveVm(f, reg, new ConfigurationState(m.type.name));
    s.writeHeader();
    await s.setup();
    for (let i = 0; i < (opts.iterations ?? 3); i++) {
      await s.iterate();
      await new Promise((r) => setTimeout(r, 20));
    }
    await m.stop();
    await s.complete();
    s.saveDevices();
    s.finish(opts.vmdesc ?? true);
    await f.close();
    saver.saveCleanup();
    const ram = new Map(m.ramBlocks.map((b) => [b.name, Buffer.from(b.read(0, b.size))]));
    return { bytes: sink.bytes(), ram, saver, serial };
  } finally {
    await m.destroy();
  }
}

export interface Toy {
  a: number;
  b: bigint;
  flag: boolean;
  regs: Uint16Array;
  blob: Uint8Array;
  extra: number;
}

const TOY_EXTRA: VMStateDescription<Toy> = {
  name: 'toy/extra',
  versionId: 1,
  minimumVersionId: 1,
  needed: (t) => t.extra !== 0,
  fields: [F.int32('extra')],
};

/** A device with every kind of field the decoders handle. */
export const TOY: VMStateDescription<Toy> = {
  name: 'toy',
  versionId: 2,
  minimumVersionId: 1,
  fields: [F.uint32('a'), F.int64('b'), F.bool('flag'), F.uint16Array('regs', 3), F.buffer('blob', 5), F.unused(2), F.uint8('a', { get: () => 9 })],
  subsections: [TOY_EXTRA],
};

export function toy(): Toy {
  return { a: 0x1234, b: -2n, flag: true, regs: Uint16Array.of(1, 2, 0xffff), blob: Uint8Array.of(1, 2, 3, 4, 5), extra: -7 };
}

export interface SmallStream {
  bytes: Buffer;
  blocks: Map<string, Buffer>;
  saver: RamSaver;
}

/** Two RAM blocks (every third page zero, a page rewritten after it was sent), the toy
 * device, OPEN_RETURN_PATH + PING + SWITCHOVER_START, vmdesc on request. */
export async function smallStream(opts: { vmdesc?: boolean; kib?: number } = {}): Promise<SmallStream> {
  const a = RamBlock.create({ name: 'blk.a', base: 0x8000_0000, size: (opts.kib ?? 64) * 1024 });
  const b = RamBlock.create({ name: 'dir/blk.b', base: 0x9000_0000, size: 16 * 1024 });
  try {
    for (const blk of [a, b]) {
      for (let p = 0; p < blk.pages; p++) if (p % 3 !== 0) blk.fill(p * 4096, 4096, (p * 7 + blk.base / 2 ** 28) & 0xff || 1);
    }
    const sink = collectingSink();
    const f = new QemuFileWriter(sink);
    const reg = new SectionRegistry();
    const saver = new RamSaver([a, b], { makeLog: (blk) => new EmulatorDirtyLog(blk), zeroPageDetection: () => 'legacy' });
    reg.registerLive('ram', 0, RAM_SECTION_VERSION, saver);
    reg.registerVmsd('toy', 0, TOY, toy());
    const s = new SaveVm(f, reg, new ConfigurationState('virt-2.0'));
    s.writeHeader();
    s.command(MIG_CMD.OPEN_RETURN_PATH);
    s.ping(1);
    await s.setup();
    while (!(await s.iterate())) {
      /* everything once */
    }
    // Rewrite a sent page (sent again, as data) and zero another (sent again, as a zero page).
    a.write(4096 + 10, Uint8Array.of(0xaa, 0xbb));
    a.fill(2 * 4096, 4096, 0);
    await s.complete();
    s.saveDevices();
    s.finish(opts.vmdesc ?? true);
    await f.close();
    saver.saveCleanup();
    return { bytes: sink.bytes(), blocks: new Map([a, b].map((blk) => [blk.name, Buffer.from(blk.read(0, blk.size))])), saver };
  } finally {
    a.close();
    b.close();
  }
}
