/**
 * A dry run of what the guest's pause consists of, done while it still runs: saving (old
 * process) and loading (new process) the device sections of a cpr-transfer stream, over
 * scratch harts and devices (VirtMachine.scratchSections) and an in-memory stream.
 *
 * Why: the pause is a few milliseconds of code that runs once per process lifetime. Cold, V8
 * parses and compiles each function on first use (or again, after flushing the bytecode of a
 * long-idle process), and runs it in the interpreter until it has run often enough to be
 * compiled, which costs more than the work itself. The live objects cannot serve: a hart's
 * preSave writes its state, and the old guest is running.
 */
import type { VirtMachine } from '../../machine/virt';
import { CollectingSink, QemuFileReader, QemuFileWriter } from '../../stream';
import { GlobalState } from '../globalstate';
import { LoadVm } from '../loadvm';
import type { MigrationOptions } from '../options';
import { RamLoader } from '../ram-load';
import { RamSaver } from '../ram-save';
import { SaveVm } from '../savevm';
import { configurationFor, machineRegistry, streamFormat } from '../sections';

/** Runs of the dry run: enough for V8 to compile the hot functions beyond its interpreter
 * (some 10 ms of work, while the guest still runs). */
export const WARM_UP_ROUNDS = 20;

/** The old process's dry runs. */
export async function warmUpSaving(machine: VirtMachine, options: MigrationOptions): Promise<void> {
  for (let i = 0; i < WARM_UP_ROUNDS; i++) await warmUpSave(machine, options);
}

/** The new process's dry runs: one stream written, loaded over and over (only the load is on
 * the new process's side of the pause). */
export async function warmUpLoading(machine: VirtMachine, options: MigrationOptions): Promise<void> {
  const bytes = await warmUpSave(machine, options);
  for (let i = 0; i < WARM_UP_ROUNDS; i++) await warmUpLoad(machine, options, bytes);
}

/** Writes a whole cpr-transfer stream for scratch devices; returns its bytes. */
export async function warmUpSave(machine: VirtMachine, options: MigrationOptions): Promise<Uint8Array> {
  const sink = new CollectingSink();
  const f = new QemuFileWriter(sink);
  const ram = new RamSaver(machine.ramBlocks, {
    makeLog: () => {
      throw new Error('cpr-transfer tracks no dirty pages');
    },
    zeroPageDetection: () => 'none',
    mode: 'cpr-transfer',
  });
  const format = streamFormat(options);
  const reg = machineRegistry(machine, ram, new GlobalState(() => 'running'), options, machine.scratchSections());
  const sv = new SaveVm(f, reg, configurationFor(machine, options), format);
  sv.writeHeader();
  await sv.setup();
  await sv.complete();
  sv.saveDevices();
  sv.finish();
  await f.close();
  return sink.bytes();
}

/** Loads such a stream (warmUpSave's) into scratch devices: the new process's side of the
 * dry run. */
export async function warmUpLoad(machine: VirtMachine, options: MigrationOptions, bytes: Uint8Array): Promise<void> {
  const ram = new RamLoader(machine.ramBlocks, { mode: 'cpr-transfer' });
  const format = streamFormat(options);
  const reg = machineRegistry(machine, ram, new GlobalState(() => 'inmigrate'), options, machine.scratchSections());
  const loader = new LoadVm(QemuFileReader.fromBytes(bytes), reg, configurationFor(machine, options), {
    expectConfiguration: format.sendConfiguration,
    expectSectionFooter: format.sendSectionFooter,
  });
  await loader.loadHeader();
  await loader.loadMain();
  await loader.readVmdesc(1 << 20);
}
