#!/usr/bin/env bash
# CPU of the dashboard: `metasystem top --refresh 1s` in a detached tmux session (160x50)
# against a daemon running the embedded default tree, over SECS seconds (default 60), from
# /proc/PID/stat (utime + stime). The daemon's own CPU over the same time is printed too (it
# answers the dashboard's reads).
#   cargo build --release && benches/top.sh [SECS]        (BIN=... to measure another build)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/metasystem}
SECS=${1:-60}
command -v tmux >/dev/null || { echo "needs tmux (apt-get install -y tmux)" >&2; exit 2; }
dir=$(mktemp -d)
server="metasystem-bench-$$"
cleanup() {
    tmux -L "$server" kill-server 2>/dev/null || true
    [ -n "${dpid:-}" ] && kill "$dpid" 2>/dev/null && wait "$dpid" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT
sock="$dir/state/control.sock"
{ printf '[daemon]\nstate_dir = "%s/state"\nsocket = "%s"\n\n' "$dir" "$sock"
  sed -n '/^\[root\]/,$p' supervision.toml; } > "$dir/supervision.toml"
"$BIN" --config "$dir/supervision.toml" run 2> "$dir/daemon.log" &
dpid=$!
for _ in $(seq 200); do
    "$BIN" --socket "$sock" status > /dev/null 2>&1 && break
    sleep 0.1
done
tmux -L "$server" -f /dev/null new-session -d -s top -x 160 -y 50 \
    "exec $BIN --socket $sock top --refresh 1s"
sleep 3 # the first snapshot and draw are not what is measured
tpid=$(tmux -L "$server" display-message -p -t top '#{pane_pid}')
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
t0=$(ticks "$tpid"); d0=$(ticks "$dpid"); s0=$(date +%s.%N)
sleep "$SECS"
t1=$(ticks "$tpid"); d1=$(ticks "$dpid"); s1=$(date +%s.%N)
tmux -L "$server" capture-pane -p -t top | grep -q "· connected" || { echo "top was not connected" >&2; exit 1; }
awk -v t="$((t1 - t0))" -v d="$((d1 - d0))" -v hz="$hz" -v s0="$s0" -v s1="$s1" 'BEGIN {
    wall = s1 - s0
    printf "over %.1f s (%d ticks/s): top %.2f%% of one core (%d ticks), daemon %.2f%% (%d ticks)\n",
        wall, hz, 100 * t / hz / wall, t, 100 * d / hz / wall, d
}'
