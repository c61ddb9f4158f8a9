#!/usr/bin/env bash
# bench-delta: delta size, apply time and memory of meterpkg against
# Debian's bsdiff/bspatch, xdelta3 -9 and zstd --patch-from, on six
# consecutive releases of a real static ARM executable (the corpus that
# ../shared/corpus/fetch-corpus.sh downloads; cached in .cache/corpus).
# Prints a markdown table (docs/delta.md holds a committed run).
#
# usage: scripts/bench-delta.sh [CORPUS_DIR]   (env RUNS: apply repeats, default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
corpus=${1:-.cache/corpus}
runs=${RUNS:-3}
work=.cache/bench-delta
mkdir -p "$work"
if ! ls "$corpus"/*.bin >/dev/null 2>&1; then
  bash ../shared/corpus/fetch-corpus.sh "$corpus"
fi
for t in bsdiff bspatch xdelta3 zstd /usr/bin/time; do
  command -v "$t" >/dev/null || { echo "bench-delta: $t missing (make deps)" >&2; exit 1; }
done
CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$work/meterpkg" ./cmd/meterpkg
mp=$work/meterpkg
mapfile -t vs < <(ls "$corpus"/*.bin | sort -V)

# measure OUT CMD...: runs CMD under GNU time, appends "wall_s rss_kb" to OUT.
measure() {
  local out=$1; shift
  /usr/bin/time -f '%e %M' -o "$work/time.txt" "$@" >/dev/null 2>"$work/err.txt" || { cat "$work/err.txt" >&2; return 1; }
  cat "$work/time.txt" >>"$out"
}
# best OUT: minimum wall time and maximum RSS over the lines of OUT.
best() { awk 'NR==1||$1<w{w=$1} $2>m{m=$2} END{printf "%.2f %.1f\n", w, m/1024}' "$1"; }
size() { stat -c %s "$1"; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", 100*a/b}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", a/b}'; }

echo "## delta benchmark"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "- machine: $(nproc) × $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(free -g | awk '/Mem:/{print $2}') GiB RAM, $(uname -sr), $(go version | cut -d' ' -f3)"
echo "- corpus: $(cat "$corpus/SOURCE" 2>/dev/null | head -1) ($(basename -a "${vs[@]}" | tr '\n' ' '))"
echo "- apply figures: best wall time and peak RSS (GNU time) of $runs runs, same machine, same run"
echo
echo "| pair | changed | new size | bsdiff | ours (node) | ours/bsdiff | xdelta3 -9 | zstd -19 --patch-from | diff time / RSS (ours) | diff time / RSS (bsdiff) | apply ours s / MiB | bspatch s / MiB | apply ratio |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
logsum=0; n=0
for ((i = 0; i + 1 < ${#vs[@]}; i++)); do
  old=${vs[i]} new=${vs[i+1]}
  a=$(basename "$old" .bin) b=$(basename "$new" .bin)
  p=$work/$a-$b
  rm -f "$p".*.t
  changed=$(cmp -l "$old" "$new" 2>/dev/null | wc -l || true)
  measure "$p.odiff.t" "$mp" diff "$old" "$new" "$p.node"
  measure "$p.bdiff.t" bsdiff "$old" "$new" "$p.bsdiff"
  xdelta3 -9 -e -f -s "$old" "$new" "$p.xd3"
  zstd -q -f -19 --long=27 --patch-from="$old" "$new" -o "$p.zst"
  for ((r = 0; r < runs; r++)); do
    measure "$p.oapply.t" "$mp" patch "$old" "$p.node" "$p.out"
    cmp -s "$p.out" "$new" || { echo "bench-delta: meterpkg patch output differs ($a→$b)" >&2; exit 1; }
    measure "$p.bapply.t" bspatch "$old" "$p.out2" "$p.bsdiff"
    cmp -s "$p.out2" "$new" || { echo "bench-delta: bspatch output differs ($a→$b)" >&2; exit 1; }
  done
  sn=$(size "$new") so=$(size "$p.node") sb=$(size "$p.bsdiff")
  read -r ow om < <(best "$p.oapply.t"); read -r bw bm < <(best "$p.bapply.t")
  read -r dw dm < <(best "$p.odiff.t"); read -r ew em < <(best "$p.bdiff.t")
  frac=$(pct "$changed" "$sn")
  echo "| $a→$b | $frac % | $sn | $sb ($(pct "$sb" "$sn") %) | $so ($(pct "$so" "$sn") %) | $(ratio "$so" "$sb") | $(size "$p.xd3") | $(size "$p.zst") | $dw s / $dm MiB | $ew s / $em MiB | $ow / $om | $bw / $bm | $(ratio "$ow" "$bw") |"
  if awk -v f="$frac" 'BEGIN{exit !(f > 0.1)}'; then
    logsum=$(awk -v s="$logsum" -v r="$(ratio "$so" "$sb")" 'BEGIN{print s + log(r)}'); n=$((n + 1))
  fi
done
echo
echo "Geometric mean of ours/bsdiff over the $n pairs that change more than 0.1 %: $(awk -v s="$logsum" -v n="$n" 'BEGIN{printf "%.3f", exp(s/n)}')"
echo

# A 3-hop chain, at corpus size and on images 8x larger: each version
# followed by the same 7 copies' worth of unchanging random data (as a root
# file system where one executable changes).
chain() { # label files...
  local label=$1; shift
  local f=("$@") ds=()
  for ((i = 0; i + 1 < ${#f[@]}; i++)); do
    "$mp" diff "${f[i]}" "${f[i+1]}" "$work/$label.hop$i" >/dev/null
    ds+=("$work/$label.hop$i")
  done
  rm -f "$work/$label.chain.t"
  for ((r = 0; r < runs; r++)); do
    measure "$work/$label.chain.t" "$mp" chain "${f[0]}" "$work/$label.out" "${ds[@]}"
    cmp -s "$work/$label.out" "${f[-1]}" || { echo "bench-delta: chain output differs ($label)" >&2; exit 1; }
  done
  read -r cw cm < <(best "$work/$label.chain.t")
  echo "| $label | $(size "${f[-1]}") | $(cat "${ds[@]}" | wc -c) | $cw | $cm |"
}
echo "| 3-hop chain ${vs[0]##*/}→${vs[3]##*/} | image bytes | patch bytes | apply s | peak RSS MiB |"
echo "|---|---|---|---|---|"
chain x1 "${vs[@]:0:4}"
sz=$(size "${vs[0]}")
head -c $((7 * sz)) /dev/urandom >"$work/filler"
big=()
for v in "${vs[@]:0:4}"; do
  cat "$v" "$work/filler" >"$work/x8-$(basename "$v")"
  big+=("$work/x8-$(basename "$v")")
done
chain x8 "${big[@]}"
rm -f "$work"/x8-* "$work/filler"
