#!/usr/bin/env bash
# Dockerfile build benchmark: rootstrap vs `buildah bud`, same 10-step
# Dockerfile on the same Debian rootfs tarball (made by rootstrap), same
# machine, one run. Three scenarios each: cold (empty caches), warm (nothing
# changed: every step from the cache) and one-file (the file a late COPY
# reads changed: that step and the ones after it re-run). Prints a markdown
# table with ratios. No step uses the network, so timings are the builders'.
#
# usage: scripts/bench-dockerfile.sh [SUITE]   (as root; default trixie)
# Needs: buildah (apt-get install buildah), the host's Debian mirror for the
# base tarball (scripts/host-mirror.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
suite=${1:-trixie}
bench=${BENCH_DIR:-/var/tmp/rootstrap-bench-dockerfile}
mkdir -p "$bench"
[ -n "${ROOTSTRAP_BIN:-}" ] || cargo build --release --quiet --bin rootstrap
rs=${ROOTSTRAP_BIN:-$PWD/target/release/rootstrap}
command -v buildah >/dev/null || { echo "buildah not found: apt-get install buildah"; exit 1; }

ctx=$bench/ctx
mkdir -p "$ctx/files"
if [ ! -s "$ctx/rootfs.tar.gz" ]; then
    "$rs" --progress plain build "debian-$suite" --mirror "$(bash scripts/host-mirror.sh)" \
        --cache-dir "$bench/base-cache" --output "tar:$ctx/rootfs.tar.gz"
fi
for i in $(seq 200); do head -c 4096 /dev/urandom >"$ctx/files/f$i"; done
echo v1 >"$ctx/extra.txt"
cat >"$ctx/Dockerfile" <<'DOCKERFILE'
FROM scratch
ADD rootfs.tar.gz /
ENV APP=/opt/app
RUN mkdir -p /opt/app/data && cp -a /usr/share/doc /opt/app/data/doc
COPY files/ /opt/app/files/
WORKDIR /opt/app
RUN useradd -m bench
COPY extra.txt /opt/app/extra.txt
RUN find /usr/lib -name '*.so*' | sort > /opt/app/solibs
LABEL bench=dockerfile
CMD ["/bin/bash"]
DOCKERFILE

# time_of NAME COMMAND...: wall seconds into $bench/NAME.t
time_of() {
    local name=$1; shift
    local start end
    start=$(date +%s.%N)
    "$@" >"$bench/$name.log" 2>&1 || { echo "$name failed:"; tail -20 "$bench/$name.log"; exit 1; }
    end=$(date +%s.%N)
    echo "$end - $start" | bc >"$bench/$name.t"
    echo "$name: $(cat "$bench/$name.t") s"
}

rs_build() {
    "$rs" --progress plain build -f "$ctx/Dockerfile" "$ctx" --cache-dir "$bench/rs-cache" \
        --work-dir "$bench" --output "oci:$bench/rs-out"
}
bh() {
    buildah --root "$bench/buildah-root" --runroot "$bench/buildah-run" --storage-driver vfs "$@"
}
bh_build() {
    bh bud --isolation chroot --layers -f "$ctx/Dockerfile" -t localhost/bench-dockerfile "$ctx"
}

rm -rf "$bench/rs-cache" "$bench/rs-out"
bh rmi -a -f >/dev/null 2>&1 || true
rm -rf "$bench/buildah-root" "$bench/buildah-run"

time_of rootstrap-cold rs_build
time_of rootstrap-warm rs_build
grep -c ' CACHED$' "$bench/rootstrap-warm.log" | xargs echo "rootstrap-warm CACHED steps:"
time_of buildah-cold bh_build
time_of buildah-warm bh_build
grep -c 'Using cache' "$bench/buildah-warm.log" | xargs echo "buildah-warm 'Using cache' steps:"

echo v2 >"$ctx/extra.txt"
time_of rootstrap-onefile rs_build
time_of buildah-onefile bh_build
grep -c ' CACHED$' "$bench/rootstrap-onefile.log" | xargs echo "rootstrap-onefile CACHED steps:"
grep -c 'Using cache' "$bench/buildah-onefile.log" | xargs echo "buildah-onefile 'Using cache' steps:"
echo v1 >"$ctx/extra.txt"

ratio() { echo "scale=2; $(cat "$bench/$1.t") / $(cat "$bench/$2.t")" | bc; }
echo
echo "| scenario | rootstrap (s) | buildah bud (s) | buildah / rootstrap |"
echo "| --- | ---: | ---: | ---: |"
for s in cold warm onefile; do
    printf '| %s | %.2f | %.2f | %sx |\n' "$s" "$(cat "$bench/rootstrap-$s.t")" \
        "$(cat "$bench/buildah-$s.t")" "$(ratio "buildah-$s" "rootstrap-$s")"
done
echo
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
bh rmi -a -f >/dev/null 2>&1 || true
