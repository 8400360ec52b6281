/** Types for ram-check.js: checks a guest RAM image against the livemig guests' invariants. */

export declare const RAM_BASE: number;
export declare const INFO_OFFSET: number;
export declare const PAGE_SIZE: number;
export declare const DEFAULT_SEED: bigint;
export declare const KIND: Readonly<{ NONE: 0; HELLO: 1; AB: 2; DIRTY: 3; IDLE: 4; SMP_COUNTER: 5; TRAP: 6; ECHO: 7; STRIDE: 8 }>;
export declare const STATE: Readonly<{ BOOT: 0; FILLING: 1; RUNNING: 2; DONE: 3 }>;

export interface GuestInfo {
  ramBase: number;
  version: number;
  kind: number;
  state: number;
  pageSize: number;
  rangeStart: number;
  rangeEnd: number;
  seed: bigint;
  counter: bigint;
  ramBaseReported: number;
  ramSize: number;
  fdtAddr: number;
  fdtSize: number;
  imageEnd: number;
  param: bigint;
  harts: number;
}

export interface CheckResult {
  ok: boolean;
  /** The first few problems, human readable. */
  errors: string[];
  errorCount: number;
  info?: GuestInfo | null;
}

export interface AbResult extends CheckResult {
  pages?: number;
  passes?: bigint;
  /** Pages already incremented in the current pass (the step edge sits before page `step`). */
  step?: number;
}

export declare function readInfo(ram: Uint8Array, ramBase?: number): GuestInfo | null;
export declare function writeInfo(
  ram: Uint8Array,
  info: Partial<Omit<GuestInfo, 'seed' | 'counter' | 'param'>> & {
    kind: number;
    state: number;
    rangeStart: number;
    rangeEnd: number;
    seed?: bigint | number;
    counter?: bigint | number;
    param?: bigint | number;
  },
): void;
export declare function xorshift64(x: bigint): bigint;
export declare function fillRange(ram: Uint8Array, start: number, end: number, seed: bigint | number, ramBase?: number): void;
export declare function checkAb(ram: Uint8Array, ramBase?: number): AbResult;
export declare function checkAbRelative(byte0s: ArrayLike<number>): CheckResult & { edges: number[] };
export declare function checkFill(ram: Uint8Array, ramBase?: number): CheckResult & { dirtiedPages?: number };
