#!/usr/bin/env bash
# The client matrix (issue 18): what rootstrap writes is read by Debian's
# skopeo, umoci, podman, buildah and Docker, and what they write is read by
# rootstrap (`inspect`, `run`, `diff`, `push`, `FROM`). No network: the
# fixtures are a Dockerfile build FROM scratch around the host's static
# busybox, and an Alpine recipe build from a repository generated with
# `examples/make-apk-repo.rs` and served on 127.0.0.1. Every tree a client
# unpacks is compared (file list and contents) with rootstrap's own
# `rootfs:` export of the same image.
#
# Prints one PASS/FAIL line per check; exits non-zero if any failed.
# Needs: root, busybox-static, skopeo, umoci, podman, buildah, oci-image-tool, docker.io
# (dockerd running: scripts/dockerd.sh start), docker-registry, python3, jq.
# Env: ROOTSTRAP_BIN=path to use a built binary instead of `cargo build
#      --release`; E2E_REGISTRY_PORT (default: a free port); DOCKER_HOST.
set -euo pipefail
cd "$(dirname "$0")/.."
# Lowercase: buildah and podman derive an image name from an oci: path.
work=/var/tmp/rootstrap-e2e-clients.$$.$RANDOM
mkdir "$work"
# podman refuses a runroot path longer than 50 characters.
short=$(mktemp -d /tmp/rs-e2e.XXXXXX)
prefix=rootstrap-e2e-clients
server= registry=
cleanup() {
    [ -z "$server" ] || kill "$server" 2>/dev/null || true
    [ -z "$registry" ] || kill "$registry" 2>/dev/null || true
    if docker info >/dev/null 2>&1; then
        docker ps -aq --filter "label=$prefix" | xargs -r docker rm -f >/dev/null 2>&1 || true
        docker images --format '{{.Repository}}:{{.Tag}}' | grep "^$prefix/" |
            xargs -r docker rmi -f >/dev/null 2>&1 || true
    fi
    # podman and buildah keep their images under $work (see `containers`).
    if [ -d "$work/containers" ]; then
        podman_ rm -a -f >/dev/null 2>&1 || true
        buildah_ rm -a >/dev/null 2>&1 || true
        podman_ rmi -a -f >/dev/null 2>&1 || true
    fi
    rm -rf "$work" "$short"
}
trap cleanup EXIT
export ROOTSTRAP_CACHE_DIR=$work/cache
fail=0
check() { # name, command...
    local name=$1; shift
    if "$@" >"$work/check.log" 2>&1; then
        echo "PASS $name"
    else
        echo "FAIL $name"; sed 's/^/    /' "$work/check.log" | tail -15; fail=1
    fi
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

if [ -n "${ROOTSTRAP_BIN:-}" ]; then
    rs=$(realpath "$ROOTSTRAP_BIN")
    mkapk=$(dirname "$rs")/examples/make-apk-repo
    [ -x "$mkapk" ] || cargo build --quiet --example make-apk-repo
else
    cargo build --release --quiet --bin rootstrap --example make-apk-repo
    rs=$PWD/target/release/rootstrap
    mkapk=$PWD/target/release/examples/make-apk-repo
fi
# podman, buildah and skopeo's containers-storage in a store of our own:
# vfs (no overlay mounts needed), nothing left in the host's store.
containers() { # podman|buildah args...
    local tool=$1; shift
    "$tool" --root "$work/containers/root" --runroot "$short/run" \
        --storage-driver vfs "$@"
}
podman_() { containers podman --cgroup-manager cgroupfs --events-backend file "$@"; }
buildah_() { containers buildah "$@"; }
have_docker=1
docker info >/dev/null 2>&1 || { have_docker=0; echo "FAIL docker: no dockerd (scripts/dockerd.sh start)"; fail=1; }

# The tree of a directory: one line per entry (type, mode, link target or
# content hash), sorted. Owners are left out: umoci and buildah unpack
# without root mappings of their own.
tree_of() { # dir
    (cd "$1" && find . -mindepth 1 ! -path './dev/*' ! -path './proc/*' ! -path './sys/*' \
        -printf '%y %m %p %l\n' | sort | while read -r type mode path link; do
        case $type in
        f) echo "f $mode $path $(sha256sum <"$path" | cut -c1-16)" ;;
        l) echo "l $path -> $link" ;;
        *) echo "$type $mode $path" ;;
        esac
    done)
}
same_tree() { # reference-dir dir
    diff <(tree_of "$1") <(tree_of "$2")
}
# Paths Docker makes in (or mounts over) every container it creates.
docker_made='^(d [0-7]+ \./(dev|proc|sys)|f [0-7]+ \./(\.dockerenv|etc/hostname|etc/hosts|etc/resolv\.conf) |l \./etc/mtab |d [0-7]+ \./etc$)'
# The tree of an image as Docker exports it from a container.
docker_tree() { # image dir
    local id
    id=$(docker create --label "$prefix" "$1" /bin/busybox true)
    mkdir -p "$2"
    docker export "$id" | tar -x -C "$2"
    docker rm "$id" >/dev/null
}
same_tree_but_docker_made() { # reference-dir dir
    diff <(tree_of "$1" | grep -Ev "$docker_made") <(tree_of "$2" | grep -Ev "$docker_made")
}

