/**
 * SiFive PLIC (platform-level interrupt controller) as on QEMU's `virt` machine, after QEMU's
 * hw/intc/sifive_plic.c and the RISC-V PLIC specification.
 *
 * Register map (offsets from the base, 32-bit registers only):
 *
 *   0x00_0000 + 4·src          priority of source `src` (source 0 does not exist but has a slot)
 *   0x00_1000 + 4·w            pending bits, word w (read-only)
 *   0x00_2000 + 0x80·ctx + 4·w enable bits of context ctx, word w
 *   0x20_0000 + 0x1000·ctx     priority threshold of context ctx
 *   0x20_0004 + 0x1000·ctx     claim (read) / complete (write)
 *
 * Contexts follow QEMU virt's hart-config "MS" per hart: context 2h is hart h's M mode and
 * drives MEIP; context 2h+1 is its S mode and drives SEIP (bit 9) in HartLines. livemig's harts
 * have no S mode: their S contexts keep their registers, and a hart must ignore SEIP.
 *
 * Source lines are level-triggered: `setIrq(src, level)` sets pending while the line is high
 * and clears it when it goes low (QEMU's sifive_plic_irq_request). Claim returns the pending,
 * enabled, unclaimed source of highest priority above the threshold (lowest id on ties),
 * clears its pending bit and marks it claimed until complete. On complete, a line that is still
 * high is pending again (the PLIC gateway forwards the next request), which QEMU leaves to the
 * device re-raising its line. The current line levels are not migrated: each source device
 * re-drives its line in its own postLoad.
 *
 * Any thread may touch the PLIC (a hart's MMIO, the UART from a hart's thread, the main thread
 * on UART input); every change runs under the state lock and ends by recomputing each
 * context's output and raising or lowering its hart's line (which kicks a sleeping hart).
 */
import { HartLines, MIP_MEIP, MmioDevice } from '../bus';
import type { VMStateDescription } from '../../vmstate/types';
import { F } from '../../vmstate/fields';
import { AtomicLock } from './atomic-lock';
import { GuestLogger, hex, silentGuestLogger } from './guest-log';
import { StructView, defineStruct, viaState } from './shared-struct';

/** Supervisor external interrupt pending (privileged spec §3.1.9); driven by S contexts. */
export const MIP_SEIP = 1 << 9;

export const PLIC_BASE = 0x0c00_0000;
export const PLIC_SIZE = 0x0400_0000;
/** QEMU 7.2 virt: VIRT_IRQCHIP_NUM_SOURCES (source 0 included). */
export const PLIC_NUM_SOURCES = 96;
/** QEMU virt: VIRT_IRQCHIP_NUM_PRIO_BITS = 3 → priorities 0..7. */
export const PLIC_NUM_PRIORITIES = 7;
export const PLIC_CONTEXTS_PER_HART = 2;

export const PLIC_PRIORITY_BASE = 0x0;
export const PLIC_PENDING_BASE = 0x1000;
export const PLIC_ENABLE_BASE = 0x2000;
export const PLIC_ENABLE_STRIDE = 0x80;
export const PLIC_CONTEXT_BASE = 0x20_0000;
export const PLIC_CONTEXT_STRIDE = 0x1000;
export const PLIC_CONTEXT_THRESHOLD = 0x0;
export const PLIC_CONTEXT_CLAIM = 0x4;

/** An interrupt line into the PLIC, as a source device holds it. */
export interface IrqLine {
  set(level: boolean): void;
}

export interface PlicConfig {
  harts: number;
  base?: number;
  size?: number;
  numSources?: number;
  numPriorities?: number;
}

/** Everything a thread needs to build the PLIC: plain data, postMessage-able. */
export interface PlicShare {
  readonly base: number;
  readonly size: number;
  readonly harts: number;
  readonly numSources: number;
  readonly numPriorities: number;
  readonly state: SharedArrayBuffer;
}

export interface PlicDeps {
  lines: HartLines;
  log?: GuestLogger;
}

function plicStruct(numSources: number, contexts: number) {
  const words = (numSources + 31) >> 5;
  return defineStruct({
    lock: 'i32',
    source_priority: ['u32', numSources],
    target_priority: ['u32', contexts],
    pending: ['u32', words],
    claimed: ['u32', words],
    enable: ['u32', words * contexts],
    /** current level of each source line (not migrated) */
    level: ['u32', words],
  });
}
type PlicState = StructView<ReturnType<typeof plicStruct>['spec']>;

export class Plic implements MmioDevice {
  readonly name = 'riscv.sifive.plic';
  readonly base: number;
  readonly size: number;
  readonly widths = 4;
  readonly numSources: number;
  readonly numPriorities: number;
  readonly numContexts: number;
  readonly bitfieldWords: number;
  readonly state: PlicState;
  private readonly lock: AtomicLock;
  private readonly lines: HartLines;
  private readonly log: GuestLogger;
  /** WARL priorities when numPriorities+1 is a power of two (QEMU: mask, else reject). */
  private readonly warl: boolean;

