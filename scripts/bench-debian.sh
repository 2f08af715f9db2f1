#!/usr/bin/env bash
# Side-by-side benchmark: rootstrap vs mmdebstrap vs debootstrap building the
# same suite/variant from the same loopback partial mirror, tar output, in one
# run. Prints a markdown table of wall times, ratios and peak RSS.
#
# usage: scripts/bench-debian.sh [SUITE]   (as root; default trixie)
# With BENCH_LEVELS=1 (the default) it also measures each isolation level
# beside its peer: rootless (userns, as user $BENCH_USER, created with
# subordinate IDs if missing) beside `mmdebstrap --mode=unshare` as that
# user, and the pod level (chroot isolation in a `docker run` with default
# privileges; needs dockerd) beside mmdebstrap in the same container.
# Needs: mmdebstrap, debootstrap, GNU time (apt-get install mmdebstrap debootstrap time)
# The machine is shared: the load average printed at the end says how noisy
# the run was; compare ratios from one run, not wall times across runs.
set -euo pipefail
cd "$(dirname "$0")/.."
suite=${1:-trixie}
bench=${BENCH_DIR:-/var/tmp/rootstrap-bench}
upstream=$(bash scripts/host-mirror.sh)
mkdir -p "$bench"
. scripts/lib.sh
rootstrap_bin

