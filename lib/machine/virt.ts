/**
 * The `virt` board: RAM blocks, devices, harts in worker threads, boot, run state.
 * Memory map: see virt-devices.ts. Everything here runs on the main thread.
 *
 * Run states follow QEMU's RunState: prelaunch (built, -S) → running ⇄ paused; inmigrate
 * while an incoming migration loads; postmigrate after a successful outgoing one; shutdown
 * after the guest powered off.
 */
import { EventEmitter } from 'node:events';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { PAGE_SIZE, type MmioDevice } from './bus';
import { fdtAddress, MROM_BASE, MROM_SIZE, resetVector } from './boot';
import { HartState } from './cpu';
import { Effect, stderrGuestLogger, type Drainer, type HostClock } from './devices';
import { EmulatorDirtyLog, KernelDirtyLog, type DirtyLog } from './dirty';
import { loadKernel, type KernelBlob, type KernelImage } from './loader';
import { advancePopulate } from './populate-cursor';
import { resolveMachineType, type MachineType } from './machine-types';
import type { RamBlock } from './ram';
import { boardRam, RAM_BASE } from './virt-ram';
import { virtSections, type VmstateSection } from './virt-sections';
import { buildVirtDevices, createVirtShares, UART0_IRQ, type VirtDevices, type VirtShares } from './virt-devices';
import { virtFdt } from './virt-fdt';
import {
  CTL_RUN,
  CTL_STATE,
  CTL_THROTTLE,
  CTL_TID,
  newControlBlock,
  RUN_EXIT,
  RUN_GO,
  RUN_PARK,
  latestStamps,
  waitAllParked,
} from './vcpu-control';
import type { VcpuWorkerData } from './vcpu-worker';

export { RAM_BASE, RAM_BLOCK_NAME, MROM_BLOCK_NAME } from './virt-ram';
export type { VmstateSection } from './virt-sections';
export const MIN_RAM = 16 * 2 ** 20;
export const MAX_RAM = 64 * 2 ** 30;
export const VIRT_ISA = 'rv64ima_zicsr_zifencei';


/** See VirtMachine.populateAhead. */
export interface PopulateHandle {
  readonly block: RamBlock;
  /** The stream has begun: from now on stay just ahead of it. */
  gate(): void;
  advance(offset: number): void;
  stop(): void;
  /** The cursor's shared memory: another thread (a multifd channel) advances it with
   * advancePopulate(shared, offset). */
  readonly shared: SharedArrayBuffer;
}

export type RunState = 'prelaunch' | 'running' | 'paused' | 'inmigrate' | 'postmigrate' | 'finish-migrate' | 'shutdown' | 'internal-error';

export interface MachineOptions {
  type?: string;
  memSize: number;
  smp?: number;
  /** Kernel image bytes (ELF or raw). */
  kernel?: Uint8Array;
  append?: string;
  /** RAM backing: an anonymous memfd (default) or a file (memory-backend-file). */
  memPath?: string;
  /** The -machine memory-backend object's id: the main RAM's memory region name. */
  ramBackendId?: string;
  /**
   * cpr-transfer, new process: the descriptor of each RAM block by its memory region name
   * (RamBlock.cprName), taken from the old process; the machine owns what it takes. RAM then
   * holds a running guest: nothing is written into it (no kernel, device tree or reset vector)
   * until a reset, and a shared block must have a descriptor unless a named file backs it.
   */
  adoptRam?: (cprName: string) => number | undefined;
  /** An incoming migration will fill RAM: write the boot images only at a reset, as QEMU's
   * rom_reset skips ROM blobs while in inmigrate (RAM left in a shared file by cpr-reboot or
   * x-ignore-shared must not be overwritten). */
  incoming?: boolean;
  hugetlb?: boolean;
  memPrealloc?: boolean;
  /** Kernel-assisted dirty tracking (userfaultfd WP + PAGEMAP_SCAN) instead of the harts' map. */
  kernelDirtyLog?: boolean;
  clock?: HostClock;
  /** Log guest errors (bad device accesses) to stderr, like QEMU's -d guest_errors. */
  guestErrors?: boolean;
  /** -uuid: 16 bytes (the configuration section carries it under validate-uuid). */
  uuid?: Uint8Array;
  /** Main RAM may be mapped by another process (a share=on backend, or aux-ram-share=on). */
  ramShared?: boolean;
  /** Implicit RAM (the mask ROM) may be mapped by another process (aux-ram-share=on). */
  auxRamShared?: boolean;
}

