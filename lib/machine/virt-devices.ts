/**
 * The virt board's devices, built the same way in every thread from one set of shares: the main
 * thread creates the shares once (`createVirtShares`), then the main thread and every vCPU worker
 * call `buildVirtDevices(shares)` and get device objects over the same shared state.
 *
 * Memory map (QEMU hw/riscv/virt.c, the devices we implement):
 *
 *   0x0000_1000  mask ROM (reset vector)           riscv_virt_board.mrom
 *   0x0010_0000  sifive_test                        power off / reset
 *   0x0200_0000  CLINT (msip, mtimecmp, mtime)      10 MHz timebase
 *   0x0c00_0000  PLIC                               96 sources, 2 contexts per hart
 *   0x1000_0000  NS16550A UART                      PLIC source 10
 *   0x8000_0000  RAM                                riscv_virt_board.ram
 */
import { HartLines, type MmioDevice } from './bus';
import {
  Clint,
  EffectQueue,
  monotonicClock,
  Plic,
  SifiveTest,
  silentGuestLogger,
  Uart16550,
  type ClintCompat,
  type ClintShare,
  type EffectQueueShare,
  type GuestLogger,
  type HostClock,
  type PlicShare,
  type SifiveTestShare,
  type UartShare,
} from './devices';

/** QEMU virt: UART0_IRQ. */
export const UART0_IRQ = 10;
/** QEMU virt: VIRT_PLIC_SIZE(VIRT_CPUS_MAX * 2) with 512 CPUs max. */
export const VIRT_PLIC_SIZE = 0x60_0000;

export interface VirtShares {
  readonly harts: number;
  readonly lines: SharedArrayBuffer;
  readonly effects: EffectQueueShare;
  readonly clint: ClintShare;
  readonly plic: PlicShare;
  readonly uart: UartShare;
  readonly test: SifiveTestShare;
}

export interface VirtDevices {
  readonly lines: HartLines;
  readonly effects: EffectQueue;
  readonly clint: Clint;
  readonly plic: Plic;
  readonly uart: Uart16550;
  readonly test: SifiveTest;
  /** Sorted by base, for the bus lookup. */
  readonly mmio: readonly MmioDevice[];
  lookup(paddr: number): MmioDevice | undefined;
}

export function createVirtShares(harts: number, compat: ClintCompat): VirtShares {
  const lines = new HartLines(harts);
  return {
    harts,
    lines: lines.buffer,
    effects: EffectQueue.createShare(4096),
    clint: Clint.createShare({ harts, compat }),
    plic: Plic.createShare({ harts, size: VIRT_PLIC_SIZE }),
    uart: Uart16550.createShare(),
    test: SifiveTest.createShare(),
  };
}

export function buildVirtDevices(
  s: VirtShares,
  deps: { clock?: HostClock; log?: GuestLogger } = {},
): VirtDevices {
  const log = deps.log ?? silentGuestLogger;
  const clock = deps.clock ?? monotonicClock;
  const lines = new HartLines(s.harts, s.lines);
  const effects = new EffectQueue(s.effects);
  const plic = new Plic(s.plic, { lines, log });
  const clint = new Clint(s.clint, { lines, clock, log });
  const uart = new Uart16550(s.uart, { effects, irq: plic.line(UART0_IRQ), log });
  const test = new SifiveTest(s.test, { effects, log });
  const mmio = [test, clint, plic, uart].sort((a, b) => a.base - b.base);
  const lookup = (paddr: number): MmioDevice | undefined => {
    // Four devices: a linear scan beats anything cleverer.
    for (let i = 0; i < mmio.length; i++) {
      const d = mmio[i];
      if (paddr >= d.base && paddr < d.base + d.size) return d;
    }
    return undefined;
  };
  return { lines, effects, clint, plic, uart, test, mmio, lookup };
}
