/**
 * Hart: one RV64IMA machine-mode hart. `run(budget)` executes up to `budget` instructions from
 * the state in its HartState and returns why it stopped; between calls all architectural state
 * is back in the shared HartState.
 *
 * The run loop (a trampoline over translated blocks):
 *
 *   enter: registers and pc into locals, drop the decode cache if the state was replaced
 *   loop:  budget spent?                      → exit 'budget'
 *          wake word changed (kick)?          → exit 'kick'   (the worker re-checks its run flag)
 *          every ~4k instructions, or after a device access: sample the timer (mtime ≥ timecmp)
 *          sample lines (Atomics.load), take the highest-priority enabled interrupt
 *          find or translate the block at pc (fetch fault → trap), run it; a block that has
 *          run 32 times gets its page's hot blocks compiled into one region function (tier 2)
 *          the block may stop the loop: WFI with nothing pending → 'wfi', a trap loop → 'trap-loop'
 *   leave: registers, pc, counters, mip back into the HartState
 *
 * Interrupt lines are sampled at every block boundary; the timer is read only while a timer
 * interrupt could be taken (mie.MTIE and mstatus.MIE set) and at most every
 * `timerCheckInterval` instructions, plus on every mip read and WFI.
 */
import type { HartEnv } from '../bus';
import { MIP_MEIP, MIP_MSIP, MIP_MTIP } from '../bus';
import type { Insn } from './decode';
import { toU64 } from './int64';
import { Memory, ORDERED_DIRTY } from './memory';
import { MSTATUS_MIE, S, type HartState } from './state';
import { execSystem } from './system';
import { CodeCache, type Entry } from './code-cache';
import { Translator } from './translate';
import { CAUSE, enterTrap, selectInterrupt } from './trap';

export type ExitReason = 'budget' | 'wfi' | 'kick' | 'trap-loop';

/** What the hart was doing when it gave up: a trap whose handler keeps trapping. */
export interface TrapLoopInfo {
  /** mcause of the last trap (bit 63 set for interrupts). */
  readonly mcause: bigint;
  readonly mtval: bigint;
  readonly mepc: bigint;
  readonly mtvec: bigint;
  /** Traps taken back to back without an instruction retiring. */
  readonly traps: number;
}

export interface RunExit {
  readonly reason: ExitReason;
  /** Instructions retired during this call. */
  readonly executed: number;
  readonly trapLoop?: TrapLoopInfo;
}

export interface HartOptions {
  /** Instructions between timer samples while a timer interrupt is enabled (default 4096). */
  timerCheckInterval?: number;
  /** Longest translated block (default 64 instructions). */
  maxBlockLength?: number;
  /** Executions after which a block's page is compiled as one region (default 32; 0 = never). */
  regionThreshold?: number;
}

/**
 * A region's generated source stays under this many characters: V8 does not optimize functions
 * whose bytecode exceeds its limit (60 KB), and an unoptimized region runs ~20x slower than
 * tier 1. Measured: load/store-heavy regions stop being optimized between 51 and 77 K chars.
 */
const REGION_MAX_SOURCE = 40_000;
/** Region compilations per page before the page stays at tier 1. */
const REGION_MAX_BUILDS = 8;

const EXIT_NONE = 0;
const EXIT_WFI = 1;
const EXIT_TRAP_LOOP = 2;
const TWO32 = 4294967296;

export class Hart {
  readonly hartId: number;
  /** The state words (shared memory); CSRs and the reservation are used in place. */
  readonly w: Int32Array;
  /** x0..x31 as (lo, hi) int32 pairs while running. */
  readonly x = new Int32Array(64);
  pcLo = 0;
  pcHi = 0;
  /** Instructions retired in the current `run`. */
  n = 0;
  /** Translated loops stop before passing this instruction count. */
  limit = 0;
  /** The hart's wake word when this run started; a change means "return 'kick'". */
  wake0 = 0;
  /** Trap-loop detection (trap.ts). */
  lastTrapAt = -1;
  trapStreak = 0;

