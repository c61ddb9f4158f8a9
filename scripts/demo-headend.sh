#!/usr/bin/env bash
# make demo, the head-end's story: `headend serve` (embedded broker, SQLite,
# package server) on this machine, three simulated meters under
# `meterupd run --mqtt` connect to it, and one campaign updates them in two
# waves; one em300 is an older meter that applies only version 1 of the
# node delta format and is sent the release's version-1 delta; the em310
# build of the release is broken, so that meter fails its health check and
# rolls back, and the fleet table shows it.
# Usage: demo-headend.sh BINDIR
set -euo pipefail
bin=$(cd "${1:-bin}" && pwd)
work=$(mktemp -d)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
say() { printf '\n\033[1m%s\033[0m\n' "$*"; }
he() { "$bin/headend" "$@" --db "$work/headend.db" --packages "$work/packages"; }
# hstep: a head-end command, shown as the operator types it.
hstep() { printf '\n  $ headend %s\n' "$*"; he "$@" | sed 's/^/    /'; }
mu() { local n=$1; shift; "$bin/meterupd" --state "$work/$n" "$@"; }
fail() { echo "demo-headend: $*" >&2; exit 1; }
# waitfor SECONDS WHAT COMMAND...: until COMMAND succeeds.
waitfor() {
  local s=$1 what=$2
  shift 2
  for _ in $(seq $((s * 10))); do "$@" && return 0; sleep 0.1; done
  fail "no $what after ${s}s"
}

say "The head-end's story: a campaign over a small fleet, through the utility's lab head-end."
echo "  The utility's release key; every meter trusts its public half."
printf '\n  $ meterpkg keygen --alg ed25519 release\n'
"$bin/meterpkg" keygen --alg ed25519 release >/dev/null
echo "  Release 2.0 is built for two device types; the em300 delta twice, in the newest node delta"
echo "  format and, for older meters, in its version 1. The em310 build is broken: its metrology"
echo "  produces no readings (the meter will find out on trial, after the switch)."
mu m1 sim image system-1.0.img --version 1.0 --size $((1 << 20)) >/dev/null
mu m1 sim image system-2.0.img --version 2.0 --size $((1 << 20)) >/dev/null
mu m1 sim image system-2.0-em310.img --version 2.0 --size $((1 << 20)) --unhealthy >/dev/null
mkdir packages
cat >spec.json <<'SPEC'
{
  "sequence": 1,
  "vendor_id": 19781, "class_id": 3,
  "defaults": {
    "component": "system", "format": "node", "hardware": {"min": 1, "max": 4},
    "checks": [{"kind": "device-type"}, {"kind": "source-version"}, {"kind": "source-digest"}],
    "thresholds": {"skip": 0, "stop": 1}
  },
  "items": [
    {"id": "em300-1-2", "device_types": ["em300"], "from": "1.0", "to": "2.0", "old": "system-1.0.img", "new": "system-2.0.img"},
    {"id": "em300-1-2-v1", "device_types": ["em300"], "format": "node1", "from": "1.0", "to": "2.0", "old": "system-1.0.img", "new": "system-2.0.img"},
    {"id": "em310-1-2", "device_types": ["em310"], "from": "1.0", "to": "2.0", "old": "system-1.0.img", "new": "system-2.0-em310.img"}
  ]
}
SPEC
printf '\n  $ meterpkg build spec.json -o packages/release-2.0.pkg --key release.key.pem\n'
"$bin/meterpkg" build spec.json -o packages/release-2.0.pkg --key release.key.pem | sed 's/^/    /'

say "The head-end starts: one process with its own MQTT broker, the package server and its store (SQLite)."
printf '\n  $ headend serve --mqtt 127.0.0.1:0 --http 127.0.0.1:0 --tick 200ms &    (its log goes to headend.log)\n'
"$bin/headend" serve --mqtt 127.0.0.1:0 --http 127.0.0.1:0 --tick 200ms \
  --db "$work/headend.db" --packages "$work/packages" >"$work/headend.log" 2>&1 &
