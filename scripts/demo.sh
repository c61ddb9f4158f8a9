#!/usr/bin/env bash
# make demo: a simulated meter goes through four update stories, told step
# by step. The stories go through the daemon, as on a meter: `meterupd run`
# in the background owns the node, the CLI is its client, and
# `meterupd events` follows what it does. Usage: demo.sh BINDIR
set -euo pipefail
bin=$(cd "${1:-bin}" && pwd)
work=$(mktemp -d)
daemon_pid=
events_pid=
extra_pids=()
metrology_pid=
cleanup() {
  for p in "${extra_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -n "$metrology_pid" ]; then kill "$metrology_pid" 2>/dev/null || true; fi
  if [ -n "$events_pid" ]; then kill "$events_pid" 2>/dev/null || true; fi
  if [ -n "$daemon_pid" ]; then kill "$daemon_pid" 2>/dev/null || true; wait "$daemon_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
node="$work/meter"
mu() { "$bin/meterupd" --state "$node" "$@"; }
# start_daemon: `meterupd run` in the background, and `meterupd events`
# following it; returns once the daemon answers on its socket.
start_daemon() {
  printf '\n  $ meterupd run &          (the daemon; its output goes to daemon.log)\n'
  # Not through mu: $! must be the daemon itself, not a subshell.
  "$bin/meterupd" --state "$node" run >>"$work/daemon.log" 2>&1 &
  daemon_pid=$!
  for _ in $(seq 100); do [ -S "$node/meterupd.sock" ] && break; sleep 0.1; done
  printf '  $ meterupd events &       (follows the daemon; its lines are shown after each story)\n'
  "$bin/meterupd" --state "$node" events >>"$work/events.log" 2>&1 &
  events_pid=$!
  sleep 0.2
  sed 's/^/    /' "$work/daemon.log"
  : >"$work/daemon.log"
}
# stop_daemon: SIGTERM, as init sends it; the daemon exits 0.
stop_daemon() {
  printf '\n  $ kill -TERM <meterupd run>\n'
  kill "$daemon_pid"
  local rc=0
  wait "$daemon_pid" || rc=$?
  daemon_pid=
  wait "$events_pid" 2>/dev/null || true
  events_pid=
  echo "    the daemon stopped, exit status $rc"
}
# settle: wait until the daemon has driven the update to rest, then show
# the events of the story.
settle() {
  local st
  for _ in $(seq 300); do
    st=$(mu status --json | sed -n 's/^  "state": "\(.*\)",$/\1/p')
    case "$st" in idle|installed|committed|rolled-back|fell-back|failed) break ;; esac
    sleep 0.1
  done
  sleep 0.2
  printf '\n  meterupd events showed (progress comes at every erase block; every 25%% shown here):\n'
  grep -Ev ' installing .*\((([0-9]|1[0-9]|2[0-4]|2[6-9]|[3-4][0-9]|5[1-9]|6[0-9]|7[0-4]|7[6-9]|[89][0-9]))%\)' "$work/events.log" | sed 's/^/    /'
  : >"$work/events.log"
}
say() { printf '\n\033[1m%s\033[0m\n' "$*"; }
step() { printf '\n  $ meterupd %s\n' "$*"; mu "$@" | sed 's/^/    /'; }
image() { # image NAME VERSION [--unhealthy|--unbootable]: prints the digest
  mu sim image "$work/$1" --version "$2" --size $((4 << 20)) "${@:3}"
}

mp() { "$bin/meterpkg" "$@"; }
cd "$work"

say "The utility makes its signing key; the meter maker builds the key's public half into every meter."
printf '\n  $ meterpkg keygen --alg ed25519 release\n'
mp keygen --alg ed25519 release | sed 's/^/    /'

say "A new meter leaves the factory: version 1.0 in the fail-safe set F and in A."
step sim init "$node" --version 1.0 --image-size $((4 << 20)) --keys release.pub.pem
echo "  The meter boots; init starts the agent's daemon. Every command from now on is its client."
start_daemon
step status

say "Story 1 — a signed update that succeeds: a delta chain 1.0 → 2.0 → 3.0."
echo "  The head-end builds a package from three releases: two binary deltas, a signed manifest."
for v in 1.0 2.0 3.0; do image system-$v.img $v >/dev/null; done
cat >spec.json <<'SPEC'
{
  "sequence": 1,
  "vendor_id": 19781, "class_id": 3,
  "defaults": {
    "component": "system", "format": "node",
    "device_types": ["em300", "em310"], "hardware": {"min": 1, "max": 4},
    "checks": [{"kind": "device-type"}, {"kind": "power"}, {"kind": "free-space"},
               {"kind": "source-version"}, {"kind": "source-digest"}],
    "thresholds": {"skip": 0, "stop": 1}
  },
  "items": [
    {"id": "sys-1-2", "from": "1.0", "to": "2.0", "old": "system-1.0.img", "new": "system-2.0.img"},
    {"id": "sys-2-3", "from": "2.0", "to": "3.0", "old": "system-2.0.img", "new": "system-3.0.img"}
  ]
}
SPEC
printf '\n  $ meterpkg build spec.json -o update.pkg --key release.key.pem\n'
mp build spec.json -o update.pkg --key release.key.pem | sed 's/^/    /'
printf '\n  $ meterpkg inspect update.pkg\n'
mp inspect update.pkg | sed 's/^/    /'
echo "  $(stat -c %s update.pkg) bytes to send over the radio for two 4 MiB releases."
echo "  The meter checks the signature first, then its own facts against the manifest's checks,"
echo "  streams the deltas into its store, and applies both in one pass from A into the idle slot B."
step install update.pkg
echo "  The daemon starts the agent again on B, on trial: its health checks pass, so it commits B."
settle
step status