keyring=$bench/keyring
mkdir -p "$keyring"
for k in keys/debian/*.pgp; do cp "$k" "$keyring/$(basename "$k" .pgp).gpg"; done

# Which packages any of the three tools will want, so the mirror has them all
# (mmdebstrap's minbase set equals rootstrap's: scripts/e2e-debian.sh checks it).
names=$bench/names-$suite.txt
if [ ! -s "$names" ]; then
    {
        "$rs" resolve "recipes/debian-$suite.toml" --mirror "$upstream" --json |
            python3 -c 'import json,sys; [print(p["name"]) for p in json.load(sys.stdin)["packages"]]'
        debootstrap --print-debs --variant=minbase --keyring="$bench/keyring/debian-archive-$suite-automatic.gpg" \
            "$suite" "$bench/dbs-print" "$upstream" | tr ' ' '\n' || true
    } | sort -u | grep . >"$names"
    rm -rf "$bench/dbs-print"
fi
python3 scripts/partial-mirror.py "$upstream" "$suite" "$bench/mirror" <"$names"

port=$(free_port)
python3 scripts/serve-dir.py "$bench/mirror" "$port" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
sleep 1
mirror=http://127.0.0.1:$port

# measure NAME COMMAND...: wall seconds and peak RSS (MB) into $bench/NAME.{t,rss}
measure() {
    local name=$1; shift
    sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
    /usr/bin/time -f '%e %M %U %S' -o "$bench/$name.time" "$@" >"$bench/$name.log" 2>&1 || {
        echo "$name failed:"; tail -20 "$bench/$name.log"; exit 1; }
    read -r t rss user sys <"$bench/$name.time"
    echo "$t" >"$bench/$name.t"
    echo $((rss / 1024)) >"$bench/$name.rss"
    # CPU seconds (user + system, waited-for children included): less
    # sensitive than wall time to other load on a shared machine.
    python3 -c "print(f'{$user + $sys:.2f}')" >"$bench/$name.cpu"
    echo "$name: ${t}s, CPU $(cat "$bench/$name.cpu")s, peak RSS $((rss / 1024)) MB"
}

rm -rf "$bench/cache" "$bench/out" && mkdir -p "$bench/out"
measure rootstrap-cold "$rs" --progress plain build "recipes/debian-$suite.toml" --mirror "$mirror" \
    --cache-dir "$bench/cache" --output "tar:$bench/out/rootstrap.tar"
measure rootstrap-warm "$rs" --progress plain build "recipes/debian-$suite.toml" --mirror "$mirror" \
    --cache-dir "$bench/cache" --output "tar:$bench/out/rootstrap-warm.tar"
# rootstrap makes a small tree in /dev/shm unless told otherwise; this run
# keeps it on the bench directory's disk, as mmdebstrap's default run does.
mkdir -p "$bench/work-disk"
measure rootstrap-cold-disk "$rs" --progress plain build "recipes/debian-$suite.toml" --mirror "$mirror" \
    --cache-dir "$bench/cache-disk" --work-dir "$bench/work-disk" --output "tar:$bench/out/rootstrap-disk.tar"
rm -rf "$bench/cache-disk" "$bench/work-disk"
measure rootstrap-cold-oci "$rs" --progress plain build "recipes/debian-$suite.toml" --mirror "$mirror" \
    --cache-dir "$bench/cache-oci" --output "docker-archive:$bench/out/rootstrap.docker.tar"
rm -rf "$bench/cache-oci"
# (The disk tree's removal is not right before mmdebstrap: on an ext4 without
# a journal, inodes freed in the last minute make the next tree's creation
# slower, which would count against mmdebstrap.)
measure mmdebstrap mmdebstrap --variant=minbase --keyring="$keyring" "$suite" "$bench/out/mmdebstrap.tar" "$mirror"
rm -rf "$bench/dbs"
measure debootstrap sh -c "debootstrap --variant=minbase --keyring='$keyring/debian-archive-$suite-automatic.gpg' \
    '$suite' '$bench/dbs' '$mirror' && tar -C '$bench/dbs' -cf '$bench/out/debootstrap.tar' ."
rm -rf "$bench/dbs"
# mmdebstrap makes its tree in $TMPDIR: the same in memory, for comparison.
measure mmdebstrap-shm env TMPDIR=/dev/shm mmdebstrap --variant=minbase --keyring="$keyring" "$suite" \
    "$bench/out/mmdebstrap-shm.tar" "$mirror"

levels=()
if [ "${BENCH_LEVELS:-1}" = 1 ]; then
    user=${BENCH_USER:-rsbuild}
    id -u "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/sh "$user"
    grep -q "^$user:" /etc/subuid || usermod --add-subuids 300000-365535 "$user"
    grep -q "^$user:" /etc/subgid || usermod --add-subgids 300000-365535 "$user"
    rl=$bench/rootless && rm -rf "$rl" && mkdir -p "$rl" && chown "$user" "$rl"
    chmod -R a+rX "$keyring"
    as_user=(runuser -u "$user" -- env HOME="$rl")
    measure rootstrap-rootless-cold "${as_user[@]}" "$rs" --progress plain build "debian-$suite" \
        --mirror "$mirror" --cache-dir "$rl/cache" --output "tar:$rl/rootstrap.tar"
    measure rootstrap-rootless-warm "${as_user[@]}" "$rs" --progress plain build "debian-$suite" \
        --mirror "$mirror" --cache-dir "$rl/cache" --output "tar:$rl/rootstrap-warm.tar"
    measure mmdebstrap-unshare "${as_user[@]}" mmdebstrap --mode=unshare --variant=minbase --keyring="$keyring" \
        "$suite" "$rl/mmdebstrap.tar" "$mirror"
    levels+=(rootstrap-rootless-cold rootstrap-rootless-warm mmdebstrap-unshare)

    # The pod level: a container with Docker's default seccomp profile and
    # capabilities, the image a rootstrap trixie with mmdebstrap added.
    if docker info >/dev/null 2>&1; then
        pod_image=rootstrap-bench/pod:$suite
        if ! docker image inspect "$pod_image" >/dev/null 2>&1; then
            "$rs" -q build recipes/debian-trixie.toml --mirror "$upstream" --cache-dir "$bench/pod-image-cache" \
                --output "docker-archive:$bench/pod-image.tar" >/dev/null
            docker load -q -i "$bench/pod-image.tar" >/dev/null
            docker run --name rootstrap-bench-pod --network host rootstrap/debian:trixie \
                sh -c "echo 'deb $upstream trixie main' > /etc/apt/sources.list && apt-get update -qq && \
                       DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null"
            docker commit rootstrap-bench-pod "$pod_image" >/dev/null
            docker rm rootstrap-bench-pod >/dev/null
        fi
        pd=$bench/pod && rm -rf "$pd" && mkdir -p "$pd"
        pod=(docker run --rm --network host -v "$rs:/usr/local/bin/rootstrap:ro" -v "$PWD:$PWD:ro"
            -v "$keyring:$keyring:ro" -v "$pd:$pd" "$pod_image")
        # Timed inside the container (bash's `time`), so that creating the
        # container (a copy of the image with the vfs driver) counts for
        # neither tool; CPU and RSS are not seen from outside.
        measure_pod() {
            local name=$1; shift
            measure "$name" "${pod[@]}" bash -c 'TIMEFORMAT="inner-wall %R"; time "$@"' bash "$@"
            awk '/^inner-wall / {print $2}' "$bench/$name.log" >"$bench/$name.t"
            echo "$name (inside the container): $(cat "$bench/$name.t")s"
        }
        measure_pod rootstrap-pod-cold rootstrap --progress plain build "$PWD/recipes/debian-$suite.toml" \
            --mirror "$mirror" --cache-dir "$pd/cache" --output "tar:$pd/rootstrap.tar"
        measure_pod rootstrap-pod-warm rootstrap --progress plain build "$PWD/recipes/debian-$suite.toml" \
            --mirror "$mirror" --cache-dir "$pd/cache" --output "tar:$pd/rootstrap-warm.tar"
        grep -q "isolation: chroot" "$bench/rootstrap-pod-cold.log" || { echo "pod run was not at the chroot level"; exit 1; }
        # mmdebstrap's own choice in such a container: it picks its root mode
        # and, unable to mount, runs the scripts in a plain chroot too.
        measure_pod mmdebstrap-pod mmdebstrap --variant=minbase --keyring="$keyring" \
            "$suite" "$pd/mmdebstrap.tar" "$mirror"
        levels+=(rootstrap-pod-cold rootstrap-pod-warm mmdebstrap-pod)
    fi
fi

mm=$(cat "$bench/mmdebstrap.t")
mm_cpu=$(cat "$bench/mmdebstrap.cpu")
ratio() { python3 -c "print(f'{$1/$2:.3f}')"; }
echo
echo "| tool | wall (s) | × mmdebstrap | CPU (s) | CPU × mmdebstrap | peak RSS (MB) |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
for n in rootstrap-cold rootstrap-warm rootstrap-cold-oci rootstrap-cold-disk mmdebstrap mmdebstrap-shm debootstrap; do
    t=$(cat "$bench/$n.t") cpu=$(cat "$bench/$n.cpu")
    echo "| $n | $t | $(ratio "$t" "$mm") | $cpu | $(ratio "$cpu" "$mm_cpu") | $(cat "$bench/$n.rss") |"
done
echo
echo "rootstrap-cold × mmdebstrap-shm (both trees in memory): $(ratio "$(cat "$bench/rootstrap-cold.t")" "$(cat "$bench/mmdebstrap-shm.t")")"
echo
echo "Phases of rootstrap-cold (seconds since start, from its --progress plain log):"
grep -E '==>|packages$|downloaded|wrote ' "$bench/rootstrap-cold.log" | grep -v '^\[.*|' || true
if [ ${#levels[@]} -gt 0 ]; then
    echo
    echo "Isolation levels, each beside its peer in the same conditions:"
    echo "| level | rootstrap cold (s) | warm (s) | peer | peer (s) | cold × peer | warm × peer |"
    echo "| --- | ---: | ---: | --- | ---: | ---: | ---: |"
    row() { # label rootstrap-prefix peer
        local c w p
        c=$(cat "$bench/$2-cold.t") w=$(cat "$bench/$2-warm.t") p=$(cat "$bench/$3.t")
        echo "| $1 | $c | $w | $3 | $p | $(ratio "$c" "$p") | $(ratio "$w" "$p") |"
    }
    row "namespaces (root)" rootstrap mmdebstrap
    row "userns (rootless)" rootstrap-rootless mmdebstrap-unshare
    [ -e "$bench/mmdebstrap-pod.t" ] && row "chroot (pod)" rootstrap-pod mmdebstrap-pod
fi
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
