/**
 * cpr-transfer between real livemig processes, after QEMU's /migration/mode/transfer and
 * /migration/mode/transfer/defer: the ab guest keeps its A/B invariant across the upgrade, no
 * page is copied, a console client keeps its connection; a new process that dies or refuses
 * at any point leaves the old guest running on intact RAM; RAM that cannot be shared is
 * refused with QEMU's text. cpr-reboot (file:, RAM left in a shared file) at the end.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { native } from '../../lib/host';
import { tmpdir } from './helpers';
import { abRamOk, sleep, stopAll, Vm, type VmOptions } from './vm';

const MEM = 64 * 2 ** 20;
const SHARED = 'virt,aux-ram-share=on';
const AB: VmOptions = { guest: 'ab', mem: '64M', smp: 2, append: 'size=16M seed=11', machine: SHARED };
const PEER = path.join(__dirname, 'cpr-peer.js');

const unixCh = (type: 'main' | 'cpr', p: string) => ({ 'channel-type': type, addr: { transport: 'socket', type: 'unix', path: p } });

let dir: string;
const peers: ChildProcess[] = [];
const clients: net.Socket[] = [];
beforeEach(() => (dir = tmpdir()));
afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  for (const p of peers.splice(0)) p.kill('SIGKILL');
  await stopAll();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function until(cond: () => boolean, what: string, ms = 30000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** A console client on a unix serial socket: what it reads, and whether it ever closed. */
async function consoleClient(p: string): Promise<{ text: () => string; closed: () => boolean; sock: net.Socket }> {
  await until(() => fs.existsSync(p), 'the serial socket');
  const sock = net.connect(p);
  clients.push(sock);
  let text = '';
  let closed = false;
  sock.on('data', (d) => (text += d.toString('latin1')));
  sock.on('close', () => (closed = true));
  sock.on('error', () => undefined);
  await new Promise((r) => sock.once('connect', r));
  return { text: () => text, closed: () => closed, sock };
}

async function oldVm(opts: VmOptions = {}): Promise<Vm> {
  const vm = await new Vm(dir, 'old', { ...AB, ...opts }).connect();
  await vm.qmp.execute('migrate-set-parameters', { mode: 'cpr-transfer' });
  return vm;
}

function peer(...args: string[]): ChildProcess & { out: () => string } {
  const p = spawn(process.execPath, [PEER, ...args], { stdio: ['ignore', 'pipe', 'inherit'] }) as ChildProcess & { out: () => string };
  let out = '';
  p.stdout!.on('data', (d) => (out += d));
  p.out = () => out;
  peers.push(p);
  return p;
}

/** The old guest lives on: running, printing (on stdout, or on `prints`), its RAM intact. */
async function oldResumed(old: Vm, err: RegExp, prints = () => old.printsMore()): Promise<void> {
  const info = await old.waitStatus('failed');
  expect(info['error-desc']).toMatch(err);
  expect((await old.qmp.execute('query-status')).status).toBe('running');
  await prints();
  await abRamOk(old, dir, MEM);
}

/** quit: the reply may lose the race with the connection closing. */
async function quit(vm: Vm): Promise<number | null> {
  await vm.qmp.execute('quit').catch(() => undefined);
  return vm.exited;
}

