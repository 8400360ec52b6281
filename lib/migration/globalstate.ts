/**
 * The `globalstate` section (QEMU migration/global_state.c): the source's run state, so the
 * destination knows whether to start the guest after loading.
 *
 *   be32 size (strlen(runstate) + 1) │ runstate[100], NUL padded      — 104 bytes
 *
 * The loader forces the last byte to NUL and parses the name against the RunState enum.
 */
import { F, type VMStateDescription } from '../vmstate';
import { MigrationError } from './errors';

/** QEMU's RunState values (qapi/run-state.json). */
export const RUN_STATES = [
  'debug',
  'inmigrate',
  'internal-error',
  'io-error',
  'paused',
  'postmigrate',
  'prelaunch',
  'finish-migrate',
  'restore-vm',
  'running',
  'save-vm',
  'shutdown',
  'suspended',
  'watchdog',
  'guest-panicked',
  'colo',
] as const;
export type RunState = (typeof RUN_STATES)[number];

const RUNSTATE_LEN = 100;

export class GlobalState {
  size = 0;
  runstate = new Uint8Array(RUNSTATE_LEN);
  /** Set by a successful load. */
  received: RunState | null = null;

  constructor(readonly current: () => RunState) {}
}

export const VMSTATE_GLOBALSTATE: VMStateDescription<GlobalState> = {
  name: 'globalstate',
  versionId: 1,
  minimumVersionId: 1,
  preSave(s) {
    const name = Buffer.from(s.current(), 'latin1');
    s.runstate = new Uint8Array(RUNSTATE_LEN);
    s.runstate.set(name.subarray(0, RUNSTATE_LEN - 1));
    s.size = name.length + 1;
  },
  preLoad(s) {
    s.received = null;
  },
  fields: [F.uint32('size'), F.buffer('runstate', RUNSTATE_LEN)],
  postLoad(s) {
    const bytes = Buffer.from(s.runstate);
    bytes[RUNSTATE_LEN - 1] = 0;
    const end = bytes.indexOf(0);
    const name = bytes.toString('latin1', 0, end);
    if (!(RUN_STATES as readonly string[]).includes(name)) {
      throw new MigrationError('EMIG_DEVICE', `unknown run state '${name}'`, { section: 'globalstate', field: 'runstate' });
    }
    s.received = name as RunState;
  },
};
