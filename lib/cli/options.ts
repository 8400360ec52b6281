/**
 * The `livemig` command line, spelled as QEMU spells the options we share, so a QEMU user's
 * script works after changing the binary name. One table row per option; each row parses its
 * argument into the config. Unknown or malformed options raise OptionError naming the option.
 */
import { parseChardev, type ChardevSpec } from '../chardev';
import { parseIncoming, type IncomingChannels } from './incoming';
import { OptionError, parseBool, parseKeyval } from '../util/keyval';
import { parseSize, SizeError } from '../util/size';
import { parseUuid, UuidError } from '../util/uuid';

export { OptionError } from '../util/keyval';

export interface MemoryBackendSpec {
  qomType: 'memory-backend-memfd' | 'memory-backend-file' | 'memory-backend-ram';
  id: string;
  size: number;
  share: boolean;
  memPath?: string;
  hugetlb: boolean;
  /** prealloc=on: populate every page at start (as -mem-prealloc does for all RAM). */
  prealloc: boolean;
}

export interface LivemigConfig {
  machine: { type: string; auxRamShare: boolean; memoryBackend?: string; dirtyLog?: 'emulator' | 'kernel' };
  memSize: number;
  memSizeGiven: boolean;
  smp: number;
  kernel?: string;
  append?: string;
  bios?: string;
  serial: ChardevSpec[];
  serialGiven: boolean;
  nodefaults: boolean;
  nographic: boolean;
  display: string;
  monitor: ChardevSpec[];
  qmp: ChardevSpec[];
  incoming: string[];
  /** The -incoming arguments read as QEMU reads them: main (or defer) and cpr channels. */
  incomingChannels: IncomingChannels;
  startPaused: boolean;
  name?: string;
  /** -name ...,process=NAME: the process title */
  processName?: string;
  /** -uuid, 16 bytes */
  uuid?: Uint8Array;
  /** -global DRIVER.PROP=VALUE, in order (the migration layer parses migration.*) */
  globals: string[];
  pidfile?: string;
  daemonize: boolean;
  memPrealloc: boolean;
  objects: MemoryBackendSpec[];
}

export const DEFAULT_MEM_SIZE = 128 * 2 ** 20;
export const MAX_SMP = 8;

function defaults(): LivemigConfig {
  return {
    machine: { type: 'virt', auxRamShare: false },
    memSize: DEFAULT_MEM_SIZE,
    memSizeGiven: false,
    smp: 1,
    serial: [],
    serialGiven: false,
    nodefaults: false,
    nographic: false,
    display: 'default',
    monitor: [],
    qmp: [],
    incoming: [],
    incomingChannels: {},
    startPaused: false,
    daemonize: false,
    memPrealloc: false,
    objects: [],
    globals: [],
  };
}

function size(text: string, unit: number, what: string): number {
  try {
    return parseSize(text, unit);
  } catch (e) {
    if (e instanceof SizeError) throw new OptionError(`${what}: ${e.message}`);
    throw e;
  }
}

function parseMachine(cfg: LivemigConfig, arg: string): void {
  const kv = parseKeyval(arg, 'type');
  for (const [k, v] of kv) {
    if (k === 'type') cfg.machine.type = v;
    else if (k === 'aux-ram-share') cfg.machine.auxRamShare = parseBool(v, 'aux-ram-share');
    else if (k === 'memory-backend') cfg.machine.memoryBackend = v;
    else if (k === 'x-dirty-log') {
      // livemig's own (hence x-): how precopy learns which pages the guest wrote.
      if (v !== 'emulator' && v !== 'kernel') throw new OptionError(`x-dirty-log must be emulator or kernel`);
      cfg.machine.dirtyLog = v;
    }
    else throw new OptionError(`unknown property '${k}'`);
  }
}

function parseObject(cfg: LivemigConfig, arg: string): void {
  const kv = parseKeyval(arg, 'qom-type');
  const qomType = kv.get('qom-type');
  if (qomType !== 'memory-backend-memfd' && qomType !== 'memory-backend-file' && qomType !== 'memory-backend-ram') {
    throw new OptionError(`unsupported object type '${qomType}'`);
  }
  const id = kv.get('id');
  if (!id) throw new OptionError(`${qomType}: id is required`);
  const sz = kv.get('size');
  if (!sz) throw new OptionError(`${qomType}: size is required`);
  const spec: MemoryBackendSpec = {
    qomType,
    id,
    size: size(sz, 1, `${qomType} size`),
    share: kv.has('share') ? parseBool(kv.get('share')!, 'share') : qomType === 'memory-backend-memfd',
    hugetlb: kv.has('hugetlb') ? parseBool(kv.get('hugetlb')!, 'hugetlb') : false,
    prealloc: kv.has('prealloc') ? parseBool(kv.get('prealloc')!, 'prealloc') : false,
  };
  if (qomType === 'memory-backend-file') {
    spec.memPath = kv.get('mem-path');
    if (!spec.memPath) throw new OptionError('memory-backend-file: mem-path is required');
  }
  const known = ['qom-type', 'id', 'size', 'share', 'mem-path', 'hugetlb', 'prealloc'];
  for (const k of kv.keys()) if (!known.includes(k)) throw new OptionError(`${qomType}: unknown property '${k}'`);
  if (cfg.objects.some((o) => o.id === id)) throw new OptionError(`duplicate id '${id}'`);
  cfg.objects.push(spec);
}

