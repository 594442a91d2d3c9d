#!/usr/bin/env bash
# The million-file row of the sync benchmark (issue 23): 1,000,000 files of 1 KiB in a
# realistic tree (benches/tree.py: folders to depth 6, fan-out 0-12, files per folder
# heavy-tailed up to 10,000, names of varied length), side by side with `rsync -a`
# (one-way) and `unison -batch`, in one run:
#   - the initial copy (untimed for unison when UNISON_INITIAL=0),
#   - NOOPS no-op runs, CHANGES runs after 100 files of the source were rewritten;
#   - peak memory: `/usr/bin/time -v`'s maximum resident set of each peer's run (its largest
#     process) and the sum over its processes sampled every 20 ms; metasystem's daemon VmHWM
#     (one process does all the work) over its no-op and changed runs, on a daemon restarted
#     after the initial copy (base loaded from the store);
#   - `metasystem sync status` answered during a no-op run: every 100 ms while it runs.
#
#   cargo build --release && benches/sync1m.sh
#
# NOOPS, CHANGES (default 3 each; UNISON_RUNS, default 1, for unison, whose runs take minutes). WORK: where the trees go (default /work/bench1m-run; needs
# ~10 GB and 2.2 M inodes; removed at the end unless KEEP=1). SRC: an existing tree to use
# instead of generating one. TOOLS (default "metasystem rsync unison").
set -euo pipefail
cd "$(dirname "$0")/.."
noops=${NOOPS:-3}
changes=${CHANGES:-3}
unison_runs=${UNISON_RUNS:-1}
tools=${TOOLS:-"metasystem rsync unison"}
bin=${METASYSTEM_BIN:-${CARGO_TARGET_DIR:-$(pwd)/target}/release/metasystem}
[ -x "$bin" ] || { echo "build first: cargo build --release ($bin)" >&2; exit 2; }
for tool in python3 rsync unison /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install -y rsync unison time)" >&2; exit 2; }
done
work=${WORK:-/work/bench1m-run}
mkdir -p "$work"
ms_pid=
cleanup() {
  [ -n "$ms_pid" ] && kill "$ms_pid" 2>/dev/null && wait "$ms_pid" 2>/dev/null
  [ "${KEEP:-0}" = 1 ] || rm -rf "$work/dst" "$work/ms" "$work/unison"
}
trap cleanup EXIT
results=$work/results.txt
: > "$results"
src=${SRC:-$work/src}
dst=$work/dst
export UNISON=$work/unison

if [ ! -d "$src" ]; then
  echo "== generating $src"
  python3 benches/tree.py "$src" 1000000 1024
fi
nfiles=$(find "$src" -type f | wc -l)

# Rewrites 100 files of the source, a different 100 each time (every 9,973rd file of the
# sorted list, shifted by the round).
change_seq=0
find "$src" -type f | sort > "$work/files.txt"
change100() {
  change_seq=$((change_seq + 1))
  python3 - "$work/files.txt" "$change_seq" <<'PY'
import os, sys
files = open(sys.argv[1]).read().split("\n")[:-1]
seq = int(sys.argv[2])
for i in range(100):
    with open(files[(seq * 7919 + i * 9973) % len(files)], "wb") as fh:
        fh.write(os.urandom(1024))
PY
}

# Samples the summed RSS (kB) of PID and its descendants every 20 ms into FILE's last line
# as the maximum seen, until PID is gone.
rss_sum_max() {
  local pid=$1 out=$2
  python3 - "$pid" "$out" <<'PY' &
import os, sys, time
root, out = int(sys.argv[1]), sys.argv[2]
peak = 0
def tree(pid):
    kids = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        kids.append(int(p))
            except OSError:
                pass
    return [pid] + [d for k in kids for d in tree(k)]
while os.path.exists(f"/proc/{root}"):
    total = 0
    for p in tree(root):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    peak = max(peak, total)
    time.sleep(0.02)
open(out, "w").write(str(peak))
PY
}