### Fixtures ################################################################

# 1. Dockerfile FROM scratch: busybox in one layer, more in a second.
ctx=$work/ctx
mkdir -p "$ctx"
cp /bin/busybox "$ctx/busybox"
echo hello-from-rootstrap >"$ctx/hello.txt"
cat >"$ctx/Dockerfile" <<'EOF'
FROM scratch
COPY busybox /bin/busybox
COPY hello.txt /etc/hello.txt
CMD ["/bin/busybox", "cat", "/etc/hello.txt"]
EOF
"$rs" --progress plain build -f "$ctx/Dockerfile" "$ctx" --no-cache -t "$prefix/df:1" \
    -o "oci:$work/df-oci" -o "oci-archive:$work/df.oci.tar" \
    -o "docker-archive:$work/df.tar" -o "rootfs:$work/df-rootfs" >"$work/df.log" 2>&1 ||
    { cat "$work/df.log"; exit 1; }
echo "fixture: Dockerfile image built"

# 2. An Alpine recipe build (package scripts run in the sandbox).
"$mkapk" "$work/mirror" >/dev/null
port=$(free_port)
python3 scripts/serve-dir.py "$work/mirror" "$port" >"$work/http.log" 2>&1 &
server=$!
wait_port "$port"
"$rs" --progress plain build recipes/alpine-3.20.toml \
    --mirror "http://127.0.0.1:$port" --keys "$work/mirror/keys" -t "$prefix/alpine:1" \
    -o "oci:$work/alp-oci" -o "oci-archive:$work/alp.oci.tar" \
    -o "docker-archive:$work/alp.tar" -o "rootfs:$work/alp-rootfs" >"$work/alp.log" 2>&1 ||
    { cat "$work/alp.log"; exit 1; }
echo "fixture: Alpine recipe image built"

### rootstrap -> clients ####################################################

umoci_tree() { # layout[:tag] reference-tree bundle
    umoci unpack --image "$1" "$3" && same_tree "$2" "$3/rootfs"
}
buildah_tree() { # image reference-tree
    local c m r=0
    c=$(buildah_ from -q "$1") || return 1
    m=$(buildah_ mount "$c") && same_tree "$2" "$m" || r=1
    buildah_ umount "$c" >/dev/null || true
    buildah_ rm "$c" >/dev/null || true
    return $r
}
podman_run_hello() { # image file-to-cat
    # podman sets RLIMIT_NOFILE/NPROC to the host's limits, which runc may
    # not be allowed to do inside a container; lower ones always work.
    local out
    out=$(podman_ run --rm --network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
        "$1" /bin/busybox cat "$2") && [ -n "$out" ]
}
docker_export_tree() { # image reference-tree out
    docker_tree "$1" "$3" && same_tree_but_docker_made "$2" "$3"
}
docker_cmd_prints() { # image expected
    [ "$(docker run --rm --network none --label "$prefix" "$1")" = "$2" ]
}
sbom_is_spdx() { "$rs" sbom "$1" | jq -e '.spdxVersion == "SPDX-2.3"' >/dev/null; }
# oci-image-tool (1.0.0-rc1) validates layout directories; it cannot walk
# any tar (GNU tar's own fail the same way), so archives are unpacked first.
validates() { # oci:DIR | oci-archive:FILE | docker-archive:FILE
    local path=${1#*:} dir
    case $1 in
    oci:*) dir=$path ;;
    *) dir=$work/validate.$RANDOM && mkdir "$dir" && tar -xf "$path" -C "$dir" ;;
    esac
    oci-image-tool validate --type image "$dir"
}
one_named_image() { # layout
    jq -e '(.manifests | length) == 1 and .manifests[0].annotations["org.opencontainers.image.ref.name"] != null' "$1/index.json"
}

