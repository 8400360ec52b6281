/**
 * One livemig process: the machine built from the command line, its serial backend, its
 * monitors (QMP, HMP) and its migration state. It is the monitor's backend: the commands of
 * QMP and HMP land here.
 */
import * as fs from 'node:fs';
import { openChardev, type Chardev } from '../chardev';
import { VirtMachine } from '../machine/virt';
import { MigrationManager, parseMigrationGlobal } from '../migration';
import { EventBus, ManagerMigrationBackend, Monitor, QmpError, type MonitorBackend, type StatusInfo } from '../monitor';
import { formatUuid } from '../util/uuid';
import type { LivemigConfig } from './options';

export class Runtime implements MonitorBackend {
  private serial: Chardev | null = null;
  private closing = false;
  readonly manager: MigrationManager;
  readonly events: EventBus;
  readonly migration: ManagerMigrationBackend;
  monitor: Monitor | null = null;

  private constructor(
    readonly cfg: LivemigConfig,
    readonly machine: VirtMachine,
  ) {
    this.manager = new MigrationManager(machine, { startPaused: cfg.startPaused });
    for (const g of cfg.globals) {
      const { name, value } = parseMigrationGlobal(g);
      this.manager.options.setGlobal(name, value);
    }
    this.events = new EventBus({ config: this.manager.options });
    this.migration = new ManagerMigrationBackend(this.manager, this.events);
    this.manager.on('incoming-failed', (err: Error, exitOnError: boolean) => {
      process.stderr.write(`livemig: load of migration failed: ${err.message}\n`);
      if (exitOnError) void this.quit(1);
    });
  }

  static async start(cfg: LivemigConfig): Promise<Runtime> {
    if (cfg.bios === undefined && !cfg.kernel) {
      // QEMU would boot OpenSBI; we have no firmware to run.
      throw new Error('no -kernel given (firmware is not emulated; use -bios none -kernel FILE)');
    }
    const kernel = cfg.kernel ? readKernel(cfg.kernel) : undefined;
    const backend = cfg.machine.memoryBackend ? cfg.objects.find((o) => o.id === cfg.machine.memoryBackend) : undefined;
    if (cfg.processName !== undefined) process.title = cfg.processName;
    const machine = await VirtMachine.create({
      type: cfg.machine.type,
      memSize: cfg.memSize,
      smp: cfg.smp,
      kernel,
      append: cfg.append,
      memPath: backend?.qomType === 'memory-backend-file' ? backend.memPath : undefined,
      hugetlb: backend?.hugetlb,
      memPrealloc: cfg.memPrealloc || !!backend?.prealloc,
      kernelDirtyLog: cfg.machine.dirtyLog === 'kernel',
      uuid: cfg.uuid,
      // QEMU: RAM is shared when its backend says share=on, or, with no backend, when
      // aux-ram-share=on makes implicit RAM shareable; the ROM is implicit RAM.
      ramShared: backend ? backend.share : cfg.machine.auxRamShare,
      auxRamShared: cfg.machine.auxRamShare,
    });
    let rt: Runtime;
    try {
      rt = new Runtime(cfg, machine);
      await rt.setup();
    } catch (e) {
      await machine.destroy();
      throw e;
    }
    return rt;
  }

  private async setup(): Promise<void> {
    const { cfg, machine } = this;
    if (cfg.serial.length) {
      this.serial = await openChardev(cfg.serial[0], { id: 'serial0' });
      this.serial.onInput((b) => machine.serialInput(b));
    }
    machine.on('serial', (b: Uint8Array) => this.serial?.write(b));
    machine.on('shutdown', (status: number) => {
      this.events.emit('SHUTDOWN', { guest: true, reason: 'guest-shutdown' });
      void this.quit(status);
    });
    machine.on('stop', () => this.events.emit('STOP'));
    machine.on('resume', () => this.events.emit('RESUME'));
    machine.on('reset', () => this.events.emit('RESET', { guest: true, reason: 'guest-reset' }));

    if (cfg.qmp.length || cfg.monitor.length) {
      this.monitor = new Monitor({ backend: this, events: this.events, log: (m) => process.stderr.write(`${m}\n`) });
      await this.monitor.startFromConfig({ qmp: cfg.qmp, monitor: cfg.monitor });
      await this.monitor.ready;
    }
    if (cfg.pidfile) fs.writeFileSync(cfg.pidfile, `${process.pid}\n`);

    const channels = cfg.incoming.filter((u) => u.startsWith('{') || u.includes('channel-type'));
    if (channels.length) throw new Error(`-incoming ${channels[0]}: migration channels in JSON or keyval form are not supported yet (use a URI)`);
    if (cfg.incoming.length > 1) throw new Error('-incoming: only one main channel is supported');
    if (cfg.incoming.length === 1) {
      this.manager.expectIncoming();
      if (cfg.incoming[0] !== 'defer') await this.manager.incoming(cfg.incoming[0], { exitOnError: true });
    } else if (!cfg.startPaused) {
      machine.cont();
    }
  }

  /* ---- MonitorBackend ---- */

  runState(): StatusInfo {
    const status = this.machine.runState;
    return { status, running: status === 'running' } as StatusInfo;
  }

  async stop(): Promise<void> {
    if (this.machine.runState === 'running') await this.machine.stop();
  }

  cont(): void {
    const s = this.machine.runState;
    if (s === 'inmigrate') throw new QmpError('GenericError', 'Migration is not finalized yet');
    if (s === 'shutdown') throw new QmpError('GenericError', 'Resetting the Virtual Machine is required');
    this.machine.cont();
  }

  quit(status = 0): Promise<void> {
    if (this.closing) return Promise.resolve();
    this.closing = true;
    if (status === 0 && this.monitor) this.events.emit('SHUTDOWN', { guest: false, reason: 'host-qmp-quit' });
    return new Promise<void>((resolve) => {
      setImmediate(async () => {
        await this.monitor?.close().catch(() => {});
        await this.machine.destroy();
        this.serial?.close();
        if (this.cfg.pidfile) fs.rmSync(this.cfg.pidfile, { force: true });
        resolve();
        process.exit(status);
      });
    });
  }

  async systemReset(): Promise<void> {
    await this.machine.reset();
  }

  async pmemsave(addr: number, size: number, filename: string): Promise<void> {
    // A postcopy destination may still miss some of these pages; reading one here would
    // block the main thread, which is the one that receives them.
    await this.manager.ensurePresent(addr, size);
    let data: Uint8Array;
    try {
      data = this.machine.readPhys(addr, size);
    } catch (e) {
      throw new QmpError('GenericError', `Invalid addr 0x${addr.toString(16)}/size ${size} specified`);
    }
    try {
      fs.writeFileSync(filename, data);
    } catch (e) {
      throw new QmpError('GenericError', `Could not open '${filename}': ${(e as NodeJS.ErrnoException).message}`);
    }
  }

  cpuCount(): number {
    return this.machine.harts;
  }

  guestName(): string | undefined {
    return this.cfg.name;
  }

  guestUuid(): string {
    return formatUuid(this.machine.uuid ?? new Uint8Array(16));
  }
}

function readKernel(path: string): Uint8Array {
  try {
    return fs.readFileSync(path);
  } catch (e) {
    throw new Error(`could not load kernel '${path}': ${(e as NodeJS.ErrnoException).code ?? e}`);
  }
}
