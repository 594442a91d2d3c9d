#!/usr/bin/env bash
# Probe cycle benchmark: N tcp probes every 1 s against N local listeners, the CPU each
# daemon spends per check, metasystem vs monit, each alone on the machine over the same window.
#
#   cargo build --release && benches/probes.sh [WINDOW_SECONDS] [N]     (default 60 and 1000)
#
# ROUNDS (default 1): rounds of (metasystem, then monit), each daemon started fresh; WARMUP
# (default 10 s): how long each runs before its window starts. The binary is
# $CARGO_TARGET_DIR/release/metasystem (else target/release/metasystem), or $METASYSTEM_BIN.
#
# The listeners (one python3 process, selectors/epoll, accept and close) count the connections
# each port accepted: those counts are the checks done, for both daemons alike (and how evenly
# the ports were checked; monit's cycle time is the window over its cycles). CPU is
# utime + stime from /proc/PID/stat (every thread, dead ones included), over the window.
#
# metasystem: N children `kind = "probe"`, `check = "tcp"`, `every = "1s"`, nothing else in the
# tree (samples go straight to the store). monit 5.33: `set daemon 1` and N
# `check host` with `if failed port X type tcp then alert`, no HTTP interface, no mail server.
# Needs: python3, monit (Debian: apt-get install monit).
set -euo pipefail
cd "$(dirname "$0")/.."
window=${1:-60}
n=${2:-1000}
rounds=${ROUNDS:-1}
warmup=${WARMUP:-10}
bin=${METASYSTEM_BIN:-${CARGO_TARGET_DIR:-$(pwd)/target}/release/metasystem}
[ -x "$bin" ] || { echo "build first: cargo build --release ($bin)" >&2; exit 2; }
for tool in python3 monit; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install monit python3)" >&2; exit 2; }
done
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" -gt $((n + 64)) ] || { echo "open files limit $(ulimit -n) too low for $n listeners" >&2; exit 2; }
hz=$(getconf CLK_TCK)

work=$(mktemp -d /tmp/msprobes.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.5
  rm -rf "$work"
}
trap cleanup EXIT

# The listeners: bound to 127.0.0.1 on free ports (written to ports.txt); on SIGUSR1 the
# accepted count of every port is written to counts.txt, in port order.
cat > "$work/listen.py" <<'PY'
import os, selectors, signal, socket, sys
n, ports_file, counts_file = int(sys.argv[1]), sys.argv[2], sys.argv[3]
sel = selectors.DefaultSelector()
socks, counts = [], [0] * n
for i in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(128)
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ, i)
    socks.append(s)
def write(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)
def dump(*_):
    write(counts_file, " ".join(map(str, counts)) + "\n")
signal.signal(signal.SIGUSR1, dump)
write(ports_file, "\n".join(str(s.getsockname()[1]) for s in socks) + "\n")
while True:
    for key, _ in sel.select():
        while True:
            try:
                c, _ = key.fileobj.accept()
            except OSError:
                break
            c.close()
            counts[key.data] += 1
PY
python3 "$work/listen.py" "$n" "$work/ports.txt" "$work/counts.txt" &
pids+=($!); listen_pid=$!
for _ in $(seq 1 100); do [ -s "$work/ports.txt" ] && break; sleep 0.1; done
[ -s "$work/ports.txt" ] || { echo "the listeners did not start" >&2; exit 1; }
mapfile -t ports < "$work/ports.txt"

# The accepted counts now, one per port (space-separated).
counts() {
  rm -f "$work/counts.txt"
  kill -USR1 "$listen_pid"
  for _ in $(seq 1 200); do [ -s "$work/counts.txt" ] && break; sleep 0.01; done
  cat "$work/counts.txt"
}
total() { counts | awk '{s = 0; for (i = 1; i <= NF; i++) s += $i; print s}'; }
# utime stime (ticks) of a process, every thread (dead ones included).
ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12, $13}'; }

# metasystem's config: N tcp probes, nothing else.
cat > "$work/supervision.toml" <<CONF
[daemon]
state_dir = "$work/home/.metasystem"
socket = "$work/home/.metasystem/control.sock"

[root]
strategy = "one_for_one"
CONF
for i in "${!ports[@]}"; do
  cat >> "$work/supervision.toml" <<CONF

[[root.children]]
name = "p$i"
kind = "probe"
check = "tcp"
addr = "127.0.0.1:${ports[$i]}"
every = "1s"
CONF
done

# monit's: the same ports, one host check each, every 1 s.
cat > "$work/monitrc" <<CONF
set daemon 1
set pidfile $work/monit.pid
set idfile $work/monit.id
set statefile $work/monit.state
set logfile $work/monit.log
CONF
for i in "${!ports[@]}"; do
  printf 'check host p%d with address 127.0.0.1\n    if failed port %s type tcp then alert\n' \
    "$i" "${ports[$i]}" >> "$work/monitrc"
