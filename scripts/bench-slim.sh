#!/usr/bin/env bash
# Layer sizes and packing times for trixie minbase and slim, per layer
# compression, next to `gzip -6` and `zstd -3` of the same tar (the layer's
# own uncompressed bytes). Prints a Markdown table for BENCHMARKS.md.
# Each build also writes a rootfs: output, which disables layer reuse, so
# every run packs its layer; packing time is the "pack the layer" stage of
# the build log. Then the packing step alone, on each variant's tree:
# examples/pack_bench.rs packs it RUNS times per compression (default 3,
# interleaved) and prints the medians. ROOTSTRAP=path/to/rootstrap and
# PACK_BENCH=path/to/pack_bench use those binaries instead of a release
# build. Needs root, gzip, zstd.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d /var/tmp/rootstrap-bench-slim.XXXXXX)
trap 'rm -rf "$work"' EXIT
mirror=$(bash scripts/host-mirror.sh)
export ROOTSTRAP_CACHE_DIR=${ROOTSTRAP_CACHE_DIR:-$work/cache}
runs=${RUNS:-3}
if [ -n "${ROOTSTRAP:-}" ]; then
    rs=$ROOTSTRAP
else
    cargo build --release --quiet
    rs=$PWD/target/release/rootstrap
fi
if [ -n "${PACK_BENCH:-}" ]; then
    pack_bench=$PACK_BENCH
else
    cargo build --release --quiet --example pack_bench
    pack_bench=$PWD/target/release/examples/pack_bench
fi
mb() { awk -v b="$1" 'BEGIN { printf "%.2f MB", b / 1e6 }'; }
secs() { # command... → wall seconds, output discarded
    local t0 t1
    t0=$(date +%s.%N)
    "$@" >/dev/null
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }'
}
layer_json() { # oci dir, field
    "$rs" inspect --json "oci:$1" | python3 -c \
        "import json,sys; print(json.load(sys.stdin)['layers'][0]['$2'])"
}

# Warm the package cache first, so no build below waits for the network.
"$rs" --quiet build recipes/debian-trixie.toml --mirror "$mirror" --output "oci:$work/warm" >/dev/null
echo "| image | layer | blob | unpacked | packing (stage) |"
echo "| --- | --- | --- | --- | --- |"
for variant in minbase slim; do
    flag=()
    [ "$variant" = slim ] && flag=(--slim)
    for c in gzip zstd none; do
        out=$work/$variant-$c
        "$rs" --progress plain build recipes/debian-trixie.toml "${flag[@]}" --compression "$c" \
            --mirror "$mirror" --output "oci:$out" --output "rootfs:$out-tree" 2>"$out.log" >/dev/null
        # Log lines start with "[  20.8s] ==> stage".
        pack=$(awk 'match($0, /[0-9]+\.[0-9]+s\]/) { now = substr($0, RSTART, RLENGTH - 2) }
                    /==> pack the layer/ { t = now; next }
                    t != "" && /==> / { printf "%.2f s", now - t; exit }' "$out.log")
        size=$(layer_json "$out" size)
        unpacked=$(layer_json "$out" unpacked_size)
        echo "| trixie $variant | $c | $(mb "$size") | $(mb "$unpacked") | $pack |"
        [ "$c" = none ] || rm -rf "$out-tree"
    done
    "$pack_bench" "$work/$variant-none-tree" "$runs" >"$work/$variant-pack.txt"
    rm -rf "$work/$variant-none-tree"
    # The same tar, compressed by the reference tools (one core each).
    cp "$(ls -S "$work/$variant-none/blobs/sha256/"* | head -1)" "$work/$variant.tar"
    t=$(secs sh -c "gzip -6 -c '$work/$variant.tar' >'$work/$variant.tar.gz'")
    echo "| trixie $variant | \`gzip -6\` of the same tar | $(mb "$(stat -c %s "$work/$variant.tar.gz")") | | $t s |"
    t=$(secs sh -c "zstd -3 -q -c '$work/$variant.tar' >'$work/$variant.tar.zst'")
    echo "| trixie $variant | \`zstd -3\` of the same tar | $(mb "$(stat -c %s "$work/$variant.tar.zst")") | | $t s |"
done
echo
for variant in minbase slim; do
    echo "packing step alone, trixie $variant:"
    sed 's/^/    /' "$work/$variant-pack.txt"
done
