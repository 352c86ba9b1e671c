#!/usr/bin/env bash
# The original post's stress test, made strict: ab with 200 concurrent clients against
# /inc, with and without keep-alive, three rounds on one server, then one round of
# ab -n 50000 -c 1000 (a new connection per request). Fails unless every request succeeds
# with a 2xx, the counter ends at exactly the number of requests, and the kernel counted
# no listen-queue overflow (nstat ListenOverflows) during the 1,000-client round.
#
# Usage: scripts/stress.sh [REQUESTS_PER_RUN] [ROUNDS]
source "$(dirname "$0")/lib.sh"

n=${1:-20000}
rounds=${2:-3}
need ab apache2-utils
need taskset util-linux
need nstat iproute2

cargo build --release --quiet
start_server url 0 ./target/release/counterd
echo "counterd at $url"

expected=0
for round in $(seq "$rounds"); do
    for keepalive in "" "-k"; do
        out=$(taskset -c 1 ab $keepalive -q -n "$n" -c 200 "$url/inc?name=i" 2>&1) || {
            echo "$out"; echo "FAIL: ab exited non-zero" >&2; exit 1; }
        complete=$(awk '/^Complete requests:/ {print $3}' <<<"$out")
        failed=$(awk '/^Failed requests:/ {print $3}' <<<"$out")
        non2xx=$(awk '/^Non-2xx responses:/ {print $3}' <<<"$out")
        rps=$(awk '/^Requests per second:/ {print $4}' <<<"$out")
        printf 'round %s ab %-2s -n %s -c 200: %8s req/s, complete %s, failed %s, non-2xx %s\n' \
            "$round" "$keepalive" "$n" "$rps" "$complete" "$failed" "${non2xx:-0}"
        if [ "$complete" != "$n" ] || [ "$failed" != 0 ] || [ -n "$non2xx" ]; then
            echo "$out"
            echo "FAIL: not every request succeeded" >&2
            exit 1
        fi
        expected=$((expected + n))
    done
done

# 1,000 clients at once: the listen backlog (1024) must hold the burst of new connections.
nstat -n >/dev/null
out=$(taskset -c 1 ab -q -n 50000 -c 1000 "$url/inc?name=i" 2>&1) || {
    echo "$out"; echo "FAIL: ab -c 1000 exited non-zero" >&2; exit 1; }
overflows=$(nstat -z TcpExtListenOverflows | awk '/TcpExtListenOverflows/ {print $2}')
grep -E '^(Complete|Failed) requests|^Requests per second|^ +(50|99)%' <<<"$out"
echo "ListenOverflows during the run: ${overflows:-0}"
if ! grep -q '^Failed requests: *0$' <<<"$out" || grep -q '^Non-2xx' <<<"$out" ||
    [ "${overflows:-0}" != 0 ]; then
    echo "$out"
    echo "FAIL: ab -c 1000 lost requests or overflowed the listen queue" >&2
    exit 1
fi
expected=$((expected + 50000))

got=$(curl -sf "$url/get?name=i")
if [ "$got" != "i: $expected" ]; then
    echo "FAIL: counter reads '$got', want 'i: $expected'" >&2
    exit 1
fi
echo "ok: counter reads '$got'"
