/**
 * The postcopy device package (QEMU postcopy_start: a qemu_buf channel wrapped in PACKAGED):
 * everything the destination must have before it runs the guest, sent as one blob so the
 * destination reads it whole and its main channel stays free for pages while devices load.
 *
 *   LISTEN │ FULL sections of every device │ PING 3 │ [PING 0x42: with a return path] │ RUN
 */
import { CollectingSink, QemuFileWriter } from '../../stream';
import { PING_PACKAGED_LOADED } from '../postcopy/wire';
import { SaveVm } from '../savevm';
import { MIG_CMD } from '../wire';
import type { OutgoingContext } from './context';

export function buildPackage(ctx: OutgoingContext): Uint8Array {
  const sv = ctx.sv!;
  const sink = new CollectingSink();
  const f = new QemuFileWriter(sink);
  const inner = new SaveVm(f, sv.registry, sv.config, sv.format);
  inner.command(MIG_CMD.POSTCOPY_LISTEN);
  inner.saveDevices();
  inner.ping(3);
  if (ctx.rp) inner.ping(PING_PACKAGED_LOADED);
  inner.command(MIG_CMD.POSTCOPY_RUN);
  f.flush();
  if (f.error) throw f.error;
  return sink.bytes();
}
