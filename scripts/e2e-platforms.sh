#!/usr/bin/env bash
# End-to-end check of foreign-platform builds on an amd64 host, through
# binfmt_misc + qemu-user-static (scripts/binfmt.sh registers it):
#   - Debian trixie minbase for linux/arm64 from the host's mirror: package
#     scripts run emulated; `docker run --platform linux/arm64` runs it
#     (uname -m, dpkg --audit, dpkg --verify); its package set equals
#     `mmdebstrap --arch=arm64 --variant=minbase`'s from the same mirror; the
#     image is the same with qemu's default CPU as with the one rootstrap picks;
#   - Debian trixie armhf (linux/arm/v7, a 32-bit port): docker run, dpkg --audit;
#   - an amd64+arm64 index in one command, pushed to docker-registry on
#     127.0.0.1 (`docker pull --platform` each) and kept in the local store
#     (-t: listed with its platforms, pushed by name with the same digest);
#     each platform's SBOMs are referrers of its manifest in the registry;
#   - Alpine 3.19 aarch64 from the official aarch64 minirootfs's packages
#     (repacked, served on 127.0.0.1): Alpine's own apk inside the arm64 image
#     lists the set and `apk audit --system` is clean;
#   - a platform with no interpreter registered stops before any download,
#     naming qemu-user-static; --skip-foreign-scripts builds it labelled;
#   - a Dockerfile with TARGETARCH and a cross stage (FROM
#     --platform=$BUILDPLATFORM) built for linux/amd64,linux/arm64 into one
#     image index, then per platform to a docker archive that `docker run
#     --platform` runs (the arch files, uname -m).
# Needs: root, dockerd running (scripts/dockerd.sh start), qemu-user-static,
# mmdebstrap, python3, curl, and ../shared/alpine-minirootfs/ for the Alpine part.
# ROOTSTRAP_BIN / MAKE_APK_REPO_BIN: use these binaries instead of a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(uname -m)" != x86_64 ]; then
    echo "SKIP: the foreign platforms here are chosen for an x86_64 host"
    exit 0