  readonly mem: Memory;
  private readonly cache: CodeCache;
  private readonly translator: Translator;
  private readonly timerInterval: number;
  private readonly maxBlock: number;
  private readonly hotThreshold: number;
  private exitCode = EXIT_NONE;
  private trapLoop: TrapLoopInfo | undefined;
  /** n at the last fold of retired instructions into mcycle/minstret. */
  private counted = 0;
  private generation = -1;
  /** MIP_MTIP when the last timer sample found mtime ≥ timecmp. */
  private mtip = 0;
  private timerCheckAt = 0;

  constructor(
    readonly env: HartEnv,
    readonly state: HartState,
    opts: HartOptions = {},
  ) {
    this.hartId = env.hartId;
    this.w = state.words;
    this.timerInterval = opts.timerCheckInterval ?? 4096;
    this.maxBlock = opts.maxBlockLength ?? 64;
    this.hotThreshold = opts.regionThreshold === 0 ? -1 : (opts.regionThreshold ?? 32);
    this.mem = new Memory(env);
    this.cache = new CodeCache(this.mem);
    this.translator = new Translator(this, this.mem, ORDERED_DIRTY);
    this.mem.onCodeWrite = (region, off, width) => this.cache.invalidate(region, off, width);
  }

  /** Execute up to `budget` instructions (at most 2^31). */
  run(budget: number): RunExit {
    const end = Math.max(0, Math.min(Math.floor(budget), 0x7fffffff));
    this.enter();
    const lines = this.env.lines;
    const hid = this.hartId;
    const wake0 = Atomics.load(lines.wake, hid);
    this.wake0 = wake0;
    const w = this.w;
    let mmioSeen = this.mem.mmioSeq;
    let reason: ExitReason = 'budget';
    this.sampleTimer();

    if (w[S.HALTED] !== 0) {
      // Still in WFI: resume only once an enabled interrupt is pending (mstatus.MIE aside).
      if ((this.liveMip(true) & w[S.MIE]) === 0) return this.leave('wfi');
      w[S.HALTED] = 0;
    }

    while (this.exitCode === EXIT_NONE) {
      const n = this.n;
      if (n >= end) break;
      if (Atomics.load(lines.wake, hid) !== wake0) {
        reason = 'kick';
        break;
      }
      if (n >= this.timerCheckAt || this.mem.mmioSeq !== mmioSeen) {
        mmioSeen = this.mem.mmioSeq;
        this.sampleTimer();
      }
      const pending = (((Atomics.load(lines.lines, hid) & (MIP_MSIP | MIP_MEIP)) | this.mtip) & w[S.MIE]);
      if (pending !== 0 && (w[S.MSTATUS] & MSTATUS_MIE) !== 0) {
        enterTrap(this, true, selectInterrupt(pending), 0, 0, this.pcLo, this.pcHi);
        continue;
      }
      let e = this.cache.lookup(this.pcLo, this.pcHi);
      if (e === undefined) {
        const b = this.translator.translateBlock(this.pcLo, this.pcHi, this.maxBlock);
        if (b === undefined) {
          enterTrap(this, false, CAUSE.INSN_ACCESS_FAULT, this.pcLo, this.pcHi, this.pcLo, this.pcHi);
          continue;
        }
        e = this.cache.addBlock(b);
      }
      if (n + e.len > end) {
        // Not enough budget left for a whole block: finish one instruction at a time.
        e = this.cache.lookupStep(this.pcLo, this.pcHi);
        if (e === undefined) e = this.cache.addBlock(this.translator.translateBlock(this.pcLo, this.pcHi, 1)!, true);
      } else if (e.block !== undefined && ++e.hits === this.hotThreshold) {
        const r = this.promote(e);
        if (n + r.len <= end) e = r;
      }
      this.limit = end < this.timerCheckAt ? end : this.timerCheckAt;
      e.fn(e.p);
    }
    if (this.exitCode === EXIT_WFI) reason = 'wfi';
    else if (this.exitCode === EXIT_TRAP_LOOP) reason = 'trap-loop';
    return this.leave(reason);
  }

