/**
 * The native addon's whole surface, typed in one place (node-pty's native.d.ts pattern). The C++
 * side (native/, one file per mechanism) wraps system calls and ioctls and nothing more: it
 * takes numbers, strings and typed arrays, and every failure is thrown as a HostError carrying
 * `errno`, `code` and `syscall`. Addresses and lengths are JS numbers (user addresses on x86-64
 * are below 2^47, exact in a double). Wrappers with names and policy live beside this file.
 */

/** new HostError(message, errno, code, syscall): what the addon throws (see errors.ts). */
export type NativeErrorClass = new (
  message: string,
  errno: number,
  code: string,
  syscall: string,
) => Error;

/** Result of UFFDIO_API: granted (or, for a probe, offered) features and the API ioctls. */
export interface UffdApiResult {
  features: number;
  /** u64 ioctl mask; bit 63 is _UFFDIO_API, so it does not fit a double. */
  ioctls: bigint;
}

/** One PAGEMAP_SCAN call: regions written to `out` and where the walk stopped. */
export interface PagemapScanResult {
  count: number;
  walkEnd: number;
}

/** One recvmsg(2): payload length (0 = end of stream), passed fds, truncation flag. */
export interface RecvMsgResult {
  bytes: number;
  fds: number[];
  truncated: boolean;
}

/** tcpListen's result: the listening fd and the numeric address it is bound to. */
export interface TcpListenResult {
  fd: number;
  /** Numeric host ("127.0.0.1", "::"); the port the kernel chose when 0 was asked. */
  host: string;
  port: number;
}

/** uv_poll over one fd on the creating thread's loop. Close it before closing the fd. */
export interface NativeFdWatcher {
  /** Watch for UV_READABLE (1) | UV_WRITABLE (2); calling again replaces the interest set. */
  start(events: number): void;
  stop(): void;
  close(): void;
}

export interface NativeFdWatcherClass {
  new (fd: number, callback: (events: number, status: number) => void): NativeFdWatcher;
}

export interface NativeAddon {
  /** Per environment (thread): errors are built with this class from now on. */
  setErrorClass(cls: NativeErrorClass): void;

  // ── memfd RAM (native/memfd.cc) ──────────────────────────────────────────────────────────
  /** memfd_create(name, MFD_CLOEXEC [| MFD_HUGETLB]) + ftruncate(size) → fd. */
  memfdCreate(name: string, size: number, hugetlb?: boolean): number;
  /** fstat(fd).st_size. */
  fdSize(fd: number): number;
  /** mmap(length, RW, MAP_SHARED, fd, offset) → address; recorded as a live mapping. */
  mapShared(fd: number, offset: number, length: number): number;
  /** munmap of a live mapping by its start → its length; EINVAL when not live (double unmap). */
  unmap(addr: number): number;
  /** fallocate(fd, PUNCH_HOLE | KEEP_SIZE, offset, length). */
  punchHole(fd: number, offset: number, length: number): void;
  /** SO_SNDBUF/SO_RCVBUF (0 = unchanged); returns what the kernel granted. */
  setSocketBuffers(fd: number, sndbuf: number, rcvbuf: number): { sndbuf: number; rcvbuf: number };
  /** lseek(SEEK_DATA), or SEEK_HOLE with `hole`: next data (hole) offset ≥ offset; -1 at ENXIO. */
  seekData(fd: number, offset: number, hole?: boolean): number;
  /** madvise(MADV_DONTNEED) inside a live mapping (EFAULT outside). */
  dontNeed(addr: number, length: number): void;
  /** madvise(MADV_POPULATE_WRITE) inside a live mapping. */
  populateWrite(addr: number, length: number): void;
  /** External ArrayBuffer over [addr+offset, +length), no finalizer. ERANGE > 4 GiB, EFAULT outside. */
  window(addr: number, offset: number, length: number): ArrayBuffer;
  /** The live mapping holding addr, or null. */
  findMapping(addr: number): { start: number; length: number } | null;

