/**
 * The source's return path under hostile input, with a real source machine (the ab guest
 * running) and a fake destination on the other end of a socket that swallows the stream and
 * answers with one bad message: REQ_PAGES before any REQ_PAGES_ID, a request for an unknown
 * block, unaligned, outside the block, an unknown message type, a wrong length, a RECV_BITMAP
 * nobody asked for. The postcopy page server (a worker thread) reads them; each fails the
 * return path with EMIG_RETURN_PATH naming the message, and — before the switchover — the
 * migration fails at once (not when it would have completed) and the source guest runs on.
 */
import * as fs from 'node:fs';
import { VirtMachine } from '../../lib/machine/virt';
import { MigrationError } from '../../lib/migration/errors';
import { OutgoingMigration } from '../../lib/migration/outgoing';
import type { OutgoingContext } from '../../lib/migration/outgoing/context';
import { MigrationOptions, type MigrationCapabilityName } from '../../lib/migration/options';
import { encodeCounted, encodeReqPages } from '../../lib/migration/postcopy/wire';
import { MigrationRunState } from '../../lib/migration/run-state';
import { MigrationState, type MigrationStatus } from '../../lib/migration/state';
import { MIG_RP_MSG } from '../../lib/migration/wire';
import { guest } from '../e2e/helpers';
import { fdChannelPair } from '../transport/helpers';

const MiB = 2 ** 20;
const RAM = 'riscv_virt_board.ram';

function frame(type: number, payload: Uint8Array = new Uint8Array(0)): Buffer {
  const h = Buffer.alloc(4);
  h.writeUInt16BE(type, 0);
  h.writeUInt16BE(payload.length, 2);
  return Buffer.concat([h, payload]);
}

interface Outcome {
  status: MigrationStatus;
  statuses: MigrationStatus[];
  rpError: unknown;
  errorDesc?: string;
  transferred: number;
  total: number;
  guestRuns: boolean;
  printedAfter: number;
}

let sm: VirtMachine;
let output = '';

beforeAll(async () => {
  sm = await VirtMachine.create({ memSize: 16 * MiB, smp: 1, kernel: fs.readFileSync(guest('ab')), append: 'size=12M' });
  sm.on('serial', (b: Uint8Array) => (output += Buffer.from(b).toString('latin1')));
  sm.cont();
  // Filled and dirtying: 12 MiB of random data must go over the wire.
  for (let i = 0; i < 600 && !/AB/.test(output); i++) await new Promise((r) => setTimeout(r, 50));
  expect(output).toMatch(/AB/);
}, 60000);

afterAll(async () => {
  await sm?.destroy();
});

/** Migrate `sm` to a fake destination that answers with `rp` once the stream flows. */
async function migrate(rp: Buffer, caps: Partial<Record<MigrationCapabilityName, boolean>> = { 'postcopy-ram': true }): Promise<Outcome> {
  const [src, dst] = fdChannelPair();
  const options = new MigrationOptions();
  options.setCapabilities(Object.entries(caps).map(([capability, state]) => ({ capability: capability as MigrationCapabilityName, state: !!state })));
  // Slow enough that the first pass over 16 MiB takes seconds: a failure must not wait for it.
  options.setParameters({ 'max-bandwidth': 2 * MiB });
  const state = new MigrationState();
  const statuses: MigrationStatus[] = [];
  state.onChange((s) => statuses.push(s));
  const out = new OutgoingMigration({ machine: sm, options, vm: new MigrationRunState(sm), state, connect: async () => src });
  let rpError: unknown = null;
  state.onChange((s) => {
    if (s === 'active') (out as unknown as { ctx: OutgoingContext }).ctx.rp!.shut.catch((e) => (rpError = e));
  });
  const swallow = (async () => {
    let answered = false;
    try {
      for (let c = await dst.read(); c; c = await dst.read()) {
        if (!answered) {
          answered = true;
          dst.write(rp);
        }
      }
    } catch {
      /* the source broke the connection */
    }
    dst.destroy();
  })();
  let timer: NodeJS.Timeout | undefined;
  const stuck = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      out.cancel();
      reject(new Error(`the migration did not fail; statuses ${statuses.join(' → ')}`));
    }, 15000);
  });
  try {
    await Promise.race([out.run({ transport: 'socket', type: 'unix', path: 'pair' }), stuck]);
  } finally {
    clearTimeout(timer);
  }
  await swallow;
  const stats = out.refreshStats();
  const before = output.length;
  await new Promise((r) => setTimeout(r, 300));
  return {
    status: state.status, statuses, rpError, errorDesc: stats.errorDesc, transferred: stats.transferred, total: stats.total, guestRuns: sm.running, printedAfter: output.length - before,
  };
}

