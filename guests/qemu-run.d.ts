/** Types for qemu-run.js: run livemig guests on QEMU, capture UART bytes, drive QMP. */

export interface GuestOptions {
  /** ELF path, or a guest name such as "ab" (resolved in guests/). */
  elf: string;
  mem?: string;
  smp?: number;
  append?: string;
  /** Extra QEMU arguments, e.g. ['-incoming', 'exec:...']. */
  extra?: string[];
  qemu?: string;
}

export interface RunOptions extends GuestOptions {
  seconds?: number;
  until?: string;
}

export interface RunResult {
  output: Buffer;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The guest powered off by itself (sifive_test) rather than being stopped. */
  exited: boolean;
  stderr: string;
}

export interface ExpectedRun {
  name: string;
  elf: string;
  mem: string;
  smp: number;
  append?: string;
  seconds: number;
  match: 'exact' | 'prefix';
  until?: string;
  exitCode?: number;
  file: string;
}

export declare function findQemu(): string | null;
export declare function qemuVersion(qemu?: string | null): string | null;
export declare function qemuArgs(o: GuestOptions & { qmp?: string }): string[];
export declare function runGuest(o: RunOptions): Promise<RunResult>;
export declare function loadRuns(): ExpectedRun[];
export declare function captureRun(run: ExpectedRun): Promise<RunResult>;
export declare function expectedOf(run: ExpectedRun): Buffer;

export declare class QemuGuest {
  constructor(o: GuestOptions & { qmp?: boolean });
  readonly args: string[];
  output: Buffer;
  stderr: string;
  exitStatus?: { code: number | null; signal: NodeJS.Signals | null };
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  waitFor(text: string | ((out: Buffer) => boolean), timeoutMs?: number): Promise<Buffer>;
  qmp(execute: string, args?: Record<string, unknown>): Promise<any>;
  pmem(addr: number, size: number): Promise<Buffer>;
  migrateToFile(file: string, pollMs?: number, timeoutMs?: number): Promise<any>;
  kill(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}
