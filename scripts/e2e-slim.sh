#!/usr/bin/env bash
# End-to-end check of slim images and zstd layers against the real Debian
# archive (through the host's apt mirror) and real consumers:
#   * trixie and bookworm `--slim`: docker load + run, `apt-get install hello`
#     inside keeps only /usr/share/doc/hello/copyright, dpkg --audit empty,
#     dpkg --verify reports only excluded paths, package set = the minbase set;
#   * trixie slim with `--compression zstd`: the same tar as the gzip image
#     (diff_id), loaded and run by Docker, read by skopeo and podman to the
#     same tree as umoci unpacks from the gzip image (umoci 0.4.7 itself does
#     not read zstd layers: reported as SKIP).
# Needs: root, a dockerd (DOCKER_HOST or the default socket), skopeo, umoci,
# podman. ROOTSTRAP=path/to/rootstrap uses that binary instead of a release
# build.
set -euo pipefail
cd "$(dirname "$0")/.."
suites=${SUITES:-"trixie bookworm"}
# Lower case: podman names an image pulled from oci:PATH after the path.
work=/var/tmp/rootstrap-e2e-slim-$$-$RANDOM
mkdir "$work"
podman_store=(--root "$work/podman/root" --runroot "$work/podman/run" --storage-driver vfs)
images=()
cleanup() {
    for i in "${images[@]}"; do docker rmi -f "$i" >/dev/null 2>&1 || true; done
    podman "${podman_store[@]}" image unmount --all >/dev/null 2>&1 || true
    podman "${podman_store[@]}" rmi --all --force >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
mirror=$(bash scripts/host-mirror.sh)
export ROOTSTRAP_CACHE_DIR=$work/cache
. scripts/lib.sh

if [ -n "${ROOTSTRAP:-}" ]; then
    rs=$ROOTSTRAP
else
    cargo build --release --quiet
    rs=$PWD/target/release/rootstrap
fi
echo "docker engine: $(docker version --format '{{.Server.Version}}')"

# The layer digest and diff_id of the only layer of an OCI layout.
layer_field() { # dir, field (digest|diff_id|media_type)
    "$rs" inspect --json "oci:$1" | python3 -c \
        "import json,sys; print(json.load(sys.stdin)['layers'][0]['$2'])"
}
# Everything about a tree but mtimes: path, type, mode, owner, size, link
# target, and the content of every regular file.
tree_sig() {
    (cd "$1" && find . -mindepth 1 -printf '%p %y %m %U %G %s %l\n' | LC_ALL=C sort &&
        find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum)
}
# Paths the slim configuration excludes (what dpkg --verify may call missing).
excluded='^missing +/usr/share/(doc|man|info|locale|linda|lintian/overrides|gnome/help|omf)/'

for suite in $suites; do
    echo "=== $suite slim"
    img=rootstrap-e2e-slim/debian:$suite-slim
    images+=("$img")
    "$rs" --progress plain --quiet build "recipes/debian-$suite.toml" --slim --mirror "$mirror" \
        --output "docker-archive:$work/$suite.tar" --output "oci:$work/$suite-oci" -t "$img" >/dev/null
    "$rs" inspect "oci:$work/$suite-oci" | grep -A1 '^Layers'
    docker load -q -i "$work/$suite.tar" >/dev/null
    check "$suite slim: docker run" test "$(docker run --rm "$img" echo ok)" = ok
    audit=$(docker run --rm "$img" dpkg --audit 2>&1)
    check "$suite slim: dpkg --audit is empty" test -z "$audit"
    unexpected=$(docker run --rm "$img" dpkg --verify 2>&1 | grep -Ev "$excluded" || true)
    check "$suite slim: dpkg --verify reports only excluded paths" test -z "$unexpected"
    [ -z "$unexpected" ] || echo "$unexpected" | head -10
    check "$suite slim: the dpkg configuration is in the image" \
        sh -c "docker run --rm '$img' cat /etc/dpkg/dpkg.cfg.d/docker | grep -qx 'path-include /usr/share/doc/\*/copyright'"
    docs=$(docker run --rm --network host -e DEBIAN_FRONTEND=noninteractive "$img" sh -c \
        'apt-get update -qq && apt-get install -y -qq hello >/dev/null && hello >/dev/null &&
         test ! -e /usr/share/man/man1/hello.1.gz && ls -A /usr/share/doc/hello' 2>"$work/apt.err" || true)
    check "$suite slim: apt-get install hello keeps only its copyright" test "$docs" = copyright
    [ "$docs" = copyright ] || { echo "$docs"; tail -5 "$work/apt.err"; }
    docker run --rm "$img" dpkg-query -W -f '${Package}\n' | LC_ALL=C sort >"$work/$suite.slim"
    "$rs" --quiet resolve "recipes/debian-$suite.toml" --mirror "$mirror" --json |
        python3 -c "import json,sys; print('\n'.join(p['name'] for p in json.load(sys.stdin)['packages']))" |
        LC_ALL=C sort >"$work/$suite.minbase"
    check "$suite slim: same package set as minbase ($(wc -l <"$work/$suite.slim") packages)" \
        cmp -s "$work/$suite.slim" "$work/$suite.minbase"
    diff "$work/$suite.slim" "$work/$suite.minbase" || true
done

echo "=== trixie: licences of slim and minbase"
# Copyright files are kept, so the SBOM's licences are the same.
"$rs" --quiet build recipes/debian-trixie.toml --mirror "$mirror" --output "oci:$work/minbase-oci" >/dev/null
licences() {
    "$rs" sbom "oci:$1" | python3 -c "import json,sys
for p in json.load(sys.stdin)['packages'][1:]: print(p['name'], p.get('licenseDeclared'))"
}
licences "$work/minbase-oci" >"$work/minbase.lic"
licences "$work/trixie-oci" >"$work/slim.lic"
check "trixie: SPDX licences of slim = minbase ($(wc -l <"$work/slim.lic") packages)" \
    cmp -s "$work/minbase.lic" "$work/slim.lic"
"$rs" inspect "oci:$work/minbase-oci" | grep -A1 '^Layers'

echo "=== trixie slim, zstd layers"
zimg=rootstrap-e2e-slim/debian:trixie-slim-zstd
images+=("$zimg")
"$rs" --progress plain --quiet build recipes/debian-trixie.toml --slim --compression zstd \
    --mirror "$mirror" --output "oci:$work/zstd-oci" --output "docker-archive:$work/zstd.tar" \
    -t "$zimg" >/dev/null 2>"$work/zstd.err" || { cat "$work/zstd.err"; exit 1; }
gz=$work/trixie-oci
zs=$work/zstd-oci
check "zstd: layer media type" test "$(layer_field "$zs" media_type)" = application/vnd.oci.image.layer.v1.tar+zstd
check "zstd: the same tar as the gzip image (diff_id)" test "$(layer_field "$zs" diff_id)" = "$(layer_field "$gz" diff_id)"
"$rs" inspect "oci:$zs" | grep -A1 '^Layers'

docker load -q -i "$work/zstd.tar" >/dev/null
check "zstd: docker load + run ($(docker version --format '{{.Server.Version}}'))" \
    test "$(docker run --rm "$zimg" echo ok)" = ok

# The reference tree: umoci unpacking the gzip image.
umoci unpack --image "$gz:trixie-slim" "$work/ref" >/dev/null
tree_sig "$work/ref/rootfs" >"$work/ref.sig"
if umoci unpack --image "$zs:trixie-slim-zstd" "$work/umoci-zstd" >/dev/null 2>"$work/umoci.err"; then
    tree_sig "$work/umoci-zstd/rootfs" >"$work/umoci.sig"
    check "zstd: umoci unpacks the same tree" cmp -s "$work/ref.sig" "$work/umoci.sig"
elif grep -q 'not correct mediatype' "$work/umoci.err"; then
    echo "SKIP zstd: umoci $(umoci --version | awk '{print $3}') does not read zstd layers"
else
    cat "$work/umoci.err"
    check "zstd: umoci unpack" false
fi

# skopeo decodes the zstd layer to re-encode it as gzip; rootstrap's fsck
# then checks the new layer against the unchanged diff_id.
skopeo copy -q --dest-compress --dest-compress-format gzip "oci:$zs:trixie-slim-zstd" "oci:$work/skopeo:trixie"
check "zstd: skopeo reads it back to the same tar" \
    test "$(layer_field "$work/skopeo" diff_id)" = "$(layer_field "$gz" diff_id)"
umoci unpack --image "$work/skopeo:trixie" "$work/skopeo-tree" >/dev/null
tree_sig "$work/skopeo-tree/rootfs" >"$work/skopeo.sig"
check "zstd: skopeo's copy unpacks to the same tree" cmp -s "$work/ref.sig" "$work/skopeo.sig"

# podman pulls it into its own storage (it cannot start containers in this
# sandbox: rlimits), and mounts the image.
podman "${podman_store[@]}" pull -q "oci:$zs:trixie-slim-zstd" >/dev/null
mnt=$(podman "${podman_store[@]}" image mount "$(podman "${podman_store[@]}" images -q | head -1)")
tree_sig "$mnt" >"$work/podman.sig"
check "zstd: podman reads the same tree" cmp -s "$work/ref.sig" "$work/podman.sig"
cmp -s "$work/ref.sig" "$work/podman.sig" || diff "$work/ref.sig" "$work/podman.sig" | head -5

[ "$fail" = 0 ] && echo "e2e-slim: all checks passed" || { echo "e2e-slim: FAILED"; exit 1; }
