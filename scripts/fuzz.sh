#!/usr/bin/env bash
# Runs every cargo-fuzz (libFuzzer) target in fuzz/ for a bounded time and
# exits non-zero if any target finds a crash, a leak, a timeout or an OOM.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]      (default 10 s, all)
#
# FUZZ_JOBS=N runs N targets at once (default 1: the machine may be shared).
# The working corpus lives in fuzz/corpus/<target> (not committed) and grows
# from run to run; it is seeded from fuzz/seeds/<target>, from files made
# here in a temporary directory (tars, a .deb, a clearsigned file), and from
# ../shared/conformance when that directory exists (read in place, never
# copied). Crashes are kept in fuzz/artifacts/<target>; a summary line per
# target (execs, seconds, crashes) ends the output and goes to
# fuzz/logs/summary.txt.
#
# libFuzzer needs the nightly-only -Zsanitizer flags: the installed stable
# toolchain accepts them with RUSTC_BOOTSTRAP=1, so no other toolchain is
# needed (set FUZZ_TOOLCHAIN=nightly to use an installed nightly instead).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
seconds=${1:-10}
shift || true
jobs=${FUZZ_JOBS:-1}
conformance=${ROOTSTRAP_CONFORMANCE_DIR:-$root/../shared/conformance}

command -v cargo-fuzz >/dev/null || {
    echo "cargo-fuzz is not installed: cargo install cargo-fuzz" >&2
    exit 2
}
toolchain=()
if [ -n "${FUZZ_TOOLCHAIN:-}" ]; then
    toolchain=("+$FUZZ_TOOLCHAIN")
else
    export RUSTC_BOOTSTRAP=1
fi

all_targets=$(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^rootstrap-fuzz$')
targets=${*:-$all_targets}

echo "building the fuzz targets ($(date -u +%H:%M:%S))"
build_start=$(date +%s)
if [ "$targets" = "$all_targets" ]; then
    (cd fuzz && cargo "${toolchain[@]}" fuzz build -O --debug-assertions)
else
    for t in $targets; do
        (cd fuzz && cargo "${toolchain[@]}" fuzz build -O --debug-assertions "$t")
    done
fi
echo "built in $(($(date +%s) - build_start)) s"

seedgen=$(mktemp -d)
trap 'rm -rf "$seedgen"' EXIT

# Seeds made with the real tools, so the corpus starts from well-formed input.
make_generated_seeds() {
    local d=$seedgen/tree
    mkdir -p "$d/dir/sub" "$seedgen/tar_reader" "$seedgen/ar_deb" "$seedgen/decompress" \
        "$seedgen/clearsign" "$seedgen/image_archive" "$seedgen/gzip_members"
    printf 'hello\n' >"$d/dir/file"
    ln -s ../dir/file "$d/dir/sub/link"
    ln "$d/dir/file" "$d/dir/hard"
    mkdir -p "$d/$(printf 'long%.0s' $(seq 40))"
    local t=$seedgen/tar_reader
    tar -C "$d" --format=gnu -cf "$t/gnu.tar" .
    tar -C "$d" --format=pax -cf "$t/pax.tar" .
    tar -C "$d" --format=ustar -cf "$t/ustar.tar" dir 2>/dev/null || true
    gzip -9nc "$t/gnu.tar" >"$seedgen/decompress/gnu.tar.gz"
    gzip -9nc "$t/gnu.tar" >"$seedgen/gzip_members/one.gz"
    cat "$seedgen/decompress/gnu.tar.gz" "$seedgen/decompress/gnu.tar.gz" >"$seedgen/gzip_members/two.gz"
    if command -v xz >/dev/null; then xz -c "$t/pax.tar" >"$seedgen/decompress/pax.tar.xz"; fi
    if command -v zstd >/dev/null; then zstd -qc "$t/pax.tar" >"$seedgen/decompress/pax.tar.zst"; fi
    if command -v dpkg-deb >/dev/null; then
        local p=$seedgen/deb
        mkdir -p "$p/DEBIAN" "$p/usr/share/doc/x"
        printf 'Package: x\nVersion: 1.0-1\nArchitecture: all\nMaintainer: A <a@example.org>\nDescription: x\n d\n' >"$p/DEBIAN/control"
        printf 'hi\n' >"$p/usr/share/doc/x/README"
        for z in gzip xz zstd none; do
            dpkg-deb -Z"$z" --root-owner-group --build "$p" "$seedgen/ar_deb/x-$z.deb" >/dev/null 2>&1 || true
        done
    fi
    if command -v gpg >/dev/null; then
        local g=$seedgen/gnupg
        mkdir -m 700 "$g"
        if GNUPGHOME=$g gpg --batch --quiet --passphrase '' --quick-gen-key fuzz@example.org ed25519 sign 0 2>/dev/null; then
            printf 'Origin: Fuzz\nSuite: stable\nDate: Sat, 01 Jan 2022 00:00:00 UTC\n-dash\n' >"$seedgen/release"
            GNUPGHOME=$g gpg --batch --quiet --clearsign -o "$seedgen/clearsign/InRelease" "$seedgen/release" 2>/dev/null || true
            GNUPGHOME=$g gpg --batch --quiet --armor --detach-sign -o "$seedgen/clearsign/Release.gpg" "$seedgen/release" 2>/dev/null || true
        fi
    fi
    if [ -d "$conformance/oci-apko-golden/base_image" ]; then
        tar -C "$conformance/oci-apko-golden/base_image" -cf "$seedgen/image_archive/oci.tar" . 2>/dev/null || true
    fi
}
make_generated_seeds

# The seed directories of one target: committed, generated, conformance.
seed_dirs() {
    local t=$1 dirs=()
    [ -d "$root/fuzz/seeds/$t" ] && dirs+=("$root/fuzz/seeds/$t")
    [ -d "$seedgen/$t" ] && dirs+=("$seedgen/$t")
    local c=()
    case $t in
        dockerfile) c=(dockerfile-parser/parser) ;;
        dockerfile_words) c=(dockerfile-parser/shell) ;;
        apkindex | apk_package | apk_tar | gzip_members | decompress) c=(apkindex) ;;
        deb_control) c=(deb-version) ;;
        oci_json) c=(oci-apko-golden) ;;
    esac
    for x in "${c[@]}"; do [ -d "$conformance/$x" ] && dirs+=("$conformance/$x"); done
    [ "$t" = recipe ] && dirs+=("$root/recipes")
    [ -n "${ROOTSTRAP_REAL_INRELEASE_DIR:-}" ] && [ "$t" = clearsign ] && dirs+=("$ROOTSTRAP_REAL_INRELEASE_DIR")
    printf '%s\n' "${dirs[@]}"
}

