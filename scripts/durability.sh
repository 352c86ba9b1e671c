#!/usr/bin/env bash
# What durability costs, side by side in one run: counterd without a journal, and with
# --journal at each --fsync (no, everysec, always), under wrk keep-alive /inc at -c10 and
# -c200; and, when Debian's redis-server installs, Redis with appendonly yes at
# appendfsync everysec and always under redis-benchmark -t incr at the same client counts.
# Server on CPU 0, load on CPU 1, the journal in a fresh directory under /tmp (or $DIR),
# a fresh server for every run, medians of ROUNDS.
#
# For counterd it reports requests/s, p99, fdatasyncs per second and requests per
# fdatasync (the group-commit factor: how many acknowledged changes one sync covered),
# from counterd_journal_fsyncs_total; after each run the counter is checked against the
# completed requests and the journal is replayed by a restart.
#
# Usage: scripts/durability.sh [ROUNDS] [SECONDS]        (defaults: 3 rounds, 5 s)
source "$(dirname "$0")/lib.sh"

rounds=${1:-3}
secs=${2:-5}
need wrk
need taskset util-linux
need curl
need python3
redis=yes
if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
    echo "installing redis-server and redis-tools for the Redis rows" >&2
    if ! { apt-get update -qq >/dev/null 2>&1 &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools >/dev/null 2>&1; }; then
        echo "notice: redis-server could not be installed; its rows are left out" >&2
        redis=
    fi
fi
cargo build --release --quiet --bin counterd
base=$(mktemp -d "${DIR:-/tmp}/counterd-durability.XXXXXX")
trap 'cleanup_servers; rm -rf "$base"' EXIT
rows=$base/rows.tsv
load() { taskset -c 1 "$@"; }
metric() { curl -sf "$1/metrics" | awk -v s="$2" '$1 == s {print $2}'; }

for round in $(seq "$rounds"); do
    for mode in none no everysec always; do
        for c in 10 200; do
            echo "round $round/$rounds: counterd --fsync $mode, -c$c" >&2
            args=()
            journal=$base/j-$mode-$c-$round
            [ "$mode" = none ] || args=(--journal "$journal" --fsync "$mode")
            start_server url 0 ./target/release/counterd "${args[@]}"
            pid=$LAST_SERVER_PID
            f0=$(metric "$url" counterd_journal_fsyncs_total)
            out=$(load wrk -t1 -c"$c" -d"${secs}s" --latency "$url/inc?name=i" 2>&1) ||
                { echo "$out" >&2; exit 1; }
            f1=$(metric "$url" counterd_journal_fsyncs_total)
            done=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' <<<"$out")
            check_count "$url" i "$done" "$c"
            stop_server "$pid"
            if [ "$mode" != none ]; then
                # Every acknowledged change is read back by a restart (and at most the
                # requests wrk left in flight are there besides).
                start_server url 0 ./target/release/counterd --journal "$journal"
                check_count "$url" i "$done" "$c"
                stop_server "$LAST_SERVER_PID"
            fi
            python3 - "counterd" "$mode" "$c" "$round" "$secs" "${f0:-0}" "${f1:-0}" "$out" >>"$rows" <<'PY'
import re, sys
impl, mode, c, rnd, secs, f0, f1, out = sys.argv[1:]
ms = lambda v, u: float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[u]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
p99 = ms(*re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)$", out, re.M).groups())
done = int(re.search(r"(\d+) requests in", out).group(1))
syncs = int(float(f1)) - int(float(f0))
per_sync = done / syncs if syncs else float("nan")
print(f"{impl}\t{mode}\t{c}\t{rnd}\t{rps}\t{p99}\t{syncs / float(secs)}\t{per_sync}")
PY
        done
    done
    if [ -n "$redis" ]; then
        for mode in everysec always; do
            for c in 10 200; do
                echo "round $round/$rounds: redis appendfsync $mode, -c$c" >&2
                dir=$base/redis-$mode-$c-$round
                mkdir -p "$dir"
                port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
                taskset -c 0 redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" \
                    --appendonly yes --appendfsync "$mode" --save '' --daemonize no \
                    --logfile "$dir/log" &
                rpid=$!
                SERVER_PIDS+=("$rpid")
                for _ in $(seq 100); do
                    redis-cli -p "$port" ping >/dev/null 2>&1 && break
                    sleep 0.05
                done
                # As many requests as counterd did in the same time at -c200 with always,
                # at least 20000: redis-benchmark runs a count, not a duration.
                n=$((c == 10 ? 50000 : 200000))
                out=$(load redis-benchmark -p "$port" -t incr -c "$c" -n "$n" --csv 2>&1) ||
                    { echo "$out" >&2; exit 1; }
                stop_server "$rpid"
                python3 - "redis" "$mode" "$c" "$round" "$out" >>"$rows" <<'PY'
import csv, io, sys
impl, mode, c, rnd, out = sys.argv[1:]
rows = [r for r in csv.reader(io.StringIO(out)) if r and r[0].upper() == "INCR"]
head = next(csv.reader(io.StringIO(out)))
row = dict(zip(head, rows[0]))
print(f"{impl}\t{mode}\t{c}\t{rnd}\t{row['rps']}\t{row['p99_latency_ms']}\tnan\tnan")
PY
            done
        done
    fi
done

python3 - "$rows" "$rounds" "$secs" <<'PY'
import collections, math, statistics, sys
path, rounds, secs = sys.argv[1:]
data = collections.defaultdict(list)
order = []
for line in open(path):
    impl, mode, c, rnd, *vals = line.rstrip("\n").split("\t")
    key = (impl, mode, int(c))
    if key not in order:
        order.append(key)
    data[key].append([float(v) for v in vals])
def med(key, i):
    xs = [v[i] for v in data[key] if not math.isnan(v[i])]
    return statistics.median(xs) if xs else float("nan")
print(f"\nmedians of {rounds} rounds; server on CPU 0, load on CPU 1; wrk -d{secs}s for counterd, "
      "redis-benchmark -t incr for Redis\n")
print("| server | fsync | clients | req/s | vs. no journal | p99 ms | fdatasync/s | requests per fdatasync |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for key in order:
    impl, mode, c = key
    rps, p99, syncs, per = (med(key, i) for i in range(4))
    none = med(("counterd", "none", c), 0)
    rel = f"{rps / none:.2f}" if impl == "counterd" else ""
    fmt = lambda x, f: "" if math.isnan(x) else f.format(x)
    label = "no journal" if mode == "none" else mode
    print(f"| {impl} | {label} | {c} | {rps:,.0f} | {rel} | {p99:.2f} | {fmt(syncs, '{:,.0f}')} | {fmt(per, '{:,.1f}')} |")
PY
