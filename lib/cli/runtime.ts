/**
 * One livemig process: the machine built from the command line, its serial backend, its
 * monitors, and its migration state. The monitor's commands land here.
 */
import * as fs from 'node:fs';
import { VirtMachine } from '../machine/virt';
import { openChardev, type Chardev } from './chardev';
import type { LivemigConfig } from './options';

export class Runtime {
  private serial: Chardev | null = null;
  private closing = false;

  private constructor(
    readonly cfg: LivemigConfig,
    readonly machine: VirtMachine,
  ) {}

  static async start(cfg: LivemigConfig): Promise<Runtime> {
    if (cfg.bios === undefined && !cfg.kernel) {
      // QEMU would boot OpenSBI; we have no firmware to run.
      throw new Error('no -kernel given (firmware is not emulated; use -bios none -kernel FILE)');
    }
    const kernel = cfg.kernel ? readKernel(cfg.kernel) : undefined;
    const backend = cfg.machine.memoryBackend ? cfg.objects.find((o) => o.id === cfg.machine.memoryBackend) : undefined;
    const machine = await VirtMachine.create({
      type: cfg.machine.type,
      memSize: cfg.memSize,
      smp: cfg.smp,
      kernel,
      append: cfg.append,
      memPath: backend?.qomType === 'memory-backend-file' ? backend.memPath : undefined,
      hugetlb: backend?.hugetlb,
      memPrealloc: cfg.memPrealloc,
    });
    const rt = new Runtime(cfg, machine);
    try {
      await rt.setup();
    } catch (e) {
      await machine.destroy();
      throw e;
    }
    return rt;
  }

  private async setup(): Promise<void> {
    const cfg = this.cfg;
    if (cfg.serial.length) {
      this.serial = await openChardev(cfg.serial[0]);
      this.serial.onInput((b) => this.machine.serialInput(b));
    }
    this.machine.on('serial', (b: Uint8Array) => this.serial?.write(b));
    this.machine.on('shutdown', (status: number) => void this.quit(status));
    if (cfg.pidfile) fs.writeFileSync(cfg.pidfile, `${process.pid}\n`);
    if (!cfg.startPaused && cfg.incoming.length === 0) this.machine.cont();
  }

  /** Tear everything down and exit with `status`. */
  async quit(status: number): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    await this.machine.destroy();
    this.serial?.close();
    if (this.cfg.pidfile) fs.rmSync(this.cfg.pidfile, { force: true });
    process.exit(status);
  }
}

function readKernel(path: string): Uint8Array {
  try {
    return fs.readFileSync(path);
  } catch (e) {
    throw new Error(`could not load kernel '${path}': ${(e as NodeJS.ErrnoException).code ?? e}`);
  }
}
