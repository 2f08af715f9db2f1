# shellcheck shell=bash
# What the e2e and bench scripts share; they source it from the repository
# root (`. scripts/lib.sh`, after their `cd`).

fail=0
server=
imgs=()
check() { # name, command...: one PASS/FAIL line; a FAIL makes the script exit 1 at the end
    local name=$1; shift
    if "$@"; then echo "PASS $name"; else echo "FAIL $name"; fail=1; fi
}

# rootstrap_bin [cargo build arguments...]: sets $rs to $ROOTSTRAP_BIN, or
# builds the release binary (with those arguments) and sets $rs to it.
rootstrap_bin() {
    if [ -n "${ROOTSTRAP_BIN:-}" ]; then
        rs=$ROOTSTRAP_BIN
    else
        cargo build --release --quiet "$@"
        rs=$PWD/target/release/rootstrap
    fi
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# wait_for_http PORT: until 127.0.0.1:PORT answers, for five seconds at most.
wait_for_http() {
    for _ in $(seq 50); do
        curl -fsS -o /dev/null "http://127.0.0.1:$1/" 2>/dev/null && break
        sleep 0.1
    done
}

# serve_dir DIR LOG: serves DIR over HTTP on 127.0.0.1; sets $port, and
# $server to the server's pid for the caller's cleanup to kill.
serve_dir() {
    port=$(free_port)
    python3 -m http.server --bind 127.0.0.1 --directory "$1" "$port" >"$2" 2>&1 &
    server=$!
    wait_for_http "$port"
}

# alpine_recipe RELEASE ARCH: a recipe for the Alpine packages a fixture
# repository made by examples/make-apk-repo.rs serves.
alpine_recipe() {
    cat <<RECIPE
[source]
distro = "alpine"
release = "$1"
repositories = ["main"]
arch = "$2"
keys = ["alpine"]

[image]
cmd = ["/bin/sh"]
RECIPE
}

# work_dir NAME: makes $work, a new /var/tmp/NAME.XXXXXX, and on exit stops
# the server serve_dir started, removes the docker images listed in imgs,
# then $work. A script with more to undo keeps its own cleanup instead.
work_dir() {
    work=$(mktemp -d "/var/tmp/$1.XXXXXX")
    trap remove_work EXIT
}
remove_work() {
    [ -z "$server" ] || kill "$server" 2>/dev/null || true
    for i in "${imgs[@]}"; do docker rmi "$i" >/dev/null 2>&1 || true; done
    rm -rf "$work"
}

# not COMMAND...: succeeds when the command fails (for check lines).
not() { ! "$@" >/dev/null 2>&1; }

# exit_is CODE COMMAND...: succeeds when the command exits with CODE.
exit_is() {
    local want=$1 got=0; shift
    "$@" >/dev/null 2>&1 || got=$?
    [ "$got" = "$want" ]
}
