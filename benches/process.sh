#!/usr/bin/env bash
# Managed-process benchmark: the time from SIGKILL of a managed program to its replacement
# running, metasystem vs supervisord vs monit, each supervising the same program, side by
# side in one invocation (rounds alternate the three).
#
#   cargo build --release && benches/process.sh [KILLS]        (default 20 per supervisor)
#
# ROUNDS (default 4): the kills are spread over this many rounds of (metasystem, supervisord,
# monit), each supervisor started fresh per round. PAUSE (default 1.5 s): the wait between two
# kills (longer than monit's 1 s cycle, so each kill is a fresh detection). The binary is
# $CARGO_TARGET_DIR/release/metasystem (else target/release/metasystem), or $METASYSTEM_BIN.
#
# The program is the same script under all three (`echo $$ > PIDFILE; echo $$ > FIFO; exec
# sleep ...`); monit runs it through a start script that puts it in the background, as monit
# needs (it waits for its start program to exit). The harness (python3) holds the FIFO open
# for reading, sends SIGKILL to the current pid, and takes the time when the next pid arrives
# on the FIFO (CLOCK_MONOTONIC both times): that is the replacement running its first line,
# whatever each supervisor thinks of it.
#
# metasystem: one `kind = "process"` child of a one_for_one root with no backoff (the default
# when `backoff` is not set: restart at once; intensity 1000 in 60 s), healthy_after = "0s".
# supervisord 4.2: `autorestart=true`, `startsecs=0`. monit 5.33: `set daemon 1`,
# `check process ... with pidfile ... start program = ...`.
# Needs: python3, supervisor, monit (Debian: apt-get install supervisor monit).
set -euo pipefail
cd "$(dirname "$0")/.."
kills=${1:-20}
rounds=${ROUNDS:-4}
pause=${PAUSE:-1.5}
bin=${METASYSTEM_BIN:-${CARGO_TARGET_DIR:-$(pwd)/target}/release/metasystem}
[ -x "$bin" ] || { echo "build first: cargo build --release ($bin)" >&2; exit 2; }
for tool in python3 supervisord monit; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install supervisor monit python3)" >&2; exit 2; }
done

work=$(mktemp -d /tmp/msprocess.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  pkill -f "sleep 100000.7" 2>/dev/null || true
  sleep 0.5
  rm -rf "$work"
}
trap cleanup EXIT

fifo=$work/started.fifo
mkfifo "$fifo"
cat > "$work/program.sh" <<CONF
echo \$\$ > $work/program.pid
echo \$\$ > $fifo
exec sleep 100000.7
CONF
printf '/bin/sh %s </dev/null >/dev/null 2>&1 &\n' "$work/program.sh" > "$work/monit-start.sh"

# The harness: NAME KILLS PAUSE FIFO → one line per kill (ms) in results.txt as "NAME MS".
cat > "$work/kill.py" <<'PY'
import os, select, signal, sys, time
name, kills, pause, fifo, out = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5]
fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)  # read side, never at end of file
buf = b""
def next_pid(timeout):
    global buf
    deadline = time.monotonic() + timeout
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            return None, None
        r, _, _ = select.select([fd], [], [], left)
        if r:
            try:
                buf += os.read(fd, 4096)
            except BlockingIOError:
                pass
    at = time.monotonic()
    line, buf = buf.split(b"\n", 1)
    return int(line), at
pid, _ = next_pid(30)
if pid is None:
    sys.exit(f"{name}: the program never started")
# Let it settle (monit's first cycles, supervisord's RUNNING state).
time.sleep(2)
while b"\n" in buf or select.select([fd], [], [], 0)[0]:
    p, _ = next_pid(0.1)
    if p is None:
        break
    pid = p
with open(out, "a") as f:
    for i in range(kills):
        t0 = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        new, at = next_pid(30)
        if new is None:
            sys.exit(f"{name}: no replacement within 30 s after kill {i + 1}")
        f.write(f"{name} {(at - t0) * 1000:.3f}\n")
        pid = new
        time.sleep(pause)
PY

per_round=$(( (kills + rounds - 1) / rounds ))

cat > "$work/supervision.toml" <<CONF
[daemon]
state_dir = "$work/ms"
socket = "$work/ms/control.sock"

[root]
strategy = "one_for_one"
intensity = 1000
period = "60s"

[[root.children]]
name = "program"
kind = "process"
command = "/bin/sh"
args = ["$work/program.sh"]
healthy_after = "0s"
CONF

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
[program:program]
command=/bin/sh $work/program.sh
autorestart=true
startsecs=0
stopasgroup=true
killasgroup=true
CONF

cat > "$work/monitrc" <<CONF
set daemon 1
set pidfile $work/monit.pid
set idfile $work/monit.id
set statefile $work/monit.state
set logfile $work/monit.log
check process program with pidfile $work/program.pid
    start program = "/bin/sh $work/monit-start.sh"
    stop program = "/bin/sh -c 'kill \$(cat $work/program.pid)'"
CONF
chmod 600 "$work/monitrc"

echo "== machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, $(uname -r)"
echo "== versions: $("$bin" --version); supervisord $(supervisord --version); $(monit -V | head -1)"
echo "== $kills kills per supervisor over $rounds round(s), ${pause}s apart; time from SIGKILL to the replacement's first line"

# One supervisor's round: NAME COMMAND...; started fresh, stopped after.
round() {
  local name=$1; shift
  rm -f "$work/program.pid"
  "$@" >/dev/null 2>&1 &
  local sup=$!
  pids+=("$sup")
  python3 "$work/kill.py" "$name" "$per_round" "$pause" "$fifo" "$work/results.txt"
  kill "$sup" 2>/dev/null || true
  wait "$sup" 2>/dev/null || true
  pkill -f "sleep 100000.7" 2>/dev/null || true
  sleep 0.5
}

for r in $(seq 1 "$rounds"); do
  rm -rf "$work/ms"
  round metasystem "$bin" --config "$work/supervision.toml" run
  round supervisord supervisord -c "$work/supervisord.conf"
  round monit monit -I -c "$work/monitrc"
  echo "   round $r done"
done

python3 - "$work/results.txt" <<'PY'
import statistics, sys
by = {}
for line in open(sys.argv[1]):
    name, ms = line.split()
    by.setdefault(name, []).append(float(ms))
ms = statistics.median(by["metasystem"])
print()
print("| supervisor | kills | median (ms) | p90 (ms) | min (ms) | max (ms) | median vs metasystem |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for name in ("metasystem", "supervisord", "monit"):
    v = sorted(by.get(name, []))
    if not v:
        continue
    med = statistics.median(v)
    p90 = v[min(len(v) - 1, int(round(0.9 * (len(v) - 1))))]
    print(f"| {name} | {len(v)} | {med:.2f} | {p90:.2f} | {v[0]:.2f} | {v[-1]:.2f} | {med / ms:.0f}x |")
PY