# Whole archives need room; text grammars are faster with short inputs.
max_len() {
    case $1 in
        apkindex | apk_package | image_archive | decompress | gzip_members | ar_deb) echo 1048576 ;;
        tar_reader | apk_tar | clearsign | oci_json) echo 262144 ;;
        *) echo 65536 ;;
    esac
}

mkdir -p fuzz/logs
run_target() {
    local t=$1
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    mapfile -t seeds < <(seed_dirs "$t")
    local log=fuzz/logs/$t.log rc=0
    (cd fuzz && cargo "${toolchain[@]}" fuzz run -O --debug-assertions "$t" \
        "corpus/$t" "${seeds[@]}" -- \
        -max_total_time="$seconds" -max_len="$(max_len "$t")" -timeout=20 \
        -rss_limit_mb=2048 -print_final_stats=1) >"$log" 2>&1 || rc=$?
    local execs secs crashes
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
    crashes=$(find "fuzz/artifacts/$t" -type f | wc -l)
    printf '%-18s rc=%-3s execs=%-10s seconds=%-6s artifacts=%s\n' \
        "$t" "$rc" "${execs:-?}" "${secs:-?}" "$crashes"
    [ "$rc" = 0 ] || { echo "--- $t failed; end of $log:"; grep -v "^ *[0-9]*: \|^ *at " "$log" | tail -25; }
    return "$rc"
}
export -f run_target seed_dirs max_len
export root seconds seedgen conformance
export toolchain_flag=${toolchain[*]:-}

status=0
# Each line of the summary is printed as its target ends.
printf '%s\n' $targets | xargs -P "$jobs" -I{} bash -c \
    'toolchain=(${toolchain_flag}); run_target "$@"' _ {} | tee fuzz/logs/summary.txt || status=$?
if [ "$status" != 0 ] || grep -qv 'rc=0 ' fuzz/logs/summary.txt; then
    echo "fuzzing found a failure (see fuzz/artifacts and fuzz/logs)" >&2
    exit 1
fi
echo "all targets ran ${seconds}s with no crash"
