/** Monitor control commands: qapi/control.json, human-monitor-command, getfd/closefd. */

import { args, command, enumType, int, list, opt, req, str, struct } from './types';

export const QMPCapability = enumType(
  'QMPCapability',
  ['oob'] as const,
  'Capabilities advertised in the greeting, for agreeing on particular QMP extension behaviors.',
);

export const qmpCapabilities = command('qmp_capabilities', {
  args: args('qmp_capabilities', {
    enable: opt(list(QMPCapability), 'An optional list of QMPCapability values to enable.'),
  }),
  doc: 'Enable QMP capabilities; leaves capabilities negotiation mode for command mode.',
});

export const VersionTriple = struct('VersionTriple', {
  major: req(int, 'The major version number'),
  minor: req(int, 'The minor version number'),
  micro: req(int, 'The micro version number'),
});

export const VersionInfo = struct('VersionInfo', {
  qemu: req(VersionTriple, 'The version of QEMU this monitor is compatible with'),
  package: req(str, 'Packaging information'),
});

export const queryVersion = command('query-version', {
  returns: VersionInfo,
  doc: 'Returns the current version.',
});

export const CommandInfo = struct('CommandInfo', { name: req(str, 'The command name') });

export const queryCommands = command('query-commands', {
  returns: list(CommandInfo),
  doc: 'Return a list of supported QMP commands by this server.',
});

export const humanMonitorCommand = command('human-monitor-command', {
  args: args('human-monitor-command', {
    'command-line': req(str, 'the command to execute in the human monitor'),
    'cpu-index': opt(int, 'the index of the virtual CPU to use as the default CPU'),
  }),
  returns: str,
  doc: 'Execute a command on the human monitor and return the output.',
});

export const getfd = command('getfd', {
  args: args('getfd', { fdname: req(str, 'file descriptor name') }),
  doc: 'Receive a file descriptor via SCM rights and assign it a name.',
});

export const closefd = command('closefd', {
  args: args('closefd', { fdname: req(str, 'file descriptor name') }),
  doc: 'Close a file descriptor previously passed via SCM rights.',
});