  static createShare(cfg: PlicConfig): PlicShare {
    const numSources = cfg.numSources ?? PLIC_NUM_SOURCES;
    const share: PlicShare = {
      base: cfg.base ?? PLIC_BASE,
      size: cfg.size ?? PLIC_SIZE,
      harts: cfg.harts,
      numSources,
      numPriorities: cfg.numPriorities ?? PLIC_NUM_PRIORITIES,
      state: plicStruct(numSources, cfg.harts * PLIC_CONTEXTS_PER_HART).create(),
    };
    return share;
  }

  constructor(share: PlicShare, deps: PlicDeps) {
    this.base = share.base;
    this.size = share.size;
    this.numSources = share.numSources;
    this.numPriorities = share.numPriorities;
    this.numContexts = share.harts * PLIC_CONTEXTS_PER_HART;
    this.bitfieldWords = (share.numSources + 31) >> 5;
    const struct = plicStruct(share.numSources, this.numContexts);
    this.state = struct.view(share.state);
    this.lock = new AtomicLock(this.state.$i32, struct.wordIndex('lock'));
    this.lines = deps.lines;
    this.log = deps.log ?? silentGuestLogger;
    this.warl = ((share.numPriorities + 1) & share.numPriorities) === 0;
  }

  /** Any thread: drive source line `src` (1..numSources-1). */
  setIrq(src: number, level: boolean): void {
    if (src <= 0 || src >= this.numSources) throw new RangeError(`plic: no source ${src}`);
    const w = src >> 5;
    const bit = 1 << (src & 31);
    const s = this.state;
    // Fast path (no lock): the line and pending bit already say so. A claim racing with this
    // check is ordered after it, exactly as if this call had come first.
    const want = level ? bit : 0;
    if ((Atomics.load(s.level, w) & bit) === want && (Atomics.load(s.pending, w) & bit) === want) return;
    this.lock.with(() => {
      if (level) {
        s.level[w] |= bit;
        s.pending[w] |= bit;
      } else {
        s.level[w] &= ~bit;
        s.pending[w] &= ~bit;
      }
      this.update();
    });
  }

  /** The line object a source device holds (e.g. the UART on source 10). */
  line(src: number): IrqLine {
    if (src <= 0 || src >= this.numSources) throw new RangeError(`plic: no source ${src}`);
    return { set: (level) => this.setIrq(src, level) };
  }

  read(offset: number, width: 1 | 2 | 4): number {
    if (width !== 4 || (offset & 3) !== 0) {
      this.log(this.name, `invalid ${width}-byte read at ${hex(offset)}`);
      return 0;
    }
    return this.lock.with(() => this.readLocked(offset));
  }

  write(offset: number, width: 1 | 2 | 4, value: number): void {
    if (width !== 4 || (offset & 3) !== 0) {
      this.log(this.name, `invalid ${width}-byte write at ${hex(offset)}`);
      return;
    }
    this.lock.with(() => this.writeLocked(offset, value >>> 0));
  }

  /** Power-on state: everything zero, every output low. Main thread, vCPUs parked. */
  reset(): void {
    this.lock.with(() => {
      const s = this.state;
      s.source_priority.fill(0);
      s.target_priority.fill(0);
      s.pending.fill(0);
      s.claimed.fill(0);
      s.enable.fill(0);
      // Lines stay as the devices drive them; a still-high line is pending again.
      s.pending.set(s.level);
      this.update();
    });
  }

  /** Recompute every context's output (after a load). */
  refresh(): void {
    this.lock.with(() => this.update());
  }

  private readLocked(off: number): number {
    const s = this.state;
    if (off < PLIC_PRIORITY_BASE + 4 * this.numSources) return s.source_priority[off >> 2];
    if (off >= PLIC_PENDING_BASE && off < PLIC_PENDING_BASE + 4 * this.bitfieldWords) {
      return s.pending[(off - PLIC_PENDING_BASE) >> 2];
    }
    if (off >= PLIC_ENABLE_BASE && off < PLIC_ENABLE_BASE + PLIC_ENABLE_STRIDE * this.numContexts) {
      const ctx = ((off - PLIC_ENABLE_BASE) / PLIC_ENABLE_STRIDE) | 0;
      const word = (off & (PLIC_ENABLE_STRIDE - 1)) >> 2;
      if (word < this.bitfieldWords) return s.enable[ctx * this.bitfieldWords + word];
    } else if (off >= PLIC_CONTEXT_BASE && off < PLIC_CONTEXT_BASE + PLIC_CONTEXT_STRIDE * this.numContexts) {
      const ctx = ((off - PLIC_CONTEXT_BASE) / PLIC_CONTEXT_STRIDE) | 0;
      const reg = off & (PLIC_CONTEXT_STRIDE - 1);
      if (reg === PLIC_CONTEXT_THRESHOLD) return s.target_priority[ctx];
      if (reg === PLIC_CONTEXT_CLAIM) return this.claim(ctx);
    }
    this.log(this.name, `invalid register read ${hex(off)}`);
    return 0;
  }

