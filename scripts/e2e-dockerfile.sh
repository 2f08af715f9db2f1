#!/usr/bin/env bash
# End-to-end check of daemonless Dockerfile builds: the classic flow
#   FROM scratch / ADD rootfs.tar.gz / / RUN ... / CMD ...
# on a rootfs tarball that rootstrap itself builds from the real Debian
# archive (through the host's apt mirror), then `docker load` + `docker run`.
# The RUN step installs a package with apt-get: it needs the network, which
# the sandbox shares with the host by default.
# Needs: root, dockerd running (scripts/dockerd.sh start).
set -euo pipefail
cd "$(dirname "$0")/.."
suite=${SUITE:-trixie}
work=$(mktemp -d /var/tmp/rootstrap-e2e-dockerfile.XXXXXX)
trap 'rm -rf "$work"' EXIT
export ROOTSTRAP_CACHE_DIR=${ROOTSTRAP_CACHE_DIR:-$work/cache}
mirror=${ROOTSTRAP_MIRROR:-$(bash scripts/host-mirror.sh)}
export ROOTSTRAP_MIRROR=$mirror
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1700000000}
fail=0
check() { # name, command...
    local name=$1; shift
    if "$@"; then echo "PASS $name"; else echo "FAIL $name"; fail=1; fi
}

cargo build --release --quiet
rs=$PWD/target/release/rootstrap

echo "=== rootfs tarball (debian-$suite)"
mkdir -p "$work/ctx"
"$rs" --progress plain build "debian-$suite" --output "tar:$work/ctx/rootfs.tar.gz"

cat >"$work/ctx/Dockerfile" <<'DOCKERFILE'
FROM scratch
ADD rootfs.tar.gz /
ARG PKG=hello
ENV LANG=C.UTF-8
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends "$PKG" >/dev/null \
    && rm -rf /var/lib/apt/lists/*
RUN useradd -m app && echo built-by-rootstrap > /etc/motd-rootstrap
WORKDIR /home/app
USER app
CMD ["/bin/bash"]
DOCKERFILE

img=rootstrap-e2e/dockerfile:$suite
echo "=== Dockerfile build"
"$rs" --progress plain build -f "$work/ctx/Dockerfile" "$work/ctx" -t "$img" \
    --output "docker-archive:$work/image.tar" --output "oci:$work/image-oci"
"$rs" inspect "oci:$work/image-oci"

docker load -i "$work/image.tar"
check "docker run: package installed by RUN" sh -c "docker run --rm '$img' hello | grep -q 'Hello, world'"
check "docker run: user and workdir" test "$(docker run --rm "$img" sh -c 'id -un; pwd' | tr '\n' ' ')" = "app /home/app "
check "docker run: file from the second RUN" test "$(docker run --rm "$img" cat /etc/motd-rootstrap)" = built-by-rootstrap
check "image has 3 layers (rootfs + 2 RUN)" test "$(docker image inspect -f '{{len .RootFS.Layers}}' "$img")" = 3
check "rootstrap run (sandbox, no daemon)" \
    sh -c "'$rs' run 'oci:$work/image-oci' -- cat /etc/motd-rootstrap | grep -qx built-by-rootstrap"

docker rmi "$img" >/dev/null

echo "=== recipe [build] dockerfile (steps on top of the recipe's image)"
mkdir -p "$work/recipe"
cp "recipes/debian-$suite.toml" "$work/recipe/recipe.toml"
printf '\n[build]\ndockerfile = "Dockerfile"\n' >>"$work/recipe/recipe.toml"
printf 'RUN echo from-recipe-steps > /etc/rootstrap-steps\nENV STEPS=1\n' >"$work/recipe/Dockerfile"
img2=rootstrap-e2e/recipe-steps:$suite
"$rs" --progress plain build "$work/recipe/recipe.toml" -t "$img2" --output "docker-archive:$work/recipe.tar"
docker load -i "$work/recipe.tar"
check "recipe steps: file from RUN" test "$(docker run --rm "$img2" cat /etc/rootstrap-steps)" = from-recipe-steps
check "recipe steps: ENV" test "$(docker run --rm "$img2" sh -c 'echo $STEPS')" = 1
docker rmi "$img2" >/dev/null

echo "=== FROM recipe:debian-$suite"
mkdir -p "$work/from-recipe"
printf 'FROM recipe:debian-%s\nRUN echo ok > /from-recipe\n' "$suite" >"$work/from-recipe/Dockerfile"
"$rs" --progress plain build -f "$work/from-recipe/Dockerfile" "$work/from-recipe" \
    --output "oci:$work/from-recipe-oci"
check "FROM recipe: rootstrap run" \
    sh -c "'$rs' run 'oci:$work/from-recipe-oci' -- cat /from-recipe | grep -qx ok"

[ "$fail" = 0 ] && echo "e2e-dockerfile: all checks passed" || { echo "e2e-dockerfile: FAILED"; exit 1; }
