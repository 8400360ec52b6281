/**
 * Kernel images: ELF64 (RISC-V, little-endian) or a raw binary, as QEMU's `-kernel` takes them.
 * The result is a list of blobs with physical addresses; the board copies them into RAM at
 * boot and again on every reset (QEMU keeps them as ROM blobs for the same reason).
 *
 *   ELF64 header (64 bytes, little-endian):
 *     0  e_ident  7f 'E' 'L' 'F', class 2 (64-bit), data 1 (LE), version 1
 *    18  e_machine u16 (243 = EM_RISCV)     24  e_entry u64
 *    32  e_phoff u64   54 e_phentsize u16   56  e_phnum u16
 *   program header (56 bytes): p_type u32 @0 (1 = PT_LOAD), p_offset u64 @8,
 *     p_paddr u64 @24, p_filesz u64 @32, p_memsz u64 @40
 */

export interface KernelBlob {
  /** Guest physical address. */
  readonly addr: number;
  readonly data: Uint8Array;
  /** Bytes to occupy; beyond data.length they are zero (.bss). */
  readonly memSize: number;
}

export interface KernelImage {
  readonly entry: number;
  readonly blobs: readonly KernelBlob[];
  readonly format: 'elf' | 'raw';
}

const EM_RISCV = 243;
const PT_LOAD = 1;

export class KernelLoadError extends Error {
  readonly code = 'EKERNEL';
}

function u64(b: Buffer, off: number): number {
  const v = b.readBigUInt64LE(off);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new KernelLoadError(`ELF value at ${off} out of range`);
  return Number(v);
}

export function isElf(b: Uint8Array): boolean {
  return b.length >= 4 && b[0] === 0x7f && b[1] === 0x45 && b[2] === 0x4c && b[3] === 0x46;
}

export function parseElf(image: Uint8Array): KernelImage {
  const b = Buffer.from(image.buffer, image.byteOffset, image.byteLength);
  if (b.length < 64 || !isElf(b)) throw new KernelLoadError('not an ELF file');
  if (b[4] !== 2) throw new KernelLoadError('not a 64-bit ELF (class must be ELFCLASS64)');
  if (b[5] !== 1) throw new KernelLoadError('not a little-endian ELF');
  if (b.readUInt16LE(18) !== EM_RISCV) throw new KernelLoadError(`ELF machine ${b.readUInt16LE(18)} is not RISC-V`);
  const entry = u64(b, 24);
  const phoff = u64(b, 32);
  const phentsize = b.readUInt16LE(54);
  const phnum = b.readUInt16LE(56);
  if (phentsize < 56 || phoff + phnum * phentsize > b.length) throw new KernelLoadError('ELF program headers out of file');
  const blobs: KernelBlob[] = [];
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize;
    if (b.readUInt32LE(ph) !== PT_LOAD) continue;
    const offset = u64(b, ph + 8);
    const paddr = u64(b, ph + 24);
    const filesz = u64(b, ph + 32);
    const memsz = u64(b, ph + 40);
    if (memsz === 0) continue;
    if (filesz > memsz || offset + filesz > b.length) throw new KernelLoadError(`ELF segment ${i} exceeds the file`);
    blobs.push({ addr: paddr, data: new Uint8Array(b.subarray(offset, offset + filesz)), memSize: memsz });
  }
  if (blobs.length === 0) throw new KernelLoadError('ELF has no loadable segments');
  return { entry, blobs, format: 'elf' };
}

/** QEMU loads a non-ELF `-kernel` as a raw image at the start of RAM and enters it there. */
export function loadKernel(image: Uint8Array, ramBase: number): KernelImage {
  if (isElf(image)) return parseElf(image);
  if (image.length === 0) throw new KernelLoadError('kernel image is empty');
  return { entry: ramBase, blobs: [{ addr: ramBase, data: image, memSize: image.length }], format: 'raw' };
}