say "A bad package changes nothing."
echo "  The same package again (a replay): its sequence number is not above the meter's floor."
printf '\n  $ meterupd install update.pkg\n'
mu install update.pkg 2>&1 | sed 's/^/    /' || true
echo "  A package whose payload was altered on the way (one bit flipped):"
cp update.pkg tampered.pkg
sed -i 's/"sequence": 1/"sequence": 2/' spec.json
mp build spec.json -o tampered.pkg --key release.key.pem >/dev/null
# Flip one bit inside the first payload (the manifest entry is under
# 1 KiB, so the first payload's data starts at byte 2048).
off=2148
b=$(od -An -tu1 -j $off -N1 tampered.pkg | tr -d ' ')
printf "$(printf '\\%03o' $((b ^ 0x40)))" | dd of=tampered.pkg bs=1 seek=$off conv=notrunc status=none
printf '\n  $ meterupd install tampered.pkg\n'
mu install tampered.pkg 2>&1 | sed 's/^/    /' || true
echo "  A package signed with a key the meter does not trust:"
mp keygen --alg p256 intruder >/dev/null
mp build spec.json -o foreign.pkg --key intruder.key.pem >/dev/null
printf '\n  $ meterupd install foreign.pkg\n'
mu install foreign.pkg 2>&1 | sed 's/^/    /' || true

say "Story 2 — the new set boots but fails its health check: rollback to the previous set."
echo "  (Stories 2 to 4 use the development path: a bare image and its SHA-256.)"
echo "  Version 4.0 is broken: its metrology process produces no readings."
sha=$(image v4.img 4.0 --unhealthy)
step install v4.img --sha256 "$sha" --version 4.0
echo "  On trial in A, the health check fails: A is marked bad, the node goes back to B."
settle
step status

say "Story 3 — the new set does not boot at all: the bootloader gives up, the agent reports it."
echo "  Version 4.0.1 panics at boot. The bootloader tries A three times, then starts B."
sha=$(image v401.img 4.0.1 --unbootable)
step install v401.img --sha256 "$sha" --version 4.0.1
echo "  The agent starts on B, sees that the trial of A never came up, marks A bad and reports the rollback."
settle
step status

say "Story 4 — the previous set fails too: fall back to the factory set F."
echo "  The meter is switched off for a while (init stops the daemon with SIGTERM) and"
echo "  meanwhile a flash cell in B wears out: B no longer matches its checksum."
stop_daemon
step sim damage B
start_daemon
echo "  Version 5.0 is installed into A, and it is broken as well."
sha=$(image v5.img 5.0 --unhealthy)
step install v5.img --sha256 "$sha" --version 5.0
echo "  A fails its trial. Going back, the bootloader finds B's image corrupt and will not start it:"
echo "  the previous set has failed too, and the node falls back to the factory set F."
settle

say "Bad input changes nothing: an image whose digest is wrong is refused."
printf '\n  $ meterupd install v4.img --sha256 000…000 --version 9.9.9\n'
mu install v4.img --sha256 "$(printf '0%.0s' {1..64})" --version 9.9.9 2>&1 | sed 's/^/    /' || true

say "Story 5 — the meter is closing its billing period: the activation waits for it."
echo "  The metrology process registers with the daemon, to be asked before every activation."
printf '\n  $ meterupd sim metrology --veto billing-close --detail "closing the November period" --retry-after 5s &\n'
"$bin/meterupd" --state "$node" sim metrology --veto billing-close --detail "closing the November period" --retry-after 5s >>"$work/metrology.log" 2>&1 &
metrology_pid=$!
for _ in $(seq 50); do grep -q "is asked before" "$work/metrology.log" 2>/dev/null && break; sleep 0.1; done
echo "  Version 6.0 is installed; before the switch the agent asks, and the metrology process vetoes."
sha=$(image v6.img 6.0)
step install v6.img --sha256 "$sha" --version 6.0
step status
echo "  Five seconds later the daemon asks again: the period is closed, the answer is ok. The metrology"
echo "  process closes and flushes its interval, the node switches, and the process hears the outcome."
settle
printf '\n  the metrology process printed:\n'
sed 's/^/    /' "$work/metrology.log"
kill "$metrology_pid" 2>/dev/null || true
wait "$metrology_pid" 2>/dev/null || true
metrology_pid=
printf '\n  $ meterupd audit --verify   (the legal log: every activation, commit, rollback, fallback)\n'
mu audit --verify | sed 's/^/    /'

