#!/usr/bin/env bash
# End-to-end check of an Alpine build with a real Docker engine, from a
# repository generated locally (examples/make-apk-repo.rs: real signed v2
# packages around the host's static busybox, signed APKINDEX) and served on
# 127.0.0.1: build recipes/alpine-3.20.toml, `docker load`, `docker run`.
# The fixture has no apk binary, so `apk` itself is not exercised here.
# Needs: root, dockerd running (scripts/dockerd.sh start), busybox-static, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d /var/tmp/rootstrap-e2e-alpine.XXXXXX)
server=
cleanup() {
    [ -z "$server" ] || kill "$server" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
export ROOTSTRAP_CACHE_DIR=$work/cache
fail=0
check() { # name, command...
    local name=$1; shift
    if "$@"; then echo "PASS $name"; else echo "FAIL $name"; fail=1; fi
}

cargo build --release --quiet --bin rootstrap --example make-apk-repo
rs=$PWD/target/release/rootstrap
target/release/examples/make-apk-repo "$work/mirror"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server --bind 127.0.0.1 --directory "$work/mirror" "$port" >"$work/http.log" 2>&1 &
server=$!
for _ in $(seq 50); do
    curl -fsS -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null && break
    sleep 0.1
done

img=rootstrap-e2e/alpine:3.20
start=$(date +%s.%N)
"$rs" --progress plain build recipes/alpine-3.20.toml \
    --mirror "http://127.0.0.1:$port" --keys "$work/mirror/keys" \
    --output "docker-archive:$work/alpine.tar" --output "oci:$work/alpine-oci" -t "$img"
echo "rootstrap build (cold cache): $(echo "$(date +%s.%N) - $start" | bc) s"
"$rs" inspect "docker-archive:$work/alpine.tar"
start=$(date +%s.%N)
"$rs" --progress plain build recipes/alpine-3.20.toml \
    --mirror "http://127.0.0.1:$port" --keys "$work/mirror/keys" \
    --output "oci:$work/alpine-oci-warm" -t "$img" 2>"$work/warm.log"
echo "rootstrap build (warm cache): $(echo "$(date +%s.%N) - $start" | bc) s"
check "alpine: warm build reuses the plan" grep -q "package plan reused" "$work/warm.log"
check "alpine: warm build is byte-identical" cmp -s "$work/alpine-oci/index.json" "$work/alpine-oci-warm/index.json"

# A foreign architecture: built without running scripts, and it says so.
APK_ARCH=aarch64 APK_RELEASE=v3.22 target/release/examples/make-apk-repo "$work/mirror-arm" >/dev/null
cp "$work"/mirror-arm/keys/* "$work/mirror/keys/"
mkdir -p "$work/mirror/v3.22" && cp -r "$work/mirror-arm/v3.22/main" "$work/mirror/v3.22/"
"$rs" --progress plain build recipes/alpine-3.22-aarch64.toml \
    --mirror "http://127.0.0.1:$port" --keys "$work/mirror/keys" \
    --output "rootfs:$work/arm-rootfs" 2>"$work/arm.log"
check "aarch64: the log says scripts were not run" grep -q "package scripts were not run" "$work/arm.log"
check "aarch64: packages with scripts are marked f:s for apk fix" \
    test "$(grep -c '^f:s$' "$work/arm-rootfs/lib/apk/db/installed")" = 2
check "aarch64: no script output in the rootfs" test ! -e "$work/arm-rootfs/etc/.fixture-pre-install"

docker load -i "$work/alpine.tar"
check "alpine: docker run /bin/sh -c 'echo ok'" test "$(docker run --rm "$img" /bin/sh -c 'echo ok')" = ok
check "alpine: busybox applet links made by the post-install script" \
    test "$(docker run --rm "$img" /bin/sh -c 'test -L /bin/ls && ls /etc/apk/world >/dev/null && echo yes')" = yes
check "alpine: pre-install ran before its package's files were extracted" \
    test "$(docker run --rm "$img" cat /etc/.fixture-pre-install)" = "pre-install 3.20.0-r0 files-absent"
check "alpine: no package has a broken script" \
    sh -c "! docker run --rm '$img' grep -q '^f:' /lib/apk/db/installed"
check "alpine: installed db lists busybox" \
    sh -c "docker run --rm '$img' /bin/sh -c 'grep -qx P:busybox /lib/apk/db/installed && echo yes' | grep -qx yes"
check "alpine: default cmd is /bin/sh" \
    sh -c "echo 'echo \$((6*7))' | docker run --rm -i '$img' | grep -qx 42"
check "alpine: rootstrap run (sandbox, no daemon)" \
    sh -c "'$rs' run 'oci:$work/alpine-oci' -- /bin/sh -c 'echo sandbox-ok' | grep -qx sandbox-ok"
docker rmi "$img" >/dev/null

[ "$fail" = 0 ] && echo "e2e-alpine: all checks passed" || { echo "e2e-alpine: FAILED"; exit 1; }
