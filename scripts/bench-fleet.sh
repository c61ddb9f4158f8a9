#!/usr/bin/env bash
# bench-fleet: a campaign over FLEET_NODES (default 10,000) simulated meters
# — `headend simulate`, the real node code, one MQTT connection each — on a
# real mosquitto, driven by `headend serve --broker` with its store in
# SQLite. Prints one `fleet:` line per campaign:
#   1. --fail 1%, waves 1%,10%,100%: every node's journal checked against
#      the head-end's store (lost, duplicated);
#   2. a second fleet with --fail 5% and --halt-above 2%: the campaign must
#      halt in its first wave.
# msgs counts PUBLISH messages at the broker during the campaign
# (mosquitto's $SYS/broker/publish/messages/received + …/sent).
# RSS figures are peak resident memory (VmHWM) of the head-end and of
# mosquitto over the whole run.
#
# Usage: scripts/bench-fleet.sh BIN   (BIN holds headend and meterpkg)
set -euo pipefail
bin=$(cd "${1:-bin}" && pwd)
n=${FLEET_NODES:-10000}
rate=${FLEET_CONNECT_RATE:-200}
inflight=${FLEET_MAX_INFLIGHT:-200}
for t in mosquitto mosquitto_sub; do
  command -v $t >/dev/null || { echo "bench-fleet: $t is missing (make deps)" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/bench-fleet.XXXXXX")
chmod 755 "$work" # mosquitto drops root's privileges: its files must stay readable
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${FLEET_KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

# Each node is one connection into mosquitto and one in the simulator.
ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((n + 1024)) ]; then
  echo "bench-fleet: $n nodes need $((n + 1024)) open files; the limit is $(ulimit -n)" >&2
  exit 1
fi

freeport() {
  local p
  while :; do
    p=$((20000 + RANDOM % 40000))
    (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null || { echo $p; return; }
  done
}
mqport=$(freeport)
httpport=$(freeport)
broker=tcp://127.0.0.1:$mqport

# mosquitto, configured deliberately: unlimited connections (bounded by
# the open-files limit above), 1000 queued QoS 1 messages per client (the
# default; the head-end's pacing stays far below it), $SYS every second
# for the message counters, no persistence (a benchmark run).
cat >"$work/mosquitto.conf" <<EOF
listener $mqport 127.0.0.1
allow_anonymous true
persistence false
max_connections -1
max_queued_messages 1000
max_inflight_messages 20
sys_interval 1
EOF
mosquitto -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
mqpid=$!
pids+=("$mqpid")
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$mqport") 2>/dev/null && break; sleep 0.1; done

cd "$work"
"$bin/meterpkg" keygen --alg ed25519 release >/dev/null
mkdir -p packages
"$bin/headend" simulate release --key release.key.pem -o packages/em300-2.0.pkg >/dev/null
export HEADEND_DB=$work/headend.db
"$bin/headend" serve --broker "$broker" --http "127.0.0.1:$httpport" --public-url "http://127.0.0.1:$httpport" \
  --packages packages --tick 1s >"$work/headend.log" 2>&1 &
hepid=$!
pids+=("$hepid")
# The store is made by serve: the other commands open it once it serves.
for _ in $(seq 300); do (exec 3<>/dev/tcp/127.0.0.1/"$httpport") 2>/dev/null && break; sleep 0.1; done

sys() { # sys TOPIC: a $SYS counter of the broker
  mosquitto_sub -p "$mqport" -t "\$SYS/broker/$1" -C 1 -W 10
}
msgs() { echo $(($(sys publish/messages/received) + $(sys publish/messages/sent))); }
hwm() { awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }
# he: a head-end command. SQLite answers "database is locked" to a second
# process now and then while serve records thousands of reports: try again.
he() {
  for _ in $(seq 30); do
    "$bin/headend" "$@" 2>"$work/he.err" && return 0
    grep -q 'database is locked' "$work/he.err" || { cat "$work/he.err" >&2; return 1; }
    sleep 1
  done
  cat "$work/he.err" >&2
  return 1
}
online() { # online PREFIX: nodes of the prefix online at version 1.0, as the head-end has them
  he nodes | awk -v p="$1" 'index($1, p) == 1 && $3 == "1.0" && $NF == "online"' | wc -l
}
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }

# campaign NUM PREFIX FAIL SEED [HALT]: a fleet, a campaign over it, its line.
campaign() {
  local num=$1 prefix=$2 fail=$3 seed=$4 halt=${5:-0} id=em300-2.0-$1
  "$bin/headend" simulate --nodes "$n" --broker "$broker" --dir "$work/fleet$num" --keys release.pub.pem \
    --fail "$fail" --seed "$seed" --id-prefix "$prefix" --connect-rate "$rate" --check "$id" \
    >"$work/sim$num.out" 2>"$work/sim$num.log" &
  local simpid=$!
  pids+=("$simpid")
  local t=0
  until [ "$(online "$prefix")" -ge "$n" ]; do
    sleep 5
    t=$((t + 5))
    kill -0 $simpid 2>/dev/null || { echo "bench-fleet: the simulator stopped" >&2; tail -5 "$work/sim$num.log" >&2; exit 1; }
    [ $t -lt 1800 ] || { echo "bench-fleet: not all $n nodes online after 30 minutes" >&2; exit 1; }
  done
  local connect=$t
  he campaign create em300-2.0.pkg --id "$id" --select "version=1.0,id=$prefix" \
    --waves 1%,10%,100% --max-inflight "$inflight" --halt-above "$halt%" --wave-timeout 10m >/dev/null
  local m0 t0
  m0=$(msgs)
  t0=$(date +%s.%N)
  he campaign start "$id" >/dev/null
  local st=0
  # The simulator's peak RSS, read while it is still there.
  while kill -0 $simpid 2>/dev/null; do
    hwm $simpid >"$work/sim$num.rss.tmp" 2>/dev/null && [ -s "$work/sim$num.rss.tmp" ] && mv "$work/sim$num.rss.tmp" "$work/sim$num.rss"
    sleep 1
  done
  wait $simpid || st=$?
  local line
  line=$(grep '^simulate: campaign=' "$work/sim$num.out" || true)
  [ -n "$line" ] || { echo "bench-fleet: no check line from the simulator (status $st)" >&2; tail -20 "$work/sim$num.log" >&2; exit 1; }
  sleep 2 # one $SYS interval
  local m1 secs
  m1=$(msgs)
  secs=$(awk -v a="$t0" -v b="$(field ended_unix "$line")" 'BEGIN { printf "%.1f", b - a }')
  if [ "$num" = 1 ]; then
    echo "fleet: nodes=$n broker=mosquitto committed=$(field committed "$line") rolled_back=$(field rolled_back "$line") unreachable=$(field unreachable "$line") failed=$(field failed "$line") lost=$(field lost "$line") duplicated=$(field duplicated "$line") seconds=$secs msgs=$((m1 - m0)) headend_rss_mib=$(hwm $hepid) broker_rss_mib=$(hwm $mqpid)"
  else
    local wave state
    wave=$(field wave "$line")
    state=$(field state "$line")
    echo "fleet: campaign=$num nodes=$n fail=$fail halt_above=$halt% state=$state halted_in_wave=$([ "$state" = halted ] && echo "${wave%/*}" || echo none) committed=$(field committed "$line") rolled_back=$(field rolled_back "$line") unreachable=$(field unreachable "$line") failed=$(field failed "$line") lost=$(field lost "$line") duplicated=$(field duplicated "$line") seconds=$secs msgs=$((m1 - m0))"
  fi
  echo "  (nodes online after ${connect}s; simulator: peak RSS $(cat "$work/sim$num.rss" 2>/dev/null) MiB, $(grep -c . "$work/sim$num.log" || true) log lines, exit status $st)" >&2
  [ $st = 0 ] || { grep '^simulate:' "$work/sim$num.log" | head -5 >&2; return 1; }
}

campaign 1 a- 1% 1
campaign 2 b- 5% 2 2
