import { REG, runProgram, enc } from './helpers';
const { a0, a1, t0 } = REG;
test('smoke', () => {
  const rig = runProgram((a) => {
    a.li(a0, 0).li(t0, 10).label('l').i(enc.addi(a0, a0, 3), enc.addi(t0, t0, -1)).bne(t0, 0, 'l');
    a.li(a1, 0x123456789abcdefn);
  });
  expect(rig.x(a0)).toBe(30n);
  expect(rig.x(a1)).toBe(0x123456789abcdefn);
});