# Written without -t: `latest`, the name skopeo, umoci and buildah assume.
"$rs" --progress plain build -f "$ctx/Dockerfile" "$ctx" --no-cache -o "oci:$work/df-notag" >/dev/null 2>&1
check "untagged oci: oci-image-tool validate" validates "oci:$work/df-notag"
check "untagged oci: skopeo inspect oci:DIR" skopeo inspect "oci:$work/df-notag"
check "untagged oci: umoci unpack --image DIR (latest): same tree" \
    umoci_tree "$work/df-notag" "$work/df-rootfs" "$work/df-notag-umoci"
check "untagged oci: buildah from oci:DIR: same tree" buildah_tree "oci:$work/df-notag" "$work/df-rootfs"

for img in df alp; do
    ref=$work/$img-rootfs
    name=$prefix/df:1
    [ "$img" = df ] || name=$prefix/alpine:1
    file=/etc/hello.txt
    [ "$img" = df ] || file=/etc/os-release
    check "$img oci: one image, named" one_named_image "$work/$img-oci"
    check "$img oci: rootstrap sbom finds the attached SPDX" sbom_is_spdx "oci:$work/$img-oci"
    for out in "oci:$work/$img-oci" "oci-archive:$work/$img.oci.tar" "docker-archive:$work/$img.tar"; do
        check "$img ${out%%:*}: oci-image-tool validate" validates "$out"
    done
    check "$img skopeo inspect oci:DIR" skopeo inspect "oci:$work/$img-oci"
    check "$img skopeo inspect oci-archive:" skopeo inspect "oci-archive:$work/$img.oci.tar"
    check "$img skopeo inspect docker-archive:" skopeo inspect "docker-archive:$work/$img.tar"
    check "$img umoci unpack: same tree" umoci_tree "$work/$img-oci:1" "$ref" "$work/$img-umoci"
    check "$img buildah from oci:DIR: same tree" buildah_tree "oci:$work/$img-oci:1" "$ref"
    check "$img buildah from oci-archive:: same tree" buildah_tree "oci-archive:$work/$img.oci.tar:1" "$ref"
    check "$img buildah from docker-archive:: same tree" buildah_tree "docker-archive:$work/$img.tar" "$ref"
    check "$img podman load oci-archive" podman_ load -q -i "$work/$img.oci.tar"
    check "$img podman load docker-archive" podman_ load -q -i "$work/$img.tar"
    check "$img podman run" podman_run_hello "oci:$work/$img-oci:1" "$file"
    if [ "$have_docker" = 1 ]; then
        check "$img docker load docker-archive" docker load -q -i "$work/$img.tar"
        check "$img docker run" docker run --rm --network none --label "$prefix" "$name" /bin/busybox true
        check "$img docker export: same tree" docker_export_tree "$name" "$ref" "$work/$img-docker"
        check "$img skopeo copy oci:DIR docker-daemon:" \
            skopeo copy -q ${DOCKER_HOST:+--dest-daemon-host "$DOCKER_HOST"} \
                "oci:$work/$img-oci:1" "docker-daemon:$prefix/$img-skopeo:1"
        check "$img docker run (copied by skopeo)" \
            docker run --rm --network none --label "$prefix" "$prefix/$img-skopeo:1" /bin/busybox true
    fi
done
[ "$have_docker" = 0 ] || check "df docker run: CMD prints the file" docker_cmd_prints "$prefix/df:1" hello-from-rootstrap

### clients -> rootstrap ####################################################

# Images the clients make: buildah (gzip, zstd, uncompressed, archives),
# skopeo (Docker media types), a nested index, umoci, docker save.
bb=$work/bb
mkdir -p "$bb/bin" "$bb/etc"
cp /bin/busybox "$bb/bin/busybox"
echo hello-from-a-client >"$bb/etc/hello.txt"

