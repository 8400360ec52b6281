/**
 * One livemig process: the machine built from the command line, its serial backend, its
 * monitors (QMP, HMP) and its migration state. It is the monitor's backend: the commands of
 * QMP and HMP land here.
 *
 * Start-up, in QEMU's order:
 *   [-incoming with a cpr channel: wait for the old process, read the CPR state]
 *   machine (on the received RAM descriptors: nothing written into RAM) → serial (unless the
 *   old process's is to be adopted) → monitors → pidfile → -incoming listens (and closes the
 *   cpr channel), or the guest runs → monitor clients are greeted (QEMU's main loop starts)
 * So with a cpr channel the monitor is not up until the old process has sent its state.
 */
import * as fs from 'node:fs';
import { openChardev, type Chardev, type NamedFd } from '../chardev';
import { VirtMachine, type MachineOptions } from '../machine/virt';
import { MigrationManager, parseMigrationGlobal } from '../migration';
import { CprReceiver, type CprState } from '../migration/cpr';
import { EventBus, ManagerMigrationBackend, Monitor, QmpError, type MonitorBackend, type StatusInfo } from '../monitor';
import { formatUuid } from '../util/uuid';
import { closeQuietly } from '../host';
import { SERIAL_ID, SerialHandover, checkSerialFds } from './cpr-serial';
import type { LivemigConfig } from './options';

export class Runtime implements MonitorBackend {
  private serial: Chardev | null = null;
  private closing = false;
  /** cpr-transfer, new process: the old process's serial descriptors, adopted once the guest
   * runs here; its output waits meanwhile (its input waits in the kernel). */
  private serialToAdopt: NamedFd[] = [];
  private serialHeld: Uint8Array[] | null = null;
  readonly manager: MigrationManager;
  readonly events: EventBus;
  readonly migration: ManagerMigrationBackend;
  monitor: Monitor | null = null;

  private constructor(
    readonly cfg: LivemigConfig,
    readonly machine: VirtMachine,
    private readonly cpr: CprState | null,
  ) {
    const slot = {
      spec: cfg.serial[0],
      get: () => this.serial,
      set: (c: Chardev | null) => this.installSerial(c),
    };
    this.manager = new MigrationManager(machine, {
      startPaused: cfg.startPaused,
      handover: new SerialHandover(slot, () => machine.flushSerialOutput()),
    });
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
    if (cfg.processName !== undefined) process.title = cfg.processName;
    // cpr-transfer: nothing exists yet; the old process's state comes first (QEMU reads it
    // before creating devices, and its monitor is not up until then).
    const cprAddr = cfg.incomingChannels.cpr;
    const cpr = cprAddr ? await CprReceiver.listen(cprAddr).receive() : null;
    let machine: VirtMachine;
    try {
      machine = await VirtMachine.create(machineOptions(cfg, kernel, cpr));
    } catch (e) {
      cpr?.dispose();
      throw e;
    }
    let rt: Runtime;
    try {
      rt = new Runtime(cfg, machine, cpr);
      await rt.setup();
    } catch (e) {
      cpr?.dispose();
      await machine.destroy();
      throw e;
    }
    return rt;
  }

  private installSerial(c: Chardev | null): void {
    this.serial = c;
    c?.onInput((b) => this.machine.serialInput(b));
  }

  /** cpr-transfer, new process: claims the serial's descriptors; every one must be used. */
  private claimCprFds(): void {
    const cpr = this.cpr!;
    const fds = cpr.takeGroup(`${SERIAL_ID}/`);
    try {
      checkSerialFds(this.cfg.serial[0], fds);
      cpr.checkAllClaimed();
    } catch (e) {
      for (const { fd } of fds) closeQuietly(fd);
      throw e;
    }
    this.serialToAdopt = fds;
    if (fds.length) this.serialHeld = [];
  }

