// A QMP+HMP server in its own process for the fuzz test: the compiled monitor with a
// minimal backend. It prints "ready" once listening; the test checks it is still alive
// (and answering) after being fed hostile input.
'use strict';
const path = require('node:path');
const mon = require(path.resolve(__dirname, '../../dist/lib/monitor/index.js'));

const [qmpPath, hmpPath] = process.argv.slice(2);
let state = 'running';
const mig = require(path.resolve(__dirname, '../../dist/lib/migration/index.js'));
const config = new mig.MigrationOptions();
let status = 'none';
let events;
config.bind({ migrationRunning: () => mig.isRunning(status), incomingStarted: () => false, runState: () => state });

const backend = {
  runState: () => ({ running: state === 'running', status: state }),
  stop: () => {
    state = 'paused';
    events.emit('STOP');
  },
  cont: () => {
    state = 'running';
    events.emit('RESUME');
  },
  quit: () => undefined, // the fuzzer may send quit; this server must stay up
  systemReset: () => events.emit('RESET', { guest: false, reason: 'host-qmp-system-reset' }),
  pmemsave: () => undefined,
  migration: {
    config,
    migrate: () => {
      if (mig.isRunning(status)) throw mon.genericError("There's a migration process in progress");
      status = 'setup';
      events.emit('MIGRATION', { status });
    },
    incoming: () => undefined,
    cancel: () => {
      status = 'cancelled';
    },
    continue: () => undefined,
    info: () => (status === 'none' ? {} : { status }),
    startPostcopy: () => undefined,
    recover: () => undefined,
    pause: () => {
      throw mon.genericError('migrate-pause is currently only supported during postcopy-active state');
    },
  },
};

const monitor = new mon.Monitor({ backend, jsonLimits: { maxTokenSize: 1 << 20, maxTokenCount: 100000 } });
events = monitor.events;

process.on('uncaughtException', (e) => {
  process.stderr.write(`UNCAUGHT ${e && e.stack}\n`);
  process.exit(70);
});
process.on('unhandledRejection', (e) => {
  process.stderr.write(`UNHANDLED ${e && e.stack}\n`);
  process.exit(71);
});

(async () => {
  await monitor.addQmp({ kind: 'unix', path: qmpPath, server: true, wait: false });
  await monitor.addHmp({ kind: 'unix', path: hmpPath, server: true, wait: false });
  process.stdout.write('ready\n');
})();
