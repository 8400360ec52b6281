/**
 * NS16550A UART as on QEMU's `virt` machine (serial-mm at 0x1000_0000, reg-shift 0, byte
 * registers, IRQ 10 on the PLIC), after QEMU's hw/char/serial.c.
 *
 *   off  DLAB=0 read / write      DLAB=1
 *   0    RBR / THR                DLL (divisor low)
 *   1    IER                      DLM (divisor high)
 *   2    IIR / FCR
 *   3    LCR (bit 7 = DLAB)
 *   4    MCR (bit 4 = loopback)
 *   5    LSR (DR, OE, THRE, TEMT)
 *   6    MSR
 *   7    SCR
 *
 * Output: a THR write hands the byte straight to the effect queue (the main thread writes it to
 * the serial backend), so the transmitter is empty again at once and THRE/TEMT read as set —
 * what QEMU shows when its backend accepts the byte. The transmit FIFO therefore never holds
 * anything. Input: the main thread pushes received bytes into the shared receive FIFO
 * (`input`/`receive`); reading RBR takes them out on a hart's thread, which tells the main
 * thread (Effect.UART_RX_READY) when it may deliver more or must re-arm the character timeout.
 *
 * Interrupt identification follows QEMU's serial_update_irq: line status, then character
 * timeout, then received data (at the FIFO trigger level), then THR empty, then modem status.
 * The IRQ output drives a PLIC source line on every update, like qemu_irq_raise/lower.
 */
import type { MmioDevice } from '../bus';
import { EffectQueue, Effect } from './effect-queue';
import { GuestLogger, hex, silentGuestLogger } from './guest-log';
import type { IrqLine } from './plic';
import { AtomicLock } from './atomic-lock';
// prettier-ignore
import {
  UART0_BASE, UART0_SIZE, UART_BAUDBASE, UART_FCR_FE, UART_FCR_RFR, UART_FCR_STICKY, UART_FCR_XFR,
  UART_FIFO_LENGTH, UART_IER_MSI, UART_IER_RDI, UART_IER_RLSI, UART_IER_THRI, UART_IIR_CTI,
  UART_IIR_ID, UART_IIR_MSI, UART_IIR_NO_INT, UART_IIR_RDI, UART_IIR_RLSI, UART_IIR_THRI,
  UART_LCR_DLAB, UART_LSR_BI, UART_LSR_DR, UART_LSR_INT_ANY, UART_LSR_OE, UART_LSR_TEMT,
  UART_LSR_THRE, UART_MCR_LOOP, UART_MSR_ANY_DELTA, UART_FCR, UART_IER, UART_IIR, UART_LCR,
  UART_LSR, UART_MCR, UART_MSR, UART_RBR, UART_STRUCT, UART_THR, UartState, resetRegs, setFcr
} from './uart16550-regs';

export interface UartConfig {
  base?: number;
  size?: number;
  /** Tags this UART's effects (value = id << 8 | byte). */
  id?: number;
  baudbase?: number;
}

export interface UartShare {
  readonly base: number;
  readonly size: number;
  readonly id: number;
  readonly baudbase: number;
  readonly state: SharedArrayBuffer;
}

export interface UartDeps {
  effects: EffectQueue;
  irq?: IrqLine;
  log?: GuestLogger;
}

/** A Fifo8 as VMState sees it (QEMU's vmstate_fifo8: data, head, num). */
export interface Fifo8 {
  data: Uint8Array;
  head: number;
  num: number;
}

const NO_IRQ: IrqLine = { set() {} };

export class Uart16550 implements MmioDevice {
  readonly name = 'serial';
  readonly base: number;
  readonly size: number;
  readonly widths = 1 | 2 | 4;
  readonly id: number;
  readonly baudbase: number;
  readonly state: UartState;
  /** The receive FIFO in Fifo8 form, over the shared state (VMState `recv_fifo`). */
  readonly recvFifo: Fifo8;
  /** Always empty here; holds a loaded QEMU transmit FIFO until postLoad sends it. */
  readonly xmitFifo: Fifo8 = { data: new Uint8Array(UART_FIFO_LENGTH), head: 0, num: 0 };
  private readonly lock: AtomicLock;
  private readonly effects: EffectQueue;
  private readonly irq: IrqLine;
  private readonly log: GuestLogger;
  /** Set under the lock by an RBR read; the effect is posted after unlocking. */
  private rxReadyPending = false;
  /** Main thread only: input not yet accepted by the FIFO, and the character-timeout timer. */
  private backlogBytes: number[] = [];
  private rxTimer: ReturnType<typeof setTimeout> | undefined;