done
chmod 600 "$work/monitrc"

echo "== machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, $(uname -r)"
echo "== versions: $("$bin" --version); $(monit -V | head -1); $(python3 --version)"
echo "== $n tcp probes every 1 s against $n loopback listeners; warm-up ${warmup}s, window ${window}s, $rounds round(s)"

# One daemon's window: PID NAME. Prints its figures and appends "name cpu_s checks secs" to
# results.txt.
measure() {
  local pid=$1 name=$2
  sleep "$warmup"
  local before after t0 t1
  before=$(counts); read -r u0 s0 < <(ticks "$pid"); t0=$(date +%s.%N)
  sleep "$window"
  after=$(counts); read -r u1 s1 < <(ticks "$pid"); t1=$(date +%s.%N)
  local rss threads
  rss=$(awk '/VmRSS/{print $2}' "/proc/$pid/status")
  threads=$(awk '/Threads/{print $2}' "/proc/$pid/status")
  python3 - "$name" "$n" "$hz" "$u0" "$s0" "$u1" "$s1" "$t0" "$t1" "$rss" "$threads" "$before" "$after" \
    >> "$work/results.txt" <<'PY'
import sys
name, n, hz = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
u0, s0, u1, s1 = map(int, sys.argv[4:8])
t0, t1 = float(sys.argv[8]), float(sys.argv[9])
rss, threads = int(sys.argv[10]), sys.argv[11]
before = list(map(int, sys.argv[12].split()))
after = list(map(int, sys.argv[13].split()))
per_port = [a - b for a, b in zip(after, before)]
checks = sum(per_port)
secs = t1 - t0
user, sys_ = (u1 - u0) / hz, (s1 - s0) / hz
cpu = user + sys_
cycles = checks / n
print(f"{name} {cpu:.2f} {checks} {secs:.2f}")
print(f"{name:<10} CPU {cpu:6.2f} s in {secs:.1f} s ({100 * cpu / secs:5.2f}% of a core; user {user:.2f}, sys {sys_:.2f})"
      f"  checks {checks} ({checks / secs:.0f}/s; per port {min(per_port)}..{max(per_port)};"
      f" one cycle every {secs / cycles:.3f} s)  CPU per check {1e6 * cpu / max(checks, 1):6.1f} us"
      f"  RSS {rss / 1024:.1f} MB  threads {threads}", file=sys.stderr)
PY
}

for round in $(seq 1 "$rounds"); do
  echo "-- round $round"
  # metasystem, alone.
  rm -rf "$work/home"; mkdir -p "$work/home"
  accepted0=$(total)
  HOME="$work/home" "$bin" run --config "$work/supervision.toml" 2>"$work/metasystem.log" &
  ms_pid=$!; pids+=($ms_pid)
  for _ in $(seq 1 300); do
    HOME="$work/home" "$bin" --config "$work/supervision.toml" status >/dev/null 2>&1 && break
    sleep 0.1
  done
  measure "$ms_pid" metasystem
  kill -TERM "$ms_pid"; wait "$ms_pid" || true
  # What the daemon recorded (and that every check passed), against what the listeners saw.
  accepted=$(( $(total) - accepted0 ))
  python3 - "$work/home/.metasystem/metastore.db" "$accepted" <<'PY'
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
n, failed = db.execute("SELECT count(*), sum(ok = 0) FROM samples WHERE name = 'probe_check'").fetchone()
print(f"           stored since its start: {n} probe_check samples, {failed or 0} failed; listeners: {sys.argv[2]} accepted")
PY
  # monit, alone.
  monit -I -c "$work/monitrc" >"$work/monit.out" 2>&1 &
  mo_pid=$!; pids+=($mo_pid)
  measure "$mo_pid" monit
  failed=$(grep -c "failed" "$work/monit.log" 2>/dev/null || true)
  echo "           monit log: $(wc -l < "$work/monit.log") lines, ${failed:-0} 'failed'"
  kill -TERM "$mo_pid"; wait "$mo_pid" || true
  rm -f "$work/monit.log" "$work/monit.state"
done

python3 - "$work/results.txt" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
per = {}
for name, cpu, checks, secs in rows:
    per.setdefault(name, []).append(1e6 * float(cpu) / max(int(checks), 1))
ours, theirs = per["metasystem"], per["monit"]
print("== CPU per check (us): metasystem", " ".join(f"{x:.1f}" for x in ours),
      "| monit", " ".join(f"{x:.1f}" for x in theirs))
m, o = statistics.median(ours), statistics.median(theirs)
ratio = m / o
print(f"== median: metasystem {m:.1f} us, monit {o:.1f} us per check; ratio {ratio:.2f}"
      f" (target <= 0.5: {'met' if ratio <= 0.5 else 'NOT met'})")
PY
