#!/usr/bin/env bash
# Slow HTTP attacks against a release build with default settings: slowloris (slow
# headers), slow body (R-U-Dead-Yet) and slow read, thousands of connections each.
# slowhttptest probes the service throughout; fails unless every probe found it available.
#
# Usage: scripts/slowattack.sh [SECONDS_PER_MODE] [CONNECTIONS]
source "$(dirname "$0")/lib.sh"

secs=${1:-30}
conns=${2:-3000}
need slowhttptest
need taskset util-linux

cargo build --release --quiet
start_server url - ./target/release/counterd
pid=$LAST_SERVER_PID
echo "counterd at $url (pid $pid), $conns connections per mode, ${secs}s each"

work=$(mktemp -d)
fail=0
run_mode() {
    local name=$1; shift
    local report="$work/$name"
    # The probe timeout (-p 3) is what "available" means: a probe request answered in 3 s.
    slowhttptest "$@" -c "$conns" -r 1000 -l "$secs" -p 3 -g -o "$report" \
        -u "$url/get?name=i" >"$report.log" 2>&1 || true
    if [ ! -s "$report.csv" ]; then
        echo "FAIL $name: slowhttptest wrote no report"; tail -20 "$report.log"; fail=1; return
    fi
    # CSV: Seconds,Closed,Pending,Connected,Service Available (0 when the probe failed).
    local rows down peak
    rows=$(tail -n +2 "$report.csv" | wc -l)
    down=$(tail -n +2 "$report.csv" | awk -F, '$5 == 0' | wc -l)
    peak=$(tail -n +2 "$report.csv" | awk -F, 'm < $4 {m = $4} END {print m + 0}')
    local rss; rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
    printf '%-10s %3s seconds probed, unavailable in %s, peak %s attack connections, server RSS %s KiB\n' \
        "$name" "$rows" "$down" "$peak" "$rss"
    if [ "$down" != 0 ] || [ "$rows" = 0 ]; then fail=1; fi
    kill -0 "$pid" || { echo "FAIL: server died"; exit 1; }
}

run_mode slowloris -H -i 5 -x 24
run_mode slowbody -B -i 5 -x 24 -s 8192
run_mode slowread -X -k 10 -n 2 -w 1 -y 32 -z 8

# Still serving, and still right.
curl -sf "$url/inc?name=i" >/dev/null
got=$(curl -sf "$url/get?name=i")
[ "$got" = "i: 1" ] || { echo "FAIL: counter reads '$got'"; fail=1; }
rm -rf "$work"
if [ "$fail" != 0 ]; then echo "FAIL: service was unavailable during an attack"; exit 1; fi
echo "ok: service available throughout every attack"
