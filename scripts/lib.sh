# Shared helpers for the scripts in this folder. Source it; do not run it.
# Every server a script starts is tracked by PID and stopped on exit.

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SERVER_PIDS=()
cleanup_servers() {
    for pid in "${SERVER_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    SERVER_PIDS=()
}
trap cleanup_servers EXIT

# need CMD [DEBIAN-PACKAGE]: installs the package if CMD is missing.
need() {
    local cmd=$1 pkg=${2:-$1}
    command -v "$cmd" >/dev/null 2>&1 && return 0
    echo "installing $pkg for $cmd" >&2
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null
    else
        sudo apt-get update -qq >/dev/null && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null
    fi
    command -v "$cmd" >/dev/null 2>&1 || { echo "cannot install $pkg" >&2; exit 1; }
}

# start_server VAR CPU BINARY [ARGS...]: starts BINARY on a free port, pinned to CPU
# (or unpinned if CPU is "-"), waits for its "listening on" line and sets VAR to the URL.
start_server() {
    local var=$1 cpu=$2; shift 2
    local out; out=$(mktemp)
    if [ "$cpu" = - ]; then
        "$@" 0 >"$out" 2>>"${SERVER_LOG:-/dev/null}" &
    else
        taskset -c "$cpu" "$@" 0 >"$out" 2>>"${SERVER_LOG:-/dev/null}" &
    fi
    local pid=$!
    SERVER_PIDS+=("$pid")
    LAST_SERVER_PID=$pid
    for _ in $(seq 100); do
        if grep -q '^listening on ' "$out"; then
            printf -v "$var" '%s' "$(sed -n 's/^listening on //p' "$out" | head -n1)"
            rm -f "$out"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    echo "server $* did not start" >&2
    exit 1
}

# stop_server PID
stop_server() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    local keep=()
    for p in "${SERVER_PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    SERVER_PIDS=("${keep[@]+"${keep[@]}"}")
}

# rss_kib PID: resident memory of a process, in KiB.
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

# check_count URL NAME COMPLETED SLACK: the counter NAME is at least COMPLETED and at most
# SLACK more (wrk stops with requests in flight, which the server may still count).
check_count() {
    local got
    got=$(curl -sf "$1/get?name=$2" | sed "s/^$2: //")
    if [ "$got" -lt "$3" ] || [ "$got" -gt $(($3 + $4)) ]; then
        echo "FAIL: counter $2 at $1 is $got after $3 completed requests" >&2
        exit 1
    fi
}

# build_go_peers: builds the Go post's servers (examples/go) into target/go/go-mutex and
# target/go/go-channel, and their trace converter into target/go/trace2json, installing
# Debian's Go toolchain if `go` is missing.
build_go_peers() {
    need go golang-go
    mkdir -p target/go
    # go needs a build cache; without HOME (some CI environments) keep it under target/.
    [ -n "${HOME:-}" ] || export GOCACHE="$PWD/target/go/cache" GOPATH="$PWD/target/go/path"
    (cd examples/go && go build -o ../../target/go/go-mutex ./mutex &&
        go build -o ../../target/go/go-channel ./channel &&
        go build -o ../../target/go/trace2json ./cmd/trace2json)
}
