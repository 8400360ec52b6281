/**
 * NS16550A register map, bits and shared register layout (names as in QEMU's hw/char/serial.c
 * and Linux's serial_reg.h). The device itself is in uart16550.ts.
 */
import { StructView, defineStruct } from './shared-struct';

export const UART0_BASE = 0x1000_0000;
export const UART0_SIZE = 0x100;
/** QEMU virt: UART0_IRQ. */
export const UART0_IRQ = 10;
/** QEMU virt passes 399193 Hz as the UART's baud base (serial_mm_init). */
export const UART_BAUDBASE = 399193;
export const UART_FIFO_LENGTH = 16;

export const UART_RBR = 0;
export const UART_THR = 0;
export const UART_IER = 1;
export const UART_IIR = 2;
export const UART_FCR = 2;
export const UART_LCR = 3;
export const UART_MCR = 4;
export const UART_LSR = 5;
export const UART_MSR = 6;
export const UART_SCR = 7;

export const UART_LCR_DLAB = 0x80;
export const UART_IER_MSI = 0x08;
export const UART_IER_RLSI = 0x04;
export const UART_IER_THRI = 0x02;
export const UART_IER_RDI = 0x01;
export const UART_IIR_NO_INT = 0x01;
export const UART_IIR_ID = 0x06;
export const UART_IIR_MSI = 0x00;
export const UART_IIR_THRI = 0x02;
export const UART_IIR_RDI = 0x04;
export const UART_IIR_RLSI = 0x06;
export const UART_IIR_CTI = 0x0c;
export const UART_IIR_FE = 0xc0;
export const UART_MCR_LOOP = 0x10;
export const UART_MCR_OUT2 = 0x08;
export const UART_MSR_DCD = 0x80;
export const UART_MSR_DSR = 0x20;
export const UART_MSR_CTS = 0x10;
export const UART_MSR_ANY_DELTA = 0x0f;
export const UART_LSR_TEMT = 0x40;
export const UART_LSR_THRE = 0x20;
export const UART_LSR_BI = 0x10;
export const UART_LSR_OE = 0x02;
export const UART_LSR_DR = 0x01;
/** LSR bits that raise the line-status interrupt (OE, PE, FE, BI). */
export const UART_LSR_INT_ANY = 0x1e;
export const UART_FCR_FE = 0x01;
export const UART_FCR_RFR = 0x02;
export const UART_FCR_XFR = 0x04;
/** FCR bits that stick (trigger level, DMA mode, FIFO enable). */
export const UART_FCR_STICKY = 0xc9;

export const UART_STRUCT = defineStruct({
  lock: 'i32',
  divider: 'u16',
  rbr: 'u8',
  thr: 'u8',
  ier: 'u8',
  iir: 'u8',
  lcr: 'u8',
  mcr: 'u8',
  lsr: 'u8',
  msr: 'u8',
  scr: 'u8',
  fcr: 'u8',
  fcr_vmstate: 'u8',
  thr_ipending: 'i32',
  timeout_ipending: 'i32',
  recv_fifo_itl: 'u8',
  /** receive FIFO as QEMU's Fifo8: ring of 16 bytes, head index, count */
  rx: ['u8', UART_FIFO_LENGTH],
  rx_head: 'u32',
  rx_num: 'u32',
  /** the main thread holds input it could not deliver: tell it when RBR is read */
  rx_wanted: 'bool',
  /** RBR reads so far: a character timeout armed before the latest read is stale */
  rx_reads: 'u32',
});
export type UartState = StructView<typeof UART_STRUCT.spec>;

export function setFcr(s: UartState, val: number): void {
  // QEMU serial_write_fcr: FCR keeps only its sticky bits; IIR shows FIFO mode; trigger level.
  s.fcr = val;
  if (val & UART_FCR_FE) {
    s.iir |= UART_IIR_FE;
    s.recv_fifo_itl = [1, 4, 8, 14][val >> 6];
  } else {
    s.iir &= ~UART_IIR_FE;
  }
}

export function resetRegs(s: UartState): void {
  s.rbr = 0;
  s.ier = 0;
  s.iir = UART_IIR_NO_INT;
  s.lcr = 0;
  s.lsr = UART_LSR_TEMT | UART_LSR_THRE;
  s.msr = UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS;
  // 9600 baud at QEMU's classic 1.8432 MHz base: 8N1, divisor 12.
  s.divider = 0x0c;
  s.mcr = UART_MCR_OUT2;
  s.scr = 0;
  s.fcr = 0;
  s.recv_fifo_itl = 1;
  s.thr_ipending = 0;
  s.timeout_ipending = 0;
  s.rx_head = 0;
  s.rx_num = 0;
  s.rx_wanted = false;
}
