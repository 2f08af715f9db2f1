#!/usr/bin/env bash
# Building where a Kubernetes pod builds: rootstrap inside `docker run` with
# Docker's default seccomp profile and capabilities (no --privileged, no
# socket), where namespaces are refused and rootstrap falls back to chroot
# isolation. The pod builds Debian trixie from a lockfile plus Dockerfile
# steps on top and pushes to a registry server (Debian's docker-registry) on
# 127.0.0.1; outside, `docker pull` + `docker run`, and the digests must equal
# those of the same build made on the host with namespaces. Then the same
# container with --cap-drop ALL --user 1000 must fail clearly, writing
# nothing.
# Needs: root, dockerd running (scripts/dockerd.sh start), docker-registry.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
work=$(mktemp -d /var/tmp/rootstrap-e2e-pod.XXXXXX)
chmod 755 "$work"
port=${POD_REGISTRY_PORT:-5002}
registry_pid=
image=rootstrap-e2e/pod-runner:trixie
cleanup() {
    [ -z "$registry_pid" ] || kill "$registry_pid" 2>/dev/null || true
    docker rmi -f "$image" "127.0.0.1:$port/pod/app:1" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
. scripts/lib.sh

rootstrap_bin --bin rootstrap
mirror=$(bash scripts/host-mirror.sh)
export SOURCE_DATE_EPOCH=1754000000

. scripts/registry.sh
start_registry "$work/registry" "$port"

# The pod's image: a trixie built by rootstrap (it has the glibc the binary
# needs); the binary itself is mounted in, as a CI job would fetch it.
"$rs" --progress plain build recipes/debian-trixie.toml --mirror "$mirror" \
    --cache-dir "$work/host-cache" --output "docker-archive:$work/runner.tar" >/dev/null 2>&1
docker load -q -i "$work/runner.tar" >/dev/null
docker tag rootstrap/debian:trixie "$image"

"$rs" --progress plain lock recipes/debian-trixie.toml --mirror "$mirror" \
    --cache-dir "$work/host-cache" -o "$work/trixie.lock" >/dev/null 2>&1
mkdir -p "$work/ctx"
printf 'built in a pod\n' >"$work/ctx/greeting.txt"
cat >"$work/ctx/Dockerfile" <<'EOF'
FROM oci:BASE
RUN useradd --uid 1234 --create-home app && echo made > /home/app/made && chown app:app /home/app/made
COPY --chown=1234:1234 greeting.txt /home/app/greeting.txt
RUN chmod 0640 /home/app/greeting.txt
USER app
WORKDIR /home/app
CMD ["cat", "/home/app/greeting.txt"]
EOF
sed -i "s|BASE|$work/base|" "$work/ctx/Dockerfile"

# One build script, run on the host and in the pod: the base from the lock,
# then the Dockerfile on top, pushed.
cat >"$work/build.sh" <<EOF
#!/bin/sh
set -e
rs=\$1; cache=\$2; repo=\$3
rm -rf $work/base
"\$rs" --progress plain build $repo/recipes/debian-trixie.toml --lock $work/trixie.lock --locked \
    --mirror $mirror --cache-dir "\$cache" --output oci:$work/base
"\$rs" --progress plain build -f $work/ctx/Dockerfile $work/ctx --cache-dir "\$cache" \
    --output "registry:127.0.0.1:$port/\$4/app:1"
EOF
chmod 755 "$work/build.sh"

"$work/build.sh" "$rs" "$work/host-cache" "$repo" host >"$work/host.log" 2>&1 ||
    { cat "$work/host.log"; echo "FAIL host build"; exit 1; }
host_base=$(awk '/^\// && $2 ~ /^sha256:/ {print $2; exit}' "$work/host.log")
host_app=$(awk '/^registry:/ {print $2}' "$work/host.log")
check "host build used namespaces" grep -q "isolation: namespaces" "$work/host.log"

pod() { # docker run as a pod would: default seccomp and capabilities
    docker run --rm --network host -e SOURCE_DATE_EPOCH \
        -v "$rs:/usr/local/bin/rootstrap:ro" -v "$repo:$repo:ro" -v "$work:$work" \
        -w "$work" "$@"
}
pod "$image" "$work/build.sh" /usr/local/bin/rootstrap "$work/pod-cache" "$repo" pod \
    >"$work/pod.log" 2>&1 || { cat "$work/pod.log"; echo "FAIL pod build"; exit 1; }
pod_base=$(awk '/^\// && $2 ~ /^sha256:/ {print $2; exit}' "$work/pod.log")
pod_app=$(awk '/^registry:/ {print $2}' "$work/pod.log")
check "pod build fell back to chroot isolation" grep -q "isolation: chroot" "$work/pod.log"
check "pod build ran the package scripts" grep -q "Setting up" "$work/pod.log"
check "base digest: pod = host ($host_base)" test -n "$host_base" -a "$pod_base" = "$host_base"
check "app digest: pod = host ($host_app)" test -n "$host_app" -a "$pod_app" = "$host_app"

docker pull -q "127.0.0.1:$port/pod/app:1" >/dev/null
pulled=$(docker inspect --format '{{index .RepoDigests 0}}' "127.0.0.1:$port/pod/app:1")
check "docker pull gives the pushed digest" test "${pulled##*@}" = "$pod_app"
check "docker run of the pod's image" \
    test "$(docker run --rm "127.0.0.1:$port/pod/app:1")" = "built in a pod"
check "dpkg --audit is clean in the pod's image" \
    test -z "$(docker run --rm --user 0 "127.0.0.1:$port/pod/app:1" dpkg --audit)"

# No usable level: no capabilities and not root. Clear error, nothing written.
set +e
pod --cap-drop ALL --user 1000 "$image" rootstrap build "$repo/recipes/debian-trixie.toml" \
    --mirror "$mirror" --cache-dir /tmp/c --output "oci:$work/denied" >"$work/denied.log" 2>&1
code=$?
set -e
check "no usable level exits non-zero ($code)" test "$code" -ne 0
check "no usable level names what is missing" grep -q "no isolation level is usable" "$work/denied.log"
check "no usable level writes nothing" test ! -e "$work/denied"
cat "$work/denied.log"

[ "$fail" = 0 ] && echo "e2e-pod: all checks passed" || { echo "e2e-pod: FAILED"; exit 1; }
