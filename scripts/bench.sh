#!/usr/bin/env bash
# counterd against its ceiling, examples/floor.rs (same reactor style, canned answer),
# side by side in one run: server pinned to CPU 0, load generator to CPU 1, the two
# servers alternating within each round, medians over the rounds.
#
# Scenarios: wrk keep-alive at -c10 and -c200; the original post's ab -n 20000 -c 200 and
# ab -k -n 50000 -c 200; wrk with 16 pipelined requests per write at -c50; and RSS per idle
# keep-alive connection at 10,000 connections. After every counterd run the counter is
# checked against the number of completed requests.
#
# Usage: scripts/bench.sh [ROUNDS] [WRK_SECONDS]      (defaults: 3 rounds, 5 s)
# Exits non-zero only on errors, never on a ratio.
source "$(dirname "$0")/lib.sh"

rounds=${1:-3}
secs=${2:-5}
idle_conns=${IDLE_CONNS:-10000}
need wrk
need ab apache2-utils
need taskset util-linux
need python3

cargo build --release --quiet --bin counterd --example floor
declare -A bin=([counterd]=./target/release/counterd [floor]=./target/release/examples/floor)
results=$(mktemp)
load() { taskset -c 1 "$@"; }

# wrk_run SCENARIO IMPL URL CONNS [PIPELINE_DEPTH]: appends a result line, prints the
# number of completed requests.
wrk_run() {
    local scenario=$1 impl=$2 url=$3 c=$4 depth=${5:-}
    local args=(-t1 -c"$c" -d"${secs}s" --latency)
    [ -z "$depth" ] || args+=(-s scripts/pipeline.lua)
    args+=("$url")
    [ -z "$depth" ] || args+=(-- "$depth")
    local out
    out=$(load wrk "${args[@]}" 2>&1) || { echo "$out" >&2; exit 1; }
    python3 - "$scenario" "$impl" "$round" "$out" >>"$results" <<'PY'
import re, sys
scenario, impl, rnd, out = sys.argv[1:]
def ms(v, unit):
    return float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
lat = dict((p, ms(v, u)) for p, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)$", out, re.M))
if scenario.startswith("wrk pipeline"):
    lat = {}  # wrk times only one request per pipelined batch: its percentiles mean nothing
errors = re.search(r"Socket errors: (.*)", out)
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
if non2xx:
    sys.exit(f"{impl} {scenario}: {non2xx.group(1)} non-2xx responses")
done = int(re.search(r"(\d+) requests in", out).group(1))
print(f"{scenario}\t{impl}\t{rnd}\t{rps}\t{lat.get('50', 'nan')}\t{lat.get('99', 'nan')}\t{done}")
PY
    tail -n1 "$results" | cut -f7
}

# ab_run SCENARIO IMPL URL N [ab args...]: appends a result line; fails on any failed request.
ab_run() {
    local scenario=$1 impl=$2 url=$3 n=$4; shift 4
    local out
    out=$(load ab -q -n "$n" -c 200 "$@" "$url/inc?name=i" 2>&1) || { echo "$out" >&2; exit 1; }
    python3 - "$scenario" "$impl" "$round" "$n" "$out" >>"$results" <<'PY'
import re, sys
scenario, impl, rnd, n, out = sys.argv[1:]
field = lambda name: re.search(name + r":\s+([\d.]+)", out)
if int(field("Complete requests").group(1)) != int(n) or int(field("Failed requests").group(1)) != 0 \
        or re.search(r"Non-2xx responses", out):
    sys.exit(f"{impl} {scenario}: not every request succeeded\n{out}")
rps = float(field("Requests per second").group(1))
pct = dict(re.findall(r"^\s+(50|99)%\s+(\d+)", out, re.M))
print(f"{scenario}\t{impl}\t{rnd}\t{rps}\t{pct['50']}\t{pct['99']}\t{n}")
PY
}


for round in $(seq "$rounds"); do
    for impl in counterd floor; do
        echo "round $round/$rounds: $impl" >&2
        start_server url 0 "${bin[$impl]}"
        pid=$LAST_SERVER_PID
        reset() { [ "$impl" = floor ] || curl -sf "$url/set?name=i&val=0" >/dev/null; }
        verify() { [ "$impl" = floor ] || check_count "$url" i "$1" "$2"; }

        reset; done=$(wrk_run "wrk -c10" "$impl" "$url/inc?name=i" 10); verify "$done" 10
        reset; done=$(wrk_run "wrk -c200" "$impl" "$url/inc?name=i" 200); verify "$done" 200
        reset; ab_run "ab -c200" "$impl" "$url" 20000; verify 20000 0
        reset; ab_run "ab -k -c200" "$impl" "$url" 50000 -k; verify 50000 0
        reset; done=$(wrk_run "wrk pipeline16 -c50" "$impl" "$url/inc?name=i" 50 16)
        verify "$done" $((50 * 16))

        # Memory per idle keep-alive connection.
        before=$(rss_kib "$pid")
        host=${url#http://}; port=${host##*:}; host=${host%:*}
        coproc IDLE { load python3 scripts/idle_conns.py "$host" "$port" "$idle_conns" 120; }
        read -r ready <&"${IDLE[0]}" || true
        [ "$ready" = ready ] || { echo "FAIL: idle connections did not open" >&2; exit 1; }
        after=$(rss_kib "$pid")
        exec {IDLE[1]}>&-
        wait "$IDLE_PID" 2>/dev/null || true
        kib=$(python3 -c "print(($after - $before) / $idle_conns)")
        printf 'idle %s\t%s\t%s\t%s\tnan\tnan\t%s\n' "$idle_conns" "$impl" "$round" "$kib" "$idle_conns" >>"$results"
        stop_server "$pid"
    done
done

python3 - "$results" "$rounds" <<'PY'
import collections, math, statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
data = collections.defaultdict(lambda: collections.defaultdict(list))
order = []
for scenario, impl, rnd, value, p50, p99, done in rows:
    if scenario not in order:
        order.append(scenario)
    data[scenario][impl].append((float(value), float(p50), float(p99)))
med = lambda xs, i: statistics.median(x[i] for x in xs)
print(f"\nmedians of {sys.argv[2]} rounds; server on CPU 0, load on CPU 1; latency in ms\n")
print(f"| scenario | counterd req/s | floor req/s | ratio | counterd p50 / p99 | floor p50 / p99 | p99 ratio |")
print("|---|---:|---:|---:|---:|---:|---:|")
for s in order:
    c, f = data[s]["counterd"], data[s]["floor"]
    if s.startswith("idle"):
        print(f"| {s} conns: KiB RSS per connection | {med(c, 0):.3f} | {med(f, 0):.3f} | {med(c, 0) / med(f, 0) if med(f, 0) else float('nan'):.2f} | | | |")
        continue
    cv, fv = med(c, 0), med(f, 0)
    if math.isnan(med(c, 2)):
        print(f"| {s} | {cv:,.0f} | {fv:,.0f} | {cv / fv:.2f} | n/a | n/a | |")
        continue
    print(f"| {s} | {cv:,.0f} | {fv:,.0f} | {cv / fv:.2f} | {med(c, 1):.2f} / {med(c, 2):.2f} "
          f"| {med(f, 1):.2f} / {med(f, 2):.2f} | {med(c, 2) / med(f, 2):.2f} |")
PY
rm -f "$results"