c=$(buildah_ from scratch)
buildah_ copy "$c" "$bb" / >/dev/null
buildah_ config --cmd '["/bin/busybox","cat","/etc/hello.txt"]' "$c"
buildah_ commit -q "$c" "$prefix/buildah:1" >/dev/null
# Uncompressed layers: pushing reuses the stored gzip blobs, committing does not.
buildah_ commit -q --disable-compression "$c" "oci:$work/in-buildah-plain:1" >/dev/null
buildah_ rm "$c" >/dev/null
buildah_ push -q "$prefix/buildah:1" "oci:$work/in-buildah-oci:1"
buildah_ push -q --compression-format zstd "$prefix/buildah:1" "oci:$work/in-buildah-zstd:1"
buildah_ push -q --format docker "$prefix/buildah:1" "dir:$work/in-buildah-dir" 2>/dev/null || true
buildah_ push -q "$prefix/buildah:1" "docker-archive:$work/in-buildah.tar:$prefix/buildah:1"
buildah_ push -q "$prefix/buildah:1" "oci-archive:$work/in-buildah.oci.tar:1"
# skopeo: Docker media types; a layout whose index.json holds an index.
skopeo copy -q --format v2s2 "oci:$work/in-buildah-oci:1" "oci:$work/in-skopeo-docker:1"
# podman save, both archive forms.
podman_ save -q --format oci-archive -o "$work/in-podman.oci.tar" "$prefix/buildah:1"
podman_ save -q --format docker-archive -o "$work/in-podman.tar" "$prefix/buildah:1"
python3 - "$work/in-buildah-oci" "$work/in-nested" <<'PY'
# A layout whose index.json names an image index (as `skopeo copy --all`
# and `buildah manifest push` write), built by hand from buildah's layout.
import hashlib, json, os, shutil, sys
src, dst = sys.argv[1], sys.argv[2]
shutil.copytree(src, dst)
index = json.load(open(os.path.join(dst, "index.json")))
inner = dict(index["manifests"][0]); inner.pop("annotations", None)
inner["platform"] = {"architecture": "amd64", "os": "linux"}
nested = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                     "manifests": [inner]}).encode()
digest = hashlib.sha256(nested).hexdigest()
open(os.path.join(dst, "blobs", "sha256", digest), "wb").write(nested)
json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json",
           "digest": "sha256:" + digest, "size": len(nested),
           "annotations": {"org.opencontainers.image.ref.name": "1"}}]},
          open(os.path.join(dst, "index.json"), "w"))
PY
# umoci: a layout of its own making.
umoci init --layout "$work/in-umoci"
umoci new --image "$work/in-umoci:1"
umoci unpack --image "$work/in-umoci:1" "$work/umoci-bundle" >/dev/null
cp -a "$bb/." "$work/umoci-bundle/rootfs/"
umoci repack --image "$work/in-umoci:1" "$work/umoci-bundle"
umoci config --image "$work/in-umoci:1" --config.cmd /bin/busybox --config.cmd cat --config.cmd /etc/hello.txt
# docker save: Docker's own archive (legacy before Docker 25, OCI-layout after).
if [ "$have_docker" = 1 ]; then
    tar -C "$bb" -c . | docker import -c 'CMD ["/bin/busybox","cat","/etc/hello.txt"]' - "$prefix/imported:1" >/dev/null
    docker save -o "$work/in-docker-save.tar" "$prefix/imported:1"
fi

# The layouts hold what they are meant to exercise.
layer_types() { # layout: the media types of its first image's layers
    python3 - "$1" <<'PY'
import json, os, sys
layout = sys.argv[1]
blob = lambda d: json.load(open(os.path.join(layout, "blobs", "sha256", d.split(":", 1)[1])))
desc = json.load(open(os.path.join(layout, "index.json")))["manifests"][0]
while "index" in desc["mediaType"] or "list" in desc["mediaType"]:
    desc = blob(desc["digest"])["manifests"][0]
print(" ".join(sorted({l["mediaType"] for l in blob(desc["digest"])["layers"]})))
PY
}
layers_are() { [ "$(layer_types "$1")" = "$2" ]; }
check "input: buildah --compression-format zstd wrote zstd layers" \
    layers_are "$work/in-buildah-zstd" application/vnd.oci.image.layer.v1.tar+zstd
check "input: buildah commit --disable-compression wrote uncompressed layers" \
    layers_are "$work/in-buildah-plain" application/vnd.oci.image.layer.v1.tar
check "input: skopeo --format v2s2 wrote Docker media types" \
    layers_are "$work/in-skopeo-docker" application/vnd.docker.image.rootfs.diff.tar.gzip
[ "$have_docker" = 0 ] || check "input: docker save wrote a legacy archive (no index.json)" \
    sh -c "! tar -tf '$work/in-docker-save.tar' | grep -qx index.json"

