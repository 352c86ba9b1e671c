#!/usr/bin/env bash
# System calls and server CPU time per request, side by side in one run: counterd, counterd
# built with the old drain-to-WouldBlock rule (--cfg counterd_drain), the floor
# (examples/floor.rs) with and without --drain, and nginx with one worker answering
# `return 200` (installed from Debian's nginx-light when missing; skipped with a notice
# only if it cannot be installed).
#
# For each server and each load (wrk keep-alive -c10, -c200, and 16 pipelined requests per
# write at -c50), on a fresh server pinned to CPU 0 with wrk on CPU 1:
#   1. `strace -c -f -p PID` for WRK_SECONDS: calls per request by kind, EAGAIN reads apart;
#   2. without strace, WRK_SECONDS again: requests/s, and the server's utime + stime from
#      /proc/PID/stat divided by the requests completed: CPU µs per request, and the
#      user-space part of it (the rest is the kernel's, on the server's behalf).
# Medians of RUNS. Prints a Markdown table; writes it to $OUT (default: stdout only).
#
# Usage: scripts/syscalls.sh [RUNS] [WRK_SECONDS]       (defaults: 3 runs, 3 s)
# Environment: SCENARIOS="c10 c200 pipe16"  SERVERS="counterd counterd-drain floor ..."
source "$(dirname "$0")/lib.sh"

runs=${1:-3}
secs=${2:-3}
need wrk
need strace
need taskset util-linux
need python3
nginx_bin=$(command -v nginx || true)
if [ -z "$nginx_bin" ] && [ -x /usr/sbin/nginx ]; then nginx_bin=/usr/sbin/nginx; fi
if [ -z "$nginx_bin" ]; then
    echo "installing nginx-light for the nginx column" >&2
    if apt-get update -qq >/dev/null 2>&1 &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null 2>&1; then
        nginx_bin=/usr/sbin/nginx
    else
        echo "notice: nginx could not be installed; its column is left out" >&2
    fi
fi

cargo build --release --quiet --bin counterd --example floor
RUSTFLAGS="--cfg counterd_drain" CARGO_TARGET_DIR=target/drain \
    cargo build --release --quiet --bin counterd
work=$(mktemp -d)
trap 'cleanup_servers; rm -rf "$work"' EXIT
rows=$work/rows.tsv
load() { taskset -c 1 "$@"; }

servers=(counterd counterd-drain floor floor-drain)
[ -z "$nginx_bin" ] || servers+=(nginx)
if [ -n "${SERVERS:-}" ]; then read -r -a servers <<<"$SERVERS"; fi
read -r -a scenarios <<<"${SCENARIOS:-c10 c200 pipe16}"

# start NAME: starts one server pinned to CPU 0; sets url and pid.
start() {
    case $1 in
    counterd) start_server url 0 ./target/release/counterd ;;
    counterd-drain) start_server url 0 ./target/drain/release/counterd ;;
    floor) start_server url 0 ./target/release/examples/floor ;;
    floor-drain) start_server url 0 ./target/release/examples/floor --drain ;;
    nginx)
        local port
        port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
        mkdir -p "$work/nginx"
        cat >"$work/nginx/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log stderr error;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 60s;
    client_body_temp_path $work/nginx;
    server {
        listen 127.0.0.1:$port backlog=1024;
        location / { default_type "text/plain; charset=utf-8"; return 200 "ok\n"; }
    }
}
EOF
        taskset -c 0 "$nginx_bin" -p "$work/nginx" -c "$work/nginx/nginx.conf" 2>/dev/null &
        LAST_SERVER_PID=$!
        SERVER_PIDS+=("$LAST_SERVER_PID")
        url=http://127.0.0.1:$port
        for _ in $(seq 100); do
            curl -sf "$url/" >/dev/null 2>&1 && break
            sleep 0.05
        done
        ;;
    esac
    pid=$LAST_SERVER_PID
}

# wrk_load SCENARIO URL: runs wrk for one scenario; prints its output.
wrk_load() {
    local args=(-t1 -d"${secs}s")
    case $1 in
    c10) args+=(-c10) ;;
    c200) args+=(-c200) ;;
    pipe16) args+=(-c50 -s scripts/pipeline.lua) ;;
    esac
    args+=("$2/inc?name=i")
    [ "$1" != pipe16 ] || args+=(-- 16)
    load wrk "${args[@]}" 2>&1
}

