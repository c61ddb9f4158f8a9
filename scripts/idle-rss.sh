#!/usr/bin/env bash
# idle-rss.sh BIN: the resident memory of `meterupd run` at rest on a
# simulated node (after its start-up work: reconcile, health checks).
set -euo pipefail
bin=$(cd "${1:-bin}" && pwd)
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
"$bin/meterupd" sim init "$work/n" --image-size $((4 << 20)) >/dev/null
"$bin/meterupd" --state "$work/n" run >"$work/out" 2>&1 &
pid=$!
for _ in $(seq 50); do grep -q "at rest" "$work/out" 2>/dev/null && break; sleep 0.1; done
sleep 1
grep -E '^(VmRSS|VmHWM)' "/proc/$pid/status" | sed "s/^/meterupd run ($(uname -m)), idle: /"
