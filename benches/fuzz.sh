#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60) and prints, per target, the runs,
# execs/s, the corpus size and whether it crashed. Needs the nightly toolchain and
# cargo-fuzz (fuzz/README.md). Exit 1 if any target crashed.
set -euo pipefail
seconds="${1:-60}"
cd "$(dirname "$0")/.."
targets=(config protocol names paths base alerts)
if ! cargo +nightly fuzz --help >/dev/null 2>&1; then
    echo "cargo-fuzz is not installed: cargo install cargo-fuzz (and rustup toolchain install nightly)" >&2
    exit 2
fi
cargo +nightly fuzz build -O
failed=0
printf '%-10s %12s %10s %8s %s\n' target runs execs/s corpus result
for t in "${targets[@]}"; do
    log="$(mktemp)"
    set +e
    # New inputs go to fuzz/work/TARGET (ignored by git); the seeds in fuzz/corpus/TARGET.
    mkdir -p "fuzz/work/$t"
    cargo +nightly fuzz run -O "$t" "fuzz/work/$t" "fuzz/corpus/$t" -- \
        -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1
    rc=$?
    set -e
    runs="$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo 0)"
    rate="$(grep -oE 'stat::average_exec_per_sec: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo 0)"
    corpus="$(find "fuzz/work/$t" "fuzz/corpus/$t" -type f | wc -l)"
    if [ "$rc" -eq 0 ]; then
        result=ok
    else
        result="CRASH (see fuzz/artifacts/$t; log $log)"
        failed=1
    fi
    printf '%-10s %12s %10s %8s %s\n' "$t" "$runs" "$rate" "$corpus" "$result"
    [ "$rc" -eq 0 ] && rm -f "$log"
done
exit "$failed"
