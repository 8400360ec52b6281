/**
 * userfaultfd(2) over guest RAM mappings: register ranges, resolve faults, receive events.
 *
 * Fault events arrive on the thread that called `onEvents`, from its libuv loop (uv_poll on the
 * uffd), in batches: one read(2) takes every pending uffd_msg. The handler must never touch a
 * page that may be missing: it runs on the loop that resolves faults, and would deadlock it.
 * A worker blocked on an unresolved fault cannot be terminated: resolve, unregister or close
 * first.
 *
 *   vCPU worker                          main thread (this class)
 *   load from missing page ─┐
 *     kernel queues uffd_msg│            uv_poll: uffd readable → read batch → handler
 *     thread sleeps         │            handler: copy(dst, page) → UFFDIO_COPY wakes it
 *   load completes ◄────────┘
 */
import { native } from './addon';
import { HostError } from './errors';
import {
  UFFD_EVENT,
  UFFD_FEATURE,
  UFFD_MSG_SIZE,
  UFFD_PAGEFAULT_FLAG_MINOR,
  UFFD_PAGEFAULT_FLAG_WP,
  UFFD_PAGEFAULT_FLAG_WRITE,
  UFFDIO_CONTINUE_MODE_DONTWAKE,
  UFFDIO_CONTINUE_MODE_WP,
  UFFDIO_COPY_MODE_DONTWAKE,
  UFFDIO_COPY_MODE_WP,
  UFFDIO_IOCTL_BIT,
  UFFDIO_REGISTER_MODE,
  UFFDIO_WRITEPROTECT_MODE_DONTWAKE,
  UFFDIO_ZEROPAGE_MODE_DONTWAKE,
  UFFDIO_WRITEPROTECT_MODE_WP,
  UV_READABLE,
} from './linux';
import type { NativeFdWatcher } from './native';

export type UffdFeature = keyof typeof UFFD_FEATURE;
export type UffdIoctl = keyof typeof UFFDIO_IOCTL_BIT;
export type UffdMode = 'missing' | 'wp' | 'minor';

/** What the kernel offers (probe) or granted (an open uffd). */
export interface UffdFeatureSet {
  readonly features: ReadonlySet<UffdFeature>;
  readonly ioctls: ReadonlySet<UffdIoctl>;
}

/** A page fault: `tid` is the faulting thread's kernel id when THREAD_ID was granted, else 0. */
export interface UffdPagefault {
  kind: 'pagefault';
  address: number;
  flags: number;
  write: boolean;
  wp: boolean;
  minor: boolean;
  tid: number;
}

/** Non-cooperative events, delivered only when their EVENT_* feature was requested. */
export type UffdEvent =
  | UffdPagefault
  | { kind: 'fork'; ufd: number }
  | { kind: 'remap'; from: number; to: number; len: number }
  | { kind: 'remove' | 'unmap'; start: number; end: number }
  | { kind: 'unknown'; event: number };

export interface ResolveOptions {
  /** Map the page(s) without waking the faulting threads (wake later with `wake`). */
  dontWake?: boolean;
  /** Map them write-protected (COPY/CONTINUE with MODE_WP). */
  wp?: boolean;
}

function featureNames(mask: number): Set<UffdFeature> {
  const out = new Set<UffdFeature>();
  for (const [name, bit] of Object.entries(UFFD_FEATURE)) if (mask & bit) out.add(name as UffdFeature);
  return out;
}

function ioctlNames(mask: bigint): Set<UffdIoctl> {
  const out = new Set<UffdIoctl>();
  for (const [name, bit] of Object.entries(UFFDIO_IOCTL_BIT)) {
    if ((mask >> BigInt(bit)) & 1n) out.add(name as UffdIoctl);
  }
  return out;
}

function modeBits(modes: readonly UffdMode[]): number {
  let bits = 0;
  for (const m of modes) bits |= UFFDIO_REGISTER_MODE[m.toUpperCase() as 'MISSING' | 'WP' | 'MINOR'];
  return bits;
}

