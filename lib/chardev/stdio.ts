/**
 * The serial port on the process's own terminal (-serial stdio, -nographic). Nothing here can
 * be handed to another process: stdin and stdout are each process's own.
 */
import type { Chardev } from './backends';
import type { NamedFd } from './fds';

export class StdioChardev implements Chardev {
  private listener: ((b: Buffer) => void) | null = null;
  private broken = false;

  constructor(readonly id: string) {
    // A reader that went away (`livemig ... | head`) must not take the machine with it: the
    // write error arrives as an event, and output is dropped from then on.
    process.stdout.on('error', () => (this.broken = true));
  }

  write(bytes: Uint8Array): void {
    if (this.broken) return;
    try {
      process.stdout.write(bytes);
    } catch {
      /* stdout closed: QEMU ignores it too */
    }
  }

  onInput(cb: (bytes: Uint8Array) => void): void {
    this.listener = (b) => cb(b);
    if (process.stdin.isTTY) process.stdin.setRawMode?.(true);
    process.stdin.on('data', this.listener);
  }

  /** stdout stays with this process; nothing of it is handed over. */
  async flush(): Promise<void> {}

  setInputPaused(paused: boolean): void {
    if (!this.listener) return;
    if (paused) process.stdin.pause();
    else process.stdin.resume();
  }

  async setAccepting(): Promise<void> {}

  fds(): NamedFd[] {
    return [];
  }

  detach(): NamedFd[] {
    this.close();
    return [];
  }

  close(): void {
    if (this.listener) process.stdin.off('data', this.listener);
    this.listener = null;
    if (process.stdin.isTTY) process.stdin.setRawMode?.(false);
    process.stdin.pause();
  }
}
