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
echo "rootstrap build: $(echo "$(date +%s.%N) - $start" | bc) s"
"$rs" inspect "docker-archive:$work/alpine.tar"

docker load -i "$work/alpine.tar"
check "alpine: docker run /bin/sh -c 'echo ok'" test "$(docker run --rm "$img" /bin/sh -c 'echo ok')" = ok
check "alpine: busybox applet links made by the post-install script" \
    test "$(docker run --rm "$img" /bin/sh -c 'test -L /bin/ls && ls /etc/apk/world >/dev/null && echo yes')" = yes
check "alpine: installed db lists busybox" \
    sh -c "docker run --rm '$img' /bin/sh -c 'grep -qx P:busybox /lib/apk/db/installed && echo yes' | grep -qx yes"
check "alpine: default cmd is /bin/sh" \
    sh -c "echo 'echo \$((6*7))' | docker run --rm -i '$img' | grep -qx 42"
check "alpine: rootstrap run (sandbox, no daemon)" \
    sh -c "'$rs' run 'oci:$work/alpine-oci' -- /bin/sh -c 'echo sandbox-ok' | grep -qx sandbox-ok"
docker rmi "$img" >/dev/null

[ "$fail" = 0 ] && echo "e2e-alpine: all checks passed" || { echo "e2e-alpine: FAILED"; exit 1; }
