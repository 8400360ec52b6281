/** HartState in shared memory and the cpu / cpu_common VMState descriptions. */
import { HartLines, MIP_MSIP } from '../../../lib/machine/bus';
import { cpuCommonVMState, cpuVMState, HART_STATE_BYTES, HART_STATE_WORDS, HartState } from '../../../lib/machine/cpu';
import type { VMStateDescription, VMStateField } from '../../../lib/vmstate/types';
import { Asm, enc, REG, RAM_BASE, Rig } from './helpers';

/** A minimal save/load walker over a description (the real encoder lives in lib/vmstate). */
function save(d: VMStateDescription, o: any): Record<string, unknown> {
  d.preSave?.(o);
  const out: Record<string, unknown> = {};
  for (const f of d.fields) out[f.name] = f.get ? f.get(o) : o[f.key ?? f.name];
  d.postSave?.(o);
  return out;
}

function load(d: VMStateDescription, o: any, values: Record<string, unknown>): void {
  d.preLoad?.(o);
  for (const f of d.fields as VMStateField[]) {
    const v = values[f.name];
    if (f.info?.endsWith('equal')) {
      if (v !== f.get!(o)) throw new Error(`${f.name}: ${v} != ${f.get!(o)}`);
      continue;
    }
    f.set!(o, v);
  }
  d.postLoad?.(o, d.versionId);
}

test('layout: 512 bytes, registers then pc then CSRs, one (lo, hi) pair each', () => {
  expect(HART_STATE_BYTES).toBe(512);
  const st = HartState.create(3);
  st.setX(5, 0x1122334455667788n);
  expect(st.words[HART_STATE_WORDS.X + 10]).toBe(0x55667788);
  expect(st.words[HART_STATE_WORDS.X + 11]).toBe(0x11223344);
  st.pc = 0x8000_0004n;
  expect(st.words[HART_STATE_WORDS.PC]).toBe(0x8000_0004 | 0);
  expect(st.mhartid).toBe(3n);
  st.setX(0, 5n);
  expect(st.getX(0)).toBe(0n);
});

test('two HartState objects over one buffer (worker and main thread) see the same state', () => {
  const a = HartState.create(0);
  const b = new HartState(a.buffer);
  a.mepc = 0xdeadbeef0n;
  expect(b.mepc).toBe(0xdeadbeef0n);
  const g = b.generation;
  a.invalidate();
  expect(b.generation).toBe(g + 1);
});

test('descriptions use QEMU names and start at version 1', () => {
  expect(cpuVMState.name).toBe('cpu');
  expect(cpuCommonVMState.name).toBe('cpu_common');
  expect([cpuVMState.versionId, cpuVMState.minimumVersionId]).toEqual([1, 1]);
  const names = cpuVMState.fields.map((f) => f.name);
  for (const n of ['env.gpr', 'env.pc', 'env.load_res', 'env.load_val', 'env.mhartid', 'env.mstatus', 'env.mip', 'env.mie', 'env.mtvec', 'env.mepc', 'env.mcause', 'env.mtval', 'env.mscratch', 'env.mcounteren', 'env.mcountinhibit']) {
    expect(names).toContain(n);
  }
  const gpr = cpuVMState.fields.find((f) => f.name === 'env.gpr')!;
  expect([gpr.info, gpr.num]).toEqual(['uint64', 32]);
  expect(cpuCommonVMState.fields.map((f) => [f.name, f.info])).toEqual([['halted', 'uint32'], ['interrupt_request', 'uint32']]);
});

test('save on one hart, load on another, continue: same result as running straight through', () => {
  const prog = new Asm(RAM_BASE).li(REG.t0, 300).label('l').i(enc.addi(REG.a0, REG.a0, 3), enc.addi(REG.t0, REG.t0, -1)).bne(REG.t0, 0, 'l').i(enc.wfi());
  const src = new Rig().load(prog);
  src.run(301);
  const cpu = save(cpuVMState, src.state);
  const common = save(cpuCommonVMState, src.state);

  // The destination hart has run other code at the same addresses: the load must drop it.
  const other = new Asm(RAM_BASE).li(REG.t0, 300).label('l').i(enc.addi(REG.a0, REG.a0, 7), enc.addi(REG.t0, REG.t0, -1)).bne(REG.t0, 0, 'l').i(enc.wfi());
  const dst = new Rig().load(other);
  dst.run(500);
  expect(dst.hart.cachedBlocks).toBeGreaterThan(0);
  dst.bytes.set(src.bytes); // RAM arrives (as the migration's RAM section would put it)
  load(cpuVMState, dst.state, cpu);
  load(cpuCommonVMState, dst.state, common);
  expect(dst.run(1_000_000).reason).toBe('wfi');
  expect(src.run(1_000_000).reason).toBe('wfi');
  expect(dst.state.snapshot()).toEqual(src.state.snapshot());
  expect(dst.x(REG.a0)).toBe(900n);
});

test('a loaded stream is legalized (hostile input cannot create impossible states)', () => {
  const st = HartState.create(0);
  const cpu = save(cpuVMState, st);
  cpu['env.mstatus'] = 0xffffffffffffffffn;
  cpu['env.mie'] = 0xffffn;
  cpu['env.pc'] = 0x8000_0002n;
  cpu['env.mtvec'] = 0x8000_0003n;
  load(cpuVMState, st, cpu);
  expect(st.mstatus).toBe(0x1888n);
  expect(st.mie).toBe(0x888n);
  expect(st.pc).toBe(0x8000_0000n);
  expect(st.mtvec).toBe(0x8000_0000n);
});

test('the configuration checks reject another ISA', () => {
  const st = HartState.create(0);
  const cpu = save(cpuVMState, st);
  expect(() => load(cpuVMState, st, { ...cpu, 'env.misa_ext': 0x141101 })).toThrow(/misa_ext/);
});

test('MSIP travels in env.mip: saved from the line, restored onto the line', () => {
  const lines = new HartLines(2);
  const st = HartState.create(1, { lines });
  lines.raise(1, MIP_MSIP);
  const cpu = save(cpuVMState, st);
  expect(cpu['env.mip']).toBe(BigInt(MIP_MSIP));
  expect(save(cpuCommonVMState, st).interrupt_request).toBe(2);
  const dstLines = new HartLines(2);
  const dst = HartState.create(1, { lines: dstLines });
  load(cpuVMState, dst, cpu);
  expect(dstLines.get(1)).toBe(MIP_MSIP);
});

test('halted travels in cpu_common: a hart saved in WFI stays in WFI', () => {
  const rig = new Rig().load(new Asm(RAM_BASE).i(enc.wfi(), enc.addi(REG.a0, 0, 1), enc.wfi()));
  expect(rig.run().reason).toBe('wfi');
  const common = save(cpuCommonVMState, rig.state);
  expect(common.halted).toBe(1);
  const dst = new Rig();
  dst.bytes.set(rig.bytes);
  load(cpuVMState, dst.state, save(cpuVMState, rig.state));
  load(cpuCommonVMState, dst.state, common);
  expect(dst.run(100)).toEqual({ reason: 'wfi', executed: 0 });
});
