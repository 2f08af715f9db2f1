#!/usr/bin/env bash
# End-to-end push: build Debian trixie with rootstrap, push it to a real
# registry server (Debian's docker-registry, CNCF distribution) on
# 127.0.0.1, then `docker pull` and `docker run` it from there — the digest
# docker reports must be the one rootstrap printed.
# Needs: root, dockerd running (scripts/dockerd.sh start), docker-registry.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d /var/tmp/rootstrap-e2e-registry.XXXXXX)
port=${REGISTRY_PORT:-5000}
registry_pid=
cleanup() {
    [ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
export ROOTSTRAP_CACHE_DIR=${ROOTSTRAP_CACHE_DIR:-$work/cache}

. scripts/registry.sh
start_registry "$work/registry" "$port"

. scripts/lib.sh
rootstrap_bin
"$rs" --progress plain build recipes/debian-trixie.toml --output "oci:$work/oci"
pushed=$("$rs" --progress plain push "oci:$work/oci" "127.0.0.1:$port/rootstrap/debian:trixie")
echo "pushed $pushed"
digest=${pushed##*@}

ref=127.0.0.1:$port/rootstrap/debian:trixie
docker rmi "$ref" >/dev/null 2>&1 || true
docker pull "$ref"
fail=0
# The repo digest for this registry's name: the same image may also carry
# digests from other registries that pushed it before.
pulled=$(docker inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$ref" | grep "^127.0.0.1:$port/rootstrap/debian@" | head -1)
if [ "${pulled##*@}" = "$digest" ]; then echo "PASS docker pull gives the pushed digest ($digest)"; else echo "FAIL pulled $pulled, pushed $digest"; fail=1; fi
if [ "$(docker run --rm "$ref" sh -c 'dpkg-query -W bash >/dev/null && echo ok')" = ok ]; then echo "PASS docker run of the pulled image"; else echo "FAIL docker run of the pulled image"; fail=1; fi
# A second push uploads nothing.
again=$("$rs" --progress plain push "oci:$work/oci" "$ref" 2>&1 >/dev/null | tail -1)
case "$again" in "0 blobs uploaded"*) echo "PASS re-push uploads nothing ($again)";; *) echo "FAIL re-push: $again"; fail=1;; esac
docker rmi "$ref" >/dev/null 2>&1 || true

# `--output registry:` pushes straight from the build: same image, same digest.
direct=$("$rs" --progress plain build recipes/debian-trixie.toml --output "registry:127.0.0.1:$port/rootstrap/direct:1" | awk '/^registry:/ {print $2}')
if [ "$direct" = "$digest" ]; then echo "PASS build --output registry: pushes the same digest"; else echo "FAIL build --output registry: gave '$direct', expected $digest"; fail=1; fi
docker pull -q "127.0.0.1:$port/rootstrap/direct:1" >/dev/null
if [ "$(docker run --rm "127.0.0.1:$port/rootstrap/direct:1" echo ok)" = ok ]; then echo "PASS docker run of the image pushed by build"; else echo "FAIL docker run of the image pushed by build"; fail=1; fi

# The other direction: an image docker pushes (Docker schema 2 media types)
# is pulled by rootstrap and run in its own sandbox.
docker tag "127.0.0.1:$port/rootstrap/direct:1" "127.0.0.1:$port/from/docker:1"
docker push -q "127.0.0.1:$port/from/docker:1" >/dev/null
"$rs" --progress plain pull "127.0.0.1:$port/from/docker:1" --output "oci:$work/pulled"
if [ "$("$rs" run "oci:$work/pulled" -- sh -c 'dpkg-query -W bash >/dev/null && echo ok')" = ok ]; then echo "PASS rootstrap pull of a docker-pushed image runs in the sandbox"; else echo "FAIL rootstrap pull + run"; fail=1; fi
docker rmi "127.0.0.1:$port/rootstrap/direct:1" "127.0.0.1:$port/from/docker:1" >/dev/null 2>&1 || true
exit $fail