  // ── userfaultfd (native/userfaultfd.cc) ──────────────────────────────────────────────────
  /** userfaultfd(flags | O_CLOEXEC | O_NONBLOCK), else /dev/userfaultfd → fd. */
  uffdOpen(flags?: number): number;
  /** UFFDIO_API with the requested features (once per fd). */
  uffdApi(fd: number, features: number): UffdApiResult;
  /** UFFDIO_API on a throwaway fd: what the kernel offers. */
  uffdProbe(): UffdApiResult;
  /** UFFDIO_REGISTER → the range's ioctl mask. Range must be inside a live mapping. */
  uffdRegister(fd: number, addr: number, len: number, mode: number): bigint;
  uffdUnregister(fd: number, addr: number, len: number): void;
  /** UFFDIO_COPY from a typed array or from an address inside a live mapping → bytes copied. */
  uffdCopy(fd: number, dst: number, src: ArrayBufferView | number, len: number, mode?: number): number;
  uffdZeropage(fd: number, dst: number, len: number, mode?: number): number;
  uffdContinue(fd: number, dst: number, len: number, mode?: number): number;
  uffdWake(fd: number, addr: number, len: number): void;
  uffdWriteProtect(fd: number, addr: number, len: number, mode: number): void;
  /** read(2) of 32-byte uffd_msg records into buf → count; 0 when none pending. */
  uffdRead(fd: number, buf: Uint8Array): number;
  /** The calling thread's kernel tid (what UFFD_FEATURE_THREAD_ID reports). */
  gettid(): number;

  // ── readiness (native/fd-watcher.cc) ─────────────────────────────────────────────────────
  FdWatcher: NativeFdWatcherClass;

  // ── fd passing over unix sockets (native/fdpass.cc) ──────────────────────────────────────
  /** socketpair(AF_UNIX, type) → [fd, fd]; type SOCK_STREAM (1) or SOCK_SEQPACKET (5). */
  socketPair(type?: number): [number, number];
  listen(path: string, type?: number, backlog?: number): number;
  /** accept4 → fd, or -1 when no connection is pending. */
  accept(fd: number): number;
  connect(path: string, type?: number): number;
  /** sendmsg with SCM_RIGHTS → bytes sent, or -1 when the socket is full. */
  sendMsg(fd: number, payload: Uint8Array, fds?: number[]): number;
  /** recvmsg → result, or null when nothing is pending. */
  recvMsg(fd: number, buf: Uint8Array): RecvMsgResult | null;
  /** shutdown(SHUT_WR): the peer reads end of stream; this side still receives. Any socket. */
  shutdownWrite(fd: number): void;
  /** shutdown(SHUT_RDWR): the connection ends for every descriptor of it, dups included. */
  shutdown(fd: number): void;
  close(fd: number): void;

  // ── tcp sockets, numeric addresses (native/socket.cc) ────────────────────────────────────
  /** socket + non-blocking connect → fd, the attempt under way: wait for writable, then
   * socketError(fd). Numeric host only (EINVAL otherwise); resolve names with dns.lookup. */
  tcpConnect(host: string, port: number): number;
  /** socket + SO_REUSEADDR + bind + listen; '' listens on every address ("::" dual-stack,
   * else 0.0.0.0). Accept with accept(fd). */
  tcpListen(host: string, port: number, backlog?: number): TcpListenResult;
  /** getsockopt SO_ERROR (clears it): 0, or the errno a non-blocking connect ended with. */
  socketError(fd: number): number;
  /** getsockopt SO_TYPE: SOCK_STREAM 1, SOCK_DGRAM 2, SOCK_SEQPACKET 5. */
  socketType(fd: number): number;
  /** TCP_NODELAY on or off. */
  setNoDelay(fd: number, on: boolean): void;

  // ── byte I/O (native/fd-io.cc) ───────────────────────────────────────────────────────────
  /** read(2) into buf[off, off+len) → bytes; 0 at end of stream; -1 when nothing is available. */
  read(fd: number, buf: Uint8Array, off: number, len: number): number;
  /** writev(2) of chunks[index] from byte `offset`, then the following chunks (≤ IOV_MAX) →
   * bytes written (possibly fewer than offered), or -1 when the descriptor is full. */
  writev(fd: number, chunks: readonly Uint8Array[], index?: number, offset?: number): number;
  /** fcntl(F_DUPFD_CLOEXEC) → a new descriptor for the same open file. */
  dup(fd: number): number;
  /** recv(MSG_PEEK | MSG_DONTWAIT) into buf[off, off+len): bytes waiting, left on the socket;
   * 0 at end of stream; -1 when nothing is there yet. */
  peek(fd: number, buf: Uint8Array, off: number, len: number): number;

  // ── whole messages from several threads (native/locked-write.cc) ─────────────────────────
  /** Takes the process-wide lock of this socket (keyed by the socket, so dup'd fds share it),
   * writes all of buf (poll(POLLOUT) while full), releases → buf.length. ETIMEDOUT after
   * timeoutMs, lock wait included; part of buf may then have been written. Blocks the
   * calling thread meanwhile. */
  lockedWriteAll(fd: number, buf: Uint8Array, timeoutMs: number): number;

