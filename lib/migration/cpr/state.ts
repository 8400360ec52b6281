/**
 * The CPR state (QEMU migration/cpr.c), the whole content of the cpr channel:
 *
 *   be32 0x51435052 "QCPR"        QEMU_CPR_FILE_MAGIC
 *   be32 0x00000001               QEMU_CPR_FILE_VERSION
 *   VMState "CprState" v1, no section header, loaded as version 1:
 *     fds: qlist of "cpr fd" v1                        (VMSTATE_QLIST_V)
 *       ┌────┬──────────────┬──────────────────────┬──────────┬─────┐
 *       │ 01 │ be32 namelen │ name[namelen] incl.  │ be32 id  │ ' ' │ + the fd by SCM_RIGHTS
 *       │    │              │ its NUL              │ (int32)  │     │   on that byte
 *       └────┴──────────────┴──────────────────────┴──────────┴─────┘
 *     00                                               end of the list
 *     [0x05 subsection "CprState/vfio devices"]        QEMU's VFIO records: livemig has no VFIO
 *
 * Names follow QEMU: a RAM block's descriptor goes by its memory region's name (the memory
 * backend's id, or the block's idstr for implicit RAM such as `riscv_virt_board.mrom`), id 0.
 * livemig adds the serial chardev's descriptors under `<chardev id>/<role>` (`serial0/listen`,
 * `serial0/conn`, `serial0/file`), id 0: QEMU hands over no chardev.
 *
 * The channel is hostile until proven otherwise: the magic and version are exact, a name is
 * 1..CPR_NAME_MAX bytes ending in its only NUL, at most CPR_FDS_MAX descriptors are accepted,
 * and a name may appear once. Every failure names the field; every descriptor received is
 * closed unless the load succeeds and hands it to the caller.
 */
import { StreamError, type QemuFileReader, type QemuFileWriter } from '../../stream';
import { F, VMStateError, vmstateLoad, vmstateSave, type VMStateDescription } from '../../vmstate';
import { MigrationError } from '../errors';
import { asMigrationError } from '../loadvm';
import { closeQuietly } from '../../host';

export const QEMU_CPR_FILE_MAGIC = 0x51435052;
export const QEMU_CPR_FILE_VERSION = 1;
/** More descriptors than a virt machine could ever hand over (RAM blocks, chardevs). */
export const CPR_FDS_MAX = 64;
/** Bytes of a name, its NUL included. */
export const CPR_NAME_MAX = 256;

/** One descriptor of the state: QEMU's CprFd. */
export interface CprFd {
  readonly name: string;
  readonly id: number;
  readonly fd: number;
}

/** The wire form of one element (namelen and name as bytes). */
interface CprFdWire {
  namelen: number;
  name: Uint8Array;
  id: number;
  fd: number;
}

interface CprStateWire {
  fds: CprFdWire[];
}

const cprError = (detail: string, field: string) => new MigrationError('EMIG_CPR', detail, { section: 'CprState', field });

function nameLength(o: CprFdWire): number {
  if (o.namelen < 1 || o.namelen > CPR_NAME_MAX) throw new Error(`name length ${o.namelen} is outside 1..${CPR_NAME_MAX}`);
  return o.namelen;
}

const VMSTATE_CPR_FD: VMStateDescription<CprFdWire> = {
  name: 'cpr fd',
  versionId: 1,
  minimumVersionId: 1,
  fields: [F.uint32('namelen'), F.vbuffer('name', nameLength), F.int32('id'), F.fd('fd')],
};

const VMSTATE_CPR_STATE: VMStateDescription<CprStateWire> = {
  name: 'CprState',
  versionId: 1,
  minimumVersionId: 1,
  fields: [F.qlist('fds', VMSTATE_CPR_FD, CPR_FDS_MAX)],
};

