/**
 * Instruction decode, done once per instruction when a block is translated. The result is a
 * plain record: a mnemonic plus the operand fields already extracted and sign-extended, so code
 * generators never look at raw bits again.
 *
 * Anything outside RV64IMA + Zicsr + Zifencei + the machine-mode system instructions decodes as
 * 'illegal' (compressed, F, D and S-mode encodings included): "We do not implement C, F, D, S or
 * U" means their instructions take an illegal-instruction exception.
 */
import { OPC } from './encode';

export type Mnemonic =
  | 'illegal'
  | 'lui' | 'auipc' | 'jal' | 'jalr'
  | 'beq' | 'bne' | 'blt' | 'bge' | 'bltu' | 'bgeu'
  | 'lb' | 'lh' | 'lw' | 'ld' | 'lbu' | 'lhu' | 'lwu'
  | 'sb' | 'sh' | 'sw' | 'sd'
  | 'addi' | 'slti' | 'sltiu' | 'xori' | 'ori' | 'andi' | 'slli' | 'srli' | 'srai'
  | 'addiw' | 'slliw' | 'srliw' | 'sraiw'
  | 'add' | 'sub' | 'sll' | 'slt' | 'sltu' | 'xor' | 'srl' | 'sra' | 'or' | 'and'
  | 'addw' | 'subw' | 'sllw' | 'srlw' | 'sraw'
  | 'mul' | 'mulh' | 'mulhsu' | 'mulhu' | 'div' | 'divu' | 'rem' | 'remu'
  | 'mulw' | 'divw' | 'divuw' | 'remw' | 'remuw'
  | 'lr' | 'sc' | 'amoswap' | 'amoadd' | 'amoxor' | 'amoand' | 'amoor'
  | 'amomin' | 'amomax' | 'amominu' | 'amomaxu'
  | 'fence' | 'fence.i'
  | 'ecall' | 'ebreak' | 'mret' | 'wfi'
  | 'csrrw' | 'csrrs' | 'csrrc' | 'csrrwi' | 'csrrsi' | 'csrrci';

export interface Insn {
  readonly op: Mnemonic;
  /** The instruction word as fetched (uint32). */
  readonly bits: number;
  readonly rd: number;
  readonly rs1: number;
  readonly rs2: number;
  /** Sign-extended immediate (int32); shift amount for shifts; zero-extended uimm for csr*i. */
  readonly imm: number;
  /** CSR number for Zicsr instructions. */
  readonly csr: number;
  /** Access width in bytes for loads, stores, LR/SC and AMOs. */
  readonly width: number;
}

const BRANCH: (Mnemonic | null)[] = ['beq', 'bne', null, null, 'blt', 'bge', 'bltu', 'bgeu'];
const LOAD: (Mnemonic | null)[] = ['lb', 'lh', 'lw', 'ld', 'lbu', 'lhu', 'lwu', null];
const LOAD_WIDTH = [1, 2, 4, 8, 1, 2, 4, 0];
const STORE: (Mnemonic | null)[] = ['sb', 'sh', 'sw', 'sd', null, null, null, null];
const OP_IMM: Mnemonic[] = ['addi', 'slli', 'slti', 'sltiu', 'xori', 'srli', 'ori', 'andi'];
const OP_BASE: Mnemonic[] = ['add', 'sll', 'slt', 'sltu', 'xor', 'srl', 'or', 'and'];
const OP_MUL: Mnemonic[] = ['mul', 'mulh', 'mulhsu', 'mulhu', 'div', 'divu', 'rem', 'remu'];
const OP32_MUL: (Mnemonic | null)[] = ['mulw', null, null, null, 'divw', 'divuw', 'remw', 'remuw'];
const CSR: (Mnemonic | null)[] = [null, 'csrrw', 'csrrs', 'csrrc', null, 'csrrwi', 'csrrsi', 'csrrci'];
const AMO = new Map<number, Mnemonic>([
  [0b00010, 'lr'], [0b00011, 'sc'], [0b00001, 'amoswap'], [0b00000, 'amoadd'], [0b00100, 'amoxor'],
  [0b01100, 'amoand'], [0b01000, 'amoor'], [0b10000, 'amomin'], [0b10100, 'amomax'],
  [0b11000, 'amominu'], [0b11100, 'amomaxu'],
]);

function make(op: Mnemonic, bits: number, imm = 0, width = 0): Insn {
  return {
    op,
    bits: bits >>> 0,
    rd: (bits >>> 7) & 31,
    rs1: (bits >>> 15) & 31,
    rs2: (bits >>> 20) & 31,
    imm,
    csr: bits >>> 20,
    width,
  };
}

const immI = (b: number) => b >> 20;
const immS = (b: number) => ((b >> 25) << 5) | ((b >>> 7) & 31);
const immB = (b: number) =>
  ((b >> 31) << 12) | (((b >>> 7) & 1) << 11) | (((b >>> 25) & 0x3f) << 5) | (((b >>> 8) & 0xf) << 1);
const immJ = (b: number) =>
  ((b >> 31) << 20) | (((b >>> 12) & 0xff) << 12) | (((b >>> 20) & 1) << 11) | (((b >>> 21) & 0x3ff) << 1);