export interface MachineEvents {
  /** Bytes the guest wrote to its UART. */
  serial: (bytes: Uint8Array) => void;
  /** The guest powered off (sifive_test): exit status. */
  shutdown: (status: number) => void;
  reset: () => void;
  stop: () => void;
  resume: () => void;
  'trap-loop': (hart: number, info: unknown) => void;
}

export class VirtMachine extends EventEmitter {
  readonly type: MachineType;
  readonly harts: number;
  readonly ram: RamBlock;
  readonly mrom: RamBlock;
  readonly devices: VirtDevices;
  readonly hartStates: HartState[];
  readonly uuid: Uint8Array | null;
  private readonly shares: VirtShares;
  private readonly ctl: Int32Array[];
  private workers: Worker[] = [];
  private drainer: Drainer | null = null;
  private serialPending: number[] = [];
  private kernel: KernelImage | null = null;
  private fdtBlob: Buffer | null = null;
  private state: RunState = 'prelaunch';
  private destroyed = false;
  private populating: Promise<void> | null = null;
  private stopPopulate: (() => void) | null = null;
  private populateHandle: PopulateHandle | null = null;
  private ran = false;
  private readonly destroyHooks = new Set<() => Promise<void>>();

  private constructor(readonly opts: MachineOptions) {
    super();
    this.type = resolveMachineType(opts.type ?? 'virt');
    this.harts = opts.smp ?? 1;
    this.uuid = opts.uuid ?? null;
    if (opts.memSize < MIN_RAM || opts.memSize > MAX_RAM || opts.memSize % PAGE_SIZE) {
      throw new RangeError(`RAM size ${opts.memSize} must be a multiple of 4 KiB between 16 MiB and 64 GiB`);
    }
    [this.ram, this.mrom] = boardRam(opts);
    // Adopted RAM was preallocated (or not) by the process that made it.
    if (opts.memPrealloc && !opts.adoptRam) this.ram.prealloc();
    this.shares = createVirtShares(this.harts, this.type.compat.clint);
    this.devices = buildVirtDevices(this.shares, { clock: opts.clock, log: opts.guestErrors ? stderrGuestLogger : undefined });
    this.hartStates = [];
    this.ctl = [];
    for (let h = 0; h < this.harts; h++) {
      this.hartStates.push(HartState.create(h, { resetVector: BigInt(MROM_BASE), lines: this.devices.lines }));
      this.ctl.push(newControlBlock());
    }
  }

  /** Build the board, load the kernel, and start the vCPU threads (parked). */
  static async create(opts: MachineOptions): Promise<VirtMachine> {
    const m = new VirtMachine(opts);
    try {
      if (opts.kernel) m.kernel = loadKernel(opts.kernel, RAM_BASE);
      // Adopted RAM holds the running guest, and an incoming stream brings the guest's own
      // memory: the images are written again only on reset.
      if (!opts.adoptRam && !opts.incoming) m.loadRoms();
      await m.spawnWorkers();
      m.drainer = m.devices.effects.startDrain((kind, value) => m.onEffect(kind, value));
      return m;
    } catch (e) {
      await m.destroy();
      throw e;
    }
  }

  get runState(): RunState {
    return this.state;
  }

  set runState(s: RunState) {
    this.state = s;
  }

  get running(): boolean {
    return this.state === 'running';
  }

  /** Whether a vCPU has ever run. Until then RAM holds only what the host wrote (boot
   * images, an incoming stream), and every page whose dirty byte is clear is zero. */
  get hasRun(): boolean {
    return this.ran;
  }