  /** Main thread, once: the shared state in its reset state. */
  static createShare(cfg: UartConfig = {}): UartShare {
    const share: UartShare = {
      base: cfg.base ?? UART0_BASE,
      size: cfg.size ?? UART0_SIZE,
      id: cfg.id ?? 0,
      baudbase: cfg.baudbase ?? UART_BAUDBASE,
      state: UART_STRUCT.create(),
    };
    resetRegs(UART_STRUCT.view(share.state));
    return share;
  }

  constructor(share: UartShare, deps: UartDeps) {
    this.base = share.base;
    this.size = share.size;
    this.id = share.id;
    this.baudbase = share.baudbase;
    this.state = UART_STRUCT.view(share.state);
    this.lock = new AtomicLock(this.state.$i32, UART_STRUCT.wordIndex('lock'));
    this.effects = deps.effects;
    this.irq = deps.irq ?? NO_IRQ;
    this.log = deps.log ?? silentGuestLogger;
    const s = this.state;
    this.recvFifo = {
      get data() {
        return s.rx;
      },
      set data(v: Uint8Array) {
        s.rx = v;
      },
      get head() {
        return s.rx_head;
      },
      set head(v: number) {
        s.rx_head = v;
      },
      get num() {
        return s.rx_num;
      },
      set num(v: number) {
        s.rx_num = v;
      },
    };
  }

  read(offset: number, width: 1 | 2 | 4): number {
    if (offset >= 8 || (this.widths & width) === 0) {
      this.log(this.name, `invalid ${width}-byte read at ${hex(offset)}`);
      return 0;
    }
    this.lock.acquire();
    let v: number;
    try {
      v = this.readReg(offset);
    } finally {
      this.lock.release();
    }
    this.afterUnlock(-1);
    return v;
  }

  write(offset: number, width: 1 | 2 | 4, value: number): void {
    if (offset >= 8 || (this.widths & width) === 0) {
      this.log(this.name, `invalid ${width}-byte write at ${hex(offset)}`);
      return;
    }
    this.lock.acquire();
    let tx: number;
    try {
      tx = this.writeReg(offset, value & 0xff);
    } finally {
      this.lock.release();
    }
    this.afterUnlock(tx);
  }

  /** Power-on state (QEMU serial_reset). Main thread, vCPUs parked. */
  reset(): void {
    this.lock.with(() => {
      resetRegs(this.state);
      this.irq.set(false);
    });
    this.backlogBytes = [];
    this.disarmRxTimeout();
  }

  // ---- main thread: receive side -------------------------------------------------------

  /** How many bytes the UART takes now (QEMU serial_can_receive). */
  canReceive(): number {
    const s = this.state;
    if (s.fcr & UART_FCR_FE) {
      const num = s.rx_num;
      const itl = s.recv_fifo_itl;
      if (num >= UART_FIFO_LENGTH) return 0;
      // QEMU advertises up to the trigger level, then one byte at a time, so a guest that
      // set a trigger level gets its interrupt before the FIFO overflows.
      return num <= itl ? itl - num : 1;
    }
    return s.lsr & UART_LSR_DR ? 0 : 1;
  }

  /**
   * Delivers up to canReceive() bytes of `bytes` into the receive FIFO, as QEMU's chardev does;
   * returns how many were taken. When not all were taken, the next RBR read posts
   * Effect.UART_RX_READY so the caller can try again.
   */
  receive(bytes: ArrayLike<number>): number {
    let n = 0;
    this.lock.with(() => {
      n = Math.min(this.canReceive(), bytes.length);
      for (let i = 0; i < n; i++) this.receiveByte(bytes[i] & 0xff);
      if (n > 0) this.updateIrq();
      this.state.rx_wanted = n < bytes.length;
    });
    if (n > 0) this.armRxTimeout();
    return n;
  }