// struct uffd_msg (32 bytes): u8 event @0; arg @8. pagefault: u64 flags @8, u64 address @16,
// u32 ptid @24. fork: u32 ufd @8. remap: u64 from @8, to @16, len @24. remove/unmap: u64
// start @8, end @16.
function decode(view: DataView, at: number): UffdEvent {
  const event = view.getUint8(at);
  // Two 32-bit halves: exact below 2^53 and cheaper than BigInt on this hot path.
  const u64 = (off: number) => view.getUint32(at + off, true) + view.getUint32(at + off + 4, true) * 2 ** 32;
  switch (event) {
    case UFFD_EVENT.PAGEFAULT: {
      const flags = u64(8);
      return {
        kind: 'pagefault',
        address: u64(16),
        flags,
        write: (flags & UFFD_PAGEFAULT_FLAG_WRITE) !== 0,
        wp: (flags & UFFD_PAGEFAULT_FLAG_WP) !== 0,
        minor: (flags & UFFD_PAGEFAULT_FLAG_MINOR) !== 0,
        tid: view.getUint32(at + 24, true),
      };
    }
    case UFFD_EVENT.FORK:
      return { kind: 'fork', ufd: view.getUint32(at + 8, true) };
    case UFFD_EVENT.REMAP:
      return { kind: 'remap', from: u64(8), to: u64(16), len: u64(24) };
    case UFFD_EVENT.REMOVE:
      return { kind: 'remove', start: u64(8), end: u64(16) };
    case UFFD_EVENT.UNMAP:
      return { kind: 'unmap', start: u64(8), end: u64(16) };
    default:
      return { kind: 'unknown', event };
  }
}

const BATCH = 64;
const EBUSY = 16;
const EINVAL = 22;

export class Userfaultfd {
  private readonly msgs = new Uint8Array(BATCH * UFFD_MSG_SIZE);
  private readonly view = new DataView(this.msgs.buffer);
  private watcher: NativeFdWatcher | undefined;
  private closed = false;
  /** Registered [start, end) ranges, sorted. The kernel lets the same uffd register a range
   * again and silently replaces its modes (MISSING → WP would lose postcopy faults); we refuse
   * an overlap with EBUSY, the code the kernel gives when another uffd holds the range. */
  private ranges: [number, number][] = [];

  private constructor(
    readonly fd: number,
    /** Features granted by UFFDIO_API. */
    readonly features: ReadonlySet<UffdFeature>,
  ) {}

  /** Wraps a uffd opened elsewhere in this process (a worker thread serving faults on the
   * main thread's uffd). `features` are the ones its opener was granted. Closing the wrapper
   * closes the fd: close only the one that owns it. */
  static adopt(fd: number, features: readonly UffdFeature[] = []): Userfaultfd {
    return new Userfaultfd(fd, new Set(features));
  }

  /** What this kernel offers, asked on a throwaway uffd. */
  static probe(): UffdFeatureSet {
    const r = native.uffdProbe();
    return { features: featureNames(r.features), ioctls: ioctlNames(r.ioctls) };
  }

  /** Opens a non-blocking uffd and enables `features` (EINVAL if one is not offered). */
  static open(features: readonly UffdFeature[] = [], flags = 0): Userfaultfd {
    const fd = native.uffdOpen(flags);
    try {
      let mask = 0;
      for (const f of features) {
        if (!(f in UFFD_FEATURE)) {
          throw new HostError(`EINVAL: unknown userfaultfd feature ${f}`, EINVAL, 'EINVAL', 'ioctl(UFFDIO_API)');
        }
        mask |= UFFD_FEATURE[f];
      }
      native.uffdApi(fd, mask);
      return new Userfaultfd(fd, new Set(features));
    } catch (e) {
      native.close(fd);
      throw e;
    }
  }

  /** UFFDIO_REGISTER [addr, addr+len) in the given modes → the ioctls the range supports. */
  register(addr: number, len: number, modes: readonly UffdMode[]): ReadonlySet<UffdIoctl> {
    if (this.ranges.some(([s, e]) => addr < e && s < addr + len)) {
      throw new HostError('EBUSY: range already registered on this userfaultfd', EBUSY, 'EBUSY', 'ioctl(UFFDIO_REGISTER)');
    }
    const ioctls = ioctlNames(native.uffdRegister(this.fd, addr, len, modeBits(modes)));
    this.ranges.push([addr, addr + len]);
    this.ranges.sort((a, b) => a[0] - b[0]);
    return ioctls;
  }

