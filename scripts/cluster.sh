#!/usr/bin/env bash
# Past one machine, on one: INSTANCES counterd instances (default 3), each with its own
# --journal, behind nginx (scripts/cluster/nginx.conf.in: `hash $arg_name consistent`,
# keep-alive connections to the instances, never a retry on another instance), measured
# side by side with one counterd alone and, where Debian's redis-server installs, a Redis
# Cluster of as many masters (no replicas). See docs/scaling.md.
#
# For each system, and on it for each client count C in CONNS:
#   - counterd alone, and the cluster through nginx: every name (NAMES of them, k0, k1, ...)
#     set to 0, then `wrk -t1 -cC -dSECS --latency -s scripts/cluster/names.lua`: /inc over
#     the names in turn. Afterwards every name is read back and must hold exactly the
#     requests sent to it, give or take the ones still in flight when wrk stopped; in the
#     cluster every name must also be on exactly one instance (each instance is asked
#     directly) with the value nginx answers;
#   - one instance more: a second nginx over the same instances and a new, empty one,
#     with `hash $arg_name consistent` and then with plain `hash $arg_name`; every name
#     is asked for, and the ones whose owner would change (they answer 404 from their new
#     owner, for nothing moves their counters) are counted;
#   - then kill -9 of one instance: its names must answer 502, all the others 200;
#   - Redis Cluster (appendonly, appendfsync everysec, as counterd's --fsync everysec):
#     FLUSHALL, then `redis-benchmark --cluster -t incr -cC -n REDIS_REQUESTS -r NAMES`;
#     afterwards the counters of all masters must add up to exactly REDIS_REQUESTS;
#     then kill -9 of one master, and what a surviving master answers for its own key.
# Every server (counterd, nginx, redis-server) runs pinned to SERVER_CPUS, wrk and
# redis-benchmark to LOAD_CPUS, all on 127.0.0.1; each system runs alone. Prints a
# Markdown table (requests/s, p50 and p99 latency, requests, what the count check found),
# how many names change instance when one is added, and what each kill did.
#
# Usage: scripts/cluster.sh [SECS]          (default 5 s a run: about 2 minutes in all)
# Environment: INSTANCES=3  CONNS="1 10 100"  NAMES=1000  REDIS_REQUESTS=100000
#              SERVER_CPUS=0  LOAD_CPUS=1
# Share the machine? Serialise the benchmarks: flock /tmp/counterd-cargo.lock scripts/cluster.sh
source "$(dirname "$0")/lib.sh"

secs=${1:-5}
instances=${INSTANCES:-3}
conns=(${CONNS:-1 10 100})
names=${NAMES:-1000}
redis_n=${REDIS_REQUESTS:-100000}
server_cpus=${SERVER_CPUS:-0}
load_cpus=${LOAD_CPUS:-1}

need wrk
need nginx nginx-light
need curl
need taskset util-linux
need python3
# Redis is the yardstick, not the subject: without it the table has no Redis rows.
redis=yes
(need redis-server redis-server && need redis-benchmark redis-tools) || redis=no
if [ "$(nproc)" -lt 2 ]; then
    echo "warning: one CPU: servers and load generator share it" >&2
    server_cpus=0 load_cpus=0
fi

cargo build --release --quiet --bin counterd
work=$(mktemp -d)
trap 'cleanup_servers; rm -rf "$work"' EXIT
rows=$work/rows.tsv
load() { taskset -c "$load_cpus" "$@"; }
last=$((names - 1))

# free_ports K: K distinct ports that were free a moment ago, on one line.
free_ports() {
    python3 -c '
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))' "$1"
}

# render_nginx_conf PREFIX PORT ADDR...: the repository's template with the placeholders
# filled in; the @INSTANCE@ line once per address. Comment lines stay as they are.
render_nginx_conf() {
    local prefix=$1 port=$2; shift 2
    awk -v prefix="$prefix" -v port="$port" -v addrs="$*" '
        /^[[:space:]]*#/ { print; next }
        { gsub("@PREFIX@", prefix); gsub("@PORT@", port) }
        index($0, "@INSTANCE@") {
            n = split(addrs, a, " ")
            for (i = 1; i <= n; i++) { line = $0; gsub("@INSTANCE@", a[i], line); print line }
            next
        }
        { print }' scripts/cluster/nginx.conf.in
}