say "Where the meter stands: it runs 6.0 from A, F stays its fail-safe, it meters and reports what happened."
step status
printf '\n  $ meterupd journal   (its last 6 records: every step, power-safe)\n'
mu journal | tail -6 | sed 's/^/    /'
step version
stop_daemon

command -v sz >/dev/null && command -v socat >/dev/null || { echo "story 5 needs sz (lrzsz) and socat: make deps installs them" >&2; exit 1; }
say "Story 6 — a technician at the meter's optical port: log in with a signed token, upload a package with sz."
echo "  The utility makes a technician authority key (never a package key); a new meter trusts it for logins,"
echo "  and knows its id (m-0042) and group (feeder-7)."
printf '\n  $ meterpkg keygen --alg ed25519 techauth; meterpkg keygen --alg ed25519 alice\n'
mp keygen --alg ed25519 techauth >/dev/null
mp keygen --alg ed25519 alice >/dev/null
node="$work/meter2"
step sim init "$node" --version 1.0 --image-size $((4 << 20)) --keys release.pub.pem --id m-0042 --groups feeder-7 --tech-keys techauth.pub.pem
: >"$work/daemon.log"
: >"$work/events.log"
start_daemon
printf '\n  $ meterpkg token issue --key techauth.key.pem --tech-key alice.pub.pem --subject alice --nodes m-0042 --scope install,activate,commit --valid 8h -o alice.token\n'
mp token issue --key techauth.key.pem --tech-key alice.pub.pem --subject alice --nodes m-0042 --scope install,activate,commit --valid 8h -o alice.token | sed 's/^/    /'
echo "  A null-modem cable between the meter's port and the laptop: two pseudo-terminals joined by socat."
socat PTY,link="$work/ttyMeter",raw,echo=0 PTY,link="$work/ttyLaptop",raw,echo=0 2>/dev/null &
extra_pids+=($!)
for _ in $(seq 50); do [ -e "$work/ttyMeter" ] && [ -e "$work/ttyLaptop" ] && break; sleep 0.1; done
printf '  $ meterupd console --port ttyMeter --baud 9600 &     (on the meter, started by init)\n'
"$bin/meterupd" --state "$node" console --port "$work/ttyMeter" --baud 9600 >>"$work/console.log" 2>&1 &
extra_pids+=($!)
exec 3<>"$work/ttyLaptop"
# listen SECONDS: what the console says, shown as the technician sees it.
listen() { timeout "${1:-1}" cat <&3 | tr -d '\r' >"$work/said" || true; sed 's/^/    | /' "$work/said"; }
# listen_for PATTERN SECONDS: listen until the console's answer matches.
listen_for() {
  : >"$work/said"
  for _ in $(seq "$2"); do
    timeout 1 cat <&3 | tr -d '\r' >>"$work/said" || true
    grep -q "$1" "$work/said" && break
  done
  sed 's/^/    | /' "$work/said"
}
type_line() { printf '\n  (the technician types) %s\n' "$1"; printf '%s\r' "$2" >&3; listen "${3:-1}"; }
listen 1
type_line "status" status
type_line "install   (before logging in)" install
type_line "login" login
ch=$(sed -n 's/^challenge \([0-9a-f]*\)$/\1/p' "$work/said" | head -1)
printf '\n  On the laptop:\n  $ meterpkg token answer --token alice.token --key alice.key.pem --challenge %s --node m-0042\n' "$ch"
line=$(mp token answer --token alice.token --key alice.key.pem --challenge "$ch" --node m-0042)
echo "    ${line:0:60}…  (one line, pasted on the console)"
type_line "login … (pasted)" "$line"
type_line "install" install
printf '\n  $ sz --ymodem -k update.pkg < ttyLaptop > ttyLaptop      (picocom: C-a C-s)\n'
if sz --ymodem -k update.pkg <&3 >&3 2>"$work/sz.log"; then
  echo "    sz: update.pkg sent"
else
  echo "    sz failed:"; sed 's/^/    /' "$work/sz.log"
fi
listen_for 'alice# $' 120
printf '\n  (the technician types) activate\n'; printf 'activate\r' >&3; listen_for 'meterupd> $' 60
type_line "status" status 2
type_line "logout" logout
exec 3>&-
stop_daemon
bash "$(cd "$OLDPWD" && cd "$(dirname "$0")" && pwd)/demo-headend.sh" "$bin"   # the head-end's story ($OLDPWD: where demo.sh started, before cd "$work")
bash "$(cd "$OLDPWD" && cd "$(dirname "$0")" && pwd)/demo-modem.sh" "$bin" # the radio module's story: the system set and the module together
