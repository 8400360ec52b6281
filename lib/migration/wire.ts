/**
 * QEMU's savevm wire constants (migration/savevm.c, migration/ram.c, migration/migration.h).
 * Every multi-byte integer on the wire is big-endian.
 */

export const QEMU_VM_FILE_MAGIC = 0x5145564d; // "QEVM"
export const QEMU_VM_FILE_VERSION_COMPAT = 0x00000002;
export const QEMU_VM_FILE_VERSION = 0x00000003;

export const QEMU_VM_EOF = 0x00;
export const QEMU_VM_SECTION_START = 0x01;
export const QEMU_VM_SECTION_PART = 0x02;
export const QEMU_VM_SECTION_END = 0x03;
export const QEMU_VM_SECTION_FULL = 0x04;
export const QEMU_VM_SUBSECTION = 0x05;
export const QEMU_VM_VMDESCRIPTION = 0x06;
export const QEMU_VM_CONFIGURATION = 0x07;
export const QEMU_VM_COMMAND = 0x08;
export const QEMU_VM_SECTION_FOOTER = 0x7e;

export const SECTION_TYPE_NAMES: Record<number, string> = {
  [QEMU_VM_EOF]: 'EOF',
  [QEMU_VM_SECTION_START]: 'SECTION_START',
  [QEMU_VM_SECTION_PART]: 'SECTION_PART',
  [QEMU_VM_SECTION_END]: 'SECTION_END',
  [QEMU_VM_SECTION_FULL]: 'SECTION_FULL',
  [QEMU_VM_COMMAND]: 'COMMAND',
};

/** QEMU_VM_COMMAND numbers (enum qemu_vm_cmd). */
export const MIG_CMD = {
  INVALID: 0,
  OPEN_RETURN_PATH: 1,
  PING: 2,
  POSTCOPY_ADVISE: 3,
  POSTCOPY_LISTEN: 4,
  POSTCOPY_RUN: 5,
  POSTCOPY_RAM_DISCARD: 6,
  PACKAGED: 7,
  ENABLE_COLO: 8,
  POSTCOPY_RESUME: 9,
  RECV_BITMAP: 10,
  SWITCHOVER_START: 11,
  MAX: 12,
} as const;

export const MIG_CMD_NAMES = Object.fromEntries(Object.entries(MIG_CMD).map(([k, v]) => [v, k])) as Record<number, string>;

/** Fixed payload lengths (-1 = variable), as QEMU's mig_cmd_args table. */
export const MIG_CMD_LEN: Record<number, number> = {
  [MIG_CMD.OPEN_RETURN_PATH]: 0,
  [MIG_CMD.PING]: 4,
  [MIG_CMD.POSTCOPY_ADVISE]: -1,
  [MIG_CMD.POSTCOPY_LISTEN]: 0,
  [MIG_CMD.POSTCOPY_RUN]: 0,
  [MIG_CMD.POSTCOPY_RAM_DISCARD]: -1,
  [MIG_CMD.PACKAGED]: 4,
  [MIG_CMD.ENABLE_COLO]: 0,
  [MIG_CMD.POSTCOPY_RESUME]: 0,
  [MIG_CMD.RECV_BITMAP]: -1,
  [MIG_CMD.SWITCHOVER_START]: 0,
};

/** Return-path message types (enum mig_rp_message_type). */
export const MIG_RP_MSG = {
  INVALID: 0,
  SHUT: 1,
  PONG: 2,
  REQ_PAGES_ID: 3,
  REQ_PAGES: 4,
  RECV_BITMAP: 5,
  RESUME_ACK: 6,
  SWITCHOVER_ACK: 7,
  MAX: 8,
} as const;

export const MIG_RP_MSG_LEN: Record<number, number> = {
  [MIG_RP_MSG.SHUT]: 4,
  [MIG_RP_MSG.PONG]: 4,
  [MIG_RP_MSG.REQ_PAGES_ID]: -1,
  [MIG_RP_MSG.REQ_PAGES]: 12,
  [MIG_RP_MSG.RECV_BITMAP]: -1,
  [MIG_RP_MSG.RESUME_ACK]: 4,
  [MIG_RP_MSG.SWITCHOVER_ACK]: 0,
};

/** RAM record flags, in the low bits of each record's be64 (migration/ram.c). */
export const RAM_SAVE_FLAG = {
  FULL: 0x01,
  ZERO: 0x02,
  MEM_SIZE: 0x04,
  PAGE: 0x08,
  EOS: 0x10,
  CONTINUE: 0x20,
  XBZRLE: 0x40,
  HOOK: 0x80,
  COMPRESS_PAGE: 0x100,
  MULTIFD_FLUSH: 0x200,
} as const;

/** The RAM section's version: QEMU insists on exactly 4. */
export const RAM_SECTION_VERSION = 4;
export const RAM_IDSTR = 'ram';
