#!/usr/bin/env bash
# The loop turn by turn next to Go's goroutines, as pictures for docs/concurrency-model.md.
# Under the same load (ab -k, keep-alive clients on /inc, --work-us N of work per request)
# it captures counterd's flight recorder (GET /trace) and the Go post's server's own
# execution trace (go-mutex -trace FILE, converted by examples/go/cmd/trace2json), and draws
# each with the dashboard's own timeline code: src/dashboard.html opened as
# dashboard.html?trace=FILE in headless Chromium, one screenshot per run, into docs/:
#   timeline-turn.png      counterd, no work, many clients: one turn serving socket after socket
#   timeline-sleep.png     counterd --work-us N (--work sleep): each request blocks the loop
#   timeline-timer.png     --work timer: requests parked on the loop's timers, answered later
#   timeline-shards.png    --shards 2: two loops side by side
#   timeline-go-mutex.png  go-mutex -work-us N on one P (GOMAXPROCS 1): the same milliseconds
# Runs that need a flag this counterd lacks (see counterd --help) are skipped, and said so;
# so is every counterd run while the server does not answer /trace.
# The server runs on CPU 0, ab on CPU 1, Chromium unpinned. The traces stay in
# target/timeline/ (open them in Perfetto too).
#
# Usage: scripts/timeline.sh [WORK_US] [CLIENTS] [SPAN_US]     (defaults 1000, 8, 10000)
source "$(dirname "$0")/lib.sh"
work=${1:-1000}
clients=${2:-8}
span=${3:-10000}
need ab apache2-utils
need taskset util-linux
need curl
need chromium
cargo build --release --quiet --bin counterd
build_go_peers
dir=target/timeline
out=${OUT:-docs}
mkdir -p "$dir" "$out"
cp src/dashboard.html "$dir/dashboard.html" # the page counterd serves, drawing a file
help=$(./target/release/counterd --help 2>&1 || true)

# load URL SECONDS CLIENTS: keep-alive clients on /inc, on CPU 1, in the background.
load() {
    taskset -c 1 ab -q -k -t "$2" -n 100000000 -c "$3" "$1/inc?name=i" >/dev/null 2>&1 &
    LOAD_PID=$!
}

# draw NAME TITLE QUERY: target/timeline/NAME.json drawn by the dashboard into docs/NAME.png.
draw() {
    local name=$1 title=$2 query=$3 lanes height
    lanes=$(grep -c '"name":"thread_name"' "$dir/$name.json" || true)
    height=$((230 + 60 * lanes))
    timeout 120 chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
        --allow-file-access-from-files --window-size=1400,"$height" \
        --virtual-time-budget=5000 --screenshot="$out/$name.png" \
        "file://$PWD/$dir/dashboard.html?trace=$name.json&title=$(urlencode "$title")&$query" \
        2>/dev/null >/dev/null
    printf '%-22s %8s bytes of JSON: %5s slices, %4s arrows -> %s\n' "$name" \
        "$(stat -c %s "$dir/$name.json")" "$(grep -c '"ph":"X"' "$dir/$name.json" || true)" \
        "$(grep -c '"ph":"s"' "$dir/$name.json" || true)" "$out/$name.png"
}

# URL-encodes a title (spaces and the few characters that would break the query).
urlencode() { sed 's/%/%25/g; s/ /%20/g; s/&/%26/g; s/#/%23/g; s/+/%2B/g' <<<"$1"; }

# counterd_run NAME TITLE CLIENTS QUERY ARGS...: counterd with ARGS under load; its /trace
# a second into the load.
counterd_run() {
    local name=$1 title=$2 n=$3 query=$4 url; shift 4
    start_server url 0 ./target/release/counterd "$@"
    local pid=$LAST_SERVER_PID
    load "$url" 4 "$n"
    sleep 1.5
    curl -sf "$url/trace" -o "$dir/$name.json"
    wait "$LOAD_PID" 2>/dev/null || true
    stop_server "$pid"
    draw "$name" "$title" "$query"
}

# Does this counterd answer /trace at all?
start_server url 0 ./target/release/counterd
traced=$(curl -s -o /dev/null -w '%{http_code}' "$url/trace")
stop_server "$LAST_SERVER_PID"
if [ "$traced" != 200 ]; then
    echo "skipped every counterd picture: GET /trace answers $traced (not wired yet)"
else
    counterd_run timeline-turn "counterd: one turn, socket after socket (ab -k -c 100, no work)" \
        100 "turns=3"
    counterd_run timeline-sleep "counterd --work-us $work: each request blocks the loop ($clients clients)" \
        "$clients" "span=$span" --work-us "$work"
    if grep -Eq -- '--work[ =]' <<<"$help" && grep -q timer <<<"$help"; then
        counterd_run timeline-timer "counterd --work-us $work --work timer: parked, the loop stays free ($clients clients)" \
            "$clients" "span=$span" --work-us "$work" --work timer
    else
        echo "skipped timeline-timer: counterd --help has no --work timer"
    fi
    if grep -q -- '--shards' <<<"$help"; then
        counterd_run timeline-shards "counterd --shards 2 --work-us $work ($clients clients)" \
            "$clients" "span=$span" --shards 2 --work-us "$work"
    else
        echo "skipped timeline-shards: counterd --help has no --shards"
    fi
fi

# Go: the post's mutex server on one P, traced from start to SIGTERM; the window cut out
# of its trace ends where counterd's /trace was taken, 1.5 s into the load.
began=$(date +%s%N)
start_server url 0 env GOMAXPROCS=1 ./target/go/go-mutex -work-us "$work" -trace "$dir/go-mutex.trace"
pid=$LAST_SERVER_PID
load "$url" 3 "$clients"
sleep 1.5
taken=$(( ($(date +%s%N) - began) / 1000 ))
wait "$LOAD_PID" 2>/dev/null || true
stop_server "$pid" # SIGTERM: the tracer stops and flushes
./target/go/trace2json -name "go-mutex -work-us $work (GOMAXPROCS 1)" \
    -from "$((taken - span))us" -span "${span}us" -o "$dir/timeline-go-mutex.json" "$dir/go-mutex.trace"
draw timeline-go-mutex "go-mutex -work-us $work, GOMAXPROCS 1: goroutines on one P ($clients clients)" \
    "from=$((taken - span))&span=$span"
