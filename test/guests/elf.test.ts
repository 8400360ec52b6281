/**
 * The committed guest ELFs, checked without any RISC-V tools: they load where QEMU's `virt`
 * board expects, start at their lowest load address (QEMU jumps there, not to e_entry), have
 * the info block at 0x8000_1000, and contain only RV64IMA + Zicsr + Zifencei encodings (no C,
 * no F/D) in executable sections.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

const GUESTS = path.resolve(__dirname, '../../guests');
const NAMES = ['hello', 'ab', 'dirty', 'idle', 'smp-counter', 'trap', 'echo', 'stride'];

const SHF_EXECINSTR = 0x4;
const PT_LOAD = 1;
const EM_RISCV = 243;

interface Section { name: string; addr: number; offset: number; size: number; flags: number; type: number }
interface Segment { type: number; offset: number; vaddr: number; filesz: number; memsz: number }

function parseElf(buf: Buffer) {
  if (buf.readUInt32BE(0) !== 0x7f454c46) throw new Error('not an ELF');
  if (buf[4] !== 2 || buf[5] !== 1) throw new Error('not ELF64 little-endian');
  const machine = buf.readUInt16LE(18);
  const entry = Number(buf.readBigUInt64LE(24));
  const phoff = Number(buf.readBigUInt64LE(32));
  const shoff = Number(buf.readBigUInt64LE(40));
  const flags = buf.readUInt32LE(48);
  const phentsize = buf.readUInt16LE(54), phnum = buf.readUInt16LE(56);
  const shentsize = buf.readUInt16LE(58), shnum = buf.readUInt16LE(60), shstrndx = buf.readUInt16LE(62);
  const segments: Segment[] = [];
  for (let i = 0; i < phnum; i++) {
    const o = phoff + i * phentsize;
    segments.push({
      type: buf.readUInt32LE(o),
      offset: Number(buf.readBigUInt64LE(o + 8)),
      vaddr: Number(buf.readBigUInt64LE(o + 16)),
      filesz: Number(buf.readBigUInt64LE(o + 32)),
      memsz: Number(buf.readBigUInt64LE(o + 40)),
    });
  }
  const raw = [];
  for (let i = 0; i < shnum; i++) {
    const o = shoff + i * shentsize;
    raw.push({
      nameOff: buf.readUInt32LE(o),
      type: buf.readUInt32LE(o + 4),
      flags: Number(buf.readBigUInt64LE(o + 8)),
      addr: Number(buf.readBigUInt64LE(o + 16)),
      offset: Number(buf.readBigUInt64LE(o + 24)),
      size: Number(buf.readBigUInt64LE(o + 32)),
    });
  }
  const strtab = raw[shstrndx];
  const sections: Section[] = raw.map((s) => {
    const start = strtab.offset + s.nameOff;
    return { ...s, name: buf.toString('latin1', start, buf.indexOf(0, start)) };
  });
  return { machine, entry, flags, segments, sections };
}

/** Major opcodes of RV64I + M + A + Zicsr + Zifencei (all 32-bit encodings). */
const ALLOWED_OPCODES = new Set([
  0x03, // LOAD
  0x0f, // MISC-MEM: fence, fence.i
  0x13, // OP-IMM
  0x17, // AUIPC
  0x1b, // OP-IMM-32
  0x23, // STORE
  0x2f, // AMO
  0x33, // OP (incl. M)
  0x37, // LUI
  0x3b, // OP-32 (incl. M)
  0x63, // BRANCH
  0x67, // JALR
  0x6f, // JAL
  0x73, // SYSTEM
]);

function badInstructions(buf: Buffer, sec: Section): string[] {
  const bad: string[] = [];
  for (let off = 0; off + 4 <= sec.size; off += 4) {
    const w = buf.readUInt32LE(sec.offset + off);
    const at = (sec.addr + off).toString(16);
    if ((w & 3) !== 3) bad.push(`${at}: ${w.toString(16)} is not a 32-bit encoding (C extension?)`);
    else if (!ALLOWED_OPCODES.has(w & 0x7f)) bad.push(`${at}: ${w.toString(16)} has opcode 0x${(w & 0x7f).toString(16)}`);
    else if ((w & 0x7f) === 0x33 || (w & 0x7f) === 0x3b) {
      const funct7 = w >>> 25;
      if (funct7 !== 0 && funct7 !== 0x20 && funct7 !== 1) bad.push(`${at}: ${w.toString(16)} funct7 0x${funct7.toString(16)}`);
    }
  }
  return bad;
}

describe.each(NAMES)('guests/%s.elf', (name) => {
  const buf = fs.readFileSync(path.join(GUESTS, `${name}.elf`));
  const elf = parseElf(buf);

  it('is a RISC-V executable with the lp64 soft-float ABI and no RVC flag', () => {
    expect(elf.machine).toBe(EM_RISCV);
    expect(elf.flags & 0x1).toBe(0); // EF_RISCV_RVC
    expect(elf.flags & 0x6).toBe(0); // EF_RISCV_FLOAT_ABI_SOFT
  });

  it('starts at its lowest load address, 0x8000_0000', () => {
    const loads = elf.segments.filter((s) => s.type === PT_LOAD && s.memsz > 0);
    const lowest = Math.min(...loads.map((s) => s.vaddr));
    expect(lowest).toBe(0x80000000);
    expect(elf.entry).toBe(lowest);
  });

  it('has the info block page at 0x8000_1000', () => {
    const info = elf.sections.find((s) => s.name === '.guest_info');
    expect(info?.addr).toBe(0x80001000);
    expect(info?.size).toBe(4096);
  });

  it('has only RV64IMA + Zicsr + Zifencei instructions in executable sections', () => {
    const exec = elf.sections.filter((s) => s.flags & SHF_EXECINSTR);
    expect(exec.length).toBeGreaterThan(0);
    for (const sec of exec) expect(badInstructions(buf, sec)).toEqual([]);
  });

  it('fits its loaded image in the first MiB of RAM', () => {
    const end = Math.max(...elf.segments.filter((s) => s.type === PT_LOAD).map((s) => s.vaddr + s.memsz));
    expect(end).toBeLessThan(0x80100000);
  });
});