  /** Unregisters (any part of registered ranges) and wakes threads blocked on faults there:
   * the kernel wakes them itself only for MISSING ranges (fs/userfaultfd.c), so MINOR and WP
   * waiters get an explicit UFFDIO_WAKE. Woken threads retry the access unregistered. */
  unregister(addr: number, len: number): void {
    native.uffdUnregister(this.fd, addr, len);
    native.uffdWake(this.fd, addr, len);
    const end = addr + len;
    this.ranges = this.ranges.flatMap(([s, e]): [number, number][] => {
      if (e <= addr || end <= s) return [[s, e]];
      const keep: [number, number][] = [];
      if (s < addr) keep.push([s, addr]);
      if (end < e) keep.push([end, e]);
      return keep;
    });
  }

  /** UFFDIO_COPY `len` bytes from a typed array or a live-mapping address → bytes copied. */
  copy(dst: number, src: ArrayBufferView | number, len: number, opts: ResolveOptions = {}): number {
    const mode = (opts.dontWake ? UFFDIO_COPY_MODE_DONTWAKE : 0) | (opts.wp ? UFFDIO_COPY_MODE_WP : 0);
    return native.uffdCopy(this.fd, dst, src, len, mode);
  }

  /** UFFDIO_ZEROPAGE → bytes mapped. */
  zeropage(dst: number, len: number, opts: ResolveOptions = {}): number {
    return native.uffdZeropage(this.fd, dst, len, opts.dontWake ? UFFDIO_ZEROPAGE_MODE_DONTWAKE : 0);
  }

  /** UFFDIO_CONTINUE: map pages already in the page cache (MINOR faults) → bytes mapped. */
  continue(dst: number, len: number, opts: ResolveOptions = {}): number {
    const mode = (opts.dontWake ? UFFDIO_CONTINUE_MODE_DONTWAKE : 0) | (opts.wp ? UFFDIO_CONTINUE_MODE_WP : 0);
    return native.uffdContinue(this.fd, dst, len, mode);
  }

  /** UFFDIO_WAKE threads waiting on faults in the range. */
  wake(addr: number, len: number): void {
    native.uffdWake(this.fd, addr, len);
  }

  /** UFFDIO_WRITEPROTECT: set (protect=true) or clear write protection. */
  writeProtect(addr: number, len: number, protect: boolean, opts: ResolveOptions = {}): void {
    const mode =
      (protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0) | (opts.dontWake ? UFFDIO_WRITEPROTECT_MODE_DONTWAKE : 0);
    native.uffdWriteProtect(this.fd, addr, len, mode);
  }

  /** Reads every pending message now (empty when none). */
  readEvents(): UffdEvent[] {
    const out: UffdEvent[] = [];
    for (;;) {
      const n = native.uffdRead(this.fd, this.msgs);
      for (let i = 0; i < n; i++) out.push(decode(this.view, i * UFFD_MSG_SIZE));
      if (n < BATCH) return out;
    }
  }

  /** Delivers events in batches on this thread's loop until `stopEvents()` or `close()`. */
  onEvents(handler: (events: UffdEvent[]) => void): void {
    this.stopEvents();
    this.watcher = new native.FdWatcher(this.fd, () => {
      const events = this.readEvents();
      if (events.length > 0) handler(events);
    });
    this.watcher.start(UV_READABLE);
  }

  stopEvents(): void {
    this.watcher?.close();
    this.watcher = undefined;
  }

  /** Stops events and closes the fd. Ranges still registered are released by the kernel, and
   * threads blocked on them are woken (their access then proceeds as if never registered). */
  close(): void {
    if (this.closed) return;
    this.stopEvents();
    native.close(this.fd);
    this.closed = true;
  }
}

/** The calling thread's kernel tid: a vCPU worker reports it so faults map to vCPUs. */
export function gettid(): number {
  return native.gettid();
}
