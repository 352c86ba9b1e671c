#!/usr/bin/env bash
# Screenshots of /dashboard from a real run, for README and docs/concurrency-model.md:
#   docs/dashboard-ab.png    under ab -c 200 (a new connection per request), no work;
#   docs/dashboard-work.png  with --work-us 2000 and 4 keep-alive clients (ab -k -c 4):
#                            the one thread spends all its time in the blocking work.
# The server runs on CPU 0, ab on CPU 1, Chromium unpinned. After each run the figures
# the page showed (its DOM) are printed, with the /metrics they came from.
# Usage: scripts/dashboard.sh [SECONDS_OF_LOAD_BEFORE_THE_SHOT]   (default 20)
source "$(dirname "$0")/lib.sh"
secs=${1:-20}
need ab apache2-utils
need taskset util-linux
need curl
need chromium
cargo build --release --quiet --bin counterd
out=${OUT:-docs}
chrome=(chromium --headless --no-sandbox --disable-gpu --hide-scrollbars)

# shot NAME AB_ARGS...: fresh server, ab in the background for $secs, then screenshot.
shot() {
    local name=$1 work=$2; shift 2
    start_server url 0 ./target/release/counterd --work-us "$work"
    local pid=$LAST_SERVER_PID
    taskset -c 1 ab -q -t "$((secs + 15))" -n 100000000 "$@" "$url/inc?name=i" >/dev/null 2>&1 &
    local ab=$!
    sleep "$secs"
    # The page needs a minute of history to draw: 60 polls in virtual time.
    "${chrome[@]}" --window-size=1280,900 --virtual-time-budget=60000 \
        --screenshot="$out/$name.png" "$url/dashboard" 2>/dev/null
    echo "== $name: what the page showed"
    "${chrome[@]}" --dump-dom --virtual-time-budget=5000 "$url/dashboard" 2>/dev/null |
        grep -o 'data-metric="[a-z_]*"[^>]*>[^<]*' | sed 's/^data-metric=//'
    echo "== $name: /metrics"
    curl -sf "$url/metrics" | grep -E '^counterd_(loop_(busy|wait)_seconds_total|loop_events_per_wakeup_(sum|count)|loop_turn_seconds_(sum|count)|loop_iterations_total|events_total|requests_total\{route="inc"\})'
    kill "$ab" 2>/dev/null || true
    wait "$ab" 2>/dev/null || true
    stop_server "$pid"
}

shot dashboard-ab 0 -c 200
shot dashboard-work 2000 -k -c 4
echo "wrote $out/dashboard-ab.png $out/dashboard-work.png"
