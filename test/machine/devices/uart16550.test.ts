import { HartLines, MIP_MEIP } from '../../../lib/machine/bus';
import { Effect, EffectQueue } from '../../../lib/machine/devices/effect-queue';
import { PLIC_CONTEXT_BASE, PLIC_ENABLE_BASE, Plic } from '../../../lib/machine/devices/plic';
import { Uart16550 } from '../../../lib/machine/devices/uart16550';
import { VMSTATE_UART } from '../../../lib/machine/devices/uart16550-vmstate';
import {
  UART0_IRQ,
  UART_FCR,
  UART_IER,
  UART_IIR,
  UART_LCR,
  UART_LSR,
  UART_MCR,
  UART_MSR,
  UART_RBR,
  UART_SCR,
  UART_THR,
} from '../../../lib/machine/devices/uart16550-regs';
import { capture, restore, subsectionNames } from './vmstate-accessors';

function make() {
  const lines = new HartLines(1);
  const plic = new Plic(Plic.createShare({ harts: 1 }), { lines });
  plic.write(4 * UART0_IRQ, 4, 1);
  plic.write(PLIC_ENABLE_BASE, 4, 1 << UART0_IRQ);
  const effects = new EffectQueue(EffectQueue.createShare(256));
  const log: string[] = [];
  const share = Uart16550.createShare();
  const uart = new Uart16550(share, { effects, irq: plic.line(UART0_IRQ), log: (_d, m) => log.push(m) });
  const drain = () => {
    const out: [number, number][] = [];
    effects.drain((k, v) => out.push([k, v]));
    return out;
  };
  const tx = () =>
    drain()
      .filter(([k]) => k === Effect.UART_TX)
      .map(([, v]) => v & 0xff);
  const meip = () => (lines.get(0) & MIP_MEIP) !== 0;
  const claim = () => plic.read(PLIC_CONTEXT_BASE + 4, 4);
  const complete = (irq: number) => plic.write(PLIC_CONTEXT_BASE + 4, 4, irq);
  return { uart, share, plic, lines, effects, log, drain, tx, meip, claim, complete };
}

const r = (u: Uart16550, off: number) => u.read(off, 1);
const w = (u: Uart16550, off: number, v: number) => u.write(off, 1, v);

