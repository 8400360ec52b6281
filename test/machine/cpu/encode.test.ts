/**
 * The test encoder and the decoder. The encoder is cross-checked against the GNU assembler
 * when a RISC-V toolchain is installed (developer machines); CI has none and skips that part.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { decode, enc, liWords } from '../../../lib/machine/cpu';
import { Asm, REG, RAM_BASE, Rig } from './helpers';

/** [GNU assembler syntax, our encoding] */
const CASES: [string, number][] = [
  ['lui a0, 0x80000', enc.lui(10, 0x80000)],
  ['auipc t0, 0xfffff', enc.auipc(5, 0xfffff)],
  ['jal ra, .+2048', enc.jal(1, 2048)],
  ['jal zero, .-1048576', enc.jal(0, -1048576)],
  ['jalr ra, -2048(t1)', enc.jalr(1, 6, -2048)],
  ['beq a0, a1, .-4096', enc.beq(10, 11, -4096)],
  ['bne s0, zero, .+4094', enc.bne(8, 0, 4094)],
  ['blt t0, t1, .+8', enc.blt(5, 6, 8)],
  ['bge t0, t1, .-8', enc.bge(5, 6, -8)],
  ['bltu a2, a3, .+12', enc.bltu(12, 13, 12)],
  ['bgeu a2, a3, .+16', enc.bgeu(12, 13, 16)],
  ['lb a0, -1(sp)', enc.lb(10, 2, -1)],
  ['lh a0, 2047(sp)', enc.lh(10, 2, 2047)],
  ['lw a0, -2048(sp)', enc.lw(10, 2, -2048)],
  ['ld t6, 8(s11)', enc.ld(31, 27, 8)],
  ['lbu a0, 1(a1)', enc.lbu(10, 11, 1)],
  ['lhu a0, 2(a1)', enc.lhu(10, 11, 2)],
  ['lwu a0, 4(a1)', enc.lwu(10, 11, 4)],
  ['sb a0, -1(sp)', enc.sb(10, 2, -1)],
  ['sh a0, 2047(sp)', enc.sh(10, 2, 2047)],
  ['sw a0, -2048(sp)', enc.sw(10, 2, -2048)],
  ['sd t6, 8(s11)', enc.sd(31, 27, 8)],
  ['addi a0, a1, -2048', enc.addi(10, 11, -2048)],
  ['slti a0, a1, 5', enc.slti(10, 11, 5)],
  ['sltiu a0, a1, -1', enc.sltiu(10, 11, -1)],
  ['xori a0, a1, 0x7ff', enc.xori(10, 11, 0x7ff)],
  ['ori a0, a1, -3', enc.ori(10, 11, -3)],
  ['andi a0, a1, 255', enc.andi(10, 11, 255)],
  ['slli a0, a1, 63', enc.slli(10, 11, 63)],
  ['srli a0, a1, 33', enc.srli(10, 11, 33)],
  ['srai a0, a1, 63', enc.srai(10, 11, 63)],
  ['addiw a0, a1, -1', enc.addiw(10, 11, -1)],
  ['slliw a0, a1, 31', enc.slliw(10, 11, 31)],
  ['srliw a0, a1, 31', enc.srliw(10, 11, 31)],
  ['sraiw a0, a1, 31', enc.sraiw(10, 11, 31)],
  ...(['add', 'sub', 'sll', 'slt', 'sltu', 'xor', 'srl', 'sra', 'or', 'and', 'addw', 'subw', 'sllw', 'srlw', 'sraw',
    'mul', 'mulh', 'mulhsu', 'mulhu', 'div', 'divu', 'rem', 'remu', 'mulw', 'divw', 'divuw', 'remw', 'remuw'] as const).map(
    (op): [string, number] => [`${op} s1, s2, s3`, (enc as any)[op](9, 18, 19)],
  ),
  ['lr.w a0, (a1)', enc.lrW(10, 11)],
  ['lr.d.aq a0, (a1)', enc.lrD(10, 11, 1, 0)],
  ['sc.w a0, a2, (a1)', enc.scW(10, 12, 11)],
  ['sc.d.rl a0, a2, (a1)', enc.scD(10, 12, 11, 0, 1)],
  ...(['swap', 'add', 'xor', 'and', 'or', 'min', 'max', 'minu', 'maxu'] as const).flatMap((op): [string, number][] => [
    [`amo${op}.w a0, a2, (a1)`, (enc as any)[`amo${op}W`](10, 12, 11)],
    [`amo${op}.d.aqrl a0, a2, (a1)`, (enc as any)[`amo${op}D`](10, 12, 11, 1, 1)],
  ]),
  ['fence', enc.fence()],
  ['fence rw, w', enc.fence(0b0011, 0b0001)],
  ['fence.i', enc.fenceI()],
  ['ecall', enc.ecall()],
  ['ebreak', enc.ebreak()],
  ['mret', enc.mret()],
  ['wfi', enc.wfi()],
  ['csrrw a0, mscratch, a1', enc.csrrw(10, 0x340, 11)],
  ['csrrs a0, mstatus, zero', enc.csrrs(10, 0x300, 0)],
  ['csrrc zero, mie, t0', enc.csrrc(0, 0x304, 5)],
  ['csrrwi a0, 0x7c0, 31', enc.csrrwi(10, 0x7c0, 31)],
  ['csrrsi a0, mstatus, 8', enc.csrrsi(10, 0x300, 8)],
  ['csrrci a0, mstatus, 8', enc.csrrci(10, 0x300, 8)],
];

