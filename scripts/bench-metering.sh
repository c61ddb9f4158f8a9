#!/usr/bin/env bash
# bench-metering: does an update's apply starve the metrology process?
# Builds metrosim and meterbench, prepares a sim node with a delta chain,
# and runs the four phases pinned to one CPU (a single-core meter SoC: on
# two free cores nothing competes and the benchmark proves nothing).
# Prints one "metering:" line per phase. See docs/metering.md.
#
# Environment: GO (go), CPU (the CPU to pin to; default the last one),
# INTERVALS (intervals per phase; default 15), WORK (CPU time of each
# 10 ms metrosim sample; default 6ms, 60 % of the CPU), SIZE (image bytes; 4 MiB),
# NICE (a nice adjustment for the whole benchmark, default 0: on a shared
# machine a negative value, as root, shields all phases alike from other
# work; the throttled load still drops itself to nice 19), KEEP_PRIORITY=1
# (the throttled load keeps normal priority: the throttle alone).
set -euo pipefail
GO=${GO:-go}
command -v taskset >/dev/null || { echo "bench-metering: taskset (util-linux) not found" >&2; exit 1; }
# A RAM file system when there is one: on a shared machine the disk's
# latency is other people's noise (see docs/metering.md).
tmp=${TMPDIR:-/tmp}
[[ -d /dev/shm && -w /dev/shm ]] && tmp=/dev/shm
work=$(mktemp -d "$tmp/bench-metering.XXXXXX")
trap 'rm -rf "$work"' EXIT
CGO_ENABLED=0 $GO build -o "$work/bin/" ./cmd/meterbench ./cmd/metrosim
cpu=${CPU:-$(( $(nproc --all) - 1 ))}
"$work/bin/meterbench" prepare --dir "$work/b" --size "${SIZE:-4194304}"
echo "bench-metering: pinned to CPU $cpu, nice ${NICE:-0}, load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
rc=0
args=(run --dir "$work/b" --metrosim "$work/bin/metrosim" --intervals "${INTERVALS:-15}" --work "${WORK:-6ms}"
  --keep-priority="$([[ ${KEEP_PRIORITY:-0} == 1 ]] && echo true || echo false)")
if [[ ${NICE:-0} != 0 ]]; then
  # With autogroup scheduling (sched_autogroup_enabled), nice only ranks
  # processes within one session's group; groups share the CPU equally.
  # So NICE puts the benchmark in a session of its own and gives its group
  # that nice value too. metrosim and the load stay in one group, as the
  # processes of a meter share one CPU.
  # shellcheck disable=SC2016 # expanded by the inner shell
  setsid bash -c 'echo "$1" > /proc/self/autogroup 2>/dev/null || true; exec nice -n "$1" taskset -c "$2" "${@:3}"' \
    _ "$NICE" "$cpu" "$work/bin/meterbench" "${args[@]}" || rc=$?
else
  taskset -c "$cpu" "$work/bin/meterbench" "${args[@]}" || rc=$?
fi
case $rc in
0) echo "bench-metering: passed" >&2 ;;
1) echo "bench-metering: the throttled apply missed intervals on a clean machine" >&2 ;;
3) echo "bench-metering: inconclusive (a baseline missed intervals, or the unthrottled load did no damage); not a pass" >&2 ;;
esac
exit $rc