  /** Put the hart in its reset state (pc = the state's reset vector). */
  reset(): void {
    this.state.reset(this.hartId, this.state.resetVector);
    this.flushDecodeCache();
  }

  /** Forget every translated block (after RAM or state was replaced from outside). */
  flushDecodeCache(): void {
    this.cache.flush();
  }

  /** mtime at which the timer interrupt becomes pending, or Infinity when it cannot wake the
   * hart (mie.MTIE clear). A worker parked in WFI sleeps at most until then. */
  nextTimerDeadline(): number {
    if ((this.w[S.MIE] & MIP_MTIP) === 0) return Infinity;
    return this.env.timebase.timecmp(this.hartId);
  }

  /** Number of translated blocks (tier 1) currently cached. */
  get cachedBlocks(): number {
    return this.cache.blockCount;
  }

  /** Number of page regions (tier 2) currently cached. */
  get cachedRegions(): number {
    return this.cache.regionCount;
  }

  // ── Runtime entry points used by generated code and the system instructions ──────────────

  /** A synchronous exception at (epcLo, epcHi). */
  trap(cause: number, tvLo: number, tvHi: number, epcLo: number, epcHi: number): void {
    enterTrap(this, false, cause, tvLo, tvHi, epcLo, epcHi);
  }

  /** A synchronous exception at the current pc. */
  raise(cause: number, tvLo: number, tvHi: number): void {
    enterTrap(this, false, cause, tvLo, tvHi, this.pcLo, this.pcHi);
  }

  /** Execute a CSR or system instruction at the current pc. */
  sys(insn: Insn): void {
    execSystem(this, insn);
    // mie, mstatus.MIE or the counters may have changed: sample the timer before the next block.
    this.timerCheckAt = 0;
  }

  /** A store from a translated block hit a page with translated code (region 0, offset o). */
  smc(o: number, width: number): boolean {
    return this.cache.invalidate(0, o, width);
  }

  /** Retire the current instruction and move to the next one. */
  advance(): void {
    this.n++;
    const lo = (this.pcLo + 4) | 0;
    if ((lo >>> 0) < (this.pcLo >>> 0)) this.pcHi = (this.pcHi + 1) | 0;
    this.pcLo = lo;
  }

  /** WFI has retired: halt unless an enabled interrupt is already pending. */
  waitForInterrupt(): void {
    if ((this.liveMip(true) & this.w[S.MIE]) !== 0) return;
    this.w[S.HALTED] = 1;
    this.exitCode = EXIT_WFI;
  }

  /** Current pending bits: MSIP/MEIP from the lines, MTIP from the timer (sampled now when
   * `sample`, else as of the last sample). */
  liveMip(sample: boolean): number {
    if (sample) this.mtip = this.timerDue() ? MIP_MTIP : 0;
    return (Atomics.load(this.env.lines.lines, this.hartId) & (MIP_MSIP | MIP_MEIP)) | this.mtip;
  }

  /** Fold instructions retired since the last fold into mcycle and minstret (unless inhibited). */
  flushCounters(): void {
    const delta = this.n - this.counted;
    if (delta === 0) return;
    this.counted = this.n;
    const inhibit = this.w[S.MCOUNTINHIBIT];
    if ((inhibit & 1) === 0) this.add64(S.MCYCLE, delta);
    if ((inhibit & 4) === 0) this.add64(S.MINSTRET, delta);
  }

