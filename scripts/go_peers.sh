#!/usr/bin/env bash
# The Go post's servers (examples/go) kept honest: builds them (installing golang-go if
# needed), runs go vet and gofmt, then against each one the post's curl session and the
# post's stress test made strict — ab -n N -c 200 on /inc must complete every request,
# fail none, and leave the counter at exactly N. Then each runs once with -trace FILE:
# stopped by SIGTERM it must leave an execution trace that trace2json turns into the
# timeline's JSON, with goroutine slices on every P. Exits non-zero on any mismatch.
#
# Usage: scripts/go_peers.sh [REQUESTS]      (default 20000)
source "$(dirname "$0")/lib.sh"

n=${1:-20000}
need ab apache2-utils
need curl
build_go_peers
(cd examples/go && go vet ./... && test -z "$(gofmt -l .)") ||
    { echo "FAIL: go vet or gofmt (gofmt -l examples/go lists the files)" >&2; exit 1; }

# expect URL WANT: the body of GET URL is exactly WANT (plus its newline), status 200.
expect() {
    local got
    got=$(curl -sf "$1") || { echo "FAIL: GET $1 failed" >&2; exit 1; }
    [ "$got" = "$2" ] || { echo "FAIL: GET $1 answered '$got', want '$2'" >&2; exit 1; }
}

for peer in go-mutex go-channel; do
    start_server url - "./target/go/$peer"
    expect "$url/set?name=x&val=0" "ok"
    expect "$url/get?name=x" "x: 0"
    expect "$url/inc?name=x" "ok"
    expect "$url/get?name=x" "x: 1"
    expect "$url/get?name=y" "y not found"

    expect "$url/set?name=ab&val=0" "ok"
    out=$(ab -q -n "$n" -c 200 "$url/inc?name=ab" 2>&1) || {
        echo "$out"; echo "FAIL: $peer: ab exited non-zero" >&2; exit 1; }
    complete=$(awk '/^Complete requests:/ {print $3}' <<<"$out")
    failed=$(awk '/^Failed requests:/ {print $3}' <<<"$out")
    non2xx=$(awk '/^Non-2xx responses:/ {print $3}' <<<"$out")
    rps=$(awk '/^Requests per second:/ {print $4}' <<<"$out")
    if [ "$complete" != "$n" ] || [ "$failed" != 0 ] || [ -n "$non2xx" ]; then
        echo "$out"
        echo "FAIL: $peer: not every request succeeded" >&2
        exit 1
    fi
    expect "$url/get?name=ab" "ab: $n"
    printf 'ok: %-10s curl session; ab -n %s -c 200: %s req/s, 0 failed, counter ab: %s\n' \
        "$peer" "$n" "$rps" "$n"
    stop_server "$LAST_SERVER_PID"
done

# -trace: Go's execution tracer from start to SIGTERM, converted by go tool trace's own
# exporter (examples/go/cmd/trace2json) into the JSON the dashboard's timeline draws.
for peer in go-mutex go-channel; do
    file=target/go/$peer.trace
    rm -f "$file" "$file.json"
    start_server url - "./target/go/$peer" -trace "$file"
    ab -q -n 2000 -c 10 "$url/inc?name=i" >/dev/null 2>&1 ||
        { echo "FAIL: $peer -trace: ab failed" >&2; exit 1; }
    stop_server "$LAST_SERVER_PID" # SIGTERM: the tracer is stopped and flushed
    ./target/go/trace2json -name "$peer" -o "$file.json" "$file" ||
        { echo "FAIL: $peer -trace: trace2json could not read $file" >&2; exit 1; }
    procs=$(grep -c '"name":"thread_name".*"Proc [0-9]*"' "$file.json" || true)
    serves=$(grep -c '"ph":"X","cat":"goroutine","name":"G[0-9]* net/http.(\*conn).serve"' "$file.json" || true)
    if [ "$procs" -lt 1 ] || [ "$serves" -lt 100 ]; then
        echo "FAIL: $peer -trace: $procs P tracks, $serves conn.serve slices in $file.json" >&2
        exit 1
    fi
    printf 'ok: %-10s -trace: %s bytes of trace, %s P tracks, %s conn.serve slices\n' \
        "$peer" "$(stat -c %s "$file")" "$procs" "$serves"
done