  // ── guest pages to and from sockets (native/page-io.cc) ──────────────────────────────────
  // `base, bytes` is a RAM block: one live mapping's range (EFAULT otherwise); page lists are
  // Int32Arrays of page indices inside it (ERANGE otherwise).
  /** A run of QEMU RAM records, one per page of pages[0, count): with detectZero, ZERO for a
   * page whose `holes` bit is set or that is all zeros; PAGE (read from RAM) otherwise. Holes
   * bits of the run are cleared. The first record names the block when `name` is given, the rest are
   * CONTINUE. fd ≥ 0: non-blocking sends straight from RAM until the socket is full, the rest
   * copied to scratch[out[3], +out[4]); fd = -1: everything copied there. out = [normal, zero,
   * bytes sent, spill offset, spill bytes]. Returns the records' bytes. scratch must hold
   * roundUp64(count×9 + 1 + name) + count×4105 + 1 + name bytes. */
  ramSendRecords(
    fd: number, base: number, bytes: number, pages: Int32Array, count: number, detectZero: boolean,
    name: Uint8Array | null, holes: Uint32Array | null, scratch: Uint8Array, out: Float64Array,
  ): number;
  /** Places the whole records at buf[off, end) that are exactly PAGE|CONTINUE or
   * ZERO|CONTINUE (fill byte 0) with an offset inside the block; stops at anything else.
   * Returns the offset after the last one placed. out = [normal, zero, highest data offset
   * or -1]. A data page clears its `holes` bit; a zero page with its bit set is not touched. */
  ramLoadRecords(buf: Uint8Array, off: number, end: number, base: number, bytes: number, holes: Uint32Array | null, out: Float64Array): number;
  /** Postcopy's ramLoadRecords: the same records placed through userfaultfd `uffd` (copy:
   * UFFDIO_COPY / ZEROPAGE when `zeropage`; minor: the claimed bit, a write through the alias
   * mapping [aliasBase, +aliasBytes), UFFDIO_CONTINUE), each page's received bit set once it
   * is in place; placed pages whose requested bit is set are listed in req (the call stops
   * when req is full, and after maxRecords). out = [normal, zero, placed (EEXIST not
   * counted), req entries]. */
  ramPlaceRecords(
    buf: Uint8Array, off: number, end: number, uffd: number, base: number, bytes: number, aliasBase: number, aliasBytes: number,
    minor: boolean, zeropage: boolean, received: Int32Array, requested: Int32Array, claimed: Int32Array | null, out: Float64Array, req: Int32Array, maxRecords: number,
  ): number;
  /** isZero[k] = whether page pages[from+k] is all zeros (k < count) → how many are. */
  zeroScan(base: number, bytes: number, pages: Int32Array, from: number, count: number, isZero: Uint8Array): number;
  /** Blocking: head[0, headLen) then the pages, straight from RAM, poll(2) while the socket is
   * full → bytes sent. Shutting the socket down from another thread ends the wait (EPIPE). */
  sendPages(fd: number, head: Uint8Array, headLen: number, base: number, bytes: number, pages: Int32Array, count: number): number;
  /** Blocking: exactly len bytes into buf[off, off+len) → len, or fewer when the stream ended. */
  readFull(fd: number, buf: Uint8Array, off: number, len: number): number;
  /** Blocking: count pages straight into RAM, in list order → bytes; fewer at end of stream. */
  recvPages(fd: number, base: number, bytes: number, pages: Int32Array, count: number): number;
  /** Clears each listed page that is not already all zeros → pages written. */
  zeroPages(base: number, bytes: number, pages: Int32Array, count: number): number;

  // ── threads (native/thread.cc) ───────────────────────────────────────────────────────────
  /** prctl(PR_SET_NAME): the calling thread's name as /proc, top and perf show it (≤ 15 bytes). */
  setThreadName(name: string): void;

  // ── PAGEMAP_SCAN (native/pagemap.cc) ─────────────────────────────────────────────────────
  pagemapOpen(): number;
  /** Fills out with [start, end, categories] triples; see native/pagemap.cc. */
  pagemapScan(
    fd: number,
    start: number,
    end: number,
    flags: number,
    categoryMask: number,
    categoryInverted: number,
    categoryAnyofMask: number,
    returnMask: number,
    maxPages: number,
    out: Float64Array,
  ): PagemapScanResult;
}
