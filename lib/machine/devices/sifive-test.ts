/**
 * SiFive test finisher at 0x10_0000 (QEMU's hw/misc/sifive_test.c): a 32-bit (or 16-bit)
 * write of `status | code << 16` to offset 0 ends the simulation.
 *
 *   status 0x5555 (FINISHER_PASS)   power off, exit status 0
 *   status 0x3333 (FINISHER_FAIL)   power off, exit status `code`
 *   status 0x7777 (FINISHER_RESET)  system reset request
 *
 * Anything else is a guest error; reads return 0. The request goes to the main thread as an
 * effect (Effect.POWER_OFF / Effect.RESET) on the same queue as the UART's output, so every
 * byte a hart wrote before its power-off is drained first. The device has no state and no
 * VMState (QEMU has none).
 */
import type { MmioDevice } from '../bus';
import { Effect, EffectQueue } from './effect-queue';
import { GuestLogger, hex, silentGuestLogger } from './guest-log';

export const SIFIVE_TEST_BASE = 0x10_0000;
export const SIFIVE_TEST_SIZE = 0x1000;
export const FINISHER_FAIL = 0x3333;
export const FINISHER_PASS = 0x5555;
export const FINISHER_RESET = 0x7777;

export interface SifiveTestConfig {
  base?: number;
  size?: number;
}

export interface SifiveTestShare {
  readonly base: number;
  readonly size: number;
}

export interface SifiveTestDeps {
  effects: EffectQueue;
  log?: GuestLogger;
}

export class SifiveTest implements MmioDevice {
  readonly name = 'riscv.sifive.test';
  readonly base: number;
  readonly size: number;
  /** QEMU: valid.min_access_size 2, max 4. */
  readonly widths = 2 | 4;
  private readonly effects: EffectQueue;
  private readonly log: GuestLogger;

  static createShare(cfg: SifiveTestConfig = {}): SifiveTestShare {
    return { base: cfg.base ?? SIFIVE_TEST_BASE, size: cfg.size ?? SIFIVE_TEST_SIZE };
  }

  constructor(share: SifiveTestShare, deps: SifiveTestDeps) {
    this.base = share.base;
    this.size = share.size;
    this.effects = deps.effects;
    this.log = deps.log ?? silentGuestLogger;
  }

  read(offset: number, width: 1 | 2 | 4): number {
    if ((this.widths & width) === 0) this.log(this.name, `invalid ${width}-byte read at ${hex(offset)}`);
    return 0;
  }

  write(offset: number, width: 1 | 2 | 4, value: number): void {
    if (offset === 0 && (this.widths & width) !== 0) {
      const status = value & 0xffff;
      const code = (value >>> 16) & 0xffff;
      switch (status) {
        case FINISHER_FAIL:
          this.effects.pushWait(Effect.POWER_OFF, code, 1000);
          return;
        case FINISHER_PASS:
          this.effects.pushWait(Effect.POWER_OFF, 0, 1000);
          return;
        case FINISHER_RESET:
          this.effects.pushWait(Effect.RESET, 0, 1000);
          return;
      }
    }
    this.log(this.name, `write: addr=${hex(offset)} width=${width} val=${hex(value >>> 0)}`);
  }

  /** No state to reset. */
  reset(): void {}
}
