#!/usr/bin/env bash
# The concurrency models of the Go post side by side, under identical load: counterd (one
# thread, epoll reactor); its Rust twins on the same parser, router and store,
# examples/threads_mutex.rs (a thread per connection, the store behind a Mutex) and
# examples/threads_manager.rs (a thread per connection, one manager thread owning the
# store, fed over channels); and the post's own Go servers, examples/go (net/http, a
# goroutine per connection: go-mutex with a sync.Mutex, go-channel with a manager
# goroutine). See docs/concurrency-model.md.
#
# For each --work-us setting (0, then WORK_US), each run and each model, on a fresh server:
#   - RSS per idle keep-alive connection with IDLE_CONNS connections open (work 0 only);
#   - wrk -t1 keep-alive on /inc at each of CONNS connections, WRK_SECONDS each;
#   - the original post's ab -n 20000 -c 200 (a new connection per request; work 0 only);
# after each load the counter is checked against the completed requests. The server is
# pinned to SERVER_CPUS and the load generator to LOAD_CPUS; models alternate within a run;
# the numbers are medians over the runs.
#
# Writes docs/compare.csv (medians), docs/compare-runs.tsv (every run), docs/compare.md
# (the table and how it was made), and the charts docs/compare.svg (no work) and
# docs/compare-work.svg (WORK_US of blocking sleep per request); prints the table.
#
# Usage: scripts/compare.sh [RUNS] [WRK_SECONDS]         (defaults: 3 runs, 3 s)
# Environment: CONNS="1 10 100 500"  WORK_US=1000  IDLE_CONNS=2000  AB_REQUESTS=20000
#              SERVER_CPUS=0  LOAD_CPUS=1  OUT=docs
# Takes about 9 minutes with the defaults. Pinned to one CPU, Go sees one CPU, so the Go
# servers run with GOMAXPROCS 1 (the script checks and reports it). Share the machine? Serialise the benchmarks:
#   flock /tmp/counterd-bench.lock scripts/compare.sh
source "$(dirname "$0")/lib.sh"

runs=${1:-3}
secs=${2:-3}
conns=(${CONNS:-1 10 100 500})
work_us=${WORK_US:-1000}
idle_conns=${IDLE_CONNS:-2000}
ab_n=${AB_REQUESTS:-20000}
server_cpus=${SERVER_CPUS:-0}
load_cpus=${LOAD_CPUS:-1}
out=${OUT:-docs}
models=(counterd threads_mutex threads_manager go-mutex go-channel)
declare -A bin=(
    [counterd]=./target/release/counterd
    [threads_mutex]=./target/release/examples/threads_mutex
    [threads_manager]=./target/release/examples/threads_manager
    [go-mutex]=./target/go/go-mutex
    [go-channel]=./target/go/go-channel
)

need wrk
need ab apache2-utils
need taskset util-linux
need curl
need python3
need gnuplot gnuplot-nox
if [ "$(nproc)" -lt 2 ]; then
    echo "warning: one CPU: server and load generator share it" >&2
    server_cpus=0 load_cpus=0
fi

cargo build --release --quiet --bin counterd --example threads_mutex --example threads_manager
build_go_peers
mkdir -p "$out"
work=$(mktemp -d)
trap 'cleanup_servers; rm -rf "$work"' EXIT

# What GOMAXPROCS the Go servers get where they run (they log it at start).
SERVER_LOG=$work/go.log start_server url "$server_cpus" ./target/go/go-mutex
stop_server "$LAST_SERVER_PID"
gomaxprocs=$(sed -n 's/.*GOMAXPROCS \([0-9]*\).*/\1/p' "$work/go.log" | head -n1)
echo "Go servers on CPU $server_cpus: GOMAXPROCS $gomaxprocs" >&2
rows=$work/rows.tsv
load() { taskset -c "$load_cpus" "$@"; }