fi
bash scripts/binfmt.sh aarch64 arm s390x >/dev/null
work=$(mktemp -d /var/tmp/rootstrap-e2e-platforms.XXXXXX)
server=
imgs=()
registry_pid=
cleanup() {
    [ -z "$server" ] || kill "$server" 2>/dev/null || true
    [ -z "$registry_pid" ] || kill "$registry_pid" 2>/dev/null || true
    for i in "${imgs[@]}"; do docker rmi "$i" >/dev/null 2>&1 || true; done
    echo 1 >/proc/sys/fs/binfmt_misc/qemu-s390x 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
export ROOTSTRAP_CACHE_DIR=$work/cache
. scripts/lib.sh
rootstrap_bin --bin rootstrap --example make-apk-repo
make_apk_repo=${MAKE_APK_REPO_BIN:-$PWD/target/release/examples/make-apk-repo}
mirror=$(bash scripts/host-mirror.sh)

# --- Debian trixie arm64 ---
img=rootstrap-e2e/trixie:arm64
imgs+=("$img")
start=$(date +%s.%N)
"$rs" --progress plain build recipes/debian-trixie.toml --platform linux/arm64 --mirror "$mirror" \
    --output "docker-archive:$work/trixie-arm64.tar" --output "oci:$work/trixie-arm64" \
    -t "$img" 2>"$work/trixie-arm64.log"
echo "rootstrap build trixie linux/arm64 (emulated scripts): $(echo "$(date +%s.%N) - $start" | bc) s"
check "arm64: the log names the binfmt_misc interpreter" grep -q "arm64 programs run through binfmt_misc entry" "$work/trixie-arm64.log"
check "arm64: the image config says linux/arm64/v8" \
    sh -c "'$rs' inspect 'oci:$work/trixie-arm64' | grep -q 'Platform: *linux/arm64/v8'"
docker load -i "$work/trixie-arm64.tar" >/dev/null
run_arm() { docker run --rm --platform linux/arm64 "$img" "$@"; }
check "arm64: docker run --platform linux/arm64: uname -m is aarch64" test "$(run_arm uname -m)" = aarch64
check "arm64: dpkg --print-architecture is arm64" test "$(run_arm dpkg --print-architecture)" = arm64
check "arm64: dpkg --audit is empty" test -z "$(run_arm dpkg --audit)"
check "arm64: dpkg --verify is clean" test -z "$(run_arm dpkg --verify)"
run_arm dpkg-query -W -f '${Package} ${Version} ${Architecture}\n' | sort >"$work/rootstrap-arm64.pkgs"
# The emulated CPU rootstrap picks (QEMU_CPU=max,pauth=off) makes the same
# image as qemu's default one (QEMU_CPU=max, passed through): a second build
# from the same cache, with a rootfs: output so the base layer is not reused.
check "arm64: scripts ran with QEMU_CPU=max,pauth=off" \
    grep -q "emulated programs run with QEMU_CPU=max,pauth=off" "$work/trixie-arm64.log"
start=$(date +%s.%N)
QEMU_CPU=max "$rs" --progress plain build recipes/debian-trixie.toml --platform linux/arm64 --mirror "$mirror" \
    --output "oci:$work/trixie-arm64-max" --output "rootfs:$work/trixie-arm64-max-tree" 2>"$work/trixie-arm64-max.log"
echo "rootstrap build trixie linux/arm64 with qemu's default CPU (QEMU_CPU=max): $(echo "$(date +%s.%N) - $start" | bc) s"
check "arm64: with QEMU_CPU=max (passed through) the image is the same" \
    test "$(skopeo inspect --raw "oci:$work/trixie-arm64-max" | sha256sum)" = "$(skopeo inspect --raw "oci:$work/trixie-arm64" | sha256sum)"
rm -rf "$work/trixie-arm64-max-tree"

start=$(date +%s.%N)
mmdebstrap --quiet --variant=minbase --arch=arm64 trixie "$work/mm-arm64.tar" "deb $mirror trixie main"
echo "mmdebstrap --arch=arm64 --variant=minbase: $(echo "$(date +%s.%N) - $start" | bc) s"
mkdir "$work/mm"
tar -C "$work/mm" -xf "$work/mm-arm64.tar" ./var/lib/dpkg
dpkg-query --admindir="$work/mm/var/lib/dpkg" -W -f '${Package} ${Version} ${Architecture}\n' | sort >"$work/mm-arm64.pkgs"
check "arm64: the package set equals mmdebstrap's ($(wc -l <"$work/mm-arm64.pkgs") packages)" \
    diff -u "$work/mm-arm64.pkgs" "$work/rootstrap-arm64.pkgs"

# --- Debian trixie armhf (linux/arm/v7): a 32-bit port, through qemu-arm ---
img_armhf=rootstrap-e2e/trixie:armhf
imgs+=("$img_armhf")
"$rs" --progress plain build recipes/debian-trixie.toml --platform linux/arm/v7 --mirror "$mirror" \
    --output "docker-archive:$work/trixie-armhf.tar" -t "$img_armhf" 2>"$work/trixie-armhf.log"
docker load -i "$work/trixie-armhf.tar" >/dev/null
run_armhf() { docker run --rm --platform linux/arm/v7 "$img_armhf" "$@"; }
check "armhf: the image is linux/arm/v7" \
    test "$(docker image inspect "$img_armhf" --format '{{.Os}}/{{.Architecture}}/{{.Variant}}')" = linux/arm/v7
check "armhf: docker run --platform linux/arm/v7: uname -m is armv7l" test "$(run_armhf uname -m)" = armv7l
check "armhf: dpkg --print-architecture is armhf" test "$(run_armhf dpkg --print-architecture)" = armhf
check "armhf: dpkg --audit is empty" test -z "$(run_armhf dpkg --audit)"
rm -f "$work/trixie-armhf.tar"

# --- one image index for amd64 + arm64, pushed to a registry, pulled per platform ---
. scripts/registry.sh
port=$(free_port)
start_registry "$work/registry" "$port"
registry_host=127.0.0.1:$port
ref=$registry_host/rootstrap-e2e/trixie:multi
export COSIGN_PASSWORD=e2e
"$rs" key generate --output-prefix "$work/cosign" >/dev/null
start=$(date +%s.%N)
"$rs" --progress plain build recipes/debian-trixie.toml --platform linux/amd64,linux/arm64 --mirror "$mirror" \
    --output "oci:$work/trixie-index" --output "registry:$ref" -t rootstrap-e2e/trixie:index \
    --sign-key "$work/cosign.key" >"$work/index.out" 2>"$work/index.log"
echo "rootstrap build trixie linux/amd64,linux/arm64 (arm64 layer cached): $(echo "$(date +%s.%N) - $start" | bc) s"
index_digest=$(awk '/^registry:/ {print $2}' "$work/index.out")
served=$(curl -fsS -D - -o /dev/null -H 'Accept: application/vnd.oci.image.index.v1+json' \
    "http://$registry_host/v2/rootstrap-e2e/trixie/manifests/multi" | tr -d '\r' | sed -n 's/^[Dd]ocker-[Cc]ontent-[Dd]igest: //p')
check "index: the registry serves the index under the tag ($served)" test "$served" = "$index_digest"
arm64_manifest=$(skopeo inspect --raw "oci:$work/trixie-arm64" | sha256sum | cut -d' ' -f1)
check "index: its arm64 manifest is the one-platform build's" \
    grep -q "sha256:$arm64_manifest" <(skopeo inspect --raw "oci:$work/trixie-index:index")
for p in amd64 arm64; do
    imgs+=("$ref")
    docker pull --platform "linux/$p" "$ref" >/dev/null
    want=$([ "$p" = amd64 ] && echo x86_64 || echo aarch64)
    check "index: docker pull --platform linux/$p: uname -m is $want" \
        test "$(docker run --rm --platform "linux/$p" "$ref" uname -m)" = "$want"
    check "index: linux/$p: dpkg --audit is empty" \
        test -z "$(docker run --rm --platform "linux/$p" "$ref" dpkg --audit)"
    docker rmi "$ref" >/dev/null 2>&1 || true
done
check "index: rootstrap pull --platform linux/arm64 takes the arm64 image" \
    sh -c "'$rs' pull '$ref' --platform linux/arm64 --output 'oci:$work/pulled-arm64' >/dev/null 2>&1 && '$rs' inspect 'oci:$work/pulled-arm64' | grep -q 'Platform: *linux/arm64'"
# The local store keeps the index (-t): listed with its platforms, pushed whole by name;
# each platform's SBOMs went to the registry as referrers of its manifest.
check "index: rootstrap images lists the stored index with its platforms" \
    sh -c "'$rs' images | grep -q '^rootstrap-e2e/trixie .*index: linux/amd64,linux/arm64/v8'"
check "index: rootstrap push of the stored name pushes the index (the build's digest)" \
    sh -c "'$rs' push rootstrap-e2e/trixie:index '$registry_host/rootstrap-e2e/trixie:stored' 2>/dev/null | grep -q '@$index_digest\$'"
accept='Accept: application/vnd.oci.image.index.v1+json'
for m in $(jq -r '.manifests[].digest' "$work/trixie-index/blobs/sha256/${index_digest#sha256:}"); do
    listed=$(curl -fsS -H "$accept" "http://$registry_host/v2/rootstrap-e2e/trixie/referrers/$m" 2>/dev/null ||
        curl -fsS -H "$accept" "http://$registry_host/v2/rootstrap-e2e/trixie/manifests/sha256-${m#sha256:}")
    check "index: $m has its two SBOMs as referrers in the registry" \
        test "$(echo "$listed" | jq '.manifests | length')" = 2
done
# Signed (--sign-key): the index, and each platform's image with its SBOMs.
check "index: rootstrap verify of the signed index" "$rs" verify "$ref" --key "$work/cosign.pub"
for m in $(jq -r '.manifests[].digest' "$work/trixie-index/blobs/sha256/${index_digest#sha256:}"); do
    "$rs" verify "$registry_host/rootstrap-e2e/trixie@$m" --key "$work/cosign.pub" --attestation >"$work/verify.out" 2>&1 || true
    check "index: $m is signed, with its SPDX SBOM and the provenance attested" \
        sh -c "grep -q 'attestation: https://spdx.dev/Document' '$work/verify.out' && grep -q 'attestation: https://slsa.dev/provenance/v1' '$work/verify.out'"
done
kill "$registry_pid" 2>/dev/null || true
echo "index digest: $index_digest"

# --- a platform without an interpreter ---
echo 0 >/proc/sys/fs/binfmt_misc/qemu-s390x
if "$rs" build recipes/debian-trixie.toml --platform linux/s390x --mirror "$mirror" \
    --output "oci:$work/s390x" >"$work/s390x.out" 2>&1; then
    echo "FAIL s390x without an interpreter: the build succeeded"; fail=1
else
    check "s390x without an interpreter: the error names qemu-user-static" grep -q "qemu-user-static" "$work/s390x.out"
    check "s390x without an interpreter: nothing was downloaded" sh -c "! grep -q 'fetch and verify' '$work/s390x.out'"
    check "s390x without an interpreter: no output" test ! -e "$work/s390x"
fi
echo 1 >/proc/sys/fs/binfmt_misc/qemu-s390x

# --- Alpine 3.19 aarch64 ---
minis=$PWD/../shared/alpine-minirootfs
if [ ! -f "$minis/alpine-minirootfs-3.19.4-aarch64.tar.gz" ]; then
    echo "SKIP: Alpine aarch64: $minis not found"
else
    export APK_SIGNING_KEY=$work/signing-key.pem
    APK_RELEASE=v3.19 "$make_apk_repo" "$work/mirror" "$minis/alpine-minirootfs-3.19.4-aarch64.tar.gz" >/dev/null
    serve_dir "$work/mirror" "$work/http.log"
    alpine_recipe v3.19 x86_64 >"$work/alpine.toml"
    aimg=rootstrap-e2e/alpine:aarch64
    imgs+=("$aimg")
    "$rs" --progress plain build "$work/alpine.toml" --platform linux/arm64 \
        --mirror "http://127.0.0.1:$port" --keys "$work/mirror/keys" \
        --output "docker-archive:$work/alpine-arm64.tar" -t "$aimg" 2>"$work/alpine.log"
    check "aarch64 Alpine: scripts ran (nothing marked for apk fix)" sh -c "! grep -q 'apk fix' '$work/alpine.log'"
    docker load -i "$work/alpine-arm64.tar" >/dev/null
    arun() { docker run --rm --platform linux/arm64 "$aimg" "$@"; }
    check "aarch64 Alpine: uname -m is aarch64" test "$(arun uname -m)" = aarch64
    check "aarch64 Alpine: apk's arch is aarch64" test "$(arun cat /etc/apk/arch)" = aarch64
    arun apk info | sort >"$work/apk-info"
    tar -xzf "$minis/alpine-minirootfs-3.19.4-aarch64.tar.gz" -O ./lib/apk/db/installed | sed -n 's/^P://p' | sort >"$work/mini-info"
    check "aarch64 Alpine: Alpine's apk lists the minirootfs's set ($(wc -l <"$work/mini-info") packages)" \
        diff -u "$work/mini-info" "$work/apk-info"
    check "aarch64 Alpine: apk audit --system is clean" test -z "$(arun apk audit --system)"
    check "aarch64 Alpine: busybox applets are linked (its trigger ran)" test "$(arun readlink /bin/ls)" = /bin/busybox
fi

# --- Dockerfile: TARGETARCH and a cross stage, amd64+arm64 in one index ---
# Each platform's busybox comes from the context: the host's static one for
# amd64, Alpine's aarch64 one (with its musl loader) for arm64. The cross
# stage runs on the build platform and records the target's arch.
if [ ! -f "$minis/alpine-minirootfs-3.19.4-aarch64.tar.gz" ]; then
    echo "SKIP: Dockerfile platforms: $minis not found"
else
    df=$work/dockerfile
    mkdir -p "$df/arm64" "$df/amd64/bin"
    tar -xzf "$minis/alpine-minirootfs-3.19.4-aarch64.tar.gz" -C "$df/arm64" \
        ./bin/busybox ./lib/ld-musl-aarch64.so.1 ./lib/libc.musl-aarch64.so.1
    cp /bin/busybox "$df/amd64/bin/busybox"
    cat >"$df/Dockerfile" <<'EOF'
FROM --platform=$BUILDPLATFORM scratch AS build
ARG BUILDARCH
COPY $BUILDARCH/ /
SHELL ["/bin/busybox", "sh", "-c"]
ARG TARGETARCH
RUN echo $TARGETARCH > /arch && /bin/busybox uname -m > /build-uname
FROM scratch
ARG TARGETARCH
COPY $TARGETARCH/ /
SHELL ["/bin/busybox", "sh", "-c"]
COPY --from=build /arch /build-uname /
RUN /bin/busybox uname -m > /uname
EOF
    "$rs" --progress plain build -f "$df/Dockerfile" "$df" --platform linux/amd64,linux/arm64 \
        -o "oci:$work/df-index" >"$work/df-index.out" 2>"$work/df-index.log"
    index_blob=$work/df-index/blobs/sha256/$(jq -r '.manifests[0].digest' "$work/df-index/index.json" | cut -d: -f2)
    check "Dockerfile: one index of linux/amd64 and linux/arm64" \
        test "$(jq -r '[.manifests[].platform | .os + "/" + .architecture] | join(" ")' "$index_blob")" = "linux/amd64 linux/arm64"
    for arch in amd64 arm64; do
        p=linux/$arch
        dimg=rootstrap-e2e/dockerfile:$arch
        imgs+=("$dimg")
        "$rs" --progress plain build -f "$df/Dockerfile" "$df" --platform "$p" \
            -o "docker-archive:$work/df-$arch.tar" -t "$dimg" >"$work/df-$arch.out" 2>"$work/df-$arch.log"
        in_index=$(jq -r --arg a "$arch" '.manifests[] | select(.platform.architecture == $a) | .digest' "$index_blob")
        check "Dockerfile $p: the single-platform build is the index's $arch image" \
            grep -q "$in_index" "$work/df-$arch.out"
        docker load -i "$work/df-$arch.tar" >/dev/null
        drun() { docker run --rm --platform "$p" "$dimg" /bin/busybox "$@"; }
        uname_want=$([ "$arch" = amd64 ] && echo x86_64 || echo aarch64)
        check "Dockerfile $p: docker run: /arch (TARGETARCH from the cross stage) is $arch" test "$(drun cat /arch)" = "$arch"
        check "Dockerfile $p: the cross stage ran on the build platform (x86_64)" test "$(drun cat /build-uname)" = x86_64
        check "Dockerfile $p: RUN in the target stage saw uname -m $uname_want" test "$(drun cat /uname)" = "$uname_want"
        check "Dockerfile $p: docker run: uname -m is $uname_want" test "$(drun uname -m)" = "$uname_want"
    done
    # A foreign RUN without an interpreter stops before running, naming
    # qemu-user-static.
    printf 'FROM scratch\nRUN true\n' >"$df/Dockerfile.s390x"
    echo 0 >/proc/sys/fs/binfmt_misc/qemu-s390x
    if "$rs" build -f "$df/Dockerfile.s390x" "$df" --platform linux/s390x \
        -o "oci:$work/df-s390x" >"$work/df-s390x.out" 2>&1; then
        echo "FAIL Dockerfile RUN for s390x without an interpreter: the build succeeded"; fail=1
    else
        check "Dockerfile RUN for s390x without an interpreter: the error names qemu-user-static" \
            grep -q "RUN in a s390x stage cannot run.*qemu-user-static" "$work/df-s390x.out"
        check "Dockerfile RUN for s390x without an interpreter: no output" test ! -e "$work/df-s390x"
    fi
    echo 1 >/proc/sys/fs/binfmt_misc/qemu-s390x
fi

[ "$fail" = 0 ] && echo "e2e-platforms: all checks passed" || { echo "e2e-platforms: FAILED"; exit 1; }
