#!/usr/bin/env bash
# Side-by-side benchmark of foreign-platform builds, in one run, from the
# host's Debian mirror, every tool starting cold (empty caches):
#   1. trixie minbase for arm64: rootstrap --platform linux/arm64 against
#      mmdebstrap --arch=arm64 --variant=minbase (both run dpkg under the same
#      qemu-user-static through binfmt_misc; rootstrap sets QEMU_CPU, and
#      mmdebstrap runs again with the same QEMU_CPU for comparison);
#   2. an amd64+arm64 image index in one rootstrap command against the two
#      one-platform builds in sequence.
# Prints a markdown table of wall times and ratios.
# usage: scripts/bench-platforms.sh [SUITE]   (as root; default trixie)
# Needs: mmdebstrap, qemu-user-static, GNU time. ROOTSTRAP_BIN overrides the binary.
set -euo pipefail
cd "$(dirname "$0")/.."
suite=${1:-trixie}
bench=${BENCH_DIR:-/var/tmp/rootstrap-bench-platforms}
mirror=$(bash scripts/host-mirror.sh)
bash scripts/binfmt.sh aarch64 >/dev/null
rm -rf "$bench"
mkdir -p "$bench"
. scripts/lib.sh
rootstrap_bin

measure() { # NAME COMMAND...: wall seconds into $bench/NAME.t
    local name=$1; shift
    sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
    # Through bash, so COMMAND may be a function of this script (exported).
    /usr/bin/time -f '%e' -o "$bench/$name.time" bash -c '"$@"' _ "$@" >"$bench/$name.log" 2>&1 || {
        echo "$name failed:"; tail -20 "$bench/$name.log"; exit 1; }
    cp "$bench/$name.time" "$bench/$name.t"
}
t() { cat "$bench/$1.t"; }
ratio() { echo "scale=2; $1 / $2" | bc; }

rsb() { # NAME PLATFORMS OUTPUT: a cold rootstrap build
    "$rs" --progress plain build "recipes/debian-$suite.toml" --platform "$2" --mirror "$mirror" \
        --cache-dir "$bench/cache-$1" --work-dir "$bench" --output "$3"
}
export -f rsb
export rs suite mirror bench
measure rootstrap-arm64 rsb arm64 linux/arm64 "tar:$bench/rootstrap-arm64.tar"
measure mmdebstrap-arm64 mmdebstrap --variant=minbase --arch=arm64 "$suite" "$bench/mm-arm64.tar" "deb $mirror $suite main"
# The peer given the emulated CPU rootstrap picks for arm64 (QEMU_CPU,
# src/rootfs/emulation/qemu_cpu.rs), to show what that choice is worth.
measure mmdebstrap-arm64-cpu env QEMU_CPU=max,pauth=off mmdebstrap --variant=minbase --arch=arm64 "$suite" "$bench/mm-arm64-cpu.tar" "deb $mirror $suite main"
measure rootstrap-amd64 rsb amd64 linux/amd64 "oci:$bench/amd64"
measure rootstrap-arm64-oci rsb arm64-oci linux/arm64 "oci:$bench/arm64"
measure rootstrap-index rsb index linux/amd64,linux/arm64 "oci:$bench/index"

singles=$(echo "$(t rootstrap-amd64) + $(t rootstrap-arm64-oci)" | bc)
echo
echo "| $suite, cold, from the host's mirror | wall | ratio |"
echo "| --- | --- | --- |"
echo "| mmdebstrap --arch=arm64 --variant=minbase | $(t mmdebstrap-arm64) s | 1 |"
echo "| rootstrap build --platform linux/arm64 (tar:) | $(t rootstrap-arm64) s | $(ratio "$(t rootstrap-arm64)" "$(t mmdebstrap-arm64)") |"
echo "| QEMU_CPU=max,pauth=off mmdebstrap --arch=arm64 --variant=minbase | $(t mmdebstrap-arm64-cpu) s | $(ratio "$(t mmdebstrap-arm64-cpu)" "$(t mmdebstrap-arm64)") |"
echo "| rootstrap amd64, then arm64 (two commands, oci:) | $singles s | 1 |"
echo "| rootstrap --platform linux/amd64,linux/arm64 (one index) | $(t rootstrap-index) s | $(ratio "$(t rootstrap-index)" "$singles") |"
echo
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
