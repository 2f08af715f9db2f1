#!/usr/bin/env bash
# The test command (README "Quick start"): `cargo test` (dev profile, see
# Cargo.toml), then how many tests were skipped and why.
#
#   scripts/test.sh [CARGO TEST ARGS...]    e.g. scripts/test.sh --test integration lock::
#
# libtest has no run-time "skipped": a test that cannot run here (no root, a
# tool missing, no conformance data beside the checkout) returns early and
# would pass. tests/common/skip.rs prints `SKIP <test>: <why>` and appends it
# to $ROOTSTRAP_SKIP_LOG, which this script reads back.
#
# ROOTSTRAP_REQUIRE_ALL=1 (.ci/run sets it: root, everything installed) makes
# each such skip a test failure, and this script fails too if one was logged;
# tests that cannot apply to the host (another architecture, a filesystem
# without xattrs, a small /dev/shm) are counted but never fail.
set -euo pipefail
cd "$(dirname "$0")/.."

target_dir=${CARGO_TARGET_DIR:-target}
mkdir -p "$target_dir"
export ROOTSTRAP_SKIP_LOG
ROOTSTRAP_SKIP_LOG=$(cd "$target_dir" && pwd)/test-skips.log
: >"$ROOTSTRAP_SKIP_LOG"

status=0
cargo test "$@" || status=$?

required=$(grep -c '^required' "$ROOTSTRAP_SKIP_LOG" || true)
not_applicable=$(grep -c '^not-applicable' "$ROOTSTRAP_SKIP_LOG" || true)
echo
echo "skipped: $((required + not_applicable)) ($required need something missing here," \
    "$not_applicable do not apply to this host)"
sort -t$'\t' -k2 "$ROOTSTRAP_SKIP_LOG" | awk -F'\t' '{ printf "  SKIP %s: %s%s\n", $2, $3, ($1 == "not-applicable" ? " (not applicable here)" : "") }'

if [ "${ROOTSTRAP_REQUIRE_ALL:-}" = 1 ] && [ "$required" -gt 0 ]; then
    echo "ROOTSTRAP_REQUIRE_ALL=1: $required test(s) skipped that must run here" >&2
    status=1
fi
if [ "$status" -ne 0 ]; then
    echo "tests FAILED (exit $status)" >&2
fi
exit "$status"