  get ramBlocks(): RamBlock[] {
    return [this.ram, this.mrom];
  }

  get mmio(): readonly MmioDevice[] {
    return this.devices.mmio;
  }

  /** Kernel thread ids of the vCPU workers (for userfaultfd fault → vCPU mapping). */
  get vcpuThreadIds(): number[] {
    return this.ctl.map((c) => Atomics.load(c, CTL_TID));
  }

  makeDirtyLog(block: RamBlock): DirtyLog {
    return this.opts.kernelDirtyLog ? new KernelDirtyLog(block) : new EmulatorDirtyLog(block);
  }

  /** Copy the boot images into memory: kernel segments, device tree, reset vector. QEMU keeps
   * these as ROM blobs and copies them again on every reset. */
  private loadRoms(): void {
    const fdt = virtFdt({
      ramBase: RAM_BASE,
      ramSize: this.ram.size,
      harts: this.harts,
      bootargs: this.opts.append,
      uart: { base: this.devices.uart.base, size: 0x100, irq: UART0_IRQ, clockHz: 3686400 },
      test: { base: this.devices.test.base, size: this.devices.test.size },
      clint: { base: this.devices.clint.base, size: this.devices.clint.size },
      plic: { base: this.devices.plic.base, size: this.devices.plic.size, sources: this.devices.plic.numSources },
      isa: VIRT_ISA,
    });
    this.fdtBlob = fdt;
    const fdtAddr = fdtAddress(RAM_BASE, this.ram.size, fdt.length);
    const blobs: KernelBlob[] = [...(this.kernel?.blobs ?? []), { addr: fdtAddr, data: fdt, memSize: fdt.length }];
    for (const b of blobs) this.writePhys(b.addr, b.data, b.memSize);
    const entry = this.kernel ? this.kernel.entry : RAM_BASE;
    const vec = resetVector(entry, fdtAddr);
    this.mrom.write(0, vec);
  }

  /** Host write of guest-physical memory (boot images). Only before the guest runs. */
  writePhys(addr: number, data: Uint8Array, memSize = data.length): void {
    const block = this.ramBlocks.find((b) => b.contains(addr, memSize));
    if (!block) throw new RangeError(`image at 0x${addr.toString(16)} (+${memSize}) is outside RAM`);
    block.write(addr - block.base, data);
    if (memSize > data.length) block.fill(addr - block.base + data.length, memSize - data.length, 0);
  }

  /** Host read of guest-physical memory (pmemsave, tests). */
  readPhys(addr: number, length: number): Uint8Array {
    const block = this.ramBlocks.find((b) => b.contains(addr, length));
    if (!block) throw new RangeError(`[0x${addr.toString(16)}, +${length}) is not RAM`);
    return block.read(addr - block.base, length);
  }

  private static workerPath(name = 'vcpu-worker'): string {
    // Under ts-jest this module is loaded from lib/; the worker always runs compiled code.
    if (__filename.endsWith('.ts')) return path.resolve(__dirname, `../../dist/lib/machine/${name}.js`);
    return path.join(__dirname, `${name}.js`);
  }

  /**
   * Fault guest RAM in from a helper thread, just ahead of where an incoming stream writes
   * (populate-worker.ts). Returns the loader's handle: `advance(offset)` after writing a data
   * page of the main RAM block, `stop()` when loading ends. destroy() waits for the worker,
   * since it must not unmap under it.
   */
  populateAhead(): PopulateHandle {
    if (this.populateHandle) return this.populateHandle;
    const shared = new SharedArrayBuffer(16);
    const cursor = new Float64Array(shared, 0, 1);
    const word = new Int32Array(shared, 8, 2);
    const w = new Worker(VirtMachine.workerPath('populate-worker'), {
      workerData: { addr: this.ram.mapping.addr, size: this.ram.size, shared },
      name: 'populate',
    });
    this.populating = new Promise<void>((resolve) => {
      w.once('exit', () => resolve());
      w.once('error', () => resolve());
    });
    const stop = () => {
      Atomics.store(word, 0, -1);
      Atomics.notify(word, 0);
    };
    this.stopPopulate = stop;
    this.populateHandle = {
      block: this.ram,
      gate(): void {
        Atomics.store(word, 1, 1);
      },
      advance(offset: number): void {
        // Cheap enough per page (or per run of pages); the worker only looks when it has
        // caught up.
        if (offset > cursor[0]) advancePopulate(shared, offset);
      },
      stop,
      shared,
    };
    return this.populateHandle;
  }