# Times "$@" under /usr/bin/time -v: "TOOL SCENARIO SECONDS", "TOOL maxrss_SCENARIO KB" and the
# sampled sum "TOOL sumrss_SCENARIO KB".
timed() {
  local tool=$1 scenario=$2; shift 2
  sync
  local t0=$EPOCHREALTIME
  /usr/bin/time -v -o "$work/time.txt" "$@" >"$work/out.txt" 2>"$work/err.txt" &
  local pid=$!
  rss_sum_max "$pid" "$work/sum.txt"
  local sampler=$!
  wait "$pid" || { echo "$tool $scenario failed:" >&2; tail -n 5 "$work/out.txt" "$work/err.txt" >&2; exit 1; }
  local t1=$EPOCHREALTIME
  wait "$sampler" || true
  local s kb sum
  s=$(python3 -c "print(f'{$t1 - $t0:.3f}')")
  kb=$(awk -F': ' '/Maximum resident/{print $2}' "$work/time.txt")
  sum=$(cat "$work/sum.txt")
  echo "$tool $scenario $s" >> "$results"
  echo "$tool maxrss_$scenario $kb" >> "$results"
  echo "$tool sumrss_$scenario $sum" >> "$results"
  printf '   %-10s %-12s %8s s   max RSS %7s kB (one process)  %7s kB (all)\n' "$tool" "$scenario" "$s" "$kb" "$sum"
}

ms_conf() {
  mkdir -p "$work/ms"
  cat > "$work/ms/supervision.toml" <<CONF
[daemon]
state_dir = "$work/ms/state"
socket = "$work/ms/state/control.sock"

[root]
strategy = "one_for_one"

[[root.children]]
name = "t"
kind = "sync_target"
primary = "$src"
target = "$dst"
direction = "bidirectional"
every = "24h"
max_delete = "100%"
CONF
}
ms_start() {
  HOME="$work/ms" "$bin" run --config "$work/ms/supervision.toml" 2>>"$work/ms/daemon.log" &
  ms_pid=$!
  for _ in $(seq 1 600); do
    "$bin" --config "$work/ms/supervision.toml" status >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "the daemon did not start" >&2; tail "$work/ms/daemon.log" >&2; exit 1
}
ms_stop() { kill -TERM "$ms_pid"; wait "$ms_pid" || true; ms_pid=; }
ms_kb() { awk -v k="$1:" '$1==k{print $2}' "/proc/$ms_pid/status"; }
ms_sync=("$bin" --config "$work/ms/supervision.toml" --timeout 1h sync t --json)
ms_check() {
  python3 - "$work/out.txt" "$1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["reports"][0]
want = int(sys.argv[2])
got = r["copied_to_remote"] + r["copied_to_local"]
if r["outcome"] != "success" or got != want:
    sys.exit(f"metasystem: outcome {r['outcome']} ({r.get('reason')}), {got} copied, expected {want}")
PY
}
# `sync status` every 100 ms while a no-op run goes: its wall times (ms) into the results.
status_during_run() {
  ( "$bin" --config "$work/ms/supervision.toml" --timeout 1h sync t --json > /dev/null ) &
  local run=$!
  local n=0
  while kill -0 "$run" 2>/dev/null && [ "$n" -lt 600 ]; do
    local t0=$EPOCHREALTIME
    "$bin" --config "$work/ms/supervision.toml" sync status > /dev/null
    local t1=$EPOCHREALTIME
    python3 -c "print('metasystem status_ms', f'{($t1 - $t0) * 1000:.1f}')" >> "$results"
    n=$((n + 1))
    sleep 0.1
  done
  wait "$run"
  echo "   metasystem sync status: $n answers during a no-op run"
}