inputs="oci:$work/in-buildah-oci oci:$work/in-buildah-zstd oci-archive:$work/in-buildah.oci.tar
docker-archive:$work/in-buildah.tar oci:$work/in-buildah-plain oci:$work/in-skopeo-docker
oci:$work/in-nested oci:$work/in-umoci oci-archive:$work/in-podman.oci.tar
docker-archive:$work/in-podman.tar"
[ "$have_docker" = 0 ] || inputs="$inputs docker-archive:$work/in-docker-save.tar"
rport=${E2E_REGISTRY_PORT:-$(free_port)}
mkdir -p "$work/registry"
printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n' \
    "$work/registry/data" "$rport" >"$work/registry/config.yml"
docker-registry serve "$work/registry/config.yml" >"$work/registry/log" 2>&1 &
registry=$!
wait_port "$rport"
run_prints() { # image expected
    [ "$("$rs" run --network none "$1" -- /bin/busybox cat /etc/hello.txt)" = "$2" ]
}
diff_works() { # a b: 0 identical, 1 different, 2 error
    local rc=0
    "$rs" diff "$1" "$2" >/dev/null || rc=$?
    [ "$rc" -lt 2 ]
}
from_base() { # context dir with a Dockerfile
    "$rs" --progress plain build -f "$1/Dockerfile" "$1" --no-cache -o "rootfs:$1/rootfs" &&
        [ "$(cat "$1/rootfs/etc/hello.txt")" = hello-from-a-client ] &&
        cmp -s "$1/rootfs/bin/busybox" /bin/busybox &&
        test -f "$1/rootfs/etc/from-dockerfile"
}
referrers_listed() { # registry-port repo digest
    local accept='Accept: application/vnd.oci.image.index.v1+json'
    { curl -fsS -H "$accept" "http://127.0.0.1:$1/v2/$2/referrers/$3" ||
        curl -fsS -H "$accept" "http://127.0.0.1:$1/v2/$2/manifests/sha256-${3#sha256:}"; } |
        jq -e '[.manifests[].artifactType] | sort == ["application/spdx+json", "application/vnd.cyclonedx+json"]'
}
run_name_prints() { [ "$("$rs" run --network none "$1")" = "$2" ]; }
n=0
for spec in $inputs; do
    n=$((n + 1))
    label=${spec#*:}; label="${spec%%:*}:$(basename "$label")"
    check "$label: rootstrap inspect" "$rs" inspect "$spec"
    check "$label: rootstrap run" run_prints "$spec" hello-from-a-client
    check "$label: rootstrap diff (against buildah's)" diff_works "oci:$work/in-buildah-oci" "$spec"
    check "$label: rootstrap push" "$rs" push "$spec" "127.0.0.1:$rport/in/img$n:1"
    check "$label: pushed image reads back (skopeo)" \
        skopeo inspect --tls-verify=false "docker://127.0.0.1:$rport/in/img$n:1"
    mkdir -p "$work/from$n"
    printf 'FROM %s\nCOPY Dockerfile /etc/from-dockerfile\n' "$spec" >"$work/from$n/Dockerfile"
    check "$label: FROM base, tree = base + one file" from_base "$work/from$n"
done

# SBOMs after a push: found as referrers (the fallback tag on registries
# without the referrers API, as distribution 2.x is).
"$rs" push "oci:$work/alp-oci" "127.0.0.1:$rport/out/alpine:1" >/dev/null 2>&1
digest=$(jq -r '.manifests[0].digest' "$work/alp-oci/index.json")
check "push: SBOM referrers of the image listed (OCI 1.1 referrers / fallback tag)" \
    referrers_listed "$rport" out/alpine "$digest"
check "push: the pushed image is read by skopeo" \
    skopeo inspect --tls-verify=false "docker://127.0.0.1:$rport/out/alpine:1"

# A registry name: pulled into a temporary layout, then used.
check "registry name: rootstrap inspect HOST/REPO:TAG" "$rs" inspect "127.0.0.1:$rport/in/img1:1"
check "registry name: rootstrap run HOST/REPO:TAG" run_prints "127.0.0.1:$rport/in/img1:1" hello-from-a-client

# Stored names: the -t images are in rootstrap's store for every command.
check "store: rootstrap inspect $prefix/alpine:1" "$rs" inspect "$prefix/alpine:1"
check "store: rootstrap diff NAME oci:DIR (identical)" "$rs" diff "$prefix/alpine:1" "oci:$work/alp-oci"
check "store: rootstrap run NAME" run_name_prints "$prefix/df:1" hello-from-rootstrap

[ "$fail" = 0 ] && echo "e2e-clients: all checks passed" || { echo "e2e-clients: FAILED"; exit 1; }
