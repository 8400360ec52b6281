/** VM run state: qapi/run-state.json and the misc commands that drive it. */

import { RUN_STATES } from '../../migration/globalstate';
import { args, bool, command, enumType, event, number, opt, req, size, str, struct, uint64 } from './types';

export const RunState = enumType('RunState', RUN_STATES, 'An enumeration of VM run states.');

export const ShutdownCause = enumType(
  'ShutdownCause',
  [
    'none',
    'host-error',
    'host-qmp-quit',
    'host-qmp-system-reset',
    'host-signal',
    'host-ui',
    'guest-shutdown',
    'guest-reset',
    'guest-panic',
    'subsystem-reset',
    'snapshot-load',
  ] as const,
  'An enumeration of reasons for a shutdown or reset.',
);

export const StatusInfo = struct(
  'StatusInfo',
  {
    running: req(bool, 'true if all vCPUs are runnable'),
    singlestep: opt(bool, 'one guest instruction per translation block (deprecated)', ['deprecated']),
    status: req(RunState, 'the virtual machine RunState'),
  },
  'Information about vCPU run state',
);

export const queryStatus = command('query-status', {
  returns: StatusInfo,
  doc: 'Query the run status of all vCPUs.',
});
export const stop = command('stop', { doc: 'Stop all guest vCPU execution.' });
export const cont = command('cont', { doc: 'Resume guest vCPU execution.' });
export const quit = command('quit', { doc: 'Request the emulator to exit.' });
export const systemReset = command('system_reset', { doc: 'Perform a hard reset of the VM.' });
export const pmemsave = command('pmemsave', {
  args: args('pmemsave', {
    val: req(uint64, 'the physical address of the guest to start from'),
    size: req(size, 'the size of memory region to save'),
    filename: req(str, 'the file to save the memory to'),
  }),
  doc: 'Save a portion of guest physical memory to a file.',
});

export const queryName = command('query-name', {
  returns: struct('NameInfo', { name: opt(str, 'The name of the guest') }, 'Guest name information.'),
  doc: 'Return the name information of a guest (-name guest=NAME).',
});
export const queryUuid = command('query-uuid', {
  returns: struct('UuidInfo', { UUID: req(str, 'the Universally Unique Identifier for the guest') }, 'Guest UUID information.'),
  doc: "Query the guest UUID information (-uuid); all zeros when none was given.",
});

export const VcpuTimes = struct(
  'x-VcpuTimes',
  {
    parked: req(number, "microseconds on the host's monotonic clock when the last vCPU parked at the latest stop; 0 if never"),
    running: req(number, 'microseconds on the same clock when the first vCPU ran after the latest cont; 0 if never'),
  },
  'When the vCPUs last stopped and last started (livemig).',
);
export const xQueryVcpuTimes = command('x-query-vcpu-times', {
  returns: VcpuTimes,
  doc: "livemig: when the vCPUs last parked and last ran, on the host's monotonic clock (one clock for every process: a cpr-transfer's pause is the new process's running minus the old one's parked).",
});

export const SHUTDOWN = event('SHUTDOWN', {
  data: struct('q_obj_SHUTDOWN-arg', {
    guest: req(bool, 'true if the shutdown was triggered by a guest request'),
    reason: req(ShutdownCause, 'the ShutdownCause which resulted in the shutdown'),
  }),
  doc: 'Emitted when the virtual machine has shut down, indicating that the emulator is about to exit.',
});
export const RESET = event('RESET', {
  data: struct('q_obj_RESET-arg', {
    guest: req(bool, 'true if the reset was triggered by a guest request'),
    reason: req(ShutdownCause, 'the ShutdownCause of the reset'),
  }),
  doc: 'Emitted when the virtual machine is reset.',
});
export const STOP = event('STOP', { doc: 'Emitted when the virtual machine is stopped.' });
export const RESUME = event('RESUME', { doc: 'Emitted when the virtual machine resumes execution.' });