pids+=($!)
waitfor 20 "head-end" grep -q 'head-end serving' "$work/headend.log"
mqtt=$(sed -n 's/.*head-end serving.* mqtt=\([^ ]*\).*/\1/p' "$work/headend.log")
http=$(sed -n 's/.*head-end serving.* http=\([^ ]*\).*/\1/p' "$work/headend.log")
echo "    listening: MQTT on $mqtt, packages and the web page on http://$http/"

say "Three meters on version 1.0 connect: m1 and m2 are em300 (m2 an older one), m3 is an em310."
echo "  m2 is provisioned as an older meter: its update requests advertise version 1 of the node"
echo "  delta format only (the others advertise every version this build applies)."
for n in m1:em300 m2:em300:--delta-formats=1 m3:em310; do
  IFS=: read -r id type older <<<"$n"
  printf '\n  $ meterupd sim init %s --version 1.0 --device-type %s %s--keys release.pub.pem\n' "$id" "$type" "${older:+$older }"
  # shellcheck disable=SC2086 # $older is one flag or nothing
  mu "$id" sim init "$work/$id" --version 1.0 --image system-1.0.img --device-type "$type" $older --keys release.pub.pem >/dev/null
  printf '  $ meterupd --state %s run --mqtt tcp://%s --id %s &\n' "$id" "$mqtt" "$id"
  "$bin/meterupd" --state "$work/$id" run --mqtt "tcp://$mqtt" --id "$id" >"$work/$id.log" 2>&1 &
  pids+=($!)
done
nodes_seen() { [ "$(he nodes --json | grep -c '"id"')" -eq 3 ]; }
waitfor 30 "three nodes in the fleet table" nodes_seen
echo "  Each meter reports its state on connect; the head-end's fleet table lists them (the device"
echo "  type comes with a meter's first update request)."
hstep nodes

say "The operator creates a campaign for every meter on 1.0, in two waves, and starts it."
echo "  --tailor: each meter is first sent the signed manifest alone and answers with its update"
echo "  request (device type, hardware, installed versions, the manifest schemas and delta formats it"
echo "  reads); the head-end answers with the package tailored for the meter's group: the same"
echo "  release-signed manifest, with only the payloads of that group's route."
hstep campaign create release-2.0.pkg --id release-2.0 --select version=1.0 --waves 30%,100% --tailor
hstep campaign start release-2.0
echo "  Wave 1 (one meter) gets its job in its desired document (retained on state/<id>/update/delta)."
echo "  The meter fetches its package with Range requests, checks the signature, installs into its"
echo "  idle slot, switches, runs on trial and reports at every step. Wave 2 starts when wave 1 is done."
done_state() { he campaign status release-2.0 --json | grep -q '"state": "done"'; }
waitfor 90 "campaign done" done_state
printf '\n  $ ls -l packages    (the release, and one tailored package per group: em300 reading every format,\n                       em300 reading format 1 only, em310)\n'
(cd packages && for f in *.pkg; do printf '    %-28s %7d bytes\n' "$f" "$(stat -c %s "$f")"; done)

say "The campaign is done: what the operator sees."
hstep campaign status release-2.0
hstep nodes
echo "  m3 (em310) switched to 2.0, failed its health check on trial and went back to 1.0 by itself."
echo "  Its history, as the head-end recorded its reports:"
hstep node m3
printf '\n  And on the meter itself:\n'
printf '\n  $ meterupd --state m3 status\n'
mu m3 status | sed 's/^/    /'
echo "  The older em300 (m2) was sent the version-1 delta, and committed 2.0 through it:"
printf '\n  $ meterupd --state m2 status | grep item\n'
mu m2 status | grep item | sed 's/^ */    /'
# The demo's own check: m1 and m2 committed 2.0 (m2 through the version-1
# delta), m3 rolled back.
mu m2 status | grep -q 'item em300-1-2-v1:' || fail "m2 did not install the version-1 delta"
for id in m1 m2; do mu "$id" status --json | grep -q '"version": "2.0"' || fail "$id did not commit 2.0"; done
he nodes | grep -q '^m3 .* rolled-back ' || fail "m3 is not shown rolled back"