describe('NS16550A UART', () => {
  test('reset state as QEMU: IIR 0x01, LSR 0x60, MSR 0xb0, MCR 0x08, divisor 12', () => {
    const { uart } = make();
    expect(r(uart, UART_IIR)).toBe(0x01);
    expect(r(uart, UART_LSR)).toBe(0x60);
    expect(r(uart, UART_MSR)).toBe(0xb0);
    expect(r(uart, UART_MCR)).toBe(0x08);
    w(uart, UART_LCR, 0x80);
    expect(r(uart, 0)).toBe(12);
    expect(r(uart, 1)).toBe(0);
  });

  test('DLAB switches offsets 0/1 to the divisor latch', () => {
    const { uart, tx } = make();
    w(uart, UART_LCR, 0x83);
    w(uart, 0, 0x34);
    w(uart, 1, 0x12);
    expect(r(uart, 0)).toBe(0x34);
    expect(r(uart, 1)).toBe(0x12);
    expect(tx()).toEqual([]); // a DLL write is not a transmit
    w(uart, UART_LCR, 0x03);
    expect(r(uart, UART_IER)).toBe(0);
    w(uart, UART_IER, 0x05);
    expect(r(uart, UART_IER)).toBe(0x05);
    w(uart, UART_LCR, 0x83);
    expect(r(uart, 1)).toBe(0x12);
    expect(uart.state.divider).toBe(0x1234);
  });

  test('THR writes go to the effect queue; THRE/TEMT stay set', () => {
    const { uart, tx } = make();
    for (const c of Buffer.from('hi\n')) w(uart, UART_THR, c);
    expect(tx()).toEqual([...Buffer.from('hi\n')]);
    expect(r(uart, UART_LSR) & 0x60).toBe(0x60);
    w(uart, UART_SCR, 0x5a);
    expect(r(uart, UART_SCR)).toBe(0x5a);
  });

  test('THR-empty interrupt: raised on enable, acknowledged by reading IIR, re-raised by a write', () => {
    const { uart, meip, tx } = make();
    expect(meip()).toBe(false);
    w(uart, UART_IER, 0x02);
    expect(meip()).toBe(true);
    expect(r(uart, UART_IIR) & 0x0f).toBe(0x02);
    expect(meip()).toBe(false);
    expect(r(uart, UART_IIR) & 0x0f).toBe(0x01);
    w(uart, UART_THR, 0x41);
    expect(meip()).toBe(true);
    expect(r(uart, UART_IIR) & 0x0f).toBe(0x02);
    w(uart, UART_IER, 0);
    expect(meip()).toBe(false);
    expect(tx()).toEqual([0x41]);
  });

  test('receive without FIFO: DR, RBR, overrun, RX interrupt', () => {
    const { uart, meip, claim, complete } = make();
    w(uart, UART_IER, 0x01);
    expect(uart.canReceive()).toBe(1);
    expect(uart.receive([0x61, 0x62])).toBe(1);
    expect(r(uart, UART_LSR) & 0x01).toBe(1);
    expect(meip()).toBe(true);
    expect(r(uart, UART_IIR) & 0x0f).toBe(0x04);
    expect(claim()).toBe(UART0_IRQ);
    expect(r(uart, UART_RBR)).toBe(0x61);
    complete(UART0_IRQ);
    expect(meip()).toBe(false);
    expect(r(uart, UART_LSR) & 0x01).toBe(0);
    // Overrun: the host cannot push a second byte (canReceive is 0), loopback can.
    uart.receive([1]);
    expect(uart.canReceive()).toBe(0);
    w(uart, UART_MCR, 0x18); // loopback: THR feeds RBR
    w(uart, UART_THR, 2);
    expect(r(uart, UART_LSR) & 0x03).toBe(0x03); // DR | OE, and reading clears OE
    expect(r(uart, UART_LSR) & 0x03).toBe(0x01);
    expect(r(uart, UART_RBR)).toBe(2);
  });

  test('line-status interrupt outranks received data', () => {
    const { uart } = make();
    w(uart, UART_IER, 0x05);
    uart.receive([1]);
    w(uart, UART_MCR, 0x18);
    w(uart, UART_THR, 2); // overrun
    expect(r(uart, UART_IIR) & 0x0f).toBe(0x06);
    r(uart, UART_LSR);
    expect(r(uart, UART_IIR) & 0x0f).toBe(0x04);
  });

  test('FIFO: enable, trigger level, IIR FIFO bits, clear', () => {
    const { uart, meip } = make();
    w(uart, UART_FCR, 0x81); // FIFO on, trigger 8
    expect(r(uart, UART_IIR) & 0xc0).toBe(0xc0);
    w(uart, UART_IER, 0x01);
    expect(uart.canReceive()).toBe(8);
    expect(uart.receive([1, 2, 3, 4, 5])).toBe(5);
    expect(meip()).toBe(false); // below the trigger level
    expect(uart.canReceive()).toBe(3);
    uart.receive([6, 7, 8]);
    expect(meip()).toBe(true);
    expect(r(uart, UART_IIR) & 0x0f).toBe(0x04);
    expect(r(uart, UART_RBR)).toBe(1);
    expect(meip()).toBe(false); // 7 left < 8
    expect(r(uart, UART_LSR) & 1).toBe(1);
    // QEMU's can_receive offers input only up to the trigger level (then waits for a read).
    for (let i = 0; i < 5; i++) uart.receive([100 + i]);
    expect(uart.state.rx_num).toBe(8);
    // Loopback bypasses that: the FIFO fills to 16, then overruns without overwriting.
    w(uart, UART_MCR, 0x10);
    for (let i = 0; i < 10; i++) w(uart, UART_THR, 200 + i);
    expect(uart.state.rx_num).toBe(16);
    expect(r(uart, UART_LSR) & 0x02).toBe(0x02);
    expect(r(uart, UART_RBR)).toBe(2);
    w(uart, UART_MCR, 0x00);
    w(uart, UART_FCR, 0x83); // clear RX
    expect(uart.state.rx_num).toBe(0);
    expect(r(uart, UART_LSR) & 1).toBe(0);
    expect(r(uart, UART_RBR)).toBe(0); // empty FIFO reads 0
    w(uart, UART_FCR, 0x00);
    expect(r(uart, UART_IIR) & 0xc0).toBe(0);
  });

  test('character timeout raises CTI for data below the trigger level', async () => {
    const { uart, meip } = make();
    w(uart, UART_LCR, 0x80);
    w(uart, 0, 1); // fastest divisor: 4 characters ≈ 0.1 ms → 1 ms timer
    w(uart, UART_LCR, 0x03);
    w(uart, UART_FCR, 0xc1); // trigger 14
    w(uart, UART_IER, 0x01);
    uart.receive([0x41]);
    expect(meip()).toBe(false);
    // The timer is 1 ms; allow a loaded machine up to a second.
    for (let t = 0; t < 200 && !meip(); t++) await new Promise((res) => setTimeout(res, 5));
    expect(meip()).toBe(true);
    expect(r(uart, UART_IIR) & 0x0f).toBe(0x0c);
    expect(r(uart, UART_RBR)).toBe(0x41);
    expect(meip()).toBe(false);
  });

  test('input backlog is delivered as the guest reads (UART_RX_READY)', () => {
    const { uart, drain } = make();
    uart.input(Buffer.from('abc'));
    expect(uart.backlog()).toBe(2);
    const got: number[] = [];
    for (let i = 0; i < 3; i++) {
      got.push(r(uart, UART_RBR));
      const fx = drain();
      if (i < 2) expect(fx).toEqual([[Effect.UART_RX_READY, 0]]);
      uart.rxReady();
    }
    expect(Buffer.from(got).toString()).toBe('abc');
    expect(uart.backlog()).toBe(0);
    expect(drain()).toEqual([]);
  });

  test('loopback: MSR mirrors MCR outputs, bytes never leave', () => {
    const { uart, tx } = make();
    w(uart, UART_MCR, 0x1f);
    expect(r(uart, UART_MSR)).toBe(0xf0);
    w(uart, UART_THR, 0x55);
    expect(tx()).toEqual([]);
    expect(r(uart, UART_RBR)).toBe(0x55);
  });

  test('bad offsets are guest errors', () => {
    const { uart, log } = make();
    expect(uart.read(0x10, 1)).toBe(0);
    uart.write(0x80, 1, 1);
    uart.write(0, 8 as 4, 1);
    expect(log.length).toBe(3);
  });

  test('state round trip through the VMState accessors', () => {
    const a = make();
    w(a.uart, UART_LCR, 0x83);
    w(a.uart, 0, 3);
    w(a.uart, UART_LCR, 0x03);
    w(a.uart, UART_FCR, 0x41); // FIFO, trigger 4
    w(a.uart, UART_IER, 0x03);
    r(a.uart, UART_IIR); // acknowledge THRE
    w(a.uart, UART_SCR, 0x77);
    a.uart.receive([9, 8, 7]);
    r(a.uart, UART_RBR); // ring head moves
    const saved = capture(VMSTATE_UART, a.uart);
    expect(saved.name).toBe('serial');
    expect(saved.version).toBe(3);
    const inner = saved.fields.serial as any;
    expect(Object.keys(inner.fields)).toEqual(['divider', 'rbr', 'ier', 'iir', 'lcr', 'mcr', 'lsr', 'msr', 'scr', 'fcr_vmstate']);
    expect(inner.fields.fcr_vmstate).toBe(0x41);
    expect(subsectionNames(saved)).toEqual(['serial/recv_fifo']);

    const b = make();
    restore(VMSTATE_UART, b.uart, saved);
    expect(capture(VMSTATE_UART, b.uart)).toEqual(saved);
    for (const off of [UART_IER, UART_LCR, UART_MCR, UART_MSR, UART_SCR]) expect(r(b.uart, off)).toBe(r(a.uart, off));
    expect(b.uart.state.recv_fifo_itl).toBe(4);
    expect([r(b.uart, UART_RBR), r(b.uart, UART_RBR), r(b.uart, UART_RBR)]).toEqual([8, 7, 0]);
    b.uart.disarmRxTimeout();
    a.uart.disarmRxTimeout();
  });

  test('thr_ipending subsection when it disagrees with IIR; loaded IRQ drives the line', () => {
    const a = make();
    w(a.uart, UART_IER, 0x07); // THRI on: thr_ipending 1
    a.uart.receive([1]); // RDI outranks THRI: IIR says RDI while thr_ipending is 1
    const saved = capture(VMSTATE_UART, a.uart);
    expect(subsectionNames(saved)).toEqual(['serial/thr_ipending']);
    const b = make();
    expect(b.meip()).toBe(false);
    restore(VMSTATE_UART, b.uart, saved);
    expect(b.meip()).toBe(true);
    expect(r(b.uart, UART_RBR)).toBe(1);
    expect(r(b.uart, UART_IIR) & 0x0f).toBe(0x02); // THR-empty comes through next
  });
});
