#!/bin/sh
# Idle RSS of the full default tree (the supervision.toml embedded in the binary): the release
# binary runs `metasystem run` with a fresh temp HOME (so the state dir is new and no
# ~/.metasystem/supervision.toml is found), and after IDLE seconds (30) VmRSS, RssAnon and
# RssFile are read from /proc/PID/status. RUNS (3) runs, median printed; the last run's
# /proc/PID/smaps_rollup is printed too.
#   cargo build --release && benches/idle_rss.sh [RUNS] [IDLE]
set -eu
RUNS=${1:-3}
IDLE=${2:-30}
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/metasystem}
[ -x "$BIN" ] || { echo "no $BIN: cargo build --release" >&2; exit 2; }
out=$(mktemp)
i=0
while [ "$i" -lt "$RUNS" ]; do
    i=$((i + 1))
    home=$(mktemp -d)
    env -u METASYSTEM_CONFIG -u NOTIFY_SOCKET HOME="$home" RUST_LOG=info "$BIN" run 2>"$home/stderr.log" &
    pid=$!
    sleep "$IDLE"
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "the daemon exited:" >&2; cat "$home/stderr.log" >&2; exit 1
    fi
    rss=$(awk '/^VmRSS/ {print $2}' /proc/$pid/status)
    anon=$(awk '/^RssAnon/ {print $2}' /proc/$pid/status)
    file=$(awk '/^RssFile/ {print $2}' /proc/$pid/status)
    threads=$(awk '/^Threads/ {print $2}' /proc/$pid/status)
    echo "run $i: VmRSS $rss kB, RssAnon $anon kB, RssFile $file kB, threads $threads"
    echo "$rss $anon $file" >>"$out"
    [ "$i" -eq "$RUNS" ] && cat /proc/$pid/smaps_rollup
    kill -TERM "$pid"; wait "$pid" || true
    rm -rf "$home"
done
sort -n "$out" | awk -v n="$RUNS" 'NR == int((n + 1) / 2) {printf "median VmRSS %.1f MB (RssAnon %.1f, RssFile %.1f)\n", $1/1024, $2/1024, $3/1024}'
rm -f "$out"