  /**
   * The guest runs here: the old process let go of the serial at its stop. Done after the
   * guest resumed, to keep it out of the pause; the descriptors were checked at start-up, so
   * this does not fail in practice, and if it did the guest would run on without a console.
   */
  private async adoptSerial(): Promise<void> {
    const fds = this.serialToAdopt;
    this.serialToAdopt = [];
    try {
      if (fds.length) this.installSerial(await openChardev(this.cfg.serial[0], { id: SERIAL_ID, adopt: fds }));
    } catch (e) {
      process.stderr.write(`livemig: cpr-transfer: the serial could not be taken over: ${e instanceof Error ? e.message : e}\n`);
    }
    const held = this.serialHeld ?? [];
    this.serialHeld = null;
    for (const b of held) this.serial?.write(b);
  }

  private async setup(): Promise<void> {
    const { cfg, machine } = this;
    if (this.cpr) this.claimCprFds();
    if (cfg.serial.length && !this.serialToAdopt.length) this.installSerial(await openChardev(cfg.serial[0], { id: SERIAL_ID }));
    machine.on('serial', (b: Uint8Array) => (this.serialHeld ? this.serialHeld.push(b) : this.serial?.write(b)));
    machine.on('shutdown', (status: number) => {
      this.events.emit('SHUTDOWN', { guest: true, reason: 'guest-shutdown' });
      void this.quit(status);
    });
    machine.on('stop', () => this.events.emit('STOP'));
    machine.on('resume', () => this.events.emit('RESUME'));
    machine.on('reset', () => this.events.emit('RESET', { guest: true, reason: 'guest-reset' }));

    let open!: () => void;
    const opened = new Promise<void>((r) => (open = r));
    if (cfg.qmp.length || cfg.monitor.length) {
      this.monitor = new Monitor({ backend: this, events: this.events, opened, log: (m) => process.stderr.write(`${m}\n`) });
      await this.monitor.startFromConfig({ qmp: cfg.qmp, monitor: cfg.monitor });
      await this.monitor.ready;
    }
    if (cfg.pidfile) fs.writeFileSync(cfg.pidfile, `${process.pid}\n`);

    const main = cfg.incomingChannels.main;
    if (main !== undefined) {
      const cpr = this.cpr;
      this.manager.expectIncoming({ cpr: cpr ? { listening: () => cpr.listening(), resumed: () => void this.adoptSerial() } : undefined });
      try {
        if (main !== 'defer') await this.manager.incoming(main, { exitOnError: true });
      } finally {
        open();
      }
    } else if (!cfg.startPaused) {
      machine.cont();
    }
    open();
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

  vcpuTimes(): { parked: number; running: number } {
    const { parked, running } = this.machine.vcpuStamps();
    return { parked: Number(parked) / 1000, running: Number(running) / 1000 };
  }

  guestName(): string | undefined {
    return this.cfg.name;
  }

  guestUuid(): string {
    return formatUuid(this.machine.uuid ?? new Uint8Array(16));
  }
}

function machineOptions(cfg: LivemigConfig, kernel: Uint8Array | undefined, cpr: CprState | null): MachineOptions {
  const backend = cfg.machine.memoryBackend ? cfg.objects.find((o) => o.id === cfg.machine.memoryBackend) : undefined;
  return {
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
    // RAM is shared when its backend says share=on. Without a backend, aux-ram-share=on makes
    // it shared too: livemig's main RAM is a memfd either way (QEMU leaves -m's RAM private
    // and asks for a memfd backend). The mask ROM is implicit RAM: aux-ram-share decides.
    ramShared: backend ? backend.share : cfg.machine.auxRamShare,
    auxRamShared: cfg.machine.auxRamShare,
    ramBackendId: backend?.id,
    adoptRam: cpr ? (name) => cpr.take(name) : undefined,
    incoming: cfg.incomingChannels.main !== undefined,
  };
}

function readKernel(path: string): Uint8Array {
  try {
    return fs.readFileSync(path);
  } catch (e) {
    throw new Error(`could not load kernel '${path}': ${(e as NodeJS.ErrnoException).code ?? e}`);
  }
}
