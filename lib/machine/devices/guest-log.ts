/**
 * Guest errors: a guest that programs a device wrongly (bad offset, bad width, a value the
 * device does not take) is logged, never thrown (QEMU's LOG_GUEST_ERROR). The
 * logger is injected per thread; the default drops the message, as QEMU does unless run with
 * `-d guest_errors`.
 */

export type GuestLogger = (device: string, message: string) => void;

export const silentGuestLogger: GuestLogger = () => {};

/** Writes `device: message` lines to stderr (the `-d guest_errors` behaviour). */
export const stderrGuestLogger: GuestLogger = (device, message) => {
  process.stderr.write(`${device}: ${message}\n`);
};

export function hex(n: number): string {
  return '0x' + n.toString(16);
}
