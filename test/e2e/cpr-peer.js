// A new process that fails a cpr-transfer on purpose, for cpr.test.ts, on the compiled dist/.
//
//   node cpr-peer.js hangup CPR_PATH
//     listens on CPR_PATH, prints "ready", accepts the old process and closes the connection
//     without reading anything: the new process died before reading the CPR state.
//   node cpr-peer.js crash CPR_PATH MAIN_PATH MEM_BYTES SMP
//     does what livemig does (reads the CPR state, builds the machine on the RAM descriptors,
//     listens on MAIN_PATH, loads) but kills itself with SIGKILL as the RAM section's END
//     arrives, which the old process sends only after stopping its guest: a crash in the middle
//     of the pause, with no SHUT.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const dist = (p) => require(path.resolve(__dirname, '../../dist/lib', p));
const { CprReceiver } = dist('migration/cpr/index.js');
const { CprListener } = dist('transport/index.js');
const { VirtMachine } = dist('machine/virt.js');
const { MigrationManager } = dist('migration/index.js');
const { RamLoader } = dist('migration/ram-load.js');

const [mode, cprPath, mainPath, mem, smp] = process.argv.slice(2);
const cprAddr = { transport: 'socket', type: 'unix', path: cprPath };
const QEMU_VM_SECTION_END = 3;

async function hangup() {
  const l = CprListener.listen(cprAddr);
  console.log('ready');
  const ch = await l.accept();
  ch.destroy();
  setTimeout(() => process.exit(0), 100);
}

async function crash() {
  const r = CprReceiver.listen(cprAddr);
  console.log('ready');
  const state = await r.receive();
  const machine = await VirtMachine.create({
    memSize: Number(mem),
    smp: Number(smp),
    ramShared: true,
    auxRamShared: true,
    adoptRam: (name) => state.take(name),
  });
  for (const { fd } of state.takeGroup('serial0/')) fs.closeSync(fd); // this peer has no console
  const m = new MigrationManager(machine);
  const listening = () => {
    // Armed only now: the warm-up before listening loads a stream of its own.
    const load = RamLoader.prototype.loadState;
    RamLoader.prototype.loadState = function (f, version, type) {
      if (type === QEMU_VM_SECTION_END) process.kill(process.pid, 'SIGKILL');
      return load.call(this, f, version, type);
    };
    state.listening();
  };
  m.expectIncoming({ cpr: { listening } });
  await m.incoming({ transport: 'socket', type: 'unix', path: mainPath });
}

(mode === 'hangup' ? hangup() : crash()).catch((e) => {
  console.error(e);
  process.exit(1);
});
