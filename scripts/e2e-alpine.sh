#!/usr/bin/env bash
# End-to-end check of Alpine images with a real Docker engine and Alpine's own
# apk. The repository is the official 3.19.4 minirootfs's packages (Alpine's
# apk-tools, busybox, musl…) rebuilt and signed with a throwaway test key by
# examples/make-apk-repo.rs, plus hello-rootstrap (not installed), served on
# 127.0.0.1. Checks: the image runs under `docker run`; Alpine's apk in it lists
# the set, audits clean, adds/deletes a served package, reinstalls busybox,
# verifies a package, and upgrades to a newer build added to the repository; the
# seed flow (Dockerfile FROM the rootstrap base, RUN apk add --no-cache, CMD)
# built by rootstrap, loaded and run; an aarch64 image built without scripts.
# Needs: root, dockerd running (scripts/dockerd.sh start), python3, curl, and
# ../shared/alpine-minirootfs/ (SKIP without it).
# ROOTSTRAP_BIN / MAKE_APK_REPO_BIN: use these binaries instead of a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
minis=$PWD/../shared/alpine-minirootfs
if [ ! -f "$minis/alpine-minirootfs-3.19.4-x86_64.tar.gz" ]; then
    echo "SKIP: $minis not found"
    exit 0
fi
. scripts/lib.sh
work_dir rootstrap-e2e-alpine
export ROOTSTRAP_CACHE_DIR=$work/cache

rootstrap_bin --bin rootstrap --example make-apk-repo
make_apk_repo=${MAKE_APK_REPO_BIN:-$PWD/target/release/examples/make-apk-repo}
export APK_SIGNING_KEY=$work/signing-key.pem
APK_RELEASE=v3.19 "$make_apk_repo" "$work/mirror" "$minis/alpine-minirootfs-3.19.4-x86_64.tar.gz" >/dev/null

serve_dir "$work/mirror" "$work/http.log"
mirror=http://127.0.0.1:$port

recipe() { # release arch -> a recipe for the minirootfs world
    alpine_recipe "$1" "$2"
    echo 'env = { PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" }'
}
recipe v3.19 x86_64 >"$work/alpine-3.19.toml"

img=rootstrap-e2e/alpine:3.19
imgs+=("$img")
start=$(date +%s.%N)
"$rs" --progress plain build "$work/alpine-3.19.toml" --mirror "$mirror" --keys "$work/mirror/keys" \
    --output "docker-archive:$work/alpine.tar" --output "oci:$work/alpine-oci" -t "$img"
echo "rootstrap build (cold cache): $(echo "$(date +%s.%N) - $start" | bc) s"
"$rs" inspect "docker-archive:$work/alpine.tar"
start=$(date +%s.%N)
"$rs" --progress plain build "$work/alpine-3.19.toml" --mirror "$mirror" --keys "$work/mirror/keys" \
    --output "oci:$work/alpine-oci-warm" -t "$img" 2>"$work/warm.log"
echo "rootstrap build (warm cache): $(echo "$(date +%s.%N) - $start" | bc) s"
check "alpine: warm build reuses the plan" grep -q "package plan reused" "$work/warm.log"
check "alpine: warm build is byte-identical" cmp -s "$work/alpine-oci/index.json" "$work/alpine-oci-warm/index.json"

docker load -i "$work/alpine.tar"
drun() { docker run --rm --network host "$img" /bin/sh -c "$1"; }
check "docker: /etc/os-release names Alpine 3.19.4" \
    sh -c "docker run --rm '$img' cat /etc/os-release | grep -qx VERSION_ID=3.19.4"
check "docker: apk info -v lists the 15 installed packages" \
    test "$(drun 'apk info -v' | grep -c .)" = 15
check "docker: apk audit --system is clean" test -z "$(drun 'apk audit --system')"
check "docker: apk add, run and apk del a served package" \
    sh -c "docker run --rm --network host '$img' /bin/sh -c 'apk add -q hello-rootstrap && hello-rootstrap && apk del -q hello-rootstrap && test ! -e /usr/bin/hello-rootstrap' | grep -qx 'hello from a served package'"