  /** Stop the populate worker and wait until it has stopped touching RAM (postcopy: from
   * now on a page must stay missing until the stream places it). */
  async stopPopulating(): Promise<void> {
    this.stopPopulate?.();
    await this.populating;
  }

  private async spawnWorkers(): Promise<void> {
    const script = VirtMachine.workerPath();
    for (let h = 0; h < this.harts; h++) {
      const data: VcpuWorkerData = {
        hartId: h,
        ctl: this.ctl[h].buffer as SharedArrayBuffer,
        state: this.hartStates[h].buffer,
        ram: this.ramBlocks.map((b) => b.share()),
        devices: this.shares,
        guestErrors: !!this.opts.guestErrors,
      };
      const w = new Worker(script, { workerData: data, name: `vcpu${h}` });
      w.on('message', (msg) => this.onWorkerMessage(msg));
      w.on('error', (err) => {
        this.state = 'internal-error';
        this.emit('error', err);
      });
      this.workers.push(w);
    }
    await waitAllParked(this.ctl);
  }

  private onWorkerMessage(msg: { type: string; hart: number; info?: unknown; device?: string; message?: string }): void {
    if (msg.type === 'trap-loop') {
      process.stderr.write(`livemig: hart ${msg.hart} stopped in a guest trap loop: ${JSON.stringify(msg.info, (_k, v) => (typeof v === 'bigint' ? '0x' + v.toString(16) : v))}\n`);
      this.emit('trap-loop', msg.hart, msg.info);
    } else if (msg.type === 'guest-error') {
      process.stderr.write(`${msg.device}: ${msg.message}\n`);
    }
  }

  private onEffect(kind: number, value: number): void {
    switch (kind) {
      case Effect.UART_TX:
        if (this.serialPending.length === 0) queueMicrotask(() => this.flushSerial());
        this.serialPending.push(value & 0xff);
        break;
      case Effect.UART_RX_READY:
        this.devices.uart.rxReady();
        break;
      case Effect.POWER_OFF:
        this.flushSerial();
        void this.powerOff(value);
        break;
      case Effect.RESET:
        this.flushSerial();
        void this.reset();
        break;
    }
  }

  private flushSerial(): void {
    if (this.serialPending.length === 0) return;
    const bytes = Uint8Array.from(this.serialPending);
    this.serialPending = [];
    this.emit('serial', bytes);
  }

  private async powerOff(status: number): Promise<void> {
    await this.parkAll();
    this.devices.clint.pauseTime();
    this.state = 'shutdown';
    this.emit('shutdown', status);
  }

  private async parkAll(): Promise<void> {
    for (let h = 0; h < this.harts; h++) {
      Atomics.store(this.ctl[h], CTL_RUN, RUN_PARK);
      this.devices.lines.kick(h);
    }
    await waitAllParked(this.ctl);
  }

  private releaseAll(): void {
    for (let h = 0; h < this.harts; h++) {
      Atomics.store(this.ctl[h], CTL_RUN, RUN_GO);
      Atomics.notify(this.ctl[h], CTL_RUN);
    }
  }

  /** Stop the guest: every vCPU parked, guest time frozen (QEMU vm_stop). */
  async stop(next: RunState = 'paused'): Promise<void> {
    const wasRunning = this.state === 'running';
    await this.parkAll();
    this.devices.clint.pauseTime();
    this.state = next;
    if (wasRunning) this.emit('stop');
  }

