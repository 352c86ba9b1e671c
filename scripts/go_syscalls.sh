#!/usr/bin/env bash
# System calls per keep-alive request: counterd against the Go post's servers, counted
# with strace -f -c while ab -k sends N requests on C connections (each server pinned to
# SERVER_CPUS, so the Go servers run with GOMAXPROCS 1; ab on LOAD_CPUS). Prints, per
# server and C, the calls per request of the ones that matter (read/recvfrom,
# write/sendto, epoll_wait/epoll_pwait, futex, nanosleep) and the threads the process has.
#
# strace makes every system call much slower, so clients are more often ahead of the
# server than without it: read as the shape of each model, not as its speed.
#
# Usage: scripts/go_syscalls.sh [REQUESTS] [CONNS...]     (defaults: 20000, 1 10)
source "$(dirname "$0")/lib.sh"

n=${1:-20000}
shift || true
if [ $# -gt 0 ]; then conns=("$@"); else conns=(1 10); fi
server_cpus=${SERVER_CPUS:-0}
load_cpus=${LOAD_CPUS:-1}
need strace
need ab apache2-utils
need curl
cargo build --release --quiet --bin counterd
build_go_peers
work=$(mktemp -d)
trap 'cleanup_servers; rm -rf "$work"' EXIT

declare -A bin=(
    [counterd]=./target/release/counterd
    [go-mutex]=./target/go/go-mutex
    [go-channel]=./target/go/go-channel
)
printf '%-11s %5s %8s %8s %8s %8s %9s %8s\n' server conns read write epoll futex nanosleep threads
for server in counterd go-mutex go-channel; do
    for c in "${conns[@]}"; do
        start_server url "$server_cpus" strace -f -c -o "$work/counts" "${bin[$server]}"
        tracer=$LAST_SERVER_PID
        pid=$(pgrep -P "$tracer")
        curl -sf "$url/set?name=s&val=0" >/dev/null
        out=$(taskset -c "$load_cpus" ab -q -k -n "$n" -c "$c" "$url/inc?name=s" 2>&1) ||
            { echo "$out" >&2; exit 1; }
        grep -q '^Failed requests: *0$' <<<"$out" || { echo "$out" >&2; exit 1; }
        threads=$(ls "/proc/$pid/task" | wc -l)
        check_count "$url" s "$n" 0
        kill "$pid"
        wait "$tracer" 2>/dev/null || true
        SERVER_PIDS=()
        awk -v n="$n" -v s="$server" -v c="$c" -v t="$threads" '
            $NF ~ /^(read|recvfrom)$/ { r += $4 }
            $NF ~ /^(write|sendto)$/ { w += $4 }
            $NF ~ /^epoll_(p)?wait$/ { e += $4 }
            $NF == "futex" { f += $4 }
            $NF == "nanosleep" { z += $4 }
            END { printf "%-11s %5d %8.2f %8.2f %8.3f %8.3f %9.3f %8d\n",
                  s, c, r / n, w / n, e / n, f / n, z / n, t }' "$work/counts"
    done
done
