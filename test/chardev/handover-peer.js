// One side of a chardev handover for handover.test.ts, running the compiled dist/ tree.
//
//   node handover-peer.js old SPEC HANDOVER_PATH
//     opens the chardev serial0 from SPEC (JSON), prints "open", echoes input as "A:<bytes>";
//     on the stdin line "handover": detach(), send the descriptors with their names over
//     HANDOVER_PATH (SCM_RIGHTS), close its copies, exit 0.
//   node handover-peer.js new SPEC HANDOVER_PATH
//     listens on HANDOVER_PATH, prints "ready", accepts; on the stdin line "adopt" receives the
//     descriptors, adopts them, writes "B is here\n" to the console, prints "adopted NAMES",
//     and echoes input as "B:<bytes>" until the stdin line "quit".
'use strict';
const path = require('node:path');
const readline = require('node:readline');
const { openChardev } = require(path.resolve(__dirname, '../../dist/lib/chardev/index.js'));
const { FdListener, FdSocket, native } = require(path.resolve(__dirname, '../../dist/lib/host/index.js'));

const [role, specJson, handoverPath] = process.argv.slice(2);
const spec = JSON.parse(specJson);
const lines = readline.createInterface({ input: process.stdin });
const nextLine = () => new Promise((resolve) => lines.once('line', resolve));

function echo(serial, prefix) {
  serial.onInput((b) => serial.write(Buffer.from(prefix + Buffer.from(b).toString())));
}

async function oldProcess() {
  const serial = await openChardev(spec, { id: 'serial0' });
  echo(serial, 'A:');
  console.log('open');
  while ((await nextLine()) !== 'handover');
  const fds = serial.detach();
  const sock = FdSocket.connect(handoverPath);
  await sock.send(Buffer.from(JSON.stringify(fds.map((f) => f.name))), fds.map((f) => f.fd));
  // The message in flight holds its own references: ours may go, and so may we.
  for (const { fd } of fds) native.close(fd);
  sock.close();
  process.exit(0);
}

async function newProcess() {
  const listener = FdListener.listen(handoverPath);
  console.log('ready');
  const conn = await listener.accept();
  while ((await nextLine()) !== 'adopt');
  const msg = await conn.recv();
  const names = JSON.parse(Buffer.from(msg.payload).toString());
  const serial = await openChardev(spec, { id: 'serial0', adopt: names.map((name, i) => ({ name, fd: msg.fds[i] })) });
  echo(serial, 'B:');
  serial.write(Buffer.from('B is here\n'));
  console.log(`adopted ${JSON.stringify(serial.fds().map((f) => f.name))}`);
  while ((await nextLine()) !== 'quit');
  serial.close();
  conn.close();
  listener.close();
  process.exit(0);
}

(role === 'old' ? oldProcess() : newProcess()).catch((e) => {
  console.error(e);
  process.exit(2);
});
