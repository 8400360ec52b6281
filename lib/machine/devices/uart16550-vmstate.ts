/**
 * The UART's migration state, named and versioned exactly as QEMU 7.2 writes it for the `virt`
 * machine's serial-mm device: section `serial` v3 (minimum 2) holding one struct field
 * `serial` = vmsd `serial` v3, whose fields are
 *
 *   divider u16 (since v2), rbr, ier, iir, lcr, mcr, lsr, msr, scr u8, fcr_vmstate u8 (since v3)
 *
 * and the QEMU subsections for the state we have (QEMU's order and `needed` tests):
 *
 *   serial/thr_ipending     v1  int32 thr_ipending     THRI enabled and thr_ipending disagrees
 *                                                      with what IIR implies
 *   serial/recv_fifo        v1  struct Fifo8 recv_fifo receive FIFO not empty
 *   serial/xmit_fifo        v1  struct Fifo8 xmit_fifo transmit FIFO not empty (never, here:
 *                                                      known so QEMU streams load)
 *   serial/timeout_ipending v1  int32 timeout_ipending character timeout pending
 *
 * Not described: serial/tsr (our transmitter never stalls, tsr_retry is always 0),
 * serial/fifo_timeout_timer (our character timeout is a host timer, re-armed on load) and
 * serial/poll (no modem-line polling). A QEMU stream carrying one of these fails to load with
 * an unknown-subsection error, as QEMU itself would on a receiver lacking it.
 */
import type { VMStateDescription, VMStateField } from '../../vmstate/types';
import { F } from '../../vmstate/fields';
import { UART_FIFO_LENGTH, UART_IER_THRI, UART_IIR_ID, UART_IIR_THRI } from './uart16550-regs';
import type { Fifo8, Uart16550 } from './uart16550';

/** A scalar kept in `uart.state[name]`. */
function reg(f: (name: string, opts: object) => VMStateField<Uart16550>, name: string, opts: object = {}) {
  return f(name, {
    get: (u: Uart16550) => (u.state as unknown as Record<string, unknown>)[name],
    set: (u: Uart16550, v: unknown) => {
      (u.state as unknown as Record<string, unknown>)[name] = v;
    },
    ...opts,
  });
}

/** QEMU's vmstate_fifo8 (util/fifo8.c): the capacity is not sent, both sides know it. */
export const VMSTATE_FIFO8: VMStateDescription<Fifo8> = {
  name: 'Fifo8',
  versionId: 1,
  minimumVersionId: 1,
  fields: [F.vbuffer('data', () => UART_FIFO_LENGTH, { version: 1 }), F.uint32('head'), F.uint32('num')],
};

const THR_IPENDING: VMStateDescription<Uart16550> = {
  name: 'serial/thr_ipending',
  versionId: 1,
  minimumVersionId: 1,
  needed: (u) => {
    const s = u.state;
    // With THRI off, THRE is sampled again when it is enabled: nothing to carry.
    if (!(s.ier & UART_IER_THRI)) return false;
    const expected = (s.iir & UART_IIR_ID) === UART_IIR_THRI ? 1 : 0;
    return s.thr_ipending !== expected;
  },
  fields: [reg(F.int32, 'thr_ipending')],
};

const RECV_FIFO: VMStateDescription<Uart16550> = {
  name: 'serial/recv_fifo',
  versionId: 1,
  minimumVersionId: 1,
  needed: (u) => u.state.rx_num !== 0,
  fields: [F.struct('recv_fifo', VMSTATE_FIFO8, { get: (u: Uart16550) => u.recvFifo })],
};

const XMIT_FIFO: VMStateDescription<Uart16550> = {
  name: 'serial/xmit_fifo',
  versionId: 1,
  minimumVersionId: 1,
  needed: (u) => u.xmitFifo.num !== 0,
  fields: [F.struct('xmit_fifo', VMSTATE_FIFO8, { get: (u: Uart16550) => u.xmitFifo })],
};

const TIMEOUT_IPENDING: VMStateDescription<Uart16550> = {
  name: 'serial/timeout_ipending',
  versionId: 1,
  minimumVersionId: 1,
  needed: (u) => u.state.timeout_ipending !== 0,
  fields: [reg(F.int32, 'timeout_ipending')],
};

/** QEMU's vmstate_serial (the SerialState struct). */
export const VMSTATE_SERIAL: VMStateDescription<Uart16550> = {
  name: 'serial',
  versionId: 3,
  minimumVersionId: 2,
  fields: [
    reg(F.uint16, 'divider', { version: 2 }),
    reg(F.uint8, 'rbr'),
    reg(F.uint8, 'ier'),
    reg(F.uint8, 'iir'),
    reg(F.uint8, 'lcr'),
    reg(F.uint8, 'mcr'),
    reg(F.uint8, 'lsr'),
    reg(F.uint8, 'msr'),
    reg(F.uint8, 'scr'),
    reg(F.uint8, 'fcr_vmstate', { version: 3 }),
  ],
  subsections: [THR_IPENDING, RECV_FIFO, XMIT_FIFO, TIMEOUT_IPENDING],
  preSave: (u) => u.vmPreSave(),
  preLoad: (u) => u.vmPreLoad(),
  postLoad: (u, versionId) => u.vmPostLoad(versionId),
};

/** The `serial` section (QEMU's vmstate_serial_mm): one struct field `serial`. */
export const VMSTATE_UART: VMStateDescription<Uart16550> = {
  name: 'serial',
  versionId: 3,
  minimumVersionId: 2,
  fields: [F.struct('serial', VMSTATE_SERIAL, { get: (u: Uart16550) => u })],
};