export function decode(word: number): Insn {
  const b = word | 0;
  // Without C, every legal instruction has bits [1:0] = 11.
  if ((b & 3) !== 3) return make('illegal', word);
  const f3 = (b >>> 12) & 7;
  const f7 = b >>> 25;
  switch (b & 0x7f) {
    case OPC.LUI:
      return make('lui', word, b & 0xfffff000);
    case OPC.AUIPC:
      return make('auipc', word, b & 0xfffff000);
    case OPC.JAL:
      return make('jal', word, immJ(b));
    case OPC.JALR:
      return f3 === 0 ? make('jalr', word, immI(b)) : make('illegal', word);
    case OPC.BRANCH: {
      const op = BRANCH[f3];
      return op ? make(op, word, immB(b)) : make('illegal', word);
    }
    case OPC.LOAD: {
      const op = LOAD[f3];
      return op ? make(op, word, immI(b), LOAD_WIDTH[f3]) : make('illegal', word);
    }
    case OPC.STORE: {
      const op = STORE[f3];
      return op ? make(op, word, immS(b), 1 << f3) : make('illegal', word);
    }
    case OPC.OP_IMM: {
      const op = OP_IMM[f3];
      if (f3 === 1 || f3 === 5) {
        // RV64: shamt is imm[5:0]; imm[11:6] selects SRAI (010000) or must be zero.
        const hi6 = (b >>> 26) & 0x3f;
        const shamt = (b >>> 20) & 0x3f;
        if (hi6 === 0) return make(op, word, shamt);
        if (f3 === 5 && hi6 === 0x10) return make('srai', word, shamt);
        return make('illegal', word);
      }
      return make(op, word, immI(b));
    }
    case OPC.OP_IMM_32: {
      if (f3 === 0) return make('addiw', word, immI(b));
      const shamt = (b >>> 20) & 0x1f;
      // "SLLIW, SRLIW, and SRAIW encodings with imm[5] ≠ 0 are reserved."
      if (f3 === 1 && f7 === 0) return make('slliw', word, shamt);
      if (f3 === 5 && f7 === 0) return make('srliw', word, shamt);
      if (f3 === 5 && f7 === 0x20) return make('sraiw', word, shamt);
      return make('illegal', word);
    }
    case OPC.OP:
      if (f7 === 0) return make(OP_BASE[f3], word);
      if (f7 === 1) return make(OP_MUL[f3], word);
      if (f7 === 0x20 && f3 === 0) return make('sub', word);
      if (f7 === 0x20 && f3 === 5) return make('sra', word);
      return make('illegal', word);
    case OPC.OP_32:
      if (f7 === 0 && f3 === 0) return make('addw', word);
      if (f7 === 0 && f3 === 1) return make('sllw', word);
      if (f7 === 0 && f3 === 5) return make('srlw', word);
      if (f7 === 0x20 && f3 === 0) return make('subw', word);
      if (f7 === 0x20 && f3 === 5) return make('sraw', word);
      if (f7 === 1 && OP32_MUL[f3]) return make(OP32_MUL[f3]!, word);
      return make('illegal', word);
    case OPC.AMO: {
      if (f3 !== 2 && f3 !== 3) return make('illegal', word);
      const op = AMO.get(b >>> 27);
      if (!op) return make('illegal', word);
      // LR has rs2 = 0; other values are reserved.
      if (op === 'lr' && ((b >>> 20) & 31) !== 0) return make('illegal', word);
      return make(op, word, 0, f3 === 2 ? 4 : 8);
    }
    case OPC.MISC_MEM:
      // Unused FENCE fields "shall be treated as normal fences" and FENCE.I's unused fields
      // "shall be ignored" by base implementations (unprivileged spec, FENCE and Zifencei).
      if (f3 === 0) return make('fence', word);
      if (f3 === 1) return make('fence.i', word);
      return make('illegal', word);
    case OPC.SYSTEM: {
      if (f3 === 0) {
        switch (word >>> 0) {
          case 0x00000073: return make('ecall', word);
          case 0x00100073: return make('ebreak', word);
          case 0x30200073: return make('mret', word);
          case 0x10500073: return make('wfi', word);
          default: return make('illegal', word); // sret, sfence.vma, dret, ...: no S-mode here
        }
      }
      const op = CSR[f3];
      if (!op) return make('illegal', word);
      return make(op, word, f3 >= 5 ? (b >>> 15) & 31 : 0);
    }
    default:
      return make('illegal', word);
  }
}

/** Instructions after which a translated block must end (control flow or machine state). */
export function endsBlock(op: Mnemonic): boolean {
  switch (op) {
    case 'jal': case 'jalr':
    case 'beq': case 'bne': case 'blt': case 'bge': case 'bltu': case 'bgeu':
    case 'ecall': case 'ebreak': case 'mret': case 'wfi': case 'fence.i':
    case 'csrrw': case 'csrrs': case 'csrrc': case 'csrrwi': case 'csrrsi': case 'csrrci':
    case 'illegal':
      return true;
    default:
      return false;
  }
}