function gnuAs(lines: string[]): Uint32Array | undefined {
  const as = 'riscv64-unknown-elf-as';
  const objcopy = 'riscv64-unknown-elf-objcopy';
  try {
    execFileSync(as, ['--version'], { stdio: 'ignore' });
  } catch {
    return undefined;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'livemig-enc-'));
  try {
    const src = path.join(dir, 'a.s');
    fs.writeFileSync(src, ['.option norvc', '.text', ...lines, ''].join('\n'));
    execFileSync(as, ['-march=rv64ima_zicsr_zifencei', '-o', path.join(dir, 'a.o'), src]);
    execFileSync(objcopy, ['-O', 'binary', '-j', '.text', path.join(dir, 'a.o'), path.join(dir, 'a.bin')]);
    const b = fs.readFileSync(path.join(dir, 'a.bin'));
    return new Uint32Array(b.buffer, b.byteOffset, b.byteLength / 4);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const gnu = gnuAs(CASES.map(([s]) => s));

if (gnu) {
  test('encodings match the GNU assembler', () => {
    const mismatches = CASES.map(([s, w], k) => ({ s, ours: w.toString(16), gnu: gnu[k].toString(16) })).filter((m) => m.ours !== m.gnu);
    expect(mismatches).toEqual([]);
  });
} else {
  test.skip('encodings match the GNU assembler — skipped: riscv64-unknown-elf-as is not installed here', () => undefined);
}

test('every encoded instruction decodes to its own mnemonic with its operands', () => {
  for (const [s, w] of CASES) {
    const d = decode(w);
    const mnemonic = s.split(' ')[0].replace(/\.(aq|rl|aqrl)$/, '').replace(/\.(w|d)$/, (m) => (s.startsWith('amo') || s.startsWith('lr') || s.startsWith('sc') ? '' : m));
    expect([s, d.op]).toEqual([s, mnemonic]);
  }
  expect(decode(enc.addi(10, 11, -2048))).toMatchObject({ rd: 10, rs1: 11, imm: -2048 });
  expect(decode(enc.sd(31, 27, -8))).toMatchObject({ rs1: 27, rs2: 31, imm: -8, width: 8 });
  expect(decode(enc.beq(1, 2, -4096))).toMatchObject({ imm: -4096 });
  expect(decode(enc.jal(0, -1048576))).toMatchObject({ imm: -1048576 });
  expect(decode(enc.lui(1, 0xfffff))).toMatchObject({ imm: 0xfffff000 | 0 });
  expect(decode(enc.csrrsi(10, 0x300, 31))).toMatchObject({ csr: 0x300, imm: 31 });
});

test.each([
  ['LR with rs2 ≠ 0', enc.lrW(10, 11) | (5 << 20)],
  ['AMO with funct3 = 1', (enc.amoaddW(10, 12, 11) & ~(7 << 12)) | (1 << 12)],
  ['an unassigned AMO funct5', (enc.amoaddW(10, 12, 11) & ~(0x1f << 27)) | (0b00101 << 27)],
  ['SLLI with imm[11:6] ≠ 0', enc.slli(10, 11, 3) | (1 << 26)],
  ['SRAIW with shamt[5] set', enc.sraiw(10, 11, 3) | (1 << 25)],
  ['OP with funct7 = 0x20 and funct3 = 1', enc.sll(10, 11, 12) | (0x20 << 25)],
  ['OP-32 MUL-group funct3 = 1 (no MULHW)', (enc.mulw(10, 11, 12) & ~(7 << 12)) | (1 << 12)],
  ['branch funct3 = 2', (enc.beq(1, 2, 8) & ~(7 << 12)) | (2 << 12)],
  ['load funct3 = 7', (enc.ld(1, 2, 8) & ~(7 << 12)) | (7 << 12)],
  ['store funct3 = 4', (enc.sd(1, 2, 8) & ~(7 << 12)) | (4 << 12)],
  ['JALR funct3 ≠ 0', enc.jalr(1, 2, 0) | (1 << 12)],
  ['SYSTEM funct3 = 4', (enc.csrrw(1, 0x340, 2) & ~(7 << 12)) | (4 << 12)],
  ['URET', 0x00200073],
  ['DRET', 0x7b200073],
  ['FENCE funct3 = 2', (enc.fence() & ~(7 << 12)) | (2 << 12)],
])('%s is illegal', (_, word) => {
  expect(decode(word >>> 0).op).toBe('illegal');
});

test('li produces every kind of 64-bit constant', () => {
  const values = [0n, 1n, -1n, 2047n, 2048n, -2048n, -2049n, 0x7fffffffn, 0x80000000n, -0x80000000n, 0xffffffffn,
    0x123456789abcdef0n, -0x123456789abcdef0n, 0x7fffffffffffffffn, -0x8000000000000000n, 0x100000000n, 0xfff00000000n];
  const a = new Asm(RAM_BASE).li(REG.s0, RAM_BASE + 0x8000);
  values.forEach((v) => a.li(REG.a0, v).i(enc.sd(REG.a0, REG.s0, 0), enc.addi(REG.s0, REG.s0, 8)));
  a.i(enc.wfi());
  const rig = new Rig().load(a);
  rig.run();
  values.forEach((v, k) => expect(rig.u64(RAM_BASE + 0x8000 + 8 * k)).toBe(BigInt.asUintN(64, v)));
  expect(liWords(REG.a0, 5n)).toHaveLength(1);
  expect(liWords(REG.a0, 0x12345678n)).toHaveLength(2);
});
