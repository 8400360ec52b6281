/**
 * Kernel ABI constants the host layer names (values from include/uapi/linux/userfaultfd.h and
 * include/uapi/linux/fs.h up to Linux 6.8; this machine's libc headers predate several).
 */

/** UFFD_FEATURE_* bits, by name without the prefix. */
export const UFFD_FEATURE = {
  PAGEFAULT_FLAG_WP: 1 << 0,
  EVENT_FORK: 1 << 1,
  EVENT_REMAP: 1 << 2,
  EVENT_REMOVE: 1 << 3,
  MISSING_HUGETLBFS: 1 << 4,
  MISSING_SHMEM: 1 << 5,
  EVENT_UNMAP: 1 << 6,
  SIGBUS: 1 << 7,
  THREAD_ID: 1 << 8,
  MINOR_HUGETLBFS: 1 << 9,
  MINOR_SHMEM: 1 << 10,
  EXACT_ADDRESS: 1 << 11,
  WP_HUGETLBFS_SHMEM: 1 << 12,
  WP_UNPOPULATED: 1 << 13,
  POISON: 1 << 14,
  WP_ASYNC: 1 << 15,
  MOVE: 1 << 16,
} as const;

/** UFFDIO_REGISTER_MODE_* */
export const UFFDIO_REGISTER_MODE = { MISSING: 1, WP: 2, MINOR: 4 } as const;

/** Per-ioctl mode bits. */
export const UFFDIO_COPY_MODE_DONTWAKE = 1;
export const UFFDIO_COPY_MODE_WP = 2;
export const UFFDIO_ZEROPAGE_MODE_DONTWAKE = 1;
export const UFFDIO_WRITEPROTECT_MODE_WP = 1;
export const UFFDIO_WRITEPROTECT_MODE_DONTWAKE = 2;
export const UFFDIO_CONTINUE_MODE_DONTWAKE = 1;
export const UFFDIO_CONTINUE_MODE_WP = 2;

/** userfaultfd(2) flag for unprivileged users (faults from kernel code are not reported). */
export const UFFD_USER_MODE_ONLY = 1;

/** Bit numbers (_UFFDIO_*) in the ioctl masks returned by UFFDIO_API and UFFDIO_REGISTER. */
export const UFFDIO_IOCTL_BIT = {
  REGISTER: 0x00,
  UNREGISTER: 0x01,
  WAKE: 0x02,
  COPY: 0x03,
  ZEROPAGE: 0x04,
  MOVE: 0x05,
  WRITEPROTECT: 0x06,
  CONTINUE: 0x07,
  POISON: 0x08,
  API: 0x3f,
} as const;

/** uffd_msg.event */
export const UFFD_EVENT = { PAGEFAULT: 0x12, FORK: 0x13, REMAP: 0x14, REMOVE: 0x15, UNMAP: 0x16 } as const;

/** uffd_msg.arg.pagefault.flags */
export const UFFD_PAGEFAULT_FLAG_WRITE = 1;
export const UFFD_PAGEFAULT_FLAG_WP = 2;
export const UFFD_PAGEFAULT_FLAG_MINOR = 4;

/** sizeof(struct uffd_msg) */
export const UFFD_MSG_SIZE = 32;

/** PAGEMAP_SCAN page categories (PAGE_IS_*) and flags (PM_SCAN_*). */
export const PAGE_IS = {
  WPALLOWED: 1 << 0,
  WRITTEN: 1 << 1,
  FILE: 1 << 2,
  PRESENT: 1 << 3,
  SWAPPED: 1 << 4,
  PFNZERO: 1 << 5,
  HUGE: 1 << 6,
  SOFT_DIRTY: 1 << 7,
} as const;
export const PM_SCAN_WP_MATCHING = 1 << 0;
export const PM_SCAN_CHECK_WPASYNC = 1 << 1;

/** uv_poll events. */
export const UV_READABLE = 1;
export const UV_WRITABLE = 2;

/** Socket types for the fd-passing endpoint. */
export const SOCK_STREAM = 1;
export const SOCK_SEQPACKET = 5;

/** The base page size on x86-64 and riscv64. */
export const HOST_PAGE_SIZE = 4096;