  /** Queues host input (stdin, a socket, a file) and delivers what fits now. */
  input(bytes: ArrayLike<number>): void {
    for (let i = 0; i < bytes.length; i++) this.backlogBytes.push(bytes[i] & 0xff);
    this.rxReady();
  }

  /** Bytes queued by `input` and not yet in the FIFO. */
  backlog(): number {
    return this.backlogBytes.length;
  }

  /** On Effect.UART_RX_READY (the guest read RBR): deliver more, re-arm the timeout. */
  rxReady(): void {
    if (this.backlogBytes.length > 0) {
      const n = this.receive(this.backlogBytes);
      this.backlogBytes.splice(0, n);
    }
    this.armRxTimeout();
  }

  /** Main thread: stop the character-timeout timer (the board's teardown). */
  disarmRxTimeout(): void {
    if (this.rxTimer !== undefined) clearTimeout(this.rxTimer);
    this.rxTimer = undefined;
  }

  /**
   * QEMU raises the character-timeout interrupt when the FIFO holds data below the trigger
   * level and nothing was read for four character times. The timer runs on the main thread
   * (host time); a read since arming makes it stale (the read's RX_READY re-arms it).
   */
  private armRxTimeout(): void {
    this.disarmRxTimeout();
    const s = this.state;
    if (!(s.fcr & UART_FCR_FE) || s.rx_num === 0 || s.timeout_ipending) return;
    const reads = s.rx_reads;
    const ms = Math.max(1, Math.ceil((4 * this.charTransmitNs()) / 1e6));
    this.rxTimer = setTimeout(() => {
      this.rxTimer = undefined;
      this.lock.with(() => {
        if (s.rx_reads !== reads || s.rx_num === 0) return;
        s.timeout_ipending = 1;
        this.updateIrq();
      });
    }, ms);
    this.rxTimer.unref?.();
  }

  /** One character's time on the line at the programmed speed (QEMU updateParameters). */
  charTransmitNs(): number {
    const s = this.state;
    const lcr = s.lcr;
    const frame = 1 + (lcr & 0x08 ? 1 : 0) + ((lcr & 0x03) + 5) + (lcr & 0x04 ? 2 : 1);
    const speed = s.divider === 0 ? 3500 : this.baudbase / s.divider;
    return (1e9 / speed) * frame;
  }

  // ---- register file (lock held) -------------------------------------------------------

  private readReg(addr: number): number {
    const s = this.state;
    switch (addr) {
      case UART_RBR: {
        if (s.lcr & UART_LCR_DLAB) return s.divider & 0xff;
        let ret: number;
        if (s.fcr & UART_FCR_FE) {
          ret = s.rx_num === 0 ? 0 : this.popRx();
          if (s.rx_num === 0) s.lsr &= ~(UART_LSR_DR | UART_LSR_BI);
          s.timeout_ipending = 0;
        } else {
          ret = s.rbr;
          s.lsr &= ~(UART_LSR_DR | UART_LSR_BI);
        }
        s.rx_reads = (s.rx_reads + 1) >>> 0;
        this.updateIrq();
        // QEMU calls qemu_chr_fe_accept_input here (not in loopback); we tell the main thread
        // only when it waits to deliver, or a character timeout must be re-armed.
        const num = s.rx_num;
        if (!(s.mcr & UART_MCR_LOOP) && (s.rx_wanted || (num > 0 && num < s.recv_fifo_itl))) {
          s.rx_wanted = false;
          this.rxReadyPending = true;
        }
        return ret;
      }
      case UART_IER:
        return s.lcr & UART_LCR_DLAB ? (s.divider >> 8) & 0xff : s.ier;
      case UART_IIR: {
        const ret = s.iir;
        // Reading IIR while it reports THR empty acknowledges that interrupt.
        if ((ret & UART_IIR_ID) === UART_IIR_THRI) {
          s.thr_ipending = 0;
          this.updateIrq();
        }
        return ret;
      }
      case UART_LCR:
        return s.lcr;
      case UART_MCR:
        return s.mcr;
      case UART_LSR: {
        const ret = s.lsr;
        // Reading LSR clears break and overrun.
        if (ret & (UART_LSR_BI | UART_LSR_OE)) {
          s.lsr = ret & ~(UART_LSR_BI | UART_LSR_OE);
          this.updateIrq();
        }
        return ret;
      }
      case UART_MSR: {
        const mcr = s.mcr;
        if (mcr & UART_MCR_LOOP) {
          // In loopback the modem outputs (DTR, RTS, OUT1, OUT2) feed the inputs.
          return ((mcr & 0x0c) << 4) | ((mcr & 0x02) << 3) | ((mcr & 0x01) << 5);
        }
        const ret = s.msr;
        if (ret & UART_MSR_ANY_DELTA) {
          s.msr = ret & 0xf0;
          this.updateIrq();
        }
        return ret;
      }
      default:
        return s.scr;
    }
  }

