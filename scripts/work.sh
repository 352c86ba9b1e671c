#!/usr/bin/env bash
# Work that takes time, side by side: every counter request needs WORK_US µs of work, and
# each model spends it its own way — counterd's one loop blocking (--work sleep), waiting on
# a timer in the loop (--work timer), or blocking one of 16 pool threads (--work pool); the
# Rust thread twins and the Go post's servers blocking a thread or a goroutine each.
# wrk keep-alive on /inc at each of CONNS connections; every server on one core
# (SERVER_CPUS, so Go runs with GOMAXPROCS 1) and wrk on another (LOAD_CPUS); the counter
# is checked after each load. Medians over RUNS runs.
#
# Writes OUT/work.md (the table and how it was made) and OUT/work-runs.tsv (every run);
# prints the table.
#
# Usage: scripts/work.sh [RUNS] [WRK_SECONDS]             (defaults: 3 runs, 3 s)
# Environment: CONNS="1 10 100 500"  WORK_US=1000  SERVER_CPUS=0  LOAD_CPUS=1  OUT=docs
# Takes about 6 minutes with the defaults. Share the machine? Serialise the benchmarks:
#   flock /tmp/counterd-bench.lock scripts/work.sh
source "$(dirname "$0")/lib.sh"

runs=${1:-3}
secs=${2:-3}
conns=(${CONNS:-1 10 100 500})
work_us=${WORK_US:-1000}
server_cpus=${SERVER_CPUS:-0}
load_cpus=${LOAD_CPUS:-1}
out=${OUT:-docs}

models=(sleep timer pool threads_mutex threads_manager go-mutex go-channel)
declare -A cmd=(
    [sleep]="./target/release/counterd --work sleep"
    [timer]="./target/release/counterd --work timer"
    [pool]="./target/release/counterd --work pool --pool-threads 16"
    [threads_mutex]=./target/release/examples/threads_mutex
    [threads_manager]=./target/release/examples/threads_manager
    [go-mutex]=./target/go/go-mutex
    [go-channel]=./target/go/go-channel
)

need wrk
need taskset util-linux
need curl
need python3
if [ "$(nproc)" -lt 2 ]; then
    echo "warning: one CPU: server and load generator share it" >&2
    server_cpus=0 load_cpus=0
fi
cargo build --release --quiet --bin counterd --example threads_mutex --example threads_manager
build_go_peers
mkdir -p "$out"
work=$(mktemp -d)
trap 'cleanup_servers; rm -rf "$work"' EXIT
rows=$work/rows.tsv
load() { taskset -c "$load_cpus" "$@"; }

started=$(date +%s)
for run in $(seq "$runs"); do
    for model in "${models[@]}"; do
        echo "run $run/$runs: $model" >&2
        # shellcheck disable=SC2086 # the command and its flags, split on purpose
        start_server url "$server_cpus" ${cmd[$model]} --work-us "$work_us"
        pid=$LAST_SERVER_PID
        for c in "${conns[@]}"; do
            name=c$c
            curl -sf "$url/set?name=$name&val=0" >/dev/null
            wrk_out=$(load wrk -t1 -c"$c" -d"${secs}s" --latency "$url/inc?name=$name" 2>&1) ||
                { echo "$wrk_out" >&2; exit 1; }
            python3 scripts/compare_report.py wrk "$work_us" "$model" "$c" "$run" \
                <<<"$wrk_out" >>"$rows"
            check_count "$url" "$name" "$(tail -n1 "$rows" | cut -f9)" "$c"
        done
        stop_server "$pid"
    done
done
elapsed=$(($(date +%s) - started))
cp "$rows" "$out/work-runs.tsv"

table=$(python3 - "$rows" "${conns[@]}" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
conns = sys.argv[2:]
models = ["sleep", "timer", "pool", "threads_mutex", "threads_manager", "go-mutex", "go-channel"]
names = {"sleep": "counterd --work sleep", "timer": "counterd --work timer",
         "pool": "counterd --work pool (16)"}
def med(model, c, col):
    v = [float(r[col]) for r in rows if r[1] == model and r[3] == c]
    return statistics.median(v) if v else float("nan")
print("| model | " + " | ".join(f"req/s @{c}" for c in conns) + " | " +
      " | ".join(f"p99 ms @{c}" for c in conns) + " |")
print("|---|" + "---:|" * (2 * len(conns)))
for m in models:
    rps = " | ".join(f"{med(m, c, 5):,.0f}" for c in conns)
    p99 = " | ".join(f"{med(m, c, 7):.1f}" for c in conns)
    print(f"| {names.get(m, m)} | {rps} | {p99} |")
PY
)
{
    echo "# Work that takes time: $work_us µs per request"
    echo
    echo "\`scripts/work.sh $runs $secs\` on $(date -u +%Y-%m-%d), $(nproc) CPUs"
    echo "($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')): every server on CPU"
    echo "$server_cpus, wrk -t1 keep-alive on CPU $load_cpus, ${secs} s per point, medians of $runs runs"
    echo "(${elapsed} s in all). Counts checked after every load."
    echo
    echo "$table"
} >"$out/work.md"
echo "$table"
