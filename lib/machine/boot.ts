/**
 * How a `virt` hart gets from reset to the kernel, exactly as QEMU's virt does it with
 * `-bios none`: every hart starts at the mask ROM (0x1000), whose trampoline loads
 * a0 = mhartid, a1 = the device tree's address, a2 = the firmware-info struct, and jumps to the
 * kernel entry. The device tree sits near the end of RAM where QEMU puts it.
 *
 *   0x1000  auipc t0, 0          ; t0 = 0x1000
 *   0x1004  addi  a2, t0, 40     ; a2 = &fw_dyn (0x1028)
 *   0x1008  csrr  a0, mhartid
 *   0x100c  ld    a1, 32(t0)     ; a1 = fdt address
 *   0x1010  ld    t0, 24(t0)     ; t0 = kernel entry
 *   0x1014  jr    t0
 *   0x1018  .dword entry
 *   0x1020  .dword fdt address
 *   0x1028  fw_dynamic_info { magic "OSBI", version 2, next_addr, next_mode 1 (S), options 0,
 *           boot_hart 0 }  (six u64, OpenSBI's fw_dynamic layout)
 */

export const MROM_BASE = 0x1000;
/** QEMU's virt mask ROM is 0xf000 bytes (memmap[VIRT_MROM].size). */
export const MROM_SIZE = 0xf000;

const FW_DYNAMIC_INFO_MAGIC = 0x4942534f;
const FW_DYNAMIC_INFO_VERSION = 2;
const FW_DYNAMIC_INFO_NEXT_MODE_S = 1;

const MiB = 1024 * 1024;

/** QEMU's riscv_load_fdt: "put fdt as far as possible to avoid kernel/initrd overwriting its
 * content, but addressable by a 32-bit system": below min(end of DRAM, 3 GiB), 2 MiB aligned. */
export function fdtAddress(dramBase: number, ramSize: number, fdtSize: number): number {
  const dramEnd = dramBase + ramSize;
  const top = dramBase < 3072 * MiB ? Math.min(dramEnd, 3072 * MiB) : dramEnd;
  return Math.floor((top - fdtSize) / (2 * MiB)) * (2 * MiB);
}

export function resetVector(entry: number, fdtAddr: number): Uint8Array {
  const words = [
    0x00000297, // auipc t0, 0
    0x02828613, // addi a2, t0, 40
    0xf1402573, // csrr a0, mhartid
    0x0202b583, // ld a1, 32(t0)
    0x0182b283, // ld t0, 24(t0)
    0x00028067, // jr t0
  ];
  const out = Buffer.alloc(0x28 + 6 * 8);
  words.forEach((w, i) => out.writeUInt32LE(w, 4 * i));
  out.writeBigUInt64LE(BigInt(entry), 0x18);
  out.writeBigUInt64LE(BigInt(fdtAddr), 0x20);
  const info = [FW_DYNAMIC_INFO_MAGIC, FW_DYNAMIC_INFO_VERSION, entry, FW_DYNAMIC_INFO_NEXT_MODE_S, 0, 0];
  info.forEach((v, i) => out.writeBigUInt64LE(BigInt(v), 0x28 + 8 * i));
  return out;
}