# start_nginx VAR HASH ADDR...: nginx in front of the instances at ADDR..., in a prefix of
# its own, pinned to SERVER_CPUS; sets VAR to its URL once it answers. HASH is
# `consistent` (the configuration as it is) or `plain` (`hash $arg_name`, to compare).
start_nginx() {
    local var=$1 hash=$2; shift 2
    local prefix port
    prefix=$(mktemp -d "$work/nginx.XXXX")
    port=$(free_ports 1)
    render_nginx_conf "$prefix" "$port" "$@" |
        if [ "$hash" = plain ]; then sed 's/^\( *hash \$arg_name\) consistent;/\1;/'; else cat; fi \
        >"$prefix/nginx.conf"
    local directive='hash $arg_name consistent;'
    [ "$hash" = consistent ] || directive='hash $arg_name;'
    grep -qF "$directive" "$prefix/nginx.conf" ||
        { echo "FAIL: no '$directive' in $prefix/nginx.conf" >&2; exit 1; }
    taskset -c "$server_cpus" nginx -p "$prefix/" -c "$prefix/nginx.conf" \
        -e "$prefix/error.log" &
    SERVER_PIDS+=("$!")
    for _ in $(seq 100); do
        if curl -s -o /dev/null "http://127.0.0.1:$port/"; then
            printf -v "$var" '%s' "http://127.0.0.1:$port"
            return 0
        fi
        sleep 0.05
    done
    cat "$prefix/error.log" >&2
    echo "nginx did not start" >&2
    exit 1
}

# wrk_ms PERCENTILE: that line of wrk --latency's distribution, in milliseconds.
wrk_ms() {
    awk -v p="$1" '$1 == p {
        v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
        printf "%.2f", v * (u == "us" ? 0.001 : u == "s" ? 1000 : 1) }'
}

