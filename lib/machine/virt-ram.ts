/**
 * The board's RAM blocks: main RAM at 0x8000_0000 and the mask ROM at 0x1000, each a memfd (or
 * the -object memory-backend-file's file), or, for a cpr-transfer's new process, the
 * descriptors the old one handed over, looked up by memory region name (QEMU's cpr_find_fd).
 */
import { MROM_BASE, MROM_SIZE } from './boot';
import { RamBlock } from './ram';

export const RAM_BASE = 0x8000_0000;
export const RAM_BLOCK_NAME = 'riscv_virt_board.ram';
export const MROM_BLOCK_NAME = 'riscv_virt_board.mrom';

export interface BoardRamOptions {
  memSize: number;
  memPath?: string;
  hugetlb?: boolean;
  ramShared?: boolean;
  auxRamShared?: boolean;
  ramBackendId?: string;
  adoptRam?: (cprName: string) => number | undefined;
}

/** Main RAM and the mask ROM; if the ROM cannot be made, the RAM is let go again. */
export function boardRam(opts: BoardRamOptions): [RamBlock, RamBlock] {
  const ramName = opts.ramBackendId ?? RAM_BLOCK_NAME;
  const ram = RamBlock.create({
    name: RAM_BLOCK_NAME,
    cprName: ramName,
    base: RAM_BASE,
    size: opts.memSize,
    memPath: opts.memPath,
    fd: adoptedFd(opts, ramName, RAM_BLOCK_NAME, !!opts.memPath && !!opts.ramShared),
    hugetlb: opts.hugetlb,
    shared: opts.ramShared,
  });
  try {
    const mrom = RamBlock.create({
      name: MROM_BLOCK_NAME,
      base: MROM_BASE,
      size: MROM_SIZE,
      readonly: true,
      shared: opts.auxRamShared,
      fd: adoptedFd(opts, MROM_BLOCK_NAME, MROM_BLOCK_NAME, false),
    });
    return [ram, mrom];
  } catch (e) {
    ram.close();
    throw e;
  }
}

/** The descriptor a cpr-transfer handed over for a block, or undefined for a fresh one. */
function adoptedFd(opts: BoardRamOptions, cprName: string, block: string, reopened: boolean): number | undefined {
  if (!opts.adoptRam) return undefined;
  const fd = opts.adoptRam(cprName);
  // A shared file is opened again by its path, as QEMU does; anything else would come up empty.
  if (fd === undefined && !reopened) {
    throw new RangeError(`cpr-transfer: no descriptor '${cprName}' was handed over for RAM block ${block}`);
  }
  return fd;
}
