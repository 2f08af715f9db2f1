#!/usr/bin/env bash
# End-to-end check of daemonless Dockerfile builds: the classic flow
#   FROM scratch / ADD rootfs.tar.gz / / RUN ... / CMD ...
# on a rootfs tarball that rootstrap itself builds from the real Debian
# archive (through the host's apt mirror), then `docker load` + `docker run`.
# The RUN step installs a package with apt-get: it needs the network, which
# the sandbox shares with the host by default. Then: `docker history`, the
# step cache (a rebuild is all CACHED and byte-identical), the local image
# store (-t, images, FROM name:tag, rmi), and a multi-stage Dockerfile on an
# Alpine rootfs built from a fixture repository served on 127.0.0.1
# (examples/make-apk-repo.rs). That fixture holds busybox only, no apk
# binary, so its RUN steps use busybox and `apk add` itself is not run.
# Needs: root, dockerd running (scripts/dockerd.sh start), busybox-static, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
suite=${SUITE:-trixie}
. scripts/lib.sh
work_dir rootstrap-e2e-dockerfile
export ROOTSTRAP_CACHE_DIR=${ROOTSTRAP_CACHE_DIR:-$work/cache}
mirror=${ROOTSTRAP_MIRROR:-$(bash scripts/host-mirror.sh)}
export ROOTSTRAP_MIRROR=$mirror
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1700000000}

# ROOTSTRAP_BIN / MAKE_APK_REPO_BIN: use these binaries instead of a release build.
rootstrap_bin --bin rootstrap --example make-apk-repo
make_apk_repo=${MAKE_APK_REPO_BIN:-$PWD/target/release/examples/make-apk-repo}

# history_of IMAGE: "CREATED_BY<TAB>SIZE" per history entry, oldest first.
history_of() { docker history --no-trunc --format '{{.CreatedBy}}	{{.Size}}' "$1" | tac; }

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
    --output "docker-archive:$work/image.tar" --output "oci:$work/image-oci" | tee "$work/build1.out"
"$rs" inspect "oci:$work/image-oci"

echo "=== rebuild: every step from the step cache, same image"
"$rs" --progress plain build -f "$work/ctx/Dockerfile" "$work/ctx" \
    --output "oci:$work/image-oci2" 2>"$work/build2.err" | tee "$work/build2.out"
check "rebuild: the 3 file-changing steps are CACHED" test "$(grep -c ' CACHED$' "$work/build2.err")" -ge 3
check "rebuild: same manifest digest" \
    test "$(grep image-oci "$work/build1.out" | awk '{print $2}')" = "$(awk '{print $2}' "$work/build2.out")"

docker load -i "$work/image.tar"
check "docker run: package installed by RUN" sh -c "docker run --rm '$img' hello | grep -q 'Hello, world'"
check "docker run: user and workdir" test "$(docker run --rm "$img" sh -c 'id -un; pwd' | tr '\n' ' ')" = "app /home/app "
check "docker run: file from the second RUN" test "$(docker run --rm "$img" cat /etc/motd-rootstrap)" = built-by-rootstrap
check "image has 3 layers (rootfs + 2 RUN)" test "$(docker image inspect -f '{{len .RootFS.Layers}}' "$img")" = 3
check "rootstrap run (sandbox, no daemon)" \
    sh -c "'$rs' run 'oci:$work/image-oci' -- cat /etc/motd-rootstrap | grep -qx built-by-rootstrap"
history_of "$img" >"$work/history"
cat "$work/history"
# ADD, ENV, RUN, RUN, WORKDIR (dir already there: no layer), USER, CMD.
check "docker history: one line per step" test "$(wc -l <"$work/history")" = 7
check "docker history: ADD first, with a layer" \
    sh -c "head -1 '$work/history' | grep '^ADD rootfs.tar.gz /	' | grep -qv '	0B$'"
check "docker history: RUN recorded with its shell" \
    grep -q '^RUN /bin/sh -c apt-get update' "$work/history"
