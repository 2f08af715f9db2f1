#!/usr/bin/env bash
# Start or stop a throwaway dockerd for tests: vfs storage, no iptables, no
# bridge (this machine has no network to give containers anyway).
set -euo pipefail
state=${ROOTSTRAP_DOCKERD_STATE:-/tmp/rootstrap-dockerd}
case "${1:-}" in
start)
    if docker info >/dev/null 2>&1; then
        echo "dockerd already running"
        exit 0
    fi
    mkdir -p "$state"
    dockerd --storage-driver=vfs --iptables=false --bridge=none \
        --data-root "$state/data" --exec-root "$state/exec" --pidfile "$state/pid" \
        >"$state/log" 2>&1 &
    for _ in $(seq 60); do
        docker info >/dev/null 2>&1 && { echo "dockerd up"; exit 0; }
        sleep 1
    done
    echo "dockerd did not start; log:" >&2
    tail -20 "$state/log" >&2
    exit 1
    ;;
stop)
    [ -f "$state/pid" ] || exit 0
    # Read once: dockerd removes its pid file as it exits.
    pid=$(cat "$state/pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 30); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 1
    done
    rm -f "$state/pid"
    ;;
*)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
