#!/usr/bin/env bash
# bench-delta: delta size, diff and apply time and memory of meterpkg
# against Debian's bsdiff/bspatch, xdelta3 -9 and zstd --patch-from, in one
# run on one machine, on two real corpora (cached in .cache/):
#   - executables: six consecutive releases of esbuild's static GOARCH=arm
#     executable (../shared/corpus/fetch-corpus.sh), every step and every
#     skip delta of two steps;
#   - system images: three releases of a root file system holding a Go, a
#     Rust and a C++ ARM program (../shared/corpus/fetch-system-images.sh),
#     as uncompressed tar and as ext4, every step and the skip r1→r3;
# plus a version-only release (the last executable pair changes 2 bytes), a
# shifted-code pair (an executable behind 64 KiB of zeros: unchanged code
# at a new offset), an ~80 MB pair (executables followed by the same 70 MiB
# of random data) for the host-side diff, and a 3-hop chain applied in one
# pass against the same three patches applied one after another, at corpus
# size and on the 8x images. Prints markdown (docs/delta.md holds a run).
#
# usage: scripts/bench-delta.sh   (env RUNS: apply repeats, default 3;
#        BSDIFF_TIMEOUT: seconds Debian's bsdiff may run, default 600;
#        QUICK=1: executables steps only, for trying the script;
#        PART=exe: the executables and the 1x chain only, PART=images: the
#        rest; two parts in two work dirs (WORK) use both cores;
#        IMAGES=tar: only the tar images of PART=images, without the ~80 MB
#        pair)
set -euo pipefail
cd "$(dirname "$0")/.."
exe=.cache/corpus
img=.cache/sysimg
runs=${RUNS:-3}
work=${WORK:-.cache/bench-delta}
mkdir -p "$work"
if ! ls "$exe"/*.bin >/dev/null 2>&1; then
  bash ../shared/corpus/fetch-corpus.sh "$exe"
fi
if [ -z "${QUICK:-}" ] && [ ! -s "$img/r3.ext4" ]; then
  bash ../shared/corpus/fetch-system-images.sh "$img"
fi
for t in bsdiff bspatch xdelta3 zstd /usr/bin/time; do
  command -v "$t" >/dev/null || { echo "bench-delta: $t missing (make deps)" >&2; exit 1; }
done
CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$work/meterpkg" ./cmd/meterpkg
mp=$work/meterpkg
mapfile -t vs < <(printf '%s\n' "$exe"/*.bin | sort -V)

# measure OUT CMD...: runs CMD under GNU time, appends "wall_s rss_kb" to
# OUT; returns CMD's status (a crash is reported, not fatal).
measure() {
  local out=$1; shift
  if /usr/bin/time -f '%e %M %U %S' -o "$work/time.txt" "$@" >/dev/null 2>"$work/err.txt"; then
    cat "$work/time.txt" >>"$out"
  else
    local rc=$?
    tail -n 2 "$work/err.txt" >&2
    return $rc
  fi
}
# best FILE: minimum wall time, maximum RSS (MiB) and minimum CPU time
# (user + system) over the lines of FILE.
best() { awk 'NR==1||$1<w{w=$1} NR==1||$3+$4<c{c=$3+$4} $2>m{m=$2} END{printf "%.2f %.1f %.2f\n", w, m/1024, c}' "$1"; }
size() { stat -c %s "$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", a/b}'; }
declare -A logsum count worst

# row GROUP LABEL OLD NEW: one table row; adds ours/bsdiff to GROUP's mean.
row() {
  local group=$1 label=$2 old=$3 new=$4
  local p=$work/$group-$label
  rm -f "$p".*.t
  measure "$p.odiff.t" "$mp" diff "$old" "$new" "$p.node"
  local sb="crashed" bcol="crashed" rb="–" bd="–" bok=""
  # Debian's bsdiff is quadratic on long runs (ext4 images): it is given
  # BSDIFF_TIMEOUT seconds of wall time (default 600), then reported.
  local bt=${BSDIFF_TIMEOUT:-600}
  if measure "$p.bdiff.t" timeout "$bt" bsdiff "$old" "$new" "$p.bsdiff"; then
    sb=$(size "$p.bsdiff") bok=1
  elif [ $? = 124 ]; then
    bd="did not finish in $bt s" bcol="killed"
  else
    bd="crashed ($(tr '\n' ' ' <"$work/err.txt" | cut -c1-60))"
  fi
  xdelta3 -9 -e -f -s "$old" "$new" "$p.xd3"
  zstd -q -f -19 --long=27 --patch-from="$old" "$new" -o "$p.zst" 2>/dev/null
  for ((r = 0; r < runs; r++)); do
    measure "$p.oapply.t" "$mp" patch "$old" "$p.node" "$p.out"
    cmp -s "$p.out" "$new" || { echo "bench-delta: meterpkg patch output differs ($group $label)" >&2; exit 1; }
    if [ -n "$bok" ]; then
      measure "$p.bapply.t" bspatch "$old" "$p.out2" "$p.bsdiff"
      cmp -s "$p.out2" "$new" || { echo "bench-delta: bspatch output differs ($group $label)" >&2; exit 1; }
    fi
  done
  local sn so sx sz
  sn=$(size "$new") so=$(size "$p.node") sx=$(size "$p.xd3") sz=$(size "$p.zst")
  read -r dw dm dc < <(best "$p.odiff.t")
  read -r ow om _ < <(best "$p.oapply.t")
  local ba="–"
  if [ -n "$bok" ]; then
    read -r ew em ec < <(best "$p.bdiff.t"); read -r bw bm _ < <(best "$p.bapply.t")
    rb=$(ratio "$so" "$sb") bd="$ew s ($ec) / $em MiB" ba="$bw / $bm" bcol=$sb
    logsum[$group]=$(awk -v s="${logsum[$group]:-0}" -v r="$rb" 'BEGIN{print s + log(r)}')
    count[$group]=$((${count[$group]:-0} + 1))
    worst[$group]=$(awk -v w="${worst[$group]:-0}" -v r="$rb" 'BEGIN{print (r > w ? r : w)}')
  fi
  echo "| $group | $label | $sn | $bcol | $so | $rb | $sx ($(ratio "$so" "$sx")) | $sz ($(ratio "$so" "$sz")) | $dw s ($dc) / $dm MiB | $bd | $ow / $om | $ba |"
}

# chain LABEL FILES...: the chain applied in one pass, and the same patches
# applied one after another (each output written, as a node would not).
chain() {
  local label=$1; shift
  local f=("$@") ds=()
  for ((i = 0; i + 1 < ${#f[@]}; i++)); do
    "$mp" diff "${f[i]}" "${f[i+1]}" "$work/$label.hop$i" >/dev/null
    ds+=("$work/$label.hop$i")
  done
  rm -f "$work/$label".*.t
  for ((r = 0; r < runs; r++)); do
    measure "$work/$label.chain.t" "$mp" chain "${f[0]}" "$work/$label.out" "${ds[@]}"
    cmp -s "$work/$label.out" "${f[-1]}" || { echo "bench-delta: chain output differs ($label)" >&2; exit 1; }
    # shellcheck disable=SC2016 # the inner script expands its own arguments
    measure "$work/$label.seq.t" bash -c 'mp=$1 src=$2 tmp=$3; shift 3; i=0; for d; do i=$((i + 1)); "$mp" patch "$src" "$d" "$tmp.$i" >/dev/null; src=$tmp.$i; done' _ "$mp" "${f[0]}" "$work/$label.seq" "${ds[@]}"
    cmp -s "$work/$label.seq.$((${#f[@]} - 1))" "${f[-1]}" || { echo "bench-delta: sequential output differs ($label)" >&2; exit 1; }
  done
  read -r cw cm _ < <(best "$work/$label.chain.t"); read -r sw sm _ < <(best "$work/$label.seq.t")
  echo "| $label | $(size "${f[-1]}") | $(cat "${ds[@]}" | wc -c) | $cw / $cm | $sw / $sm | $(ratio "$cw" "$sw") |"
  rm -f "$work/$label".seq.* "$work/$label.out"
}
echo "## delta benchmark"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "- machine: $(nproc) × $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(free -g | awk '/Mem:/{print $2}') GiB RAM, $(uname -sr), $(go version | cut -d' ' -f3)"
echo "- executables: $(head -1 "$exe/SOURCE" 2>/dev/null) ($(basename -a "${vs[@]}" | tr '\n' ' '))"
echo "- system images: $img/r1..r3 .tar and .ext4 (../shared/corpus/fetch-system-images.sh)"
echo "- tools: Debian bsdiff $(dpkg-query -W -f '${Version}' bsdiff 2>/dev/null), xdelta3 $(dpkg-query -W -f '${Version}' xdelta3 2>/dev/null) -9, zstd $(zstd -V | grep -o 'v[0-9.]*') -19 --long=27 --patch-from"
echo "- times: wall time of one diff (in brackets its CPU time, user + system), best wall time of $runs applies; RSS: peak (GNU time). Sizes in bytes; (x) = ours / that tool."
echo
echo "| corpus | pair | new size | bsdiff | ours (node) | ours/bsdiff | xdelta3 -9 | zstd --patch-from | diff ours s / MiB | diff bsdiff s / MiB | apply ours s / MiB | bspatch s / MiB |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
# Largest first: the system images, the ~80 MB pair, then the executables.
# The ~80 MB pair and the 8x chain: each version followed by the same
# 70 MiB of random data, as a root file system where one executable changes.
n=${#vs[@]}
big=()
if [ -z "${QUICK:-}" ] && [ "${PART:-}" != exe ]; then
  for t in ${IMAGES:-tar ext4}; do
    row "$t" "r1→r2" "$img/r1.$t" "$img/r2.$t"
    row "$t" "r2→r3" "$img/r2.$t" "$img/r3.$t"
    row "$t-skip" "r1→r3" "$img/r1.$t" "$img/r3.$t"
  done
  sz=$(size "${vs[0]}")
  head -c $((7 * sz)) /dev/urandom >"$work/filler"
  for v in "${vs[@]:0:4}"; do
    cat "$v" "$work/filler" >"$work/x8-$(basename "$v")"
    big+=("$work/x8-$(basename "$v")")
  done
  rm -f "$work/filler"
  [ -n "${IMAGES:-}" ] || row x8 "$(basename "${vs[0]}" .bin)→$(basename "${vs[1]}" .bin)" "${big[0]}" "${big[1]}"
fi
{
  echo "| 3-hop chain $(basename "${vs[0]}" .bin)→$(basename "${vs[3]}" .bin) | image bytes | patch bytes | one pass s / MiB | one after another s / MiB (max) | time ratio |"
  echo "|---|---|---|---|---|---|"
  chain x1 "${vs[@]:0:4}"
  [ -n "${QUICK:-}" ] || [ "${PART:-}" = exe ] || [ -n "${IMAGES:-}" ] || chain x8 "${big[@]}"
} >"$work/chains.md"
rm -f "$work"/x8-*
[ "${PART:-}" = images ] && n=0
for ((i = 0; i + 1 < n; i++)); do
  # A step changing under 0.1 % of the bytes in place is a version-only
  # release: its own group, out of the executables' mean.
  g=exe
  changed=$(cmp -l "${vs[i]}" "${vs[i+1]}" 2>/dev/null | wc -l || true)
  if [ $((changed * 1000)) -lt "$(size "${vs[i+1]}")" ]; then g=version-only; fi
  row "$g" "$(basename "${vs[i]}" .bin)→$(basename "${vs[i+1]}" .bin)" "${vs[i]}" "${vs[i+1]}"
done
if [ -z "${QUICK:-}" ] && [ "${PART:-}" != images ]; then
  head -c 65536 /dev/zero | cat - "${vs[1]}" >"$work/shifted.bin"
  row shifted "$(basename "${vs[1]}" .bin)+64KiB" "${vs[1]}" "$work/shifted.bin"
  for ((i = 0; i + 2 < n; i++)); do
    row exe-skip "$(basename "${vs[i]}" .bin)→$(basename "${vs[i+2]}" .bin)" "${vs[i]}" "${vs[i+2]}"
  done
fi
echo
for g in "${!count[@]}"; do
  echo "- $g: geometric mean of ours/bsdiff over ${count[$g]} pairs $(awk -v s="${logsum[$g]}" -v n="${count[$g]}" 'BEGIN{printf "%.3f", exp(s/n)}'), worst ${worst[$g]}"
done | sort
echo
cat "$work/chains.md"
