#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for SECONDS each (default 60), one after the other.
# Exits non-zero if any target crashes; the crash input is left in fuzz/artifacts/<target>/
# and printed as base64 so that it can be recovered from a CI log.
#
# Usage: scripts/fuzz.sh [SECONDS]
#   FUZZ_SANITIZER=none     (default) coverage only, stable toolchain, ~4x the execs/s
#   FUZZ_SANITIZER=address  AddressSanitizer and libFuzzer's comparison hints; needs
#                           RUSTC_BOOTSTRAP=1 (set here) on a stable toolchain
#   FUZZ_TARGETS="query"    a subset of the targets
# Each sanitizer builds into its own fuzz/target/<sanitizer>, so switching does not rebuild.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-60}
sanitizer=${FUZZ_SANITIZER:-none}
targets=${FUZZ_TARGETS:-"parse_request query connection journal journal_crash"}

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install --locked cargo-fuzz
fi

args=(-s "$sanitizer" --debug-assertions --target-dir "fuzz/target/$sanitizer")
if [ "$sanitizer" != none ]; then
    export RUSTC_BOOTSTRAP=1
fi

cargo fuzz build "${args[@]}"

failed=()
for t in $targets; do
    log=$(mktemp)
    printf '\n== fuzz %s for %ss (sanitizer %s)\n' "$t" "$secs" "$sanitizer"
    # The committed corpus seeds the run; what the run finds stays in fuzz/corpus/<target>
    # (git-ignored unless added on purpose, see README).
    if cargo fuzz run "${args[@]}" "$t" -- \
        -max_total_time="$secs" -dict="$PWD/fuzz/http.dict" -print_final_stats=1 \
        >"$log" 2>&1; then
        grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|^stat::(number_of_executed_units|average_exec_per_sec)|^Done' "$log" || true
    else
        tail -n 60 "$log"
        failed+=("$t")
        for f in $(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log"); do
            echo "crash input $f (base64):"
            base64 "$f"
        done
    fi
    rm -f "$log"
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "FAIL: fuzz targets crashed: ${failed[*]}" >&2
    exit 1
fi
echo "ok: no crashes"