  /** Run the guest (QEMU vm_start): time resumes where it stopped, vCPUs released. */
  cont(): void {
    if (this.state === 'running' || this.destroyed) return;
    this.devices.clint.resumeTime();
    this.state = 'running';
    this.ran = true;
    this.releaseAll();
    this.emit('resume');
  }

  /** System reset (QEMU qemu_system_reset): devices and harts to their reset state, boot
   * images copied in again; keeps running if it was. */
  async reset(): Promise<void> {
    const was = this.state;
    await this.parkAll();
    this.devices.clint.pauseTime();
    this.devices.uart.reset();
    this.devices.plic.reset();
    this.devices.clint.reset();
    for (let h = 0; h < this.harts; h++) this.hartStates[h].reset(h, BigInt(MROM_BASE));
    this.loadRoms();
    this.emit('reset');
    if (was === 'running' || was === 'shutdown') {
      this.state = 'paused';
      this.cont();
    }
  }

  /**
   * CLOCK_MONOTONIC nanoseconds (process.hrtime.bigint(), one clock for every process of the
   * host): when the last vCPU parked at the latest stop, and when the first one left its park
   * to run after the latest cont; 0n for never.
   */
  vcpuStamps(): { parked: bigint; running: bigint } {
    return latestStamps(this.ctl);
  }

  /** Hand on now whatever the guest has written to its UART ('serial' events): before the
   * serial backend is given to another process, nothing may be left behind in this one. */
  flushSerialOutput(): void {
    this.devices.effects.drain((kind, value) => this.onEffect(kind, value));
    this.flushSerial();
  }

  /** auto-converge: each vCPU sleeps `pct`% of the time (0 = off). */
  setThrottle(pct: number): void {
    for (const c of this.ctl) Atomics.store(c, CTL_THROTTLE, Math.max(0, Math.min(99, Math.round(pct))));
  }

  /** Feed bytes to the UART's receive side (stdin, a socket). */
  serialInput(bytes: Uint8Array): void {
    this.devices.uart.input(bytes);
  }

  /** The per-hart and per-device VMState sections, named and ordered as QEMU's virt. */
  vmstateSections(): VmstateSection[] {
    return virtSections(this.hartStates, this.devices);
  }

  /**
   * The same sections over fresh harts and devices that nothing runs and nothing reads: a dry
   * run of the save and load code. cpr-transfer runs it just before the guest stops, so the
   * stop does not wait for code V8 compiles (or recompiles after flushing) on first use.
   */
  scratchSections(): VmstateSection[] {
    const devices = buildVirtDevices(createVirtShares(this.harts, this.type.compat.clint), {});
    const harts = Array.from({ length: this.harts }, (_, h) => HartState.create(h, { resetVector: BigInt(MROM_BASE), lines: devices.lines }));
    return virtSections(harts, devices);
  }

  /**
   * Run `hook`, and wait for it, when destroy() begins, before the vCPUs are stopped: whoever
   * registered guest RAM with a userfaultfd (a postcopy destination) must release it first, or
   * a vCPU blocked on a page that will never come could not be stopped. Returns the removal.
   */
  onDestroy(hook: () => Promise<void>): () => void {
    this.destroyHooks.add(hook);
    return () => this.destroyHooks.delete(hook);
  }

  /** Stop the threads and release memory. The machine is unusable afterwards. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const hook of [...this.destroyHooks]) await hook().catch(() => undefined);
    for (let h = 0; h < this.ctl.length; h++) {
      Atomics.store(this.ctl[h], CTL_RUN, RUN_EXIT);
      Atomics.notify(this.ctl[h], CTL_RUN);
      this.devices?.lines.kick(h);
    }
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.workers = [];
    this.stopPopulate?.();
    await this.populating;
    this.drainer?.stop();
    this.devices?.uart.disarmRxTimeout();
    this.ram?.close();
    this.mrom?.close();
  }
}
