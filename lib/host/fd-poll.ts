/**
 * Readiness of one descriptor on this thread's loop: a single native FdWatcher (uv_poll) whose
 * interest set follows what its owner currently waits for. libuv allows one poll handle per fd
 * in a loop (a second uv_poll_init is EEXIST), so a socket that is read and written — or
 * connected, then used — keeps one FdPoll for both directions.
 *
 * uv_poll_init also makes the descriptor non-blocking, which every caller relies on.
 *
 * When the kernel flags an error on the socket (POLLERR: a reset, a refused connect), libuv
 * stops the handle and reports a negative status instead of events. The owner is then called
 * with everything it was waiting for and `failed` set: the syscall it retries reports the
 * actual error; asking for events again restarts the handle.
 */
import { native } from './addon';
import type { NativeFdWatcher } from './native';

export type ReadyCallback = (events: number, failed: boolean) => void;

export class FdPoll {
  private watcher: NativeFdWatcher | null;
  private mask = 0;

  constructor(
    readonly fd: number,
    private readonly onReady: ReadyCallback,
  ) {
    this.watcher = new native.FdWatcher(fd, (events, status) => this.fire(events, status));
  }

  /** Wait for UV_READABLE | UV_WRITABLE (0: nothing); a no-op when unchanged. */
  set(events: number): void {
    if (!this.watcher || events === this.mask) return;
    this.mask = events;
    if (events === 0) this.watcher.stop();
    else this.watcher.start(events);
  }

  get events(): number {
    return this.mask;
  }

  /** Release the handle; call before closing the descriptor. Idempotent. */
  close(): void {
    this.watcher?.close();
    this.watcher = null;
    this.mask = 0;
  }

  private fire(events: number, status: number): void {
    if (status >= 0) return this.onReady(events, false);
    const was = this.mask;
    this.mask = 0;
    this.watcher?.stop(); // libuv already stopped it; keep the native side's state in step
    this.onReady(was, true);
  }
}
