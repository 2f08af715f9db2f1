#!/usr/bin/env bash
# End-to-end check against the real Debian archive (through the host's apt
# mirror) and a real Docker engine:
#   build trixie and bookworm minbase with rootstrap, `docker load` and
#   `docker run` them, check dpkg's own audit/verify, apt inside the image,
#   and compare the package set with what mmdebstrap --variant=minbase
#   installs from the same mirror, then the two trees entry by entry (path,
#   type, mode, owner, link target, content; scripts/compare-trees.py):
#   only the differences scripts/e2e-debian-tree-allow.txt names, each with
#   its reason, may remain.
# Needs: root, dockerd running (scripts/dockerd.sh start), mmdebstrap, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
suites=${SUITES:-"trixie bookworm"}
work=$(mktemp -d /var/tmp/rootstrap-e2e.XXXXXX)
trap 'rm -rf "$work"' EXIT
mirror=$(bash scripts/host-mirror.sh)
export ROOTSTRAP_CACHE_DIR=$work/cache
. scripts/lib.sh

rootstrap_bin

# mmdebstrap wants keyrings named *.gpg/*.asc
mkdir -p "$work/keyring"
for k in keys/debian/*.pgp; do cp "$k" "$work/keyring/$(basename "$k" .pgp).gpg"; done

for suite in $suites; do
    echo "=== $suite"
    img=rootstrap-e2e/debian:$suite
    start=$(date +%s.%N)
    "$rs" --progress plain build "recipes/debian-$suite.toml" \
        --output "docker-archive:$work/$suite.tar" --output "oci:$work/$suite-oci" \
        --output "tar:$work/$suite-rootfs.tar" -t "$img"
    echo "rootstrap build: $(echo "$(date +%s.%N) - $start" | bc) s"
    "$rs" inspect "docker-archive:$work/$suite.tar"

    docker load -i "$work/$suite.tar"
    check "$suite: docker run echo" test "$(docker run --rm "$img" echo ok)" = ok
    check "$suite: os-release" sh -c "docker run --rm '$img' cat /etc/os-release | grep -q 'VERSION_CODENAME=$suite'"
    audit=$(docker run --rm "$img" dpkg --audit 2>&1)
    check "$suite: dpkg --audit is empty" test -z "$audit"
    [ -z "$audit" ] || echo "$audit"
    verify=$(docker run --rm "$img" dpkg --verify 2>&1) || true
    check "$suite: dpkg --verify is clean" test -z "$verify"
    [ -z "$verify" ] || echo "$verify" | head -20
    check "$suite: interactive shell (docker run -i bash)" \
        sh -c "echo 'echo \$((6*7))' | docker run --rm -i '$img' bash | grep -qx 42"
    check "$suite: apt-get install hello (host network)" \
        docker run --rm --network host "$img" sh -c 'apt-get update -qq && apt-get install -y -qq hello >/dev/null && hello'
    check "$suite: rootstrap run (sandbox, no daemon)" \
        sh -c "'$rs' run 'oci:$work/$suite-oci' -- sh -c 'dpkg-query -W bash >/dev/null && echo sandbox-ok' | grep -qx sandbox-ok"

    docker run --rm "$img" dpkg-query -W -f '${Package}\n' | sort >"$work/$suite.ours"
    mm_start=$(date +%s.%N)
    mmdebstrap --quiet --variant=minbase --keyring="$work/keyring" "$suite" "$work/$suite-mm.tar" "$mirror"
    echo "mmdebstrap: $(echo "$(date +%s.%N) - $mm_start" | bc) s"
    tar -xOf "$work/$suite-mm.tar" ./var/lib/dpkg/status | awk '/^Package:/ {print $2}' | sort >"$work/$suite.mm"
    echo "package sets (rootstrap vs mmdebstrap --variant=minbase):"
    diff "$work/$suite.ours" "$work/$suite.mm" && echo "  identical ($(wc -l <"$work/$suite.ours") packages)"
    check "$suite: same package set as mmdebstrap" cmp -s "$work/$suite.ours" "$work/$suite.mm"

    echo "trees (rootstrap vs mmdebstrap --variant=minbase), entry by entry:"
    check "$suite: same tree as mmdebstrap but for the allow-list" \
        python3 scripts/compare-trees.py --label "$suite" --allow scripts/e2e-debian-tree-allow.txt \
        "$work/$suite-rootfs.tar" "$work/$suite-mm.tar"
    # The two allowed content differences, narrowed to what they are for.
    both() { # member, filter: the filtered member of each tarball
        tar -xOf "$work/$suite-rootfs.tar" "$1" | "$2" >"$work/$suite.a"
        tar -xOf "$work/$suite-mm.tar" "./$1" | "$2" >"$work/$suite.b"
    }
    without_dates() { cut -d: -f1-2,4-; }
    without_signed_by() { sed -E 's/\[signed-by=[^]]*\] //'; }
    both etc/shadow without_dates
    check "$suite: /etc/shadow differs in last-change dates only" cmp "$work/$suite.a" "$work/$suite.b"
    both etc/apt/sources.list without_signed_by
    check "$suite: sources.list differs in signed-by only" cmp "$work/$suite.a" "$work/$suite.b"
    mm_auto=$(tar -xOf "$work/$suite-mm.tar" ./var/lib/apt/extended_states | grep -c '^Auto-Installed: 1')
    check "$suite: apt in the image reads $mm_auto automatically installed packages, as mmdebstrap's" \
        test "$(docker run --rm "$img" apt-mark showauto | wc -l)" = "$mm_auto"
    docker rmi "$img" >/dev/null
done

[ "$fail" = 0 ] && echo "e2e-debian: all checks passed" || { echo "e2e-debian: FAILED"; exit 1; }