# idle_rss URL PID: sets kib to the KiB of RSS per connection while IDLE_CONNS keep-alive
# connections (one request each) are open.
idle_rss() {
    local host=${1#http://} before after ready
    local port=${host##*:}; host=${host%:*}
    before=$(rss_kib "$2")
    coproc IDLE { load python3 scripts/idle_conns.py "$host" "$port" "$idle_conns" 120; }
    read -r ready <&"${IDLE[0]}" || true
    [ "$ready" = ready ] || { echo "FAIL: $model: idle connections did not open" >&2; exit 1; }
    sleep 0.5
    after=$(rss_kib "$2")
    exec {IDLE[1]}>&-
    wait "$IDLE_PID" 2>/dev/null || true
    kib=$(python3 -c "print(($after - $before) / $idle_conns)")
}

started=$(date +%s)
for w in 0 "$work_us"; do
    for run in $(seq "$runs"); do
        for model in "${models[@]}"; do
            echo "--work-us $w, run $run/$runs: $model" >&2
            start_server url "$server_cpus" "${bin[$model]}" --work-us "$w"
            pid=$LAST_SERVER_PID
            if [ "$w" = 0 ]; then
                # On the fresh server, before any load has grown its heap.
                idle_rss "$url" "$pid"
                printf '%s\t%s\tidle\t%s\t%s\tnan\tnan\tnan\t%s\t0\t%s\n' \
                    "$w" "$model" "$idle_conns" "$run" "$idle_conns" "$kib" >>"$rows"
                sleep 0.5 # let the closed connections' threads exit
            fi
            for c in "${conns[@]}"; do
                name=c$c # a counter per load: late increments of one never skew another
                curl -sf "$url/set?name=$name&val=0" >/dev/null
                wrk_out=$(load wrk -t1 -c"$c" -d"${secs}s" --latency "$url/inc?name=$name" 2>&1) ||
                    { echo "$wrk_out" >&2; exit 1; }
                python3 scripts/compare_report.py wrk "$w" "$model" "$c" "$run" \
                    <<<"$wrk_out" >>"$rows"
                check_count "$url" "$name" "$(tail -n1 "$rows" | cut -f9)" "$c"
            done
            if [ "$w" = 0 ]; then
                curl -sf "$url/set?name=ab&val=0" >/dev/null
                ab_out=$(load ab -q -n "$ab_n" -c 200 "$url/inc?name=ab" 2>&1) ||
                    { echo "$ab_out" >&2; exit 1; }
                python3 scripts/compare_report.py ab "$w" "$model" 200 "$run" "$ab_n" \
                    <<<"$ab_out" >>"$rows"
                check_count "$url" ab "$ab_n" 0
            fi
            stop_server "$pid"
        done
    done
done
elapsed=$(($(date +%s) - started))

{
    printf 'work_us\tmodel\tscenario\tconns\trun\treq_per_s\tp50_ms\tp99_ms\tdone\tsocket_errors\trss_kib_per_conn\n'
    cat "$rows"
} >"$out/compare-runs.tsv"
python3 scripts/compare_report.py report "$rows" "$out/compare.csv" "$work" 0 "$work_us"

cpu=$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n1)
where="server on CPU $server_cpus, wrk/ab on CPU $load_cpus"
heading="GET /inc on 127.0.0.1, $where, median of $runs runs × ${secs} s"
gnuplot -e "datafile='$work/0.dat'; output='$out/compare.svg'; work_us=0" \
    -e "heading=\"No work per request: what each model itself costs\\n{/=12 $heading}\"" \
    scripts/compare.gp
gnuplot -e "datafile='$work/$work_us.dat'; output='$out/compare-work.svg'; work_us=$work_us" \
    -e "heading=\"--work-us $work_us: $(python3 -c "print('%g' % ($work_us / 1000))") ms of blocking sleep in every request\\n{/=12 $heading}\"" \
    scripts/compare.gp

{
    echo "# counterd, its thread-per-connection twins and the Go post's servers: the numbers"
    echo
    echo "Written by \`scripts/compare.sh $runs $secs\` on $(date -u +%Y-%m-%d) in ${elapsed} s:"
    echo "$heading. Machine: $(nproc) × $cpu, Linux $(uname -r), $(go version | cut -d' ' -f3)"
    echo "(the Go servers ran with GOMAXPROCS $gomaxprocs)."
    echo "Charts: [compare.svg](compare.svg) and [compare-work.svg](compare-work.svg);"
    echo "medians in [compare.csv](compare.csv), every run in [compare-runs.tsv](compare-runs.tsv)."
    echo "What they mean: [concurrency-model.md](concurrency-model.md)."
    cat "$work/table.md"
} >"$out/compare.md"
echo
echo "$heading"
echo "wrote $out/compare.svg $out/compare-work.svg $out/compare.csv $out/compare-runs.tsv $out/compare.md"
