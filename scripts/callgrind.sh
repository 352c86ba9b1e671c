#!/usr/bin/env bash
# Instructions per request (user space, valgrind's callgrind), for counterd and the floor:
# each server runs under callgrind twice, serving N and 2N keep-alive requests from ab;
# the difference divided by N cancels start-up and shutdown. Instruction counts do not
# depend on how busy the machine is, so this is the stable figure to optimise against.
#
# Usage: scripts/callgrind.sh [N] [PATH]        (defaults: 20000, /inc?name=i)
# Leaves the larger run's profile in target/callgrind.<impl>.out (callgrind_annotate it).
source "$(dirname "$0")/lib.sh"

n=${1:-20000}
path=${2:-/inc?name=i}
need valgrind
need ab apache2-utils
cargo build --release --quiet --bin counterd --example floor

# total_ir BINARY REQUESTS OUTFILE: runs the server under callgrind and returns its Ir total.
total_ir() {
    local bin=$1 requests=$2 out=$3
    start_server url - valgrind --tool=callgrind --callgrind-out-file="$out" "$bin"
    local pid=$LAST_SERVER_PID
    ab -q -k -n "$requests" -c 10 "$url$path" >/dev/null
    stop_server "$pid"
    awk '/^summary:|^totals:/ {print $2; exit}' "$out"
}

printf '%-9s %14s\n' server "Ir per request"
for impl in counterd floor; do
    bin=./target/release/counterd
    [ "$impl" = floor ] && bin=./target/release/examples/floor
    small=$(total_ir "$bin" "$n" "$(mktemp)")
    large=$(total_ir "$bin" $((2 * n)) "target/callgrind.$impl.out")
    printf '%-9s %14s\n' "$impl" "$(( (large - small) / n ))"
done
