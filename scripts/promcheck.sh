#!/usr/bin/env bash
# `promtool check metrics` on what counterd's /metrics says after some traffic (every
# route, an error, a 404), so that the exposition stays valid Prometheus text.
# Installs Debian's prometheus package (for promtool) when missing.
source "$(dirname "$0")/lib.sh"
need promtool prometheus
need curl
cargo build --release --quiet --bin counterd
start_server url - ./target/release/counterd
for target in "/inc?name=i" "/get?name=i" "/set?name=x&val=1" "/get?name=nope" "/nope" "/dashboard" "/set?name=x&val=bad"; do
    curl -s -o /dev/null "$url$target"
done
text=$(curl -sf "$url/metrics")
# promtool's linter also flags counters without _total and missing HELP: fail on anything.
if ! out=$(promtool check metrics <<<"$text" 2>&1); then
    echo "$out" >&2
    echo "FAIL: promtool check metrics" >&2
    exit 1
fi
echo "promtool check metrics: ok ($(grep -vc '^#' <<<"$text") samples)"