check "docker: apk fix --reinstall busybox" drun 'apk fix -q --reinstall busybox && /bin/ls / >/dev/null'
check "docker: apk verify of a served package" \
    drun 'apk update -q && apk fetch -q -o /tmp hello-rootstrap && apk verify /tmp/hello-rootstrap-1.0-r0.apk'
check "docker: no package has a broken script" sh -c "! docker run --rm '$img' grep -q '^f:' /lib/apk/db/installed"
check "docker: default cmd is /bin/sh" sh -c "echo 'echo \$((6*7))' | docker run --rm -i '$img' | grep -qx 42"

# A newer build of an installed package, same key: apk upgrade takes it.
APK_RELEASE=v3.19 APK_NEWER=ca-certificates-bundle \
    "$make_apk_repo" "$work/mirror" "$minis/alpine-minirootfs-3.19.4-x86_64.tar.gz" >/dev/null
check "docker: apk upgrade to a newer build in the repository" \
    sh -c "docker run --rm --network host '$img' /bin/sh -c 'apk upgrade -q && apk info -v' | grep -qx ca-certificates-bundle-20240226-r1"
check "rootstrap run: the same apk upgrade in the sandbox" \
    sh -c "'$rs' run 'oci:$work/alpine-oci' -- /bin/sh -c 'apk upgrade -q && apk info -v' | grep -qx ca-certificates-bundle-20240226-r1"

# The seed flow: FROM the rootstrap base, RUN apk add --no-cache, CMD.
mkdir "$work/ctx"
cat >"$work/ctx/Dockerfile" <<EOF
FROM oci:$work/alpine-oci
RUN apk add --no-cache hello-rootstrap
CMD ["hello-rootstrap"]
EOF
seeded=rootstrap-e2e/alpine-seeded:3.19
imgs+=("$seeded")
(cd "$work/ctx" && "$rs" --progress plain build -f Dockerfile . --output "docker-archive:$work/seeded.tar")
docker load -i "$work/seeded.tar" | tee "$work/seeded.load"
seeded_id=$(sed -n 's/^Loaded image ID: //p; s/^Loaded image: //p' "$work/seeded.load" | head -1)
[ -z "$seeded_id" ] || docker tag "$seeded_id" "$seeded"
check "seed flow: docker run runs the CMD the RUN apk add installed" \
    test "$(docker run --rm "$seeded")" = "hello from a served package"
check "seed flow: --no-cache left no index in the image" \
    test "$(docker run --rm "$seeded" /bin/sh -c 'ls /var/cache/apk | wc -l')" = 0

# aarch64: the official aarch64 minirootfs's packages, built without running scripts.
APK_RELEASE=v3.19 "$make_apk_repo" "$work/mirror-arm" "$minis/alpine-minirootfs-3.19.4-aarch64.tar.gz" >/dev/null
cp "$work"/mirror-arm/v3.19/main -r "$work/mirror/v3.19/main-arm"
mv "$work/mirror/v3.19/main-arm/aarch64" "$work/mirror/v3.19/main/aarch64"
cp "$work"/mirror-arm/keys/* "$work/mirror/keys/"
recipe v3.19 aarch64 >"$work/alpine-3.19-aarch64.toml"
"$rs" --progress plain build "$work/alpine-3.19-aarch64.toml" --skip-foreign-scripts --mirror "$mirror" --keys "$work/mirror/keys" \
    --output "rootfs:$work/arm-rootfs" 2>"$work/arm.log"
check "aarch64: the log says scripts were not run" grep -q "package scripts were not run" "$work/arm.log"
check "aarch64: busybox and alpine-baselayout are marked f:s for apk fix" \
    test "$(grep -c '^f:s$' "$work/arm-rootfs/lib/apk/db/installed")" = 2
check "aarch64: Alpine's aarch64 apk is in the rootfs" \
    sh -c "file -L '$work/arm-rootfs/sbin/apk' 2>/dev/null | grep -q aarch64 || od -An -tx1 -j18 -N2 '$work/arm-rootfs/sbin/apk' | grep -q 'b7 00'"

[ "$fail" = 0 ] && echo "e2e-alpine: all checks passed" || { echo "e2e-alpine: FAILED"; exit 1; }