requests() { sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' <<<"$1"; }
cpu_ticks() { awk '{print $14, $15}' "/proc/$1/stat"; }

for run in $(seq "$runs"); do
    for scenario in "${scenarios[@]}"; do
        for s in "${servers[@]}"; do
            echo "run $run/$runs: $s, $scenario" >&2
            start "$s"
            curl -sf "$url/inc?name=i" >/dev/null # warm
            strace -c -f -q -p "$pid" -o "$work/strace.txt" &
            spid=$!
            sleep 0.3 # attached
            out=$(wrk_load "$scenario" "$url")
            kill -INT "$spid"
            wait "$spid" 2>/dev/null || true
            n=$(requests "$out")
            # CPU time without strace, on the same server.
            read -r u0 s0 < <(cpu_ticks "$pid")
            out=$(wrk_load "$scenario" "$url")
            read -r u1 s1 < <(cpu_ticks "$pid")
            n2=$(requests "$out")
            rps=$(sed -n 's/^Requests\/sec: *//p' <<<"$out")
            python3 - "$s" "$scenario" "$run" "$n" "$n2" "$((u1 - u0))" "$((s1 - s0))" "$(getconf CLK_TCK)" "$rps" \
                "$work/strace.txt" >>"$rows" <<'PY'
import sys
name, scenario, run, n, n2, uticks, sticks, hz, rps, path = sys.argv[1:]
n, n2 = int(n), int(n2)
calls, errors = {}, {}
for line in open(path):
    f = line.split()
    if len(f) >= 5 and f[0][0].isdigit() and f[-1] != "total":
        calls[f[-1]] = int(f[3])
        errors[f[-1]] = int(f[4]) if len(f) == 6 else 0
reads = sum(calls.get(k, 0) for k in ("read", "recvfrom", "readv", "recvmsg"))
eagain = sum(errors.get(k, 0) for k in ("read", "recvfrom", "readv", "recvmsg"))
writes = sum(calls.get(k, 0) for k in ("write", "sendto", "writev", "sendmsg", "sendfile"))
waits = sum(calls.get(k, 0) for k in ("epoll_wait", "epoll_pwait", "epoll_pwait2"))
total = sum(calls.values())
user_us, sys_us = (int(t) / int(hz) * 1e6 / n2 for t in (uticks, sticks))
cpu_us = user_us + sys_us  # the table shows the total and the user part
print(f"{name}\t{scenario}\t{run}\t{total/n:.4f}\t{reads/n:.4f}\t{eagain/n:.4f}\t{writes/n:.4f}\t{waits/n:.4f}\t{cpu_us:.3f}\t{float(rps):.0f}\t{user_us:.3f}")
PY
            stop_server "$pid"
        done
    done
done

python3 - "$rows" "$runs" "$secs" <<'PY'
import statistics, sys
path, runs, secs = sys.argv[1:]
rows = {}
for line in open(path):
    name, scen, run, *vals = line.split("\t")
    rows.setdefault((name, scen), []).append([float(v) for v in vals])
names = list(dict.fromkeys(k[0] for k in rows))
label = {"c10": "wrk -c10", "c200": "wrk -c200", "pipe16": "wrk -c50, 16 pipelined"}
print(f"Syscalls and server CPU per request, `/inc?name=i`, medians of {runs} runs of {secs} s")
print("(strace -c for the calls; a second run without strace for CPU time and requests/s).\n")
print("| load | server | syscalls/req | reads/req | of which EAGAIN | writes/req | epoll_wait/req | CPU µs/req | of which user | req/s (no strace) |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
med = {}
for scen in ("c10", "c200", "pipe16"):
    for name in names:
        if (name, scen) not in rows:
            continue
        m = [statistics.median(col) for col in zip(*rows[(name, scen)])]
        med[(name, scen)] = m
        print(f"| {label[scen]} | {name} | {m[0]:.2f} | {m[1]:.2f} | {m[2]:.3f} | {m[3]:.2f} | {m[4]:.3f} | {m[5]:.2f} | {m[7]:.2f} | {m[6]:,.0f} |")
print()
for scen in ("c10", "c200", "pipe16"):
    c = med.get(("counterd", scen))
    if not c:
        continue
    parts = []
    if ("nginx", scen) in med:
        parts.append(f"CPU/req vs nginx {c[5] / med[('nginx', scen)][5]:.2f}")
    if ("counterd-drain", scen) in med:
        parts.append(f"req/s vs drain build {c[6] / med[('counterd-drain', scen)][6]:.2f}")
    if ("floor", scen) in med:
        parts.append(f"req/s vs floor {c[6] / med[('floor', scen)][6]:.2f}")
    print(f"- {label[scen]}: counterd " + ", ".join(parts))
PY
