#!/usr/bin/env bash
# Reproduces test/fixtures/qemu-7.2-virt-idle.mig.gz: a migration stream written by QEMU itself,
# for tests of livemig-analyze and of loading QEMU's streams.
#
#   qemu-system-riscv64 -M virt -bios none -m 16M -smp 1 -kernel guests/idle.elf \
#       -display none -serial stdio -monitor none -append size=16K \
#       -qmp unix:QMP.sock,server=on,wait=off
#   wait for "tick 1" on the UART (the timer has fired and been re-armed), then on QMP:
#   qmp_capabilities; stop; migrate {"uri": "exec:cat > FILE"}; poll query-migrate -> completed
#
# Writes the stream gzipped (gzip -9 -n) plus a JSON sidecar (QEMU version, command, UART output,
# query-migrate result, sizes, sha256 of the uncompressed stream). Runs differ in timer and CPU
# values, so a re-run is equivalent, not byte-identical. Needs qemu-system-riscv64 and node.
set -euo pipefail
cd "$(dirname "$0")/.."

name=${1:-test/fixtures/qemu-7.2-virt-idle.mig}
mkdir -p "$(dirname "$name")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

node guests/qemu-run.js stream --mem 16M --append size=16K --until 'tick 1' \
    --out "$tmp/stream.mig" guests/idle.elf > "$tmp/meta.json"
gzip -9 -n -c "$tmp/stream.mig" > "$name.gz"

node - "$tmp/meta.json" "$tmp/stream.mig" "$name.gz" "$name.json" <<'JS'
const fs = require('node:fs');
const crypto = require('node:crypto');
const [meta, raw, gz, out] = process.argv.slice(2);
const m = JSON.parse(fs.readFileSync(meta, 'utf8'));
const data = fs.readFileSync(raw);
if (!/^7\.2\./.test(m.qemu)) process.stderr.write(`warning: QEMU ${m.qemu} is not 7.2.x\n`);
const sidecar = {
  description: 'QEMU-written migration stream of guests/idle.elf, stopped after "tick 1"; made by guests/make-qemu-stream.sh',
  qemu: m.qemu,
  command: m.command,
  qmp: ['qmp_capabilities', 'stop', 'migrate {"uri": "exec:cat > FILE"}', 'query-migrate until completed'],
  uart: m.uart,
  bytes: data.length,
  gzipBytes: fs.statSync(gz).size,
  sha256: crypto.createHash('sha256').update(data).digest('hex'),
  migrate: m.migrate,
};
fs.writeFileSync(out, JSON.stringify(sidecar, null, 2) + '\n');
process.stdout.write(`${out}: stream ${data.length} bytes, gzip ${sidecar.gzipBytes} bytes\n`);
JS