  private writeLocked(off: number, value: number): void {
    const s = this.state;
    if (off < PLIC_PRIORITY_BASE + 4 * this.numSources) {
      const p = this.legalPriority(value);
      if (p !== undefined) s.source_priority[off >> 2] = p;
      this.update();
      return;
    }
    if (off >= PLIC_PENDING_BASE && off < PLIC_PENDING_BASE + 4 * this.bitfieldWords) {
      this.log(this.name, `invalid pending write ${hex(off)}`);
      return;
    }
    if (off >= PLIC_ENABLE_BASE && off < PLIC_ENABLE_BASE + PLIC_ENABLE_STRIDE * this.numContexts) {
      const ctx = ((off - PLIC_ENABLE_BASE) / PLIC_ENABLE_STRIDE) | 0;
      const word = (off & (PLIC_ENABLE_STRIDE - 1)) >> 2;
      if (word < this.bitfieldWords) {
        s.enable[ctx * this.bitfieldWords + word] = value;
        this.update();
      } else {
        this.log(this.name, `invalid enable write ${hex(off)}`);
      }
      return;
    }
    if (off >= PLIC_CONTEXT_BASE && off < PLIC_CONTEXT_BASE + PLIC_CONTEXT_STRIDE * this.numContexts) {
      const ctx = ((off - PLIC_CONTEXT_BASE) / PLIC_CONTEXT_STRIDE) | 0;
      const reg = off & (PLIC_CONTEXT_STRIDE - 1);
      if (reg === PLIC_CONTEXT_THRESHOLD) {
        const p = this.legalPriority(value);
        if (p !== undefined) s.target_priority[ctx] = p;
        this.update();
      } else if (reg === PLIC_CONTEXT_CLAIM) {
        this.complete(value);
      } else {
        this.log(this.name, `invalid context write ${hex(off)}`);
      }
      return;
    }
    this.log(this.name, `invalid register write ${hex(off)}`);
  }

  private legalPriority(value: number): number | undefined {
    if (this.warl) return value % (this.numPriorities + 1);
    return value <= this.numPriorities ? value : undefined;
  }

  /** The source context `ctx` would claim now, 0 if none (QEMU's sifive_plic_claimed). */
  private best(ctx: number): number {
    const s = this.state;
    let maxIrq = 0;
    let maxPrio = s.target_priority[ctx];
    for (let w = 0; w < this.bitfieldWords; w++) {
      let bits = s.pending[w] & ~s.claimed[w] & s.enable[ctx * this.bitfieldWords + w];
      while (bits !== 0) {
        const j = 31 - Math.clz32(bits & -bits);
        bits &= bits - 1;
        const irq = (w << 5) + j;
        if (irq >= this.numSources) break;
        const prio = s.source_priority[irq];
        if (prio > maxPrio) {
          maxIrq = irq;
          maxPrio = prio;
        }
      }
    }
    return maxIrq;
  }

  private claim(ctx: number): number {
    const irq = this.best(ctx);
    if (irq !== 0) {
      const bit = 1 << (irq & 31);
      this.state.pending[irq >> 5] &= ~bit;
      this.state.claimed[irq >> 5] |= bit;
    }
    this.update();
    return irq;
  }

  private complete(irq: number): void {
    // QEMU accepts any id below num_sources and does not check the context's enables.
    if (irq >= this.numSources) return;
    const s = this.state;
    const w = irq >> 5;
    const bit = 1 << (irq & 31);
    s.claimed[w] &= ~bit;
    if (s.level[w] & bit) s.pending[w] |= bit;
    this.update();
  }

  /** Drive each context's output: M contexts → MEIP, S contexts → SEIP of their hart. */
  private update(): void {
    for (let ctx = 0; ctx < this.numContexts; ctx++) {
      const hart = (ctx / PLIC_CONTEXTS_PER_HART) | 0;
      const bit = ctx % PLIC_CONTEXTS_PER_HART === 0 ? MIP_MEIP : MIP_SEIP;
      if (this.best(ctx) !== 0) this.lines.raise(hart, bit);
      else this.lines.lower(hart, bit);
    }
  }
}

/**
 * QEMU 7.2's `riscv_sifive_plic` v1: VARRAY_UINT32 fields counted by num_sources, num_addrs
 * (contexts), bitfield_words and num_enables. The counts are configuration, not sent: both sides
 * must be built with the same -smp.
 */
export const VMSTATE_PLIC: VMStateDescription<Plic> = {
  name: 'riscv_sifive_plic',
  versionId: 1,
  minimumVersionId: 1,
  fields: [
    F.varray('source_priority', 'uint32', (p: Plic) => p.numSources, viaState('source_priority')),
    F.varray('target_priority', 'uint32', (p: Plic) => p.numContexts, viaState('target_priority')),
    F.varray('pending', 'uint32', (p: Plic) => p.bitfieldWords, viaState('pending')),
    F.varray('claimed', 'uint32', (p: Plic) => p.bitfieldWords, viaState('claimed')),
    F.varray('enable', 'uint32', (p: Plic) => p.bitfieldWords * p.numContexts, viaState('enable')),
  ],
  postLoad: (p) => p.refresh(),
};
