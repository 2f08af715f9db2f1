#!/usr/bin/env bash
# Lockfiles end to end against the real Debian archive (through the host's
# apt mirror):
#   rootstrap lock trixie; build it with --lock --locked from two fresh cache
#   dirs and compare the manifest digests (must be equal, and equal to a
#   plain resolving build's); `rootstrap mirror` the lock into a directory and
#   build from it as file:// with --offline and a third fresh cache: same
#   digest. Also times --locked against resolving builds, cold and warm
#   (the figures in BENCHMARKS.md, "Lockfiles").
# Needs: root (maintainer scripts run in the sandbox), bc.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
suite=${SUITE:-trixie}
work=$(mktemp -d /var/tmp/rootstrap-e2e-lock.XXXXXX)
trap 'rm -rf "$work"' EXIT
mirror=$(bash scripts/host-mirror.sh)
unset ROOTSTRAP_CACHE_DIR ROOTSTRAP_MIRROR SOURCE_DATE_EPOCH
. scripts/lib.sh

# ROOTSTRAP_BIN: use this binary instead of building the release one.
rootstrap_bin
recipe=recipes/debian-$suite.toml
lock=$work/debian-$suite.lock

# build NAME CACHE [args...]: prints the manifest digest; the wall time goes
# to $work/NAME.time.
build() {
    local name=$1 cache=$2; shift 2
    local start; start=$(date +%s.%N)
    "$rs" --progress plain --quiet build "$recipe" --cache-dir "$work/$cache" \
        --output "oci:$work/out-$name" "$@" | awk 'NR==1 {print $2}'
    echo "$(date +%s.%N) - $start" | bc >"$work/$name.time"
}

echo "=== rootstrap lock $suite"
"$rs" --progress plain --quiet lock "$recipe" --mirror "$mirror" --cache-dir "$work/cache-lock" -o "$lock"
grep -c '^\[\[package\]\]' "$lock" | sed 's/^/packages locked: /'

echo "=== builds"
resolved_cold=$(build resolved-cold cache-r --mirror "$mirror")
locked_cold=$(build locked-cold cache-1 --mirror "$mirror" --lock "$lock" --locked)
resolved_warm=$(build resolved-warm cache-r --mirror "$mirror")
locked_warm=$(build locked-warm cache-1 --mirror "$mirror" --lock "$lock" --locked)
locked_other=$(build locked-other cache-2 --mirror "$mirror" --lock "$lock" --locked)

echo "=== rootstrap mirror"
"$rs" --progress plain --quiet mirror "$lock" -o "$work/mirror" --cache-dir "$work/cache-1"
du -sh "$work/mirror" | awk '{print "partial mirror: " $1}'
from_mirror=$(build from-mirror cache-3 --mirror "file://$work/mirror" --lock "$lock" --locked --offline)

printf '%-32s %-73s %s\n' build "manifest digest" "wall (s)"
for row in "resolving, cold cache|resolved-cold|$resolved_cold" \
    "--locked, cold cache|locked-cold|$locked_cold" \
    "resolving, warm cache|resolved-warm|$resolved_warm" \
    "--locked, warm cache|locked-warm|$locked_warm" \
    "--locked, 2nd fresh cache|locked-other|$locked_other" \
    "--locked, file:// mirror offline|from-mirror|$from_mirror"; do
    IFS='|' read -r label name digest <<<"$row"
    printf '%-32s %-73s %.1f\n' "$label" "$digest" "$(cat "$work/$name.time")"
done

check "digests are manifest digests" test "${locked_cold#sha256:}" != "$locked_cold"
check "--locked from two fresh caches: same digest" test "$locked_cold" = "$locked_other"
check "--locked = resolving build (same set)" test "$locked_cold" = "$resolved_cold"
check "warm builds: same digest" test "$locked_warm" = "$locked_cold" -a "$resolved_warm" = "$resolved_cold"
check "rootstrap mirror + file:// --offline: same digest" test "$from_mirror" = "$locked_cold"

[ "$fail" = 0 ] && echo "e2e-lock: all checks passed" || { echo "e2e-lock: FAILED"; exit 1; }
