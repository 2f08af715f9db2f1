#!/usr/bin/env bash
# Rootless builds: a non-root user with subordinate IDs (user namespace
# through newuidmap/newgidmap) builds Debian trixie from the host's mirror,
# an Alpine repository served on 127.0.0.1, and Dockerfile steps on top;
# each is `docker load`ed and run, and each digest must equal the root
# build's of the same inputs. An interrupted rootless build must leave
# nothing behind, and one killed with SIGKILL only what the next build
# removes.
# Needs: root (to create the user and compare), dockerd running, uidmap,
# busybox-static, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
user=${ROOTLESS_USER:-rsbuild}
work=$(mktemp -d /var/tmp/rootstrap-e2e-rootless.XXXXXX)
chmod 755 "$work"
server=
cleanup() {
    [ -z "$server" ] || kill "$server" 2>/dev/null || true
    docker rmi -f rootstrap-e2e/rootless-trixie rootstrap-e2e/rootless-alpine \
        rootstrap-e2e/rootless-app >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
. scripts/lib.sh

rootstrap_bin --bin rootstrap --example make-apk-repo
make_apk_repo=${MAKE_APK_REPO:-$PWD/target/release/examples/make-apk-repo}
mirror=$(bash scripts/host-mirror.sh)
export SOURCE_DATE_EPOCH=1754000000

id -u "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/sh "$user"
grep -q "^$user:" /etc/subuid || usermod --add-subuids 300000-365535 "$user"
grep -q "^$user:" /etc/subgid || usermod --add-subgids 300000-365535 "$user"
home=$(getent passwd "$user" | cut -d: -f6)
mkdir -p "$work/out" "$work/bin"
chown "$user" "$work/out"
# The user may not reach this checkout (a clone under /root, say): it gets
# its own copy of the binary, shipped recipe names (recipes and keys are
# built in), and a working directory of its own.
install -m 755 "$rs" "$work/bin/rootstrap"
urs=$work/bin/rootstrap
as_user() {
    (cd "$work/out" && runuser -u "$user" -- env HOME="$home" SOURCE_DATE_EPOCH="$SOURCE_DATE_EPOCH" \
        ROOTSTRAP_CACHE_DIR="$work/out/cache" "$@")
}
digest_of() { awk -v p="$1" '$1 == p {print $2}' "$2"; }

# Debian trixie from a lock, root then rootless.
"$rs" --progress plain lock recipes/debian-trixie.toml --mirror "$mirror" \
    --cache-dir "$work/root-cache" -o "$work/trixie.lock" >/dev/null 2>&1
chmod 644 "$work/trixie.lock"
"$rs" --progress plain build recipes/debian-trixie.toml --lock "$work/trixie.lock" --locked \
    --mirror "$mirror" --cache-dir "$work/root-cache" --output "oci:$work/root-trixie" \
    >"$work/root-trixie.log" 2>&1
as_user "$urs" --progress plain build debian-trixie --lock "$work/trixie.lock" \
    --locked --mirror "$mirror" --output "oci:$work/out/trixie" \
    --output "docker-archive:$work/out/trixie.tar" >"$work/user-trixie.log" 2>&1 ||
    { tail -30 "$work/user-trixie.log"; echo "FAIL rootless trixie build"; exit 1; }
check "trixie: the rootless build used a user namespace" grep -q "isolation: userns" "$work/user-trixie.log"
root_d=$(digest_of "$work/root-trixie" "$work/root-trixie.log")
user_d=$(digest_of "$work/out/trixie" "$work/user-trixie.log")
check "trixie: rootless digest = root digest ($root_d)" test -n "$root_d" -a "$user_d" = "$root_d"
check "trixie: the outputs belong to the user" test "$(stat -c %U "$work/out/trixie.tar")" = "$user"
docker load -q -i "$work/out/trixie.tar" >/dev/null
docker tag rootstrap/debian:trixie rootstrap-e2e/rootless-trixie
check "trixie: docker run, dpkg --audit clean" \
    test "$(docker run --rm rootstrap-e2e/rootless-trixie sh -c 'dpkg --audit; echo done')" = done
check "trixie: owners from the packages (root:shadow /etc/shadow)" \
    test "$(docker run --rm rootstrap-e2e/rootless-trixie stat -c %U:%G /etc/shadow)" = root:shadow

# Alpine from a repository on 127.0.0.1.
"$make_apk_repo" "$work/mirror" >/dev/null
chmod -R a+rX "$work/mirror"
serve_dir "$work/mirror" "$work/http.log"
alpine_args=(alpine-3.20 --mirror "http://127.0.0.1:$port" --keys "$work/mirror/keys")
"$rs" --progress plain build "${alpine_args[@]}" --cache-dir "$work/root-cache" \
    --output "oci:$work/root-alpine" >"$work/root-alpine.log" 2>&1
as_user "$urs" --progress plain build "${alpine_args[@]}" --output "oci:$work/out/alpine" \
    --output "docker-archive:$work/out/alpine.tar" >"$work/user-alpine.log" 2>&1 ||
    { tail -30 "$work/user-alpine.log"; echo "FAIL rootless alpine build"; exit 1; }
root_d=$(digest_of "$work/root-alpine" "$work/root-alpine.log")
user_d=$(digest_of "$work/out/alpine" "$work/user-alpine.log")
check "alpine: rootless digest = root digest ($root_d)" test -n "$root_d" -a "$user_d" = "$root_d"
docker load -q -i "$work/out/alpine.tar" >/dev/null
check "alpine: docker run" test "$(docker run --rm rootstrap/alpine:3.20 /bin/sh -c 'echo ok')" = ok

# Dockerfile steps on top of the Alpine image: RUN, COPY --chown, chown, USER.
mkdir -p "$work/ctx"
printf 'rootless\n' >"$work/ctx/greeting.txt"
cat >"$work/ctx/Dockerfile" <<EOF
FROM oci:$work/root-alpine
RUN mkdir -p /home/app && echo made > /home/app/made && chown -R 1234:1234 /home/app
COPY --chown=1234:4321 greeting.txt /home/app/greeting.txt
RUN chmod 0640 /home/app/greeting.txt
USER 1234
WORKDIR /home/app
CMD ["cat", "greeting.txt"]
EOF
chmod -R a+rX "$work/ctx"
"$rs" --progress plain build -f "$work/ctx/Dockerfile" "$work/ctx" --cache-dir "$work/root-cache" \
    --output "oci:$work/root-app" >"$work/root-app.log" 2>&1
as_user "$urs" --progress plain build -f "$work/ctx/Dockerfile" "$work/ctx" \
    --output "oci:$work/out/app" --output "docker-archive:$work/out/app.tar" -t rootstrap-e2e/rootless-app:1 \
    >"$work/user-app.log" 2>&1 || { tail -30 "$work/user-app.log"; echo "FAIL rootless Dockerfile build"; exit 1; }
root_d=$(digest_of "$work/root-app" "$work/root-app.log")
user_d=$(digest_of "$work/out/app" "$work/user-app.log")
check "dockerfile: rootless digest = root digest ($root_d)" test -n "$root_d" -a "$user_d" = "$root_d"
docker load -q -i "$work/out/app.tar" >/dev/null
check "dockerfile: docker run as uid 1234" \
    test "$(docker run --rm rootstrap-e2e/rootless-app:1)" = rootless
check "dockerfile: owners kept (1234:4321 0640)" \
    test "$(docker run --rm rootstrap-e2e/rootless-app:1 stat -c %u:%g:%a greeting.txt)" = 1234:4321:640
check "rootstrap run as the user (the image's USER and CMD)" \
    test "$(as_user "$urs" run "oci:$work/out/app")" = rootless

# Interrupted: SIGINT during the install leaves nothing of the user's.
shm_trees() { find /dev/shm "$work/out" -maxdepth 1 -name '.rootstrap-rootfs-*' 2>/dev/null | wc -l; }
as_user "$urs" --progress plain build "${alpine_args[@]}" --cache-dir "$work/out/int-cache" \
    --output "oci:$work/out/int" >"$work/int.log" 2>&1 &
pid=$!
for _ in $(seq 200); do grep -q "==> install" "$work/int.log" 2>/dev/null && break; sleep 0.02; done
pkill -INT -u "$user" -f "bin/rootstrap --progress plain build" || true
wait "$pid" || true
check "interrupted: nothing at the output path" test ! -e "$work/out/int"
check "interrupted: no tree left" test "$(shm_trees)" = 0

# Killed: SIGKILL leaves a tree owned by subordinate IDs; the next rootless
# build removes it (from inside the namespace, where the user may).
as_user "$urs" --progress plain build debian-trixie --lock "$work/trixie.lock" --locked \
    --mirror "$mirror" --cache-dir "$work/out/kill-cache" --output "oci:$work/out/killed" \
    >"$work/killed.log" 2>&1 &
pid=$!
for _ in $(seq 600); do grep -q "Setting up" "$work/killed.log" 2>/dev/null && break; sleep 0.05; done
pkill -KILL -u "$user" || true
wait "$pid" 2>/dev/null || true
sleep 11 # trees younger than 10 s are never taken for abandoned ones
left=$(shm_trees)
check "killed: SIGKILL left a tree (owned by subordinate IDs)" test "$left" -ge 1
# (A fresh cache: a warm one would reuse the base layer and make no tree.)
as_user "$urs" --progress plain build "${alpine_args[@]}" --cache-dir "$work/out/after-cache" \
    --output "oci:$work/out/after" \
    >"$work/after.log" 2>&1
check "killed: the next rootless build removed the $left tree(s) left" test "$(shm_trees)" = 0

[ "$fail" = 0 ] && echo "e2e-rootless: all checks passed" || { echo "e2e-rootless: FAILED"; exit 1; }