/** Writes the state. The descriptors stay open here: the receiver gets its own copies. */
export function saveCprState(f: QemuFileWriter, fds: readonly CprFd[]): void {
  const seen = new Set<string>();
  const wire: CprFdWire[] = fds.map(({ name, id, fd }) => {
    const bytes = Buffer.from(`${name}\0`, 'latin1');
    if (name.length === 0 || name.includes('\0') || bytes.length > CPR_NAME_MAX) throw cprError(`bad descriptor name '${name}'`, 'fds');
    const key = `${name}#${id}`;
    if (seen.has(key)) throw cprError(`descriptor '${name}' (id ${id}) listed twice`, 'fds');
    seen.add(key);
    return { namelen: bytes.length, name: bytes, id, fd };
  });
  if (wire.length > CPR_FDS_MAX) throw cprError(`${wire.length} descriptors, at most ${CPR_FDS_MAX}`, 'fds');
  f.putBe32(QEMU_CPR_FILE_MAGIC);
  f.putBe32(QEMU_CPR_FILE_VERSION);
  vmstateSave(f, VMSTATE_CPR_STATE, { fds: wire }, { vmdesc: false, idstr: 'CprState' });
}

/**
 * Reads the state from a reader whose channel passes descriptors. Resolves with the
 * descriptors, which the caller owns; on any failure every descriptor received so far is
 * closed and a MigrationError names the field.
 */
export async function loadCprState(f: QemuFileReader): Promise<CprFd[]> {
  const state: CprStateWire = { fds: [] };
  try {
    await need(f, 8, 'magic');
    const at = f.position;
    const magic = f.getBe32();
    if (magic !== QEMU_CPR_FILE_MAGIC) {
      throw new MigrationError('EMIG_HEADER', `Not a migration stream (bad magic ${magic.toString(16)}, expected 51435052 "QCPR")`, {
        section: 'CprState',
        field: 'magic',
        position: at,
      });
    }
    const version = f.getBe32();
    if (version !== QEMU_CPR_FILE_VERSION) {
      throw new MigrationError('EMIG_VERSION', `Unsupported migration stream version ${version} (expected ${QEMU_CPR_FILE_VERSION})`, {
        section: 'CprState',
        field: 'version',
        position: at + 4,
      });
    }
    try {
      await vmstateLoad(f, VMSTATE_CPR_STATE, state, QEMU_CPR_FILE_VERSION, { idstr: 'CprState' });
    } catch (e) {
      throw cprLoadError(e, f);
    }
    return checked(state.fds);
  } catch (e) {
    for (const el of state.fds) if (typeof el.fd === 'number' && el.fd >= 0) closeQuietly(el.fd);
    throw e;
  }
}

function checked(list: readonly CprFdWire[]): CprFd[] {
  const out: CprFd[] = [];
  const seen = new Set<string>();
  list.forEach((el, i) => {
    const field = `fds[${i}]/name`;
    const nul = el.name.indexOf(0);
    if (nul !== el.namelen - 1) throw cprError(nul < 0 ? 'name is not NUL-terminated' : 'name has a NUL inside it', field);
    const name = Buffer.from(el.name.subarray(0, nul)).toString('latin1');
    if (!/^[\x21-\x7e]+$/.test(name)) throw cprError(`name ${JSON.stringify(name)} has bytes outside printable ASCII`, field);
    if (seen.has(`${name}#${el.id}`)) throw cprError(`'${name}' (id ${el.id}) appears twice`, field);
    seen.add(`${name}#${el.id}`);
    out.push({ name, id: el.id, fd: el.fd });
  });
  return out;
}

async function need(f: QemuFileReader, n: number, field: string): Promise<void> {
  if (f.has(n) || (await f.ensure(n))) return;
  throw truncated(f, field);
}

function truncated(f: QemuFileReader, field: string): MigrationError {
  const err = f.error;
  if (err && !(err instanceof StreamError && err.code === 'ESTREAM_EOF')) return asMigrationError(err, 'CprState', f.position);
  return new MigrationError('EMIG_TRUNCATED', 'the cpr state ended early', { section: 'CprState', field, position: f.position });
}

/** The vmstate layer names the field path (CprState/fds[2]/fd); keep it, as EMIG_CPR unless
 * the stream simply ended or hit a limit. */
function cprLoadError(e: unknown, f: QemuFileReader): MigrationError {
  if (e instanceof VMStateError) {
    const code = e.code === 'EVMSTATE_TRUNCATED' ? 'EMIG_TRUNCATED' : e.code === 'EVMSTATE_LIMIT' ? 'EMIG_LIMIT' : 'EMIG_CPR';
    return new MigrationError(code, e.detail, { section: 'CprState', field: e.field || undefined, position: e.position, cause: e });
  }
  return asMigrationError(e, 'CprState', f.position);
}

