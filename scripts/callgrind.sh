#!/usr/bin/env bash
# Instructions per request (user space, valgrind's callgrind), for counterd and the floor,
# under two clients: ab -k (HTTP/1.0, four headers) and wrk -c10 (HTTP/1.1, one header,
# the load of scripts/syscalls.sh). Each server runs under callgrind twice, serving N and
# 2N requests from ab, or for 2 s and 6 s under wrk; the difference in instructions over
# the difference in requests cancels start-up and shutdown. Instruction counts do not
# depend on how busy the machine is, so this is the stable figure to optimise against.
#
# Usage: scripts/callgrind.sh [N] [PATH]        (defaults: 20000, /inc?name=i)
# Leaves the larger runs' profiles in target/callgrind.<impl>[.wrk].out (callgrind_annotate them).
source "$(dirname "$0")/lib.sh"

n=${1:-20000}
path=${2:-/inc?name=i}
need valgrind
need ab apache2-utils
need wrk
cargo build --release --quiet --bin counterd --example floor

# ir_total PROFILE: the instructions a callgrind profile counted.
ir_total() { awk '/^summary:|^totals:/ {print $2; exit}' "$1"; }

# total_ir BINARY REQUESTS OUTFILE: runs the server under callgrind and returns its Ir total.
total_ir() {
    local bin=$1 requests=$2 out=$3
    start_server url - valgrind --tool=callgrind --callgrind-out-file="$out" "$bin"
    local pid=$LAST_SERVER_PID
    ab -q -k -n "$requests" -c 10 "$url$path" >/dev/null
    stop_server "$pid"
    ir_total "$out"
}

# wrk_ir BINARY SECONDS OUTFILE: like total_ir under wrk; returns "requests Ir".
wrk_ir() {
    local bin=$1 secs=$2 out=$3
    start_server url - valgrind --tool=callgrind --callgrind-out-file="$out" "$bin"
    local pid=$LAST_SERVER_PID
    local report
    report=$(wrk -t1 -c10 -d"${secs}s" "$url$path")
    stop_server "$pid"
    echo "$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' <<<"$report") $(ir_total "$out")"
}

printf '%-9s %16s %16s\n' server "Ir/req, ab -k" "Ir/req, wrk"
for impl in counterd floor; do
    bin=./target/release/counterd
    [ "$impl" = floor ] && bin=./target/release/examples/floor
    small=$(total_ir "$bin" "$n" "$(mktemp)")
    large=$(total_ir "$bin" $((2 * n)) "target/callgrind.$impl.out")
    read -r n1 ir1 < <(wrk_ir "$bin" 2 "$(mktemp)")
    read -r n2 ir2 < <(wrk_ir "$bin" 6 "target/callgrind.$impl.wrk.out")
    printf '%-9s %16s %16s\n' "$impl" "$(( (large - small) / n ))" "$(( (ir2 - ir1) / (n2 - n1) ))"
done