  /** Returns the byte to transmit (posted after unlocking), or -1. */
  private writeReg(addr: number, val: number): number {
    const s = this.state;
    switch (addr) {
      case UART_THR: {
        if (s.lcr & UART_LCR_DLAB) {
          s.divider = (s.divider & 0xff00) | val;
          return -1;
        }
        s.thr = val;
        // The byte moves through THR/TSR and out at once (see the file comment), so the
        // transmitter is empty again before anyone can look: THRE|TEMT, THR-empty pending.
        s.lsr |= UART_LSR_THRE | UART_LSR_TEMT;
        s.thr_ipending = 1;
        if (s.mcr & UART_MCR_LOOP) {
          this.receiveByte(val);
          this.updateIrq();
          return -1;
        }
        this.updateIrq();
        return val;
      }
      case UART_IER: {
        if (s.lcr & UART_LCR_DLAB) {
          s.divider = (s.divider & 0x00ff) | (val << 8);
          return -1;
        }
        const changed = (s.ier ^ val) & 0x0f;
        s.ier = val & 0x0f;
        // Enabling THRI while THR is empty raises the interrupt again (QEMU; Windows relies
        // on it); with THRI off thr_ipending is unused and kept 0 so it is not migrated.
        if (changed & UART_IER_THRI) {
          s.thr_ipending = s.ier & UART_IER_THRI && s.lsr & UART_LSR_THRE ? 1 : 0;
        }
        if (changed) this.updateIrq();
        return -1;
      }
      case UART_FCR: {
        // Toggling FIFO enable flushes both FIFOs.
        if ((val ^ s.fcr) & UART_FCR_FE) val |= UART_FCR_XFR | UART_FCR_RFR;
        if (val & UART_FCR_RFR) {
          s.lsr &= ~(UART_LSR_DR | UART_LSR_BI);
          s.timeout_ipending = 0;
          s.rx_head = 0;
          s.rx_num = 0;
        }
        if (val & UART_FCR_XFR) {
          s.lsr |= UART_LSR_THRE;
          s.thr_ipending = 1;
        }
        setFcr(s, val & UART_FCR_STICKY);
        this.updateIrq();
        return -1;
      }
      case UART_LCR:
        s.lcr = val;
        return -1;
      case UART_MCR:
        s.mcr = val & 0x1f;
        return -1;
      case UART_LSR:
      case UART_MSR:
        return -1; // read-only
      default:
        s.scr = val;
        return -1;
    }
  }

  private afterUnlock(tx: number): void {
    if (tx >= 0) this.effects.pushWait(Effect.UART_TX, (this.id << 8) | tx);
    if (this.rxReadyPending) {
      this.rxReadyPending = false;
      this.effects.pushWait(Effect.UART_RX_READY, this.id);
    }
  }

