# Sourced by the end-to-end scripts: start_registry DIR PORT starts Debian's
# docker-registry on 127.0.0.1:PORT with its storage and log under DIR, sets
# $registry_pid, and waits until it answers /v2/. The caller stops it.
start_registry() {
    local dir=$1 port=$2
    mkdir -p "$dir"
    cat >"$dir/config.yml" <<CONF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $dir/data
http:
  addr: 127.0.0.1:$port
CONF
    docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 &
    registry_pid=$!
    for _ in $(seq 50); do
        curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    echo "docker-registry on 127.0.0.1:$port did not start:" >&2
    cat "$dir/registry.log" >&2
    return 1
}