round() {
  local tool=$1
  rm -rf "$dst" "$UNISON" "$work/ms"
  mkdir -p "$dst"
  sync
  case $tool in
    metasystem)
      ms_conf; ms_start
      timed metasystem initial "${ms_sync[@]}"; ms_check "$nfiles"
      echo "metasystem hwm_initial $(ms_kb VmHWM)" >> "$results"
      ms_stop
      # Restarted on the same state: the runs users make every day.
      ms_start
      echo "metasystem rss_idle_restarted $(ms_kb VmRSS)" >> "$results"
      for _ in $(seq 1 "$noops"); do timed metasystem noop "${ms_sync[@]}"; ms_check 0; done
      for _ in $(seq 1 "$changes"); do change100; timed metasystem changed100 "${ms_sync[@]}"; ms_check 100; done
      echo "metasystem hwm_runs $(ms_kb VmHWM)" >> "$results"
      status_during_run
      sleep 2
      echo "metasystem rss_idle_after_runs $(ms_kb VmRSS)" >> "$results"
      ms_stop
      ;;
    rsync)
      timed rsync initial rsync -a "$src/" "$dst/"
      for _ in $(seq 1 "$noops"); do timed rsync noop rsync -a "$src/" "$dst/"; done
      for _ in $(seq 1 "$changes"); do change100; timed rsync changed100 rsync -a "$src/" "$dst/"; done
      ;;
    unison)
      local u=(unison "$src" "$dst" -batch -times -ui text)
      timed unison initial "${u[@]}"
      for _ in $(seq 1 "$unison_runs"); do timed unison noop "${u[@]}"; done
      for _ in $(seq 1 "$unison_runs"); do change100; timed unison changed100 "${u[@]}"; done
      ;;
  esac
  rm -rf "$dst"
}

echo "== machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, $(uname -r), $(df -T "$work" | awk 'NR==2{print $2}') at $work"
echo "== versions: $("$bin" --version); $(rsync --version | head -1); $(unison -version)"
echo "== $nfiles files of 1 KiB; initial copy, $noops no-op, $changes x 100 changed; tools: $tools"
sync
find "$src" -type f -exec cat {} + > /dev/null   # warm the source's pages for every tool alike
for tool in $tools; do
  echo "-- $tool"
  round "$tool"
done

python3 - "$results" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    tool, scen, v = line.split()
    runs.setdefault((tool, scen), []).append(float(v))
def m(tool, scen):
    v = runs.get((tool, scen))
    return statistics.median(v) if v else None
print("== medians (s)")
for t in ("metasystem", "rsync", "unison"):
    cells = [f"{s} {m(t, s):.3f} ({len(runs[(t, s)])})" for s in ("initial", "noop", "changed100") if m(t, s) is not None]
    if cells:
        print(f"{t:<11} " + "  ".join(cells))
def ratio(what, a, b, target):
    if a is not None and b is not None:
        r = a / b
        print(f"{what}: {a:.3f} / {b:.3f} = {r:.2f} (target <= {target}: {'met' if r <= target else 'NOT met'})")
print("== time vs rsync one-way (target <= 0.5x)")
ratio("no-op", m("metasystem", "noop"), m("rsync", "noop"), 0.5)
ratio("100 changed", m("metasystem", "changed100"), m("rsync", "changed100"), 0.5)
print("== peak memory (MiB)")
def peak(t, k):
    return max(max(runs.get((t, f"{k}_{s}"), [0])) for s in ("noop", "changed100"))
for t in ("rsync", "unison"):
    if (t, "noop") in runs:
        print(f"{t}: no-op/changed runs: largest process {peak(t, 'maxrss') / 1024:.1f}, all processes {peak(t, 'sumrss') / 1024:.1f}; initial copy: {max(runs.get((t, 'maxrss_initial'), [0])) / 1024:.1f} / {max(runs.get((t, 'sumrss_initial'), [0])) / 1024:.1f}")
if ("metasystem", "hwm_runs") in runs:
    h = runs[("metasystem", "hwm_runs")][0] / 1024
    print(f"metasystem daemon VmHWM over no-op and changed runs (restarted): {h:.1f}; with the initial copy: {runs[('metasystem', 'hwm_initial')][0] / 1024:.1f}; idle after restart {runs[('metasystem', 'rss_idle_restarted')][0] / 1024:.1f}; idle after the runs {runs.get(('metasystem', 'rss_idle_after_runs'), [0])[0] / 1024:.1f}")
    r = peak("rsync", "sumrss") / 1024
    if r:
        print(f"vs rsync's no-op/changed runs (all processes): {h / r:.2f}x (target <= 1: {'met' if h <= r else 'NOT met'})")
st = runs.get(("metasystem", "status_ms"))
if st:
    st = sorted(st)
    print(f"sync status during a run: {len(st)} answers, median {statistics.median(st):.1f} ms, max {st[-1]:.1f} ms (target < 50: {'met' if st[-1] < 50 else 'NOT met'})")
PY