interface OptionRow {
  /** Takes an argument. */
  arg: boolean;
  apply(cfg: LivemigConfig, value: string): void;
}

const TABLE: Record<string, OptionRow> = {
  M: { arg: true, apply: parseMachine },
  machine: { arg: true, apply: parseMachine },
  m: {
    arg: true,
    apply(cfg, v) {
      const kv = parseKeyval(v, 'size');
      cfg.memSize = size(kv.get('size') ?? '', 2 ** 20, 'size');
      cfg.memSizeGiven = true;
    },
  },
  smp: {
    arg: true,
    apply(cfg, v) {
      const kv = parseKeyval(v, 'cpus');
      const n = Number(kv.get('cpus'));
      if (!Number.isInteger(n) || n < 1 || n > MAX_SMP) throw new OptionError(`cpus must be 1..${MAX_SMP}`);
      cfg.smp = n;
    },
  },
  kernel: { arg: true, apply: (cfg, v) => void (cfg.kernel = v) },
  append: { arg: true, apply: (cfg, v) => void (cfg.append = v) },
  bios: {
    arg: true,
    apply(cfg, v) {
      if (v !== 'none') throw new OptionError(`only 'none' is supported (firmware is not emulated)`);
      cfg.bios = v;
    },
  },
  serial: {
    arg: true,
    apply(cfg, v) {
      cfg.serialGiven = true;
      const c = parseChardev(v);
      if (c) cfg.serial.push(c);
    },
  },
  monitor: {
    arg: true,
    apply(cfg, v) {
      const c = parseChardev(v);
      if (c) cfg.monitor.push(c);
    },
  },
  qmp: {
    arg: true,
    apply(cfg, v) {
      const c = parseChardev(v);
      if (c) cfg.qmp.push(c);
    },
  },
  incoming: { arg: true, apply: (cfg, v) => void cfg.incoming.push(v) },
  nodefaults: { arg: false, apply: (cfg) => void (cfg.nodefaults = true) },
  nographic: { arg: false, apply: (cfg) => void (cfg.nographic = true) },
  display: {
    arg: true,
    apply(cfg, v) {
      if (v !== 'none') throw new OptionError(`only 'none' is supported`);
      cfg.display = v;
    },
  },
  S: { arg: false, apply: (cfg) => void (cfg.startPaused = true) },
  name: {
    arg: true,
    apply(cfg, v) {
      const kv = parseKeyval(v, 'guest');
      for (const k of kv.keys()) {
        if (!['guest', 'process'].includes(k)) throw new OptionError(`unknown property '${k}'`);
      }
      cfg.name = kv.get('guest');
      cfg.processName = kv.get('process');
    },
  },
  uuid: {
    arg: true,
    apply(cfg, v) {
      try {
        cfg.uuid = parseUuid(v);
      } catch (e) {
        if (e instanceof UuidError) throw new OptionError(e.message);
        throw e;
      }
    },
  },
  global: { arg: true, apply: (cfg, v) => void cfg.globals.push(v) },
  pidfile: { arg: true, apply: (cfg, v) => void (cfg.pidfile = v) },
  daemonize: { arg: false, apply: (cfg) => void (cfg.daemonize = true) },
  'mem-prealloc': { arg: false, apply: (cfg) => void (cfg.memPrealloc = true) },
  object: { arg: true, apply: parseObject },
};

export function parseArgs(argv: readonly string[]): LivemigConfig {
  const cfg = defaults();
  for (let i = 0; i < argv.length; i++) {
    const raw = argv[i];
    if (!raw.startsWith('-') || raw === '-' || raw === '--') throw new OptionError(`${raw}: unexpected argument`);
    const name = raw.replace(/^--?/, '');
    const row = TABLE[name];
    if (!row) throw new OptionError(`${raw}: invalid option`);
    let value = '';
    if (row.arg) {
      if (i + 1 >= argv.length) throw new OptionError(`${raw}: requires an argument`);
      value = argv[++i];
    }
    try {
      row.apply(cfg, value);
    } catch (e) {
      if (e instanceof OptionError) throw new OptionError(`${raw}: ${e.message}`);
      throw e;
    }
  }
  finish(cfg);
  return cfg;
}

/** Cross-option rules, applied once everything is read. */
function finish(cfg: LivemigConfig): void {
  if (cfg.nographic && !cfg.serialGiven && !cfg.nodefaults) cfg.serial.push({ kind: 'stdio' });
  if (cfg.machine.memoryBackend) {
    const be = cfg.objects.find((o) => o.id === cfg.machine.memoryBackend);
    if (!be) throw new OptionError(`-machine memory-backend: no -object with id '${cfg.machine.memoryBackend}'`);
    if (cfg.memSizeGiven && cfg.memSize !== be.size) {
      throw new OptionError(`-m: size ${cfg.memSize} differs from memory-backend '${be.id}' size ${be.size}`);
    }
    cfg.memSize = be.size;
  }
  if (cfg.serial.length > 1) throw new OptionError('-serial: the virt board has one UART');
  try {
    cfg.incomingChannels = parseIncoming(cfg.incoming);
  } catch (e) {
    if (e instanceof OptionError) throw new OptionError(`-incoming: ${e.message}`);
    throw e;
  }
}