  /** QEMU serial_receive1 for one byte (lock held; caller updates the IRQ). */
  private receiveByte(b: number): void {
    const s = this.state;
    if (s.fcr & UART_FCR_FE) {
      // Receive overruns do not overwrite FIFO contents.
      const num = s.rx_num;
      if (num < UART_FIFO_LENGTH) {
        s.rx[(s.rx_head + num) % UART_FIFO_LENGTH] = b;
        s.rx_num = num + 1;
      } else {
        s.lsr |= UART_LSR_OE;
      }
    } else {
      if (s.lsr & UART_LSR_DR) s.lsr |= UART_LSR_OE;
      s.rbr = b;
    }
    s.lsr |= UART_LSR_DR;
  }

  private popRx(): number {
    const s = this.state;
    const head = s.rx_head;
    const b = s.rx[head];
    s.rx_head = (head + 1) % UART_FIFO_LENGTH;
    s.rx_num = s.rx_num - 1;
    return b;
  }

  /** QEMU serial_update_irq (lock held). */
  updateIrq(): void {
    const s = this.state;
    const ier = s.ier;
    const lsr = s.lsr;
    let id = UART_IIR_NO_INT;
    if (ier & UART_IER_RLSI && lsr & UART_LSR_INT_ANY) {
      id = UART_IIR_RLSI;
    } else if (ier & UART_IER_RDI && s.timeout_ipending) {
      // IER.RDI masks the timeout too: not in the datasheet, observed on hardware (QEMU).
      id = UART_IIR_CTI;
    } else if (ier & UART_IER_RDI && lsr & UART_LSR_DR && (!(s.fcr & UART_FCR_FE) || s.rx_num >= s.recv_fifo_itl)) {
      id = UART_IIR_RDI;
    } else if (ier & UART_IER_THRI && s.thr_ipending) {
      id = UART_IIR_THRI;
    } else if (ier & UART_IER_MSI && s.msr & UART_MSR_ANY_DELTA) {
      id = UART_IIR_MSI;
    }
    s.iir = id | (s.iir & 0xf0);
    this.irq.set(id !== UART_IIR_NO_INT);
  }

  // ---- VMState hooks (main thread, vCPUs parked) ---------------------------------------

  /** @internal serial_pre_save */
  vmPreSave(): void {
    this.state.fcr_vmstate = this.state.fcr;
  }

  /** @internal serial_pre_load: -1 marks "thr_ipending subsection absent". */
  vmPreLoad(): void {
    this.state.thr_ipending = -1;
    this.xmitFifo.num = 0;
    this.xmitFifo.head = 0;
  }

  /** @internal serial_post_load */
  vmPostLoad(versionId: number): void {
    const s = this.state;
    const rx = this.recvFifo;
    if (rx.head >= UART_FIFO_LENGTH || rx.num > UART_FIFO_LENGTH) {
      throw new RangeError(`serial: recv_fifo head ${rx.head} num ${rx.num} out of range`);
    }
    if (this.xmitFifo.head >= UART_FIFO_LENGTH || this.xmitFifo.num > UART_FIFO_LENGTH) {
      throw new RangeError(`serial: xmit_fifo head ${this.xmitFifo.head} num ${this.xmitFifo.num} out of range`);
    }
    if (versionId < 3) s.fcr_vmstate = 0;
    if (s.thr_ipending === -1) s.thr_ipending = (s.iir & UART_IIR_ID) === UART_IIR_THRI ? 1 : 0;
    setFcr(s, s.fcr_vmstate & UART_FCR_STICKY);
    // A sender whose backend stalled (QEMU) may have bytes queued: send them now.
    const x = this.xmitFifo;
    for (let i = 0; i < x.num; i++) {
      this.effects.pushWait(Effect.UART_TX, (this.id << 8) | x.data[(x.head + i) % UART_FIFO_LENGTH]);
    }
    x.num = 0;
    s.lsr |= UART_LSR_THRE | UART_LSR_TEMT;
    // Our PLIC does not migrate line levels: drive ours from the loaded IIR, as QEMU's PLIC
    // pending bit would still show it.
    this.irq.set((s.iir & UART_IIR_NO_INT) === 0);
    this.armRxTimeout();
  }
}