async function failsReturnPath(rp: Buffer, field: string | undefined, detail: RegExp, caps?: Partial<Record<MigrationCapabilityName, boolean>>): Promise<void> {
  const o = await migrate(rp, caps);
  expect(o.status).toBe('failed');
  expect(o.statuses).not.toContain('device');
  expect(o.rpError).toBeInstanceOf(MigrationError);
  const e = o.rpError as MigrationError;
  expect({ code: e.code, section: e.section, field: e.field }).toEqual({ code: 'EMIG_RETURN_PATH', section: 'return-path', field });
  expect(e.message).toMatch(detail);
  // The location is said once, not once per thread the error crossed.
  expect(e.message.split("section 'return-path'")).toHaveLength(2);
  expect(o.errorDesc).toMatch(detail);
  // It failed on the bad message, long before the first pass could end.
  expect(o.transferred).toBeLessThan(o.total / 2);
  expect(o.guestRuns).toBe(true);
  expect(o.printedAfter).toBeGreaterThan(0);
}

describe('postcopy page requests', () => {
  test('REQ_PAGES before any REQ_PAGES_ID', async () => {
    await failsReturnPath(frame(MIG_RP_MSG.REQ_PAGES, encodeReqPages(0, 4096)), 'REQ_PAGES', /REQ_PAGES before any REQ_PAGES_ID/);
  });

  test('a request for an unknown block', async () => {
    await failsReturnPath(frame(MIG_RP_MSG.REQ_PAGES_ID, encodeReqPages(0, 4096, 'riscv_virt_board.rom')), 'REQ_PAGES_ID', /unknown block 'riscv_virt_board.rom'/);
  });

  test('unaligned, or outside the block', async () => {
    const ok = frame(MIG_RP_MSG.REQ_PAGES_ID, encodeReqPages(0, 4096, RAM));
    await failsReturnPath(frame(MIG_RP_MSG.REQ_PAGES_ID, encodeReqPages(0x800, 4096, RAM)), 'REQ_PAGES_ID', /not page aligned/);
    await failsReturnPath(Buffer.concat([ok, frame(MIG_RP_MSG.REQ_PAGES, encodeReqPages(4096, 100))]), 'REQ_PAGES', /0x1000\+0x64/);
    await failsReturnPath(frame(MIG_RP_MSG.REQ_PAGES_ID, encodeReqPages(16 * MiB, 4096, RAM)), 'REQ_PAGES_ID', /0x1000000\+0x1000 outside/);
    await failsReturnPath(frame(MIG_RP_MSG.REQ_PAGES_ID, encodeReqPages(16 * MiB - 4096, 8192, RAM)), 'REQ_PAGES_ID', /outside/);
  });
});

describe('framing', () => {
  test('an unknown message type, and INVALID', async () => {
    await failsReturnPath(frame(42), undefined, /Received invalid message 0x2a/);
    await failsReturnPath(frame(0), undefined, /Received invalid message 0x0/);
  });

  test('a wrong fixed length, and a message over 512 bytes', async () => {
    await failsReturnPath(frame(MIG_RP_MSG.PONG, Buffer.alloc(3)), undefined, /bad length 0x3/);
    await failsReturnPath(frame(MIG_RP_MSG.REQ_PAGES_ID, Buffer.alloc(600)), undefined, /bad length 0x258/);
  });

  test('a RECV_BITMAP nobody asked for', async () => {
    const bitmap = Buffer.alloc(8 + 512 + 8);
    bitmap.writeBigUInt64BE(512n, 0);
    bitmap.writeBigUInt64BE(0x0123456789abcdefn, 8 + 512);
    await failsReturnPath(Buffer.concat([frame(MIG_RP_MSG.RECV_BITMAP, encodeCounted(RAM)), bitmap]), 'RECV_BITMAP', /was not asked for/);
  });
});

test('precopy with return-path only: a page request is a message the source does not expect', async () => {
  await failsReturnPath(frame(MIG_RP_MSG.REQ_PAGES_ID, encodeReqPages(0, 4096, RAM)), 'REQ_PAGES_ID', /unexpected return-path message REQ_PAGES_ID/, { 'return-path': true });
});