describe('cpr-transfer', () => {
  test('transfer: no page copied, the guest and its console carry on in the new process', async () => {
    const serial = path.join(dir, 'serial.sock');
    const old = await oldVm({ serial: `unix:${serial},server=on,wait=off` });
    const con = await consoleClient(serial);
    await until(() => /AB/.test(con.text()), 'A and B on the console');
    const cpr = path.join(dir, 'cpr.sock');
    const main = path.join(dir, 'main.sock');
    const nu = new Vm(dir, 'new', {
      ...AB,
      serial: `unix:${serial},server=on,wait=off`,
      extra: ['-incoming', `unix:${main}`, '-incoming', JSON.stringify(unixCh('cpr', cpr))],
    });
    await until(() => fs.existsSync(cpr), 'the cpr socket');
    await old.qmp.execute('migrate', { channels: [unixCh('main', main), unixCh('cpr', cpr)] });
    const info = await old.waitStatus(['completed', 'failed']);
    expect(info['error-desc']).toBeUndefined();
    expect(info.status).toBe('completed');
    expect(info.ram.normal).toBe(0);
    expect(info.ram.duplicate).toBe(0);
    expect(info.ram.transferred).toBeLessThan(2 ** 20);
    expect((await old.qmp.execute('query-status')).status).toBe('postmigrate');

    await nu.connect();
    expect((await nu.waitStatus('completed')).status).toBe('completed');
    expect((await nu.qmp.execute('query-status')).status).toBe('running');
    const t = await nu.qmp.execute('x-query-vcpu-times');
    const o = await old.qmp.execute('x-query-vcpu-times');
    expect(t.running).toBeGreaterThan(o.parked);

    // The same connection, still open, now fed by the new process.
    const seen = con.text().length;
    await until(() => con.text().length > seen + 3, 'more output on the console');
    expect(con.closed()).toBe(false);
    expect(await quit(old)).toBe(0);
    const after = con.text().length;
    await until(() => con.text().length > after + 3, 'output after the old process quit');
    expect(fs.lstatSync(serial).isSocket()).toBe(true);
    await abRamOk(nu, dir, MEM);
  });

  test('transfer/defer: the cpr listener passed as a descriptor; migrate first, then migrate-incoming', async () => {
    const old = await oldVm();
    await old.waitOutput(/AB/);
    const cpr = path.join(dir, 'cpr.sock');
    const listenFd = native.listen(cpr);
    const nu = new Vm(dir, 'new', {
      ...AB,
      fds: [listenFd],
      extra: ['-incoming', 'defer', '-incoming', 'cpr,addr.transport=socket,addr.type=fd,addr.str=3'],
    });
    native.close(listenFd);
    const main = path.join(dir, 'main.sock');
    // QEMU's order: the new monitor is not up until the CPR state has been read.
    await old.qmp.execute('migrate', { channels: [unixCh('main', main), unixCh('cpr', cpr)] });
    await nu.connect();
    expect((await nu.qmp.execute('query-status')).status).toBe('inmigrate');
    expect(await old.status()).toBe('setup'); // waits for the new process to hang up
    await nu.qmp.execute('migrate-incoming', { channels: [unixCh('main', main)] });
    expect((await old.waitStatus(['completed', 'failed'])).status).toBe('completed');
    await nu.printsMore();
    await abRamOk(nu, dir, MEM);
  });

  test('the new process dies before reading the CPR state: the old guest runs on', async () => {
    const old = await oldVm();
    await old.waitOutput(/AB/);
    const cpr = path.join(dir, 'cpr.sock');
    const p = peer('hangup', cpr);
    await until(() => p.out().includes('ready'), 'the peer');
    // Refused at once (the state could not be written: EPIPE), or failed at the main connect.
    await old.qmp.execute('migrate', { channels: [unixCh('main', path.join(dir, 'main.sock')), unixCh('cpr', cpr)] }).catch(() => undefined);
    await oldResumed(old, /main\.sock|EPIPE|ECONNRESET/);
  });

  test('the new process refuses the machine it was handed (RAM size): the old guest runs on', async () => {
    const old = await oldVm();
    await old.waitOutput(/AB/);
    const cpr = path.join(dir, 'cpr.sock');
    const main = path.join(dir, 'main.sock');
    const nu = new Vm(dir, 'new', { ...AB, mem: '128M', extra: ['-incoming', `unix:${main}`, '-incoming', JSON.stringify(unixCh('cpr', cpr))] });
    await until(() => fs.existsSync(cpr), 'the cpr socket');
    await old.qmp.execute('migrate', { channels: [unixCh('main', main), unixCh('cpr', cpr)] });
    expect(await nu.exited).toBe(1);
    expect(nu.stderr).toMatch(/riscv_virt_board\.ram.*holds 67108864 bytes, the block has 134217728/);
    await oldResumed(old, /main\.sock/);
  });

  test('the new process fails loading the devices after the old one stopped: the console comes back', async () => {
    const serial = path.join(dir, 'serial.sock');
    const old = await oldVm({ serial: `unix:${serial},server=on,wait=off` });
    const con = await consoleClient(serial);
    await until(() => /AB/.test(con.text()), 'the console');
    const cpr = path.join(dir, 'cpr.sock');
    const main = path.join(dir, 'main.sock');
    const nu = new Vm(dir, 'new', {
      ...AB,
      smp: 1,
      serial: `unix:${serial},server=on,wait=off`,
      extra: ['-incoming', `unix:${main}`, '-incoming', JSON.stringify(unixCh('cpr', cpr))],
    });
    await until(() => fs.existsSync(cpr), 'the cpr socket');
    await old.qmp.execute('migrate', { channels: [unixCh('main', main), unixCh('cpr', cpr)] });
    expect(await nu.exited).toBe(1);
    expect(nu.stderr).toMatch(/Unknown savevm section or instance 'cpu_common' 1/);
    const seen = con.text().length;
    await oldResumed(old, /SHUT status 1/, () => until(() => con.text().length > seen + 3, 'the console back on the old process'));
    expect(con.closed()).toBe(false);
  });

  test('the new process crashes in the middle of the pause (no SHUT): the old guest runs on', async () => {
    const old = await oldVm();
    await old.waitOutput(/AB/);
    const cpr = path.join(dir, 'cpr.sock');
    const main = path.join(dir, 'main.sock');
    const p = peer('crash', cpr, main, String(MEM), '2');
    await until(() => p.out().includes('ready'), 'the peer');
    await old.qmp.execute('migrate', { channels: [unixCh('main', main), unixCh('cpr', cpr)] });
    const code = await new Promise((r) => p.on('exit', (c, s) => r(s ?? c)));
    expect(code).toBe('SIGKILL');
    await oldResumed(old, /return path|closed|reset|EPIPE/i);
  });

  test('RAM that cannot be shared is refused with QEMU\'s text, before anything happens', async () => {
    const cpr = { 'channel-type': 'cpr', addr: { transport: 'socket', type: 'unix', path: path.join(dir, 'none.sock') } };
    const chans = [unixCh('main', path.join(dir, 'main.sock')), cpr];
    const plain = await oldVm({ machine: 'virt' });
    await expect(plain.qmp.execute('migrate', { channels: chans })).rejects.toThrow(
      'Memory region riscv_virt_board.ram is not compatible with CPR. share=on is required for memory-backend objects, and aux-ram-share=on is required.',
    );
    plain.kill();
    // A memfd backend shares main RAM, but the mask ROM is implicit RAM: QEMU names it.
    const backend = await new Vm(dir, 'be', {
      ...AB,
      machine: 'virt,memory-backend=ram0',
      extra: ['-object', 'memory-backend-memfd,id=ram0,size=64M'],
    }).connect();
    await backend.qmp.execute('migrate-set-parameters', { mode: 'cpr-transfer' });
    await expect(backend.qmp.execute('migrate', { channels: chans })).rejects.toThrow('Memory region riscv_virt_board.mrom is not compatible with CPR.');
    await expect(backend.qmp.execute('migrate', { uri: 'unix:x' })).rejects.toThrow("missing 'cpr' migration channel");
    expect(await backend.qmp.execute('query-migrate')).toEqual({});
    await backend.waitOutput(/AB/);
  });
});