for step in 'ENV LANG=C.UTF-8' 'USER app' 'CMD \["/bin/bash"\]' 'WORKDIR /home/app'; do
    check "docker history: $step is an empty layer (0B)" grep -q "^$step	0B$" "$work/history"
done

docker rmi "$img" >/dev/null

echo "=== local image store: -t, images, FROM name:tag, rmi"
check "rootstrap images lists $img" sh -c "'$rs' images | grep -q '^rootstrap-e2e/dockerfile  *$suite '"
mkdir -p "$work/child"
printf 'FROM %s\nUSER root\nRUN echo child > /child\n' "$img" >"$work/child/Dockerfile"
(cd "$work/child" && "$rs" --progress plain build -f Dockerfile --output "oci:$work/child-oci")
check "FROM a stored image: parent's files and the new one" \
    sh -c "'$rs' run 'oci:$work/child-oci' -- cat /etc/motd-rootstrap /child | tr '\n' ' ' | grep -qx 'built-by-rootstrap child '"
"$rs" rmi "$img"
check "rmi: gone from rootstrap images" sh -c "! '$rs' images | grep -q rootstrap-e2e/dockerfile"

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

echo "=== multi-stage Dockerfile on an Alpine fixture rootfs"
"$make_apk_repo" "$work/apk-mirror"
serve_dir "$work/apk-mirror" "$work/http.log"
mkdir -p "$work/alpine"
"$rs" --progress plain build recipes/alpine-3.20.toml --mirror "http://127.0.0.1:$port" \
    --keys "$work/apk-mirror/keys" --output "tar:$work/alpine/rootfs.tar.gz"
cat >"$work/alpine/Dockerfile" <<'DOCKERFILE'
FROM scratch AS base
ADD rootfs.tar.gz /

FROM base AS builder
ARG GREETING=hello-from-builder
RUN mkdir -p /out && echo "$GREETING" > /out/greeting && ls /bin > /out/applets

FROM base
COPY --from=builder /out/greeting /etc/greeting
RUN --mount=type=cache,target=/var/cache/apk --mount=type=tmpfs,target=/scratch \
    echo cached > /var/cache/apk/marker && echo ok > /scratch/x && cat /scratch/x > /etc/mounts-ok
RUN --mount=type=bind,from=builder,source=/out,target=/out wc -l < /out/applets > /etc/applet-count
CMD ["/bin/sh"]
DOCKERFILE
aimg=rootstrap-e2e/alpine-multistage:3.20
"$rs" --progress plain build -f "$work/alpine/Dockerfile" "$work/alpine" -t "$aimg" \
    --output "docker-archive:$work/alpine.tar"
docker load -i "$work/alpine.tar"
check "alpine: COPY --from=builder" test "$(docker run --rm "$aimg" cat /etc/greeting)" = hello-from-builder
check "alpine: cache and tmpfs mounts used, not in the image" \
    test "$(docker run --rm "$aimg" sh -c 'cat /etc/mounts-ok; ls /var/cache/apk/marker /scratch/x 2>/dev/null | wc -l')" = "ok
0"
check "alpine: bind mount from a stage" sh -c "test \"\$(docker run --rm '$aimg' cat /etc/applet-count)\" -gt 5"
history_of "$aimg" >"$work/alpine-history"
cat "$work/alpine-history"
# ADD (stage base), COPY, RUN, RUN, CMD: the builder stage's steps are not in the final image.
check "alpine: docker history has the final stage's 5 steps" test "$(wc -l <"$work/alpine-history")" = 5
check "alpine: CMD is an empty layer" grep -q '^CMD \["/bin/sh"\]	0B$' "$work/alpine-history"
docker rmi "$aimg" >/dev/null
"$rs" rmi "$aimg" >/dev/null

[ "$fail" = 0 ] && echo "e2e-dockerfile: all checks passed" || { echo "e2e-dockerfile: FAILED"; exit 1; }
