/**
 * A mutex in one Int32 of shared memory, for device state that several harts (threads) may
 * touch at once. It is the classic three-state futex mutex (Drepper, "Futexes Are Tricky",
 * mutex2): 0 = free, 1 = held, 2 = held and someone may be sleeping. An uncontended
 * acquire/release is one compare-exchange and one subtraction; a waiter spins briefly (device
 * critical sections are a few hundred nanoseconds) and then sleeps in Atomics.wait.
 *
 * Not re-entrant. Lock order across devices is UART → PLIC (a UART update drives its PLIC line
 * while holding its own lock); nothing takes them the other way round.
 *
 * Node allows Atomics.wait on the main thread too, so the main thread may take a device lock
 * (receiving UART input, saving state): it never holds one across an await.
 */

const FREE = 0;
const HELD = 1;
const CONTENDED = 2;
const SPINS = 100;

export class AtomicLock {
  /** `word` is the lock's index in `i32`; it must start at 0 (FREE). */
  constructor(
    private readonly i32: Int32Array,
    private readonly word: number,
  ) {}

  acquire(): void {
    const a = this.i32;
    const w = this.word;
    let c = Atomics.compareExchange(a, w, FREE, HELD);
    if (c === FREE) return;
    for (let i = 0; i < SPINS; i++) {
      c = Atomics.compareExchange(a, w, FREE, HELD);
      if (c === FREE) return;
    }
    // Slow path: mark the lock contended and sleep until the holder hands it back.
    if (c !== CONTENDED) c = Atomics.exchange(a, w, CONTENDED);
    while (c !== FREE) {
      Atomics.wait(a, w, CONTENDED);
      c = Atomics.exchange(a, w, CONTENDED);
    }
  }

  release(): void {
    // 1 → 0: nobody waits. 2 → 1 means there may be sleepers: free it and wake one.
    if (Atomics.sub(this.i32, this.word, 1) !== HELD) {
      Atomics.store(this.i32, this.word, FREE);
      Atomics.notify(this.i32, this.word, 1);
    }
  }

  /** Runs `fn` with the lock held. */
  with<R>(fn: () => R): R {
    this.acquire();
    try {
      return fn();
    } finally {
      this.release();
    }
  }
}
