/**
 * The livemig command's process-level behaviour: -S and cont, -daemonize with -pidfile, a
 * memfd memory backend with -mem-prealloc, UART input from a socket, an HMP monitor on stdio,
 * and no busy spin while every hart waits in wfi.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { QmpClient } from '../../lib/monitor/qmp-client';
import { guest, LIVEMIG, tmpdir } from './helpers';
import { sleep, stopAll, Vm } from './vm';

/** CPU seconds (user + system) a process has used, from /proc. */
function cpuSeconds(pid: number): number {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}

describe('livemig process', () => {
  let dir: string;
  beforeEach(() => (dir = tmpdir()));
  afterEach(async () => {
    await stopAll();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('-S starts paused until cont', async () => {
    const vm = await new Vm(dir, 'vm', { guest: 'hello', extra: ['-S'] }).connect();
    expect(await vm.qmp.execute('query-status')).toEqual({ status: 'prelaunch', running: false });
    await sleep(200);
    expect(vm.output).toBe('');
    await vm.qmp.execute('cont');
    expect(await vm.exited).toBe(0);
    expect(vm.output).toBe('Hello from livemig guest, hart 0\n');
  });

  test('-daemonize returns once set up and -pidfile names the daemon', async () => {
    const pidfile = path.join(dir, 'vm.pid');
    const qmp = path.join(dir, 'd.qmp');
    const parent = spawn(process.execPath, [LIVEMIG, '-M', 'virt', '-m', '32M', '-kernel', guest('idle'), '-display', 'none',
      '-serial', `file:${path.join(dir, 'serial.log')}`, '-qmp', `unix:${qmp},server=on,wait=off`, '-pidfile', pidfile, '-daemonize'], { stdio: 'ignore' });
    const code = await new Promise((r) => parent.on('exit', r));
    expect(code).toBe(0);
    const pid = Number(fs.readFileSync(pidfile, 'utf8'));
    expect(pid).not.toBe(parent.pid);
    const q = await QmpClient.connect(qmp);
    expect((await q.execute('query-status')).status).toBe('running');
    const log = path.join(dir, 'serial.log');
    for (let i = 0; i < 100 && !/idle: start=/.test(fs.readFileSync(log, 'utf8')); i++) await sleep(50);
    await q.execute('quit').catch(() => {});
    q.close();
    for (let i = 0; i < 100 && fs.existsSync(pidfile); i++) await sleep(50);
    expect(fs.existsSync(pidfile)).toBe(false);
    expect(fs.readFileSync(path.join(dir, 'serial.log'), 'utf8')).toMatch(/^idle: start=/);
  });

  test('a memfd memory backend with -mem-prealloc runs the guest', async () => {
    const vm = new Vm(dir, 'vm', {
      guest: 'hello',
      extra: ['-object', 'memory-backend-memfd,id=mem0,size=64M,share=on', '-machine', 'memory-backend=mem0', '-mem-prealloc'],
    });
    expect(await vm.exited).toBe(0);
    expect(vm.output).toBe('Hello from livemig guest, hart 0\n');
  });

  test('the UART takes input from a unix-socket backend, and the guest answers', async () => {
    const sock = path.join(dir, 'serial.sock');
    const p = spawn(process.execPath, [LIVEMIG, '-M', 'virt', '-m', '32M', '-kernel', guest('echo'), '-display', 'none',
      '-serial', `unix:${sock},server=on,wait=on`], { stdio: 'ignore' });
    let c: net.Socket | undefined;
    for (let i = 0; i < 100 && !c; i++) {
      c = await new Promise<net.Socket | undefined>((r) => {
        const s = net.connect(sock, () => r(s));
        s.on('error', () => r(undefined));
      });
      if (!c) await sleep(50);
    }
    let out = '';
    c!.on('data', (d) => (out += d));
    for (let i = 0; i < 100 && !/ready/.test(out); i++) await sleep(50);
    c!.write('migrate me\nquit\n');
    expect(await new Promise((r) => p.on('exit', r))).toBe(0);
    expect(out).toBe('echo: ready\nMIGRATE ME\nQUIT\n');
  });

  test('stdin reaches the guest with -nographic', async () => {
    const p = spawn(process.execPath, [LIVEMIG, '-M', 'virt', '-m', '32M', '-kernel', guest('echo'), '-nographic'], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    p.stdout!.on('data', (d) => (out += d));
    p.stdin!.write('abc\nquit\n');
    expect(await new Promise((r) => p.on('exit', r))).toBe(0);
    expect(out).toBe('echo: ready\nABC\nQUIT\n');
  });

  test('HMP on stdio answers commands', async () => {
    const p = spawn(process.execPath, [LIVEMIG, '-M', 'virt', '-m', '32M', '-kernel', guest('idle'), '-display', 'none',
      '-serial', 'null', '-monitor', 'stdio'], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    p.stdout!.on('data', (d) => (out += d));
    p.stdin!.write('info status\n');
    for (let i = 0; i < 100 && !/VM status: running/.test(out); i++) await sleep(50);
    expect(out).toMatch(/\(qemu\) /);
    expect(out).toMatch(/VM status: running/);
    p.stdin!.write('quit\n');
    expect(await new Promise((r) => p.on('exit', r))).toBe(0);
  });

  test('no busy spin: two harts waiting in wfi use almost no CPU', async () => {
    const vm = await new Vm(dir, 'vm', { guest: 'idle', smp: 2, append: 'size=64K' }).connect();
    await vm.waitOutput(/tick 1\n/);
    const before = cpuSeconds(vm.proc.pid!);
    await sleep(2000);
    const used = cpuSeconds(vm.proc.pid!) - before;
    // A spinning hart would burn ~2 s here; sleeping ones wake once a second for the tick.
    expect(used).toBeLessThan(0.3);
  });
});
