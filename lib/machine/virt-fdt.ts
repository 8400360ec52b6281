/**
 * The device tree the `virt` board hands its harts in a1, shaped like the one QEMU's virt
 * generates (same node names, paths, compatibles and cells) for the devices we implement.
 */
import { buildFdt, node, reg64, type FdtNode } from './fdt';

export interface VirtFdtConfig {
  ramBase: number;
  ramSize: number;
  harts: number;
  bootargs?: string;
  uart: { base: number; size: number; irq: number; clockHz: number };
  test: { base: number; size: number };
  clint: { base: number; size: number };
  plic: { base: number; size: number; sources: number };
  isa: string;
}

/** QEMU's `timebase-frequency` for virt: the CLINT's 10 MHz. */
export const TIMEBASE_HZ = 10_000_000;

export function virtFdt(cfg: VirtFdtConfig): Buffer {
  // phandles: hart h's interrupt controller = 2h+1, cpu h = 2h+2, then the PLIC and test device.
  const intcPhandle = (h: number) => 2 * h + 1;
  const cpuPhandle = (h: number) => 2 * h + 2;
  const plicPhandle = 2 * cfg.harts + 1;
  const testPhandle = plicPhandle + 1;
  const hex = (x: number) => x.toString(16);

  const cpus: FdtNode[] = [];
  for (let h = 0; h < cfg.harts; h++) {
    cpus.push(
      node(
        `cpu@${h}`,
        {
          phandle: cpuPhandle(h),
          device_type: 'cpu',
          reg: h,
          status: 'okay',
          compatible: 'riscv',
          'riscv,isa': cfg.isa,
          'mmu-type': 'riscv,none',
        },
        [
          node('interrupt-controller', {
            '#interrupt-cells': 1,
            'interrupt-controller': null,
            compatible: 'riscv,cpu-intc',
            phandle: intcPhandle(h),
          }),
        ],
      ),
    );
  }
  const cores = Array.from({ length: cfg.harts }, (_, h) => node(`core${h}`, { cpu: cpuPhandle(h) }));
  cpus.push(node('cpu-map', {}, [node('cluster0', {}, cores)]));

  // interrupts-extended: per hart, <intc M-external(11)> <intc S-external(9)> for the PLIC,
  // <intc M-soft(3)> <intc M-timer(7)> for the CLINT — QEMU's order.
  const plicIrqs: number[] = [];
  const clintIrqs: number[] = [];
  for (let h = 0; h < cfg.harts; h++) {
    plicIrqs.push(intcPhandle(h), 11, intcPhandle(h), 9);
    clintIrqs.push(intcPhandle(h), 3, intcPhandle(h), 7);
  }

  const uartName = `serial@${hex(cfg.uart.base)}`;
  const soc = node(
    'soc',
    { '#address-cells': 2, '#size-cells': 2, compatible: 'simple-bus', ranges: null },
    [
      node(uartName, {
        interrupts: cfg.uart.irq,
        'interrupt-parent': plicPhandle,
        'clock-frequency': cfg.uart.clockHz,
        reg: reg64(cfg.uart.base, cfg.uart.size),
        compatible: 'ns16550a',
      }),
      node(`test@${hex(cfg.test.base)}`, {
        phandle: testPhandle,
        reg: reg64(cfg.test.base, cfg.test.size),
        compatible: ['sifive,test1', 'sifive,test0', 'syscon'],
      }),
      node(`plic@${hex(cfg.plic.base)}`, {
        phandle: plicPhandle,
        'riscv,ndev': cfg.plic.sources,
        reg: reg64(cfg.plic.base, cfg.plic.size),
        'interrupts-extended': plicIrqs,
        'interrupt-controller': null,
        compatible: ['sifive,plic-1.0.0', 'riscv,plic0'],
        '#address-cells': 0,
        '#interrupt-cells': 1,
      }),
      node(`clint@${hex(cfg.clint.base)}`, {
        'interrupts-extended': clintIrqs,
        reg: reg64(cfg.clint.base, cfg.clint.size),
        compatible: ['sifive,clint0', 'riscv,clint0'],
      }),
    ],
  );

  const chosen: Record<string, string> = {};
  if (cfg.bootargs !== undefined) chosen.bootargs = cfg.bootargs;
  chosen['stdout-path'] = `/soc/${uartName}`;

  const root = node('', { '#address-cells': 2, '#size-cells': 2, compatible: 'riscv-virtio', model: 'riscv-virtio,qemu' }, [
    node('chosen', chosen),
    node('poweroff', { value: 0x5555, offset: 0, regmap: testPhandle, compatible: 'syscon-poweroff' }),
    node('reboot', { value: 0x7777, offset: 0, regmap: testPhandle, compatible: 'syscon-reboot' }),
    node(`memory@${hex(cfg.ramBase)}`, { device_type: 'memory', reg: reg64(cfg.ramBase, cfg.ramSize) }),
    node('cpus', { '#address-cells': 1, '#size-cells': 0, 'timebase-frequency': TIMEBASE_HZ }, cpus),
    soc,
  ]);
  return buildFdt(root);
}
