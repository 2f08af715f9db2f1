#!/usr/bin/env bash
# Alpine base image, side by side: rootstrap vs Alpine's own apk making the
# same base the seed way (`apk --initdb add` + `tar | gzip`), from the same
# loopback repository: the official 3.19.4 minirootfs's packages, repacked and
# signed with a test key by examples/make-apk-repo.rs (Alpine's apk 2.14 is the
# minirootfs's own /sbin/apk, run in a chroot of the extracted tarball).
#
#   scripts/bench-alpine.sh [RUNS]      (as root; default 5 runs of each)
#
# - apk-seed: chroot MINIROOTFS apk --root /target --initdb --no-cache --keys-dir
#   /etc/apk/keys -X LOOPBACK
#   add WORLD, then tar -C target -cf - . | gzip  (apk keeps no cache this way)
# - rootstrap-cold: rootstrap build --output docker-archive:FILE (gzip layer +
#   OCI + docker archive) with an empty --cache-dir
# - rootstrap-warm: the same with the cache the cold run filled
# Prints each run and the medians; ratios are rootstrap / apk-seed.
# ROOTSTRAP_BIN / MAKE_APK_REPO_BIN: use these binaries instead of a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
tarball=$PWD/../shared/alpine-minirootfs/alpine-minirootfs-3.19.4-x86_64.tar.gz
if [ ! -f "$tarball" ]; then
    echo "SKIP: $tarball not found"
    exit 0
fi
. scripts/lib.sh
rootstrap_bin --bin rootstrap --example make-apk-repo
make_apk_repo=${MAKE_APK_REPO_BIN:-$PWD/target/release/examples/make-apk-repo}

work_dir rootstrap-bench-alpine

APK_RELEASE=v3.19 "$make_apk_repo" "$work/mirror" "$tarball" >/dev/null
port=$(free_port)
python3 scripts/serve-dir.py "$work/mirror" "$port" &
server=$!
wait_for_http "$port"
url=http://127.0.0.1:$port

mkdir "$work/apk-host"
tar -xzf "$tarball" -C "$work/apk-host"
cp "$work"/mirror/keys/*.rsa.pub "$work/apk-host/etc/apk/keys/"
world=$(cat "$work/apk-host/etc/apk/world")
alpine_recipe v3.19 x86_64 >"$work/alpine.toml"

now() { date +%s.%N; }
apk_seed() {
    # shellcheck disable=SC2086 # the world is a word list
    chroot "$work/apk-host" /sbin/apk --quiet --root /target --initdb --no-cache --keys-dir /etc/apk/keys \
        -X "$url/v3.19/main" add $world
    tar -C "$work/apk-host/target" -cf - . | gzip >"$work/apk.tar.gz"
}
rootstrap_build() { # cache dir
    "$rs" --progress plain build "$work/alpine.toml" --mirror "$url" --keys "$work/mirror/keys" \
        --cache-dir "$1" --output "docker-archive:$work/rs.tar" >/dev/null 2>&1
}
timed() { # label, command...
    local label=$1 start end
    shift
    sync
    echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
    start=$(now)
    "$@"
    end=$(now)
    echo "$label $(echo "$end - $start" | bc)" | tee -a "$work/times"
}

for i in $(seq "$runs"); do
    rm -rf "$work/apk-host/target" "$work/apk.tar.gz"
    mkdir "$work/apk-host/target"
    timed apk-seed apk_seed
    rm -rf "$work/cache" "$work/rs.tar"
    timed rootstrap-cold rootstrap_build "$work/cache"
    rm -f "$work/rs.tar"
    timed rootstrap-warm rootstrap_build "$work/cache"
    echo "run $i: apk $(du -b "$work/apk.tar.gz" | cut -f1) B, rootstrap $(du -b "$work/rs.tar" | cut -f1) B"
done

python3 - "$work/times" <<'EOF'
import statistics, sys
t = {}
for line in open(sys.argv[1]):
    label, s = line.split()
    t.setdefault(label, []).append(float(s))
med = {k: statistics.median(v) for k, v in t.items()}
base = med["apk-seed"]
for k in ("apk-seed", "rootstrap-cold", "rootstrap-warm"):
    print(f"{k:16} median {med[k]:.3f} s  ({med[k] / base:.2f}x apk-seed)  runs: "
          + " ".join(f"{x:.3f}" for x in t[k]))
EOF