# wrk_run SYSTEM URL C [INSTANCE-URL...]: the names set to 0, wrk over them, every count
# checked (and, given the instances, where each name lives); appends a row.
wrk_run() {
    local system=$1 url=$2 c=$3; shift 3
    local set_ok out rps p50 p99 completed issued values counts
    set_ok=$(curl -s "$url/set?name=k[0-$last]&val=0" | grep -c '^ok$' || true)
    [ "$set_ok" = "$names" ] || { echo "FAIL: $system: only $set_ok of $names names set" >&2; exit 1; }
    out=$(load wrk -t1 -c"$c" -d"${secs}s" --latency -s scripts/cluster/names.lua "$url" -- "$names" 2>&1) ||
        { echo "$out" >&2; exit 1; }
    if grep -qE 'Socket errors|Non-2xx' <<<"$out"; then
        echo "$out" >&2; echo "FAIL: $system wrk -c$c: errors" >&2; exit 1
    fi
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    completed=$(awk '/ requests in / {print $1}' <<<"$out")
    issued=$(awk '/^issued / {print $2}' <<<"$out")
    p50=$(wrk_ms 50% <<<"$out")
    p99=$(wrk_ms 99% <<<"$out")
    values=$(curl -s "$url/get?name=k[0-$last]")
    # The k-th request went to name k % NAMES: each name holds what was sent to it, less
    # at most the requests in flight at the end (issued - completed, at most C); the sum holds
    # every completed request and at most the ones in flight.
    counts=$(awk -v n="$names" -v I="$issued" -v D="$completed" -v c="$c" '
        { ok = $0 ~ /^k[0-9]+: [0-9]+$/
          sub(":$", "", $1); j = substr($1, 2) + 0; v = $2 + 0; seen[j]++; sum += v
          want = int(I / n) + (j < I % n ? 1 : 0)
          if (!ok || v > want || v < want - (I - D)) {
              print "name k" j ": " $0 ", want " want - (I - D) ".." want > "/dev/stderr"; bad++ } }
        END { if (NR != n || length(seen) != n || sum < D || sum > I || I - D > c) bad++
              if (bad) { print "FAIL: " bad " bad counts, sum " sum ", completed " D ", issued " I > "/dev/stderr"; exit 1 }
              printf "sum %d = %d completed + %d of %d in flight", sum, D, sum - D, I - D }' \
        <<<"$values") || { echo "FAIL: $system wrk -c$c: counts" >&2; exit 1; }
    if [ $# -gt 0 ]; then
        # Asked directly, the instances together hold every name exactly once, each with
        # the value nginx answered for it.
        local inst direct="" spread=""
        for inst in "$@"; do
            local here
            here=$(curl -s "$inst/get?name=k[0-$last]" | grep -E '^k[0-9]+: ' || true)
            direct+="$here"$'\n'
            spread+="${spread:+/}$(grep -c . <<<"$here" || true)"
        done
        if ! diff <(sort <<<"$values") <(grep . <<<"$direct" | sort) >/dev/null; then
            echo "FAIL: $system: the instances do not hold each name exactly once" >&2
            exit 1
        fi
        counts+="; names per instance $spread"
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$system" "$c" "$rps" "$p50" "$p99" "$completed" "$counts" >>"$rows"
}

started=$(date +%s)

# 1. One counterd alone, with a journal like each instance's.
echo "counterd alone" >&2
start_server alone "$server_cpus" ./target/release/counterd --journal "$work/alone.journal"
for c in "${conns[@]}"; do wrk_run "counterd alone" "$alone" "$c"; done
stop_server "$LAST_SERVER_PID"

# 2. INSTANCES counterd instances behind nginx.
echo "nginx + $instances counterd" >&2
inst_urls=() inst_pids=()
for i in $(seq "$instances"); do
    start_server u "$server_cpus" ./target/release/counterd --journal "$work/instance$i.journal"
    inst_urls+=("$u") inst_pids+=("$LAST_SERVER_PID")
done
start_nginx front consistent "${inst_urls[@]#http://}"
for c in "${conns[@]}"; do
    wrk_run "nginx + $instances counterd" "$front" "$c" "${inst_urls[@]}"
done

# 2b. One instance more: which names would move? A second nginx in front of the same
# instances and a new, empty one asks for every name: a name whose new owner is the new
# instance answers 404 there (its counter stayed where it was: nothing moves data). With
# plain `hash $arg_name` names also move between the old instances.
start_server u "$server_cpus" ./target/release/counterd --journal "$work/instance-new.journal"
for hash in consistent plain; do
    start_nginx grown "$hash" "${inst_urls[@]#http://}" "${u#http://}"
    moved=$(curl -s "$grown/get?name=k[0-$last]" | grep -c ' not found$' || true)
    printf '%s\t%s\n' "$hash" "$moved" >>"$work/moved.tsv"
done

# 2c. kill -9 of the first instance: its names answer 502, every other name 200.
held=$(curl -s "${inst_urls[0]}/get?name=k[0-$last]" | grep -c '^k[0-9]*: ' || true)
kill -KILL "${inst_pids[0]}"
stop_server "${inst_pids[0]}"
codes=$(curl -s -o /dev/null -w '%{http_code}\n' "$front/get?name=k[0-$last]" | sort | uniq -c)
n502=$(awk '$2 == 502 {print $1}' <<<"$codes") n200=$(awk '$2 == 200 {print $1}' <<<"$codes")
if [ "${n502:-0}" != "$held" ] || [ "$((${n502:-0} + ${n200:-0}))" != "$names" ]; then
    echo "FAIL: with the instance that held $held names killed, nginx answered: $codes" >&2
    exit 1
fi
echo "kill -9 of one of $instances counterd instances: its $held names answer 502 at once," \
    "the other $n200 names 200." >>"$work/kills.txt"
cleanup_servers

# 3. A Redis Cluster of INSTANCES masters, no replicas.
if [ "$redis" = yes ]; then
    echo "Redis Cluster, $instances masters" >&2
    read -r -a ports <<<"$(free_ports $((2 * instances)))"
    nodes=() redis_pids=()
    for i in $(seq 0 $((instances - 1))); do
        p=${ports[$i]} bus=${ports[$((instances + i))]}
        mkdir -p "$work/redis/$p"
        # cluster-port: the bus port chosen free here (its default, port + 10000, may not be).
        # cluster-node-timeout 2 s (default 15 s): how soon the kill below is noticed.
        taskset -c "$server_cpus" redis-server --port "$p" --bind 127.0.0.1 \
            --cluster-enabled yes --cluster-port "$bus" --cluster-node-timeout 2000 \
            --cluster-config-file "$work/redis/nodes-$p.conf" --dir "$work/redis/$p" \
            --appendonly yes --appendfsync everysec --save "" \
            --logfile "$work/redis/$p.log" &
        SERVER_PIDS+=("$!") redis_pids+=("$!")
        nodes+=("127.0.0.1:$p")
    done
    for p in "${ports[@]:0:$instances}"; do
        for _ in $(seq 100); do
            [ "$(redis-cli -p "$p" ping 2>/dev/null)" = PONG ] && break
            sleep 0.05
        done
    done
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >/dev/null
    for p in "${ports[@]:0:$instances}"; do
        for _ in $(seq 200); do
            redis-cli -p "$p" cluster info | grep -q '^cluster_state:ok' && break
            sleep 0.05
        done
    done
    for c in "${conns[@]}"; do
        for p in "${ports[@]:0:$instances}"; do redis-cli -p "$p" flushall >/dev/null; done
        out=$(load timeout 300 redis-benchmark --cluster -h 127.0.0.1 -p "${ports[0]}" \
            -t incr -c "$c" -n "$redis_n" -r "$names" --csv 2>&1) ||
            { echo "$out" >&2; exit 1; }
        IFS=, read -r _ rps _ _ p50 _ p99 _ < <(grep '^"INCR"' <<<"$out" | tr -d '"')
        # Every key lives on one master; together they hold every INCR exactly once.
        sum=0 keys=0 spread=""
        for p in "${ports[@]:0:$instances}"; do
            read -r s k < <(redis-cli -p "$p" --scan --pattern 'counter:*' | sed 's/^/GET /' |
                redis-cli -p "$p" | awk '{s += $1} END {print s + 0, NR}')
            sum=$((sum + s)) keys=$((keys + k)) spread+="${spread:+/}$k"
        done
        if [ "$sum" != "$redis_n" ]; then
            echo "FAIL: Redis Cluster -c$c: counters add up to $sum, want $redis_n" >&2
            exit 1
        fi
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "Redis Cluster, $instances masters" "$c" \
            "$rps" "$p50" "$p99" "$redis_n" \
            "sum $sum = $redis_n requests; keys per master $spread" >>"$rows"
    done
    # kill -9 of the first master (no replica to take over): how the others answer for
    # a key of their own once they have noticed.
    key=$(redis-cli -p "${ports[1]}" --scan --pattern 'counter:*' | awk 'NR == 1')
    kill -KILL "${redis_pids[0]}"
    stop_server "${redis_pids[0]}"
    killed_at=$(date +%s%N) state=ok
    for _ in $(seq 200); do
        state=$(redis-cli -p "${ports[1]}" cluster info | sed -n 's/^cluster_state:\([a-z]*\).*/\1/p')
        [ "$state" = fail ] && break
        sleep 0.05
    done
    after=$(( ($(date +%s%N) - killed_at) / 1000000 ))
    answer=$(redis-cli -p "${ports[1]}" get "$key" 2>&1)
    echo "kill -9 of one of $instances Redis masters (no replicas): after $after ms" \
        "cluster_state:$state, and a surviving master answers GET of its own key with" \
        "'$answer'." >>"$work/kills.txt"
    cleanup_servers
else
    echo "no redis-server from Debian's packages here: no Redis Cluster rows" >&2
fi
elapsed=$(($(date +%s) - started))

cpu=$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n1)
echo
echo "scripts/cluster.sh $secs on $(date -u +%Y-%m-%d), ${elapsed} s: $(nproc) × $cpu."
echo "Servers pinned to CPU $server_cpus, wrk/redis-benchmark to CPU $load_cpus; $names names;"
echo "wrk -t1 for ${secs} s a row, redis-benchmark -n $redis_n; journals and AOF fsync everysec."
echo
echo "| system | clients | requests/s | p50 ms | p99 ms | requests | counts afterwards |"
echo "|---|---:|---:|---:|---:|---:|---|"
awk -F'\t' '
    function sep(x,   s) { s = sprintf("%.0f", x); while (s ~ /[0-9][0-9][0-9][0-9]/) sub(/[0-9][0-9][0-9]($|,)/, ",&", s); return s }
    { printf "| %s | %s | %s | %.2f | %.2f | %s | %s |\n", $1, $2, sep($3), $4, $5, sep($6), $7 }' "$rows"
echo
while IFS=$'\t' read -r hash moved; do
    directive='hash $arg_name consistent'
    [ "$hash" = consistent ] || directive='hash $arg_name'
    echo "One instance more ($instances to $((instances + 1))) with \`$directive\`:" \
        "$moved of $names names ($((100 * moved / names))%) change instance."
done <"$work/moved.tsv"
cat "$work/kills.txt"
