import { Effect, EffectQueue } from '../../../lib/machine/devices/effect-queue';
import { SifiveTest } from '../../../lib/machine/devices/sifive-test';

function make() {
  const effects = new EffectQueue(EffectQueue.createShare(16));
  const log: string[] = [];
  const dev = new SifiveTest(SifiveTest.createShare(), { effects, log: (_d, m) => log.push(m) });
  const drain = () => {
    const out: [number, number][] = [];
    effects.drain((k, v) => out.push([k, v]));
    return out;
  };
  return { dev, log, drain };
}

describe('sifive_test', () => {
  test('0x5555 powers off with 0; 0x3333|code<<16 with code; 0x7777 resets', () => {
    const { dev, drain, log } = make();
    dev.write(0, 4, 0x5555);
    dev.write(0, 4, 0x3333 | (3 << 16));
    dev.write(0, 2, 0x7777);
    expect(drain()).toEqual([
      [Effect.POWER_OFF, 0],
      [Effect.POWER_OFF, 3],
      [Effect.RESET, 0],
    ]);
    expect(log).toEqual([]);
  });

  test('other values, offsets and widths are guest errors; reads are 0', () => {
    const { dev, drain, log } = make();
    dev.write(0, 4, 0x1234);
    dev.write(4, 4, 0x5555);
    dev.write(0, 1, 0x55);
    expect(dev.read(0, 4)).toBe(0);
    expect(drain()).toEqual([]);
    expect(log.length).toBe(3);
  });
});
