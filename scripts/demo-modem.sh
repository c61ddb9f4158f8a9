#!/usr/bin/env bash
# make demo, the radio module's story: one signed package updates the
# system set and the radio module together. A simulated Quectel BG95 (`meterupd sim modem
# --simulate quectel`) runs on a pseudo-terminal as the meter's module;
# the daemon installs the module's firmware over its AT port (DFOTA),
# then the system set, which boots on trial and is committed.
# Usage: demo-modem.sh BINDIR
set -euo pipefail
bin=$(cd "${1:-bin}" && pwd)
work=$(mktemp -d)
daemon_pid=
module_pid=
events_pid=
cleanup() {
  for p in "$events_pid" "$daemon_pid" "$module_pid"; do
    if [ -n "$p" ]; then kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; fi
  done
  rm -rf "$work"
}
trap cleanup EXIT
node="$work/meter3"
mu() { "$bin/meterupd" --state "$node" "$@"; }
mp() { "$bin/meterpkg" "$@"; }
say() { printf '\n\033[1m%s\033[0m\n' "$*"; }
step() { printf '\n  $ meterupd %s\n' "$*"; mu "$@" | sed 's/^/    /'; }
# status_lines: the lines of `meterupd status` this story is about.
status_lines() {
  printf '\n  $ meterupd status | grep -E "^(board|last result|radio|modem firmware|validation|  item)"\n'
  mu status | grep -E "^(board|last result|radio|modem firmware|validation|  item)" | sed "s/^/    /" || true
}
# settle: wait until the daemon has driven the update to rest, then show
# the events of the package.
settle() {
  local st
  for _ in $(seq 300); do
    st=$(mu status --json | sed -n 's/^  "state": "\(.*\)",$/\1/p')
    case "$st" in idle|committed|rolled-back|fell-back|failed) break ;; esac
    sleep 0.1
  done
  sleep 0.2
  printf '\n  meterupd events showed (repeats and progress between quarters left out):\n'
  grep -Ev ' installing .*\((([0-9]|1[0-9]|2[0-4]|2[6-9]|[3-4][0-9]|5[1-9]|6[0-9]|7[0-4]|7[6-9]|[89][0-9]))%\)' "$work/events.log" |
    awk '{ t = $0; sub(/^#[0-9]+ /, "", t); if (t != last) print "    " $0; last = t }'
  : >"$work/events.log"
}
# journal_steps: the journal's records where the package's components
# moved on (every step of the module's update is journalled first).
journal_steps() {
  printf '\n  $ meterupd journal   (the records where the components moved on)\n'
  mu journal | awk '{ c = ""; if (match($0, /; components [^;]*/)) c = substr($0, RSTART, RLENGTH);
    k = c; if (match($0, /; modem .*/)) k = k substr($0, RSTART, RLENGTH);
    if (c != "" && k != last) { sub(/ area [0-9]+ \+[0-9]+:/, ""); print "    " $0 } last = k }' | sed 's/primary [A-F]; [^;]*; //' | tail -n 14
}
cd "$work"

say "The radio module's story — one package updates the system set and the radio module together."
mp keygen --alg ed25519 release >/dev/null
printf '\n  $ meterupd sim init meter3 --version 1.0 --keys release.pub.pem\n'
mu sim init "$node" --version 1.0 --image-size $((1 << 20)) --keys release.pub.pem >/dev/null
echo "  The meter's radio module: a Quectel BG95-M3 on its UART, simulated on a pseudo-terminal."
printf '  $ meterupd sim modem --simulate quectel &\n'
"$bin/meterupd" --state "$node" sim modem --simulate quectel >"$work/module.log" 2>&1 &
module_pid=$!
for _ in $(seq 50); do grep -q "simulated" "$work/module.log" 2>/dev/null && break; sleep 0.1; done
sed 's/^/    /' "$work/module.log"
printf '  $ meterupd run &\n'
"$bin/meterupd" --state "$node" run >>"$work/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 100); do [ -S "$node/meterupd.sock" ] && break; sleep 0.1; done
"$bin/meterupd" --state "$node" events >>"$work/events.log" 2>&1 &
events_pid=$!
for _ in $(seq 50); do mu status | grep -q '^modem firmware' && break; sleep 0.1; done
echo "  The daemon asked the module at its start: firmware BG95M3LAR02A03."
status_lines

echo
echo "  The maker's DFOTA file takes the module to BG95M3LAR02A04_01.200.01.200; system set 2.0 needs it"
echo "  (a prerequisite in the manifest), so the module is updated first, then the system set."
mu sim image system-1.0.img --version 1.0 --size $((1 << 20)) >/dev/null
mu sim image system-2.0.img --version 2.0 --size $((1 << 20)) >/dev/null
# The simulated module takes a file that names the revision it installs.
{ printf 'MODEMFW BG95M3LAR02A04_01.200.01.200\n'; head -c 6000 /dev/urandom; } >bg95-a04.bin
cat >spec.json <<'SPEC'
{
  "sequence": 1,
  "defaults": {"device_types": ["em300"], "checks": [{"kind": "device-type"}, {"kind": "power"}]},
  "items": [
    {"id": "sys-2.0", "component": "system", "from": "1.0", "to": "2.0",
     "old": "system-1.0.img", "new": "system-2.0.img", "prereqs": [{"item": "bg95-a04"}]},
    {"id": "bg95-a04", "component": "modem", "kind": "full", "to": "BG95M3LAR02A04_01.200.01.200",
     "new": "bg95-a04.bin"}
  ]
}
SPEC
printf '\n  $ meterpkg build spec.json -o system-and-modem.pkg --key release.key.pem\n'
mp build spec.json -o system-and-modem.pkg --key release.key.pem | sed 's/^/    /'
step install system-and-modem.pkg
settle
status_lines
journal_steps

say "A package the meter does not keep: the module goes back with the maker's file back."
echo "  System set 3.0 has broken metrology; it needs module firmware A05. The maker ships the DFOTA file"
echo "  A05 → A04 too: the modem item names it as its \"revert\" (an item of its own, never installed by itself)."
mu sim image system-3.0.img --version 3.0 --size $((1 << 20)) --unhealthy >/dev/null
{ printf 'MODEMFW BG95M3LAR02A05_01.200.01.200\n'; head -c 6000 /dev/urandom; } >bg95-a05.bin
{ printf 'MODEMFW BG95M3LAR02A04_01.200.01.200\n'; head -c 6000 /dev/urandom; } >bg95-a05-back.bin
cat >spec2.json <<'SPEC'
{
  "sequence": 2,
  "defaults": {"device_types": ["em300"], "checks": [{"kind": "device-type"}, {"kind": "power"}]},
  "items": [
    {"id": "sys-3.0", "component": "system", "from": "2.0", "to": "3.0",
     "old": "system-2.0.img", "new": "system-3.0.img", "prereqs": [{"item": "bg95-a05"}]},
    {"id": "bg95-a05", "component": "modem", "kind": "full", "to": "BG95M3LAR02A05_01.200.01.200",
     "new": "bg95-a05.bin", "revert": "bg95-a05-back"},
    {"id": "bg95-a05-back", "component": "modem", "kind": "full", "to": "BG95M3LAR02A04_01.200.01.200",
     "new": "bg95-a05-back.bin"}
  ]
}
SPEC
mp build spec2.json -o broken-set.pkg --key release.key.pem >/dev/null
step install broken-set.pkg
echo "  On trial, 3.0 fails its health check: the node goes back to 2.0 in B, and the agent takes the module"
echo "  back to A04 with the revert file (journalled step by step, like the update) before it reports."
settle
status_lines
journal_steps
