#!/usr/bin/env bash
# mutate.sh — the mutation proof of the power-cut suite (make mutate).
#
# Each mutation below is a broken change a reviewer could make to the agent.
# For each, the script copies the tree (the working tree as it is, without
# .git) into a temporary directory, applies the mutation there with one perl
# substitution, checks that the substitution matched exactly once (the agent
# code moves: a pattern that no longer matches fails the proof loudly instead
# of testing an unbroken tree), checks that the mutant still compiles, runs the
# power-cut suite on the part of it that exercises the mutation, and expects
# the suite to fail. It prints, per mutation, the line of output that caught
# it. The working tree is never touched.
#
# First the same part of the suite runs on the unmutated copy and must pass:
# a suite that fails anyway would "catch" every mutation.
#
# Usage: scripts/mutate.sh [NAME...]   (default: every mutation)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
GO=${GO:-go}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mutate.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# Mutations: name | file | perl substitution (applied with -0777, so \s
# spans lines) | scenarios (POWERCUT_SCENARIOS) | modes (POWERCUT_MODES).
# Each runs on flash=nor-ff only: the mutations do not depend on the part.
# The $1 in the substitutions is perl's, hence single quotes.
# shellcheck disable=SC2016
mutations=(
  # 1. The boot-order write before the first erase of the idle slot is
  #    removed: a slot being written stays bootable. Only an update over a
  #    good slot that is in the boot order shows it (second-update).
  'boot-order-before-erase|agent/machine.go|s/if err := a\.storeBoot\(a\.goodOrder\(r\)\); err != nil \{\s*return err\s*\}\s*(return a\.install\(ctx, r\))/$1/g|second-update|torn'
  # 2. A resumed install rewrites the whole slot instead of resuming at the
  #    block the cut interrupted (rewritten_max > one erase block).
  'resume-rewrites-slot|agent/install.go|s/for i := u\.Written \/ es; i < blocks; i\+\+ \{/for i := int64(0); i < blocks; i++ {/g|commit|torn'
  # 3. Every interrupted install is abandoned at the next start
  #    (abandoned > 0).
  'abandon-interrupted|agent/machine.go|s/(func \(a \*Agent\) Start\(ctx context\.Context\) error \{\n)/$1\tif u := a.rec.Update; u != nil \&\& u.Phase == Installing {\n\t\treturn a.abandon(a.rec.clone(), "interrupted")\n\t}\n/g|commit|before'
  # 4. The trial is armed (put first in the boot order) before the slot is
  #    written and hashed.
  'arm-before-hashing|agent/machine.go|s/if err := a\.storeBoot\(a\.goodOrder\(r\)\); err != nil \{(\s*return err\s*\}\s*return a\.install\(ctx, r\))/if err := a.storeBoot(hw.BootState{Order: []hw.Slot{r.Update.Target, r.Update.From}, Left: map[hw.Slot]int{r.Update.Target: a.opt.Attempts, r.Update.From: a.opt.Attempts}}); err != nil {$1/g|commit|torn'
  # 5. The trial is committed without its health check.
  'commit-before-health-check|agent/machine.go|s/err := a\.trialHealth\(ctx, u\.Target, a\.trialInfo\(r\)\)/err := error(nil)/g|rollback|before'
  # 6. The install writes F instead of the idle slot.
  'write-F|agent/install.go|s/f, err := a\.b\.Slot\(u\.Target\)/f, err := a.b.Slot(hw.SlotF)/g|commit|before'
  # 7. A resume skips the block the cut interrupted (it stays torn).
  'skip-torn-block|agent/install.go|s/for i := u\.Written \/ es; i < blocks; i\+\+ \{/i := u.Written \/ es\n\tif u.Written > 0 {\n\t\ti++\n\t}\n\tfor ; i < blocks; i++ {/g|commit|torn'
  # 8. The install's progress is journalled before the block is written
  #    (the journal no longer comes first: a cut in the block leaves it torn
  #    while the journal says it is done).
  'checkpoint-before-write|agent/install.go|s/(\t\tif err := a\.writeBlock\(f, i, buf\[:n\]\); err != nil \{.*?\n\t\t\}\n)(\t\tnext := a\.rec\.clone\(\)\n\t\tnext\.Update\.Written = min\(\(i\+1\)\*es, size\)\n\t\tif err := a\.commit\(next\); err != nil \{\n\t\t\treturn err\n\t\t\}\n)/$2$1/gs|commit|torn'
)

want=("$@")
copy_tree() {
  mkdir -p "$1"
  (cd "$root" && tar --exclude=./.git --exclude=./bin --exclude=./.cache -cf - .) | tar -xf - -C "$1"
}

# suite DIR SCENARIOS MODES: runs the part of the suite; output in DIR.out.
suite() {
  (cd "$1" && POWERCUT_SCENARIOS=$2 POWERCUT_MODES=$3 POWERCUT_FLASH=nor-ff \
    "$GO" test -count=1 -timeout 20m -run '^TestPowerCut$' -v ./agent/) >"$1.out" 2>&1
}

copy_tree "$tmp/base"
scen_all=$(printf '%s\n' "${mutations[@]}" | cut -d'|' -f4 | sort -u | paste -sd,)
modes_all=$(printf '%s\n' "${mutations[@]}" | cut -d'|' -f5 | sort -u | paste -sd,)
echo "mutate: baseline (unmutated): scenarios=$scen_all modes=$modes_all flash=nor-ff"
if ! suite "$tmp/base" "$scen_all" "$modes_all"; then
  grep -E '^powercut:|_test.go:|FAIL' "$tmp/base.out" | head -20
  echo "mutate: FAIL: the unmutated suite fails; no mutation can be judged" >&2
  exit 1
fi

caught=0 missed=0 broken=0
for m in "${mutations[@]}"; do
  IFS='|' read -r name file subst scen modes <<<"$m"
  if [ ${#want[@]} -gt 0 ] && ! printf '%s\n' "${want[@]}" | grep -qx "$name"; then
    continue
  fi
  dir="$tmp/$name"
  rm -rf "$dir"
  cp -a "$tmp/base" "$dir"
  if ! perl -0777 -i -pe 'BEGIN { $n = 0 } $n += ('"$subst"'); END { exit($n == 1 ? 0 : 3) }' "$dir/$file"; then
    echo "mutate: $name: BROKEN: the pattern no longer matches $file exactly once (the code moved: update scripts/mutate.sh)"
    broken=$((broken + 1))
    continue
  fi
  if ! (cd "$dir" && "$GO" vet ./agent/ >"$dir.vet" 2>&1); then
    echo "mutate: $name: BROKEN: the mutant does not compile:"
    head -5 "$dir.vet"
    broken=$((broken + 1))
    continue
  fi
  if suite "$dir" "$scen" "$modes"; then
    echo "mutate: $name: MISSED: the suite passed (scenarios=$scen modes=$modes)"
    missed=$((missed + 1))
  else
    line=$(grep -m1 -E '_test.go:[0-9]+: ' "$dir.out" | sed 's/^ *//' | cut -c1-400 || true)
    [ -n "$line" ] || line=$(grep -m1 -E '^(panic|FAIL)' "$dir.out" || true)
    echo "mutate: $name: caught: $line"
    caught=$((caught + 1))
  fi
  rm -rf "$dir"
done
echo "mutate: caught=$caught missed=$missed broken=$broken"
[ "$missed" -eq 0 ] && [ "$broken" -eq 0 ]
