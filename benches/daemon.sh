#!/usr/bin/env bash
# Daemon benchmark: `metasystem status` as a whole process vs `supervisorctl status` (supervisord)
# and `monit summary` (monit), timed by hyperfine in one invocation (30 runs each, no shell);
# then the idle cost of each daemon (RSS, CPU) over the same IDLE seconds.
#
#   cargo build --release && benches/daemon.sh [IDLE_SECONDS]      (default 60)
#
# Needs: hyperfine, supervisor, monit (Debian: apt-get install hyperfine supervisor monit).
# Everything runs in a temp dir; metasystem runs its embedded default tree with HOME there.
set -euo pipefail
cd "$(dirname "$0")/.."
idle=${1:-60}
bin=$(pwd)/target/release/metasystem
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 2; }
for tool in hyperfine supervisord supervisorctl monit; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install hyperfine supervisor monit)" >&2; exit 2; }
done

work=$(mktemp -d /tmp/msbench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.5
  rm -rf "$work"
}
trap cleanup EXIT

# metasystem: the embedded default tree (heartbeat every 10 s), state in $work/home/.metasystem.
mkdir -p "$work/home"
HOME="$work/home" "$bin" run 2>"$work/metasystem.log" &
pids+=($!); ms_pid=$!

# supervisord: one program, control over a Unix socket, as it is usually run.
cat > "$work/supervisord.conf" <<CONF
[unix_http_server]
file=$work/supervisor.sock
[supervisord]
logfile=$work/supervisord.log
pidfile=$work/supervisord.pid
nodaemon=true
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
[supervisorctl]
serverurl=unix://$work/supervisor.sock
[program:sleeper]
command=sleep infinity
CONF
supervisord -c "$work/supervisord.conf" 2>/dev/null &
pids+=($!); sd_pid=$!

# monit: one check, its HTTP interface on a Unix socket (what `monit summary` talks to).
cat > "$work/monitrc" <<CONF
set daemon 30
set pidfile $work/monit.pid
set idfile $work/monit.id
set statefile $work/monit.state
set logfile $work/monit.log
set httpd unixsocket $work/monit.sock
    allow bench:bench
check directory tmp with path /tmp
CONF
chmod 600 "$work/monitrc"
monit -I -c "$work/monitrc" >/dev/null 2>&1 &
pids+=($!); mo_pid=$!

# Wait (bounded) until all three answer.
for _ in $(seq 1 100); do
  if HOME="$work/home" "$bin" status >/dev/null 2>&1 \
     && supervisorctl -c "$work/supervisord.conf" status >/dev/null 2>&1 \
     && monit -c "$work/monitrc" summary >/dev/null 2>&1; then
    break
  fi
  sleep 0.1
done

echo "== machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
echo "== versions: $("$bin" --version); supervisord $(supervisord --version); $(monit -V | head -1)"
echo "== status command, whole process (hyperfine, 30 runs, warmup 3, no shell)"
HOME="$work/home" hyperfine -N --warmup 3 --runs 30 --export-json "$work/hyperfine.json" \
  "$bin status" \
  "supervisorctl -c $work/supervisord.conf status" \
  "monit -c $work/monitrc summary"
python3 - "$work/hyperfine.json" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    print(f"median {r['median']*1000:8.2f} ms  {r['command'].split('/')[-1] if 'metasystem' in r['command'] else r['command'].split()[0]}")
PY

# Idle cost: CPU time used over IDLE seconds (nanoseconds on CPU, summed over every thread, from
# /proc/PID/task/*/schedstat: clock ticks are too coarse for this), RSS at the end.
cpu() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s+=$1} END {print s+0}'; }
# supervisord's own pid may be a child of the python launcher: use the pid we started.
declare -A start
for p in $ms_pid $sd_pid $mo_pid; do start[$p]=$(cpu "$p"); done
echo "== idle for ${idle}s ..."
sleep "$idle"
for name in metasystem:$ms_pid supervisord:$sd_pid monit:$mo_pid; do
  n=${name%%:*}; p=${name##*:}
  used=$(( $(cpu "$p") - ${start[$p]} ))
  rss=$(awk '/VmRSS/{print $2}' "/proc/$p/status")
  threads=$(awk '/Threads/{print $2}' "/proc/$p/status")
  python3 -c "print(f'idle {\"$n\":<12} RSS {$rss/1024:6.1f} MB  CPU {100*$used/1e9/$idle:.4f}% ({$used/1e6:.2f} ms in ${idle}s)  threads $threads')"
done