  reportTrapLoop(): void {
    const w = this.w;
    this.trapLoop = {
      mcause: toU64(w[S.MCAUSE], w[S.MCAUSE + 1]),
      mtval: toU64(w[S.MTVAL], w[S.MTVAL + 1]),
      mepc: toU64(w[S.MEPC], w[S.MEPC + 1]),
      mtvec: toU64(w[S.MTVEC], w[S.MTVEC + 1]),
      traps: this.trapStreak,
    };
    this.exitCode = EXIT_TRAP_LOOP;
  }

  // ── Internals ─────────────────────────────────────────────────────────────────────────────

  /**
   * A tier-1 block became hot: compile the hot blocks of its page into one region function
   * (every block of the page that ran at least twice, hottest first, within REGION_MAX_SOURCE).
   * Returns the entry to run now.
   */
  private promote(e: Entry): Entry {
    const page = this.cache.pageOf(e.block!);
    if (page.builds >= REGION_MAX_BUILDS) return e;
    const hits = new Map<number, number>();
    for (const [idx, b] of page.blocks) {
      const be = this.cache.lookup(b.pcLo, b.pcHi);
      hits.set(idx, be && be.block === b ? be.hits : 1 << 30); // blocks already in the region: keep
    }
    const warm = Math.min(2, this.hotThreshold);
    const chosen = [...page.blocks.entries()]
      .filter(([idx]) => (hits.get(idx) ?? 0) >= warm)
      .sort((x, y) => (hits.get(y[0]) ?? 0) - (hits.get(x[0]) ?? 0));
    const blocks = [];
    let size = 0;
    for (const [, b] of chosen) {
      if (size + b.source.length > REGION_MAX_SOURCE) continue;
      blocks.push(b);
      size += b.source.length;
    }
    if (blocks.length === 0) return e;
    this.cache.installRegion(page, this.translator.translateRegion(page.ram, page.page, blocks));
    return this.cache.lookup(e.pcLo, e.pcHi) ?? e;
  }

  private add64(word: number, delta: number): void {
    const sum = (this.w[word] >>> 0) + delta;
    this.w[word] = sum % TWO32 | 0;
    this.w[word + 1] = (this.w[word + 1] + Math.floor(sum / TWO32)) | 0;
  }

  private timerDue(): boolean {
    const tb = this.env.timebase;
    return tb.mtime() >= tb.timecmp(this.hartId);
  }

  /** Sample the timer if a timer interrupt could be taken now; schedule the next sample. */
  private sampleTimer(): void {
    this.timerCheckAt = this.n + this.timerInterval;
    const w = this.w;
    if ((w[S.MIE] & MIP_MTIP) !== 0) this.mtip = this.timerDue() ? MIP_MTIP : 0;
    else this.mtip = 0;
  }

  private enter(): void {
    const gen = this.state.generation;
    if (gen !== this.generation) {
      this.generation = gen;
      this.cache.flush();
      this.trapStreak = 0;
    }
    const w = this.w;
    this.x.set(w.subarray(S.X, S.X + 64));
    this.x[0] = 0;
    this.x[1] = 0;
    this.pcLo = w[S.PC];
    this.pcHi = w[S.PC + 1];
    this.n = 0;
    this.counted = 0;
    this.exitCode = EXIT_NONE;
    this.trapLoop = undefined;
    // Keep a trap streak alive across calls only if nothing retired since the last trap.
    this.lastTrapAt = this.trapStreak > 0 ? 0 : -1;
  }

  private leave(reason: ExitReason): RunExit {
    const w = this.w;
    this.flushCounters();
    w.set(this.x.subarray(2, 64), S.X + 2);
    w[S.PC] = this.pcLo;
    w[S.PC + 1] = this.pcHi;
    w[S.MIP] = this.liveMip(false);
    w[S.MIP + 1] = 0;
    if (this.lastTrapAt !== this.n) this.trapStreak = 0;
    const trapLoop = this.trapLoop;
    return trapLoop ? { reason, executed: this.n, trapLoop } : { reason, executed: this.n };
  }
}
