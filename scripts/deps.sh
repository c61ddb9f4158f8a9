#!/usr/bin/env bash
# deps.sh PKG... — install the Debian packages the tests need when missing.
# Outside CI a failed install only warns (the tests that need the tool then
# skip, naming it); under CI=true it fails, and so do those tests.
set -euo pipefail
missing=()
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
if $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
  exit 0
fi
if [ "${CI:-}" = "true" ]; then
  echo "deps: could not install ${missing[*]} (CI needs them)" >&2
  exit 1
fi
echo "deps: could not install ${missing[*]}; tests that need them will skip" >&2