test('cpr-reboot: the guest stops first, its RAM stays in a shared file, only device state is saved', async () => {
  const ram = path.join(dir, 'guest-ram');
  const file = path.join(dir, 'state.mig');
  const opts: VmOptions = {
    ...AB,
    machine: 'virt,memory-backend=ram0',
    extra: ['-object', `memory-backend-file,id=ram0,size=64M,mem-path=${ram},share=on`],
  };
  const old = await new Vm(dir, 'old', opts).connect();
  await old.waitOutput(/AB/);
  await old.qmp.execute('migrate-set-parameters', { mode: 'cpr-reboot' });
  await old.setCaps({ 'x-ignore-shared': true });
  await old.qmp.execute('migrate', { uri: `file:${file}` });
  expect((await old.waitStatus(['completed', 'failed'])).status).toBe('completed');
  expect((await old.qmp.execute('query-status')).status).toBe('postmigrate');
  expect(fs.statSync(file).size).toBeLessThan(2 ** 20);
  await quit(old);

  const nu = await new Vm(dir, 'new', { ...opts, extra: [...opts.extra!, '-incoming', 'defer'] }).connect();
  await nu.qmp.execute('migrate-set-parameters', { mode: 'cpr-reboot' });
  await nu.setCaps({ 'x-ignore-shared': true });
  await nu.qmp.execute('migrate-incoming', { uri: `file:${file}` });
  await nu.waitStatus('completed');
  await nu.printsMore();
  await abRamOk(nu, dir, MEM);
});
