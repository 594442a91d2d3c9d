#!/usr/bin/env bash
# Sync benchmark: metasystem's bidirectional sync (a real daemon, `metasystem sync NAME`) side by
# side with `rsync -a` (one-way), `unison -batch` and `rclone bisync` (both bidirectional) and
# `cp`, on the same trees in one run:
#   - 100,000 files of 4 KiB in 1,000 folders: initial copy, no-op run, 100 files changed;
#   - one 1 GiB file: initial copy.
#
#   cargo build --release && benches/sync.sh
#
# ROUNDS (default 3): rounds per tool, each from an empty destination (the initial copy), then
# NOOPS (default 3) no-op runs and CHANGES (default 3) runs after 100 files of the source were
# rewritten; medians over every run of a kind. RCLONE_ROUNDS (default 1): rclone bisync is slow
# (15-20 s per no-op run here), fewer rounds of it. BIG_ROUNDS (default 3): 1 GiB copies per tool.
# TOOLS (default "metasystem rsync unison rclone cp"): which to run. WORK: where the trees go
# (default a temp dir in /tmp; needs ~2.5 GB; removed at the end). The binary is
# $METASYSTEM_BIN, else $CARGO_TARGET_DIR/release/metasystem, else target/release/metasystem.
#
# Every timed step starts after a `sync` (untimed), so no tool pays for the previous one's
# writeback; the page cache is warm for all (the source is read once before the first step).
# metasystem: a daemon per round with a fresh state dir and one child `kind = "sync_target"`
# (primary = the source, target = the destination, direction = bidirectional, every = 24h);
# the first scheduled run (5 s after start) finds the forced one running or just finished and
# does nothing. Timed: the whole CLI process `metasystem sync t` (it waits for the run). Its
# memory: VmHWM of the daemon after the round (peak, initial copy included) and VmHWM of a
# daemon restarted on the same state (base loaded from the store) after no-op and changed runs.
# Only metasystem makes copies durable (fsync) before it answers; `cp+sync` is `cp` followed by
# `sync -f` on the destination's filesystem, the durable equivalent.
#
# Needs: python3, rsync, unison, rclone (Debian: apt-get install -y rsync unison rclone).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-3}
noops=${NOOPS:-3}
changes=${CHANGES:-3}
rclone_rounds=${RCLONE_ROUNDS:-1}
big_rounds=${BIG_ROUNDS:-3}
tools=${TOOLS:-"metasystem rsync unison rclone cp"}
bin=${METASYSTEM_BIN:-${CARGO_TARGET_DIR:-$(pwd)/target}/release/metasystem}
[ -x "$bin" ] || { echo "build first: cargo build --release ($bin)" >&2; exit 2; }
for tool in python3 rsync unison rclone; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install -y rsync unison rclone)" >&2; exit 2; }
done

work=${WORK:-$(mktemp -d /tmp/mssync.XXXXXX)}
mkdir -p "$work"
ms_pid=
cleanup() {
  [ -n "$ms_pid" ] && kill "$ms_pid" 2>/dev/null && wait "$ms_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
results=$work/results.txt
: > "$results"

src=$work/src
dst=$work/dst
export UNISON=$work/unison
export RCLONE_CONFIG=$work/rclone.conf
: > "$RCLONE_CONFIG"

# The 100k tree: d000..d999, each f00..f99, 4 KiB of random bytes each.
make_tree() {
  python3 - "$1" <<'PY'
import os, sys
root = sys.argv[1]
for d in range(1000):
    p = os.path.join(root, f"d{d:03d}")
    os.makedirs(p, exist_ok=True)
    for f in range(100):
        with open(os.path.join(p, f"f{f:02d}"), "wb") as fh:
            fh.write(os.urandom(4096))
PY
}

# Rewrites 100 files of the source (new random contents, new mtime), a different 100 each time.
change_seq=0
change100() {
  change_seq=$((change_seq + 1))
  python3 - "$src" "$change_seq" <<'PY'
import os, sys
root, seq = sys.argv[1], int(sys.argv[2])
for i in range(100):
    n = (seq * 7919 + i * 997) % 100000
    with open(os.path.join(root, f"d{n // 100:03d}", f"f{n % 100:02d}"), "wb") as fh:
        fh.write(os.urandom(4096))
PY
}

# Times "$@" (a whole process): appends "TOOL SCENARIO SECONDS" to the results.
timed() {
  local tool=$1 scenario=$2; shift 2
  sync
  local t0=$EPOCHREALTIME
  "$@" >"$work/out.txt" 2>"$work/err.txt" || {
    echo "$tool $scenario failed:" >&2; tail -5 "$work/out.txt" "$work/err.txt" >&2; exit 1; }
  local t1=$EPOCHREALTIME
  local s
  s=$(python3 -c "print(f'{$t1 - $t0:.3f}')")
  echo "$tool $scenario $s" >> "$results"
  printf '   %-10s %-12s %7s s\n' "$tool" "$scenario" "$s"
}

# metasystem: a daemon on SRC -> DEST with a fresh (or kept: $3 = keep) state dir.
ms_conf() {
  local from=$1 to=$2
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
primary = "$from"
target = "$to"
direction = "bidirectional"
every = "24h"
max_delete = "100%"
CONF
}
ms_start() {
  HOME="$work/ms" "$bin" run --config "$work/ms/supervision.toml" 2>>"$work/ms/daemon.log" &
  ms_pid=$!
  for _ in $(seq 1 300); do
    "$bin" --config "$work/ms/supervision.toml" status >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "the daemon did not start" >&2; tail "$work/ms/daemon.log" >&2; exit 1
}
ms_stop() {
  kill -TERM "$ms_pid"; wait "$ms_pid" || true; ms_pid=
}
ms_hwm() { awk '/VmHWM/{printf "%.1f", $2/1024}' "/proc/$ms_pid/status"; }
ms_sync() {
  "$bin" --config "$work/ms/supervision.toml" sync t --json
}
# Checks the last sync's report: success and the expected number of files copied.
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

# One round of a tool on the 100k tree: initial copy, no-op runs, changed runs.
round100k() {
  local tool=$1
  rm -rf "$dst" "$UNISON" "$work/bisync" "$work/ms"
  sync
  case $tool in
    metasystem)
      ms_conf "$src" "$dst"; mkdir -p "$dst"
      ms_start
      timed metasystem initial ms_sync; ms_check 100000
      for _ in $(seq 1 "$noops"); do timed metasystem noop ms_sync; ms_check 0; done
      for _ in $(seq 1 "$changes"); do change100; timed metasystem changed100 ms_sync; ms_check 100; done
      local hwm; hwm=$(ms_hwm)
      ms_stop
      # The same state, a fresh daemon: its memory with the base loaded, for no-op and changed runs.
      ms_start
      for _ in $(seq 1 "$noops"); do timed metasystem noop ms_sync; ms_check 0; done
      for _ in $(seq 1 "$changes"); do change100; timed metasystem changed100 ms_sync; ms_check 100; done
      local hwm2; hwm2=$(ms_hwm)
      local rss; rss=$(awk '/VmRSS/{printf "%.1f", $2/1024}' "/proc/$ms_pid/status")
      ms_stop
      echo "metasystem hwm_initial $hwm" >> "$results"
      echo "metasystem hwm_restarted $hwm2" >> "$results"
      echo "   metasystem VmHWM ${hwm} MiB (round with the initial copy), ${hwm2} MiB (restarted: no-op + changed runs; VmRSS after: ${rss} MiB)"
      ;;
    rsync)
      timed rsync initial rsync -a "$src/" "$dst/"
      for _ in $(seq 1 "$noops"); do timed rsync noop rsync -a "$src/" "$dst/"; done
      for _ in $(seq 1 "$changes"); do change100; timed rsync changed100 rsync -a "$src/" "$dst/"; done
      ;;
    unison)
      mkdir -p "$dst"
      local u=(unison "$src" "$dst" -batch -times -ui text)
      timed unison initial "${u[@]}"
      for _ in $(seq 1 "$noops"); do timed unison noop "${u[@]}"; done
      for _ in $(seq 1 "$changes"); do change100; timed unison changed100 "${u[@]}"; done
      ;;
    rclone)
      mkdir -p "$dst" "$work/bisync"
      local r=(rclone bisync "$src" "$dst" --workdir "$work/bisync")
      timed rclone initial "${r[@]}" --resync
      for _ in $(seq 1 "$noops"); do timed rclone noop "${r[@]}"; done
      for _ in $(seq 1 "$changes"); do change100; timed rclone changed100 "${r[@]}"; done
      ;;
    cp)
      timed cp-a initial cp -a "$src" "$dst"
      rm -rf "$dst"; sync
      timed cp-a+sync initial bash -c 'cp -a "$1" "$2" && sync -f "$2"' - "$src" "$dst"
      ;;
  esac
  rm -rf "$dst"
}

# One 1 GiB copy per tool.
round_big() {
  local tool=$1 from=$work/bigsrc to=$work/bigdst
  rm -rf "$to" "$UNISON" "$work/bisync" "$work/ms"
  mkdir -p "$to"
  sync
  case $tool in
    metasystem)
      ms_conf "$from" "$to"; ms_start
      timed metasystem big ms_sync; ms_check 1
      ms_stop ;;
    rsync) timed rsync big rsync -a "$from/" "$to/" ;;
    unison) timed unison big unison "$from" "$to" -batch -times -ui text ;;
    rclone) timed rclone big rclone bisync "$from" "$to" --workdir "$work/bisync" --resync ;;
    cp)
      timed cp big cp "$from/big" "$to/big"
      rm -f "$to/big"; sync
      timed cp+sync big bash -c 'cp "$1" "$2" && sync -f "$2"' - "$from/big" "$to/big"
      ;;
  esac
  rm -rf "$to"
}

echo "== machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, $(uname -r), $(df -T "$work" | awk 'NR==2{print $2}') at $work"
echo "== versions: $("$bin" --version); $(rsync --version | head -1); $(unison -version); $(rclone version | head -1)"
echo "== 100,000 files of 4 KiB in 1,000 folders; $rounds round(s) (rclone $rclone_rounds): initial copy, $noops no-op, $changes x 100 changed"
make_tree "$src"
sync
find "$src" -type f -exec cat {} + > /dev/null   # warm the source's pages for every tool alike
for r in $(seq 1 "$rounds"); do
  echo "-- round $r"
  for tool in $tools; do
    [ "$tool" = rclone ] && [ "$r" -gt "$rclone_rounds" ] && continue
    round100k "$tool"
  done
done
rm -rf "$src" "$dst"

echo "== one 1 GiB file; $big_rounds round(s)"
mkdir -p "$work/bigsrc"
head -c $((1024 * 1024 * 1024)) /dev/urandom > "$work/bigsrc/big"
sync
cat "$work/bigsrc/big" > /dev/null
for r in $(seq 1 "$big_rounds"); do
  echo "-- round $r"
  for tool in $tools; do round_big "$tool"; done
done
rm -rf "$work/bigsrc"

python3 - "$results" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    tool, scen, v = line.split()
    runs.setdefault((tool, scen), []).append(float(v))
med = {k: statistics.median(v) for k, v in runs.items()}
def m(tool, scen):
    return med.get((tool, scen))
print("== medians (s; memory MiB)")
order = ["initial", "noop", "changed100", "big", "hwm_initial", "hwm_restarted"]
tools = []
for (t, _) in runs:
    if t not in tools:
        tools.append(t)
print(f"{'tool':<12}" + "".join(f"{s:>15}" for s in order))
for t in tools:
    cells = []
    for s in order:
        v = runs.get((t, s))
        cells.append(f"{statistics.median(v):>9.3f} ({len(v)})" if v else f"{'-':>15}")
    print(f"{t:<12}" + "".join(cells))
def ratio(what, a, b, target, below=True):
    if a is None or b is None:
        return
    r = a / b
    ok = r <= target
    print(f"{what}: {a:.3f} / {b:.3f} = {r:.2f} (target <= {target}: {'met' if ok else 'NOT met'})")
print("== ratios (targets of issue 19)")
ratio("no-op vs rsync", m("metasystem", "noop"), m("rsync", "noop"), 0.5)
ratio("100 changed vs rsync", m("metasystem", "changed100"), m("rsync", "changed100"), 0.5)
ratio("initial 100k vs cp -a", m("metasystem", "initial"), m("cp-a", "initial"), 1.2)
ratio("initial 100k vs cp -a + sync", m("metasystem", "initial"), m("cp-a+sync", "initial"), 1.0)
ratio("1 GiB vs cp", m("metasystem", "big"), m("cp", "big"), 1.2)
ratio("1 GiB vs cp + sync", m("metasystem", "big"), m("cp+sync", "big"), 1.0)
for k in ("hwm_initial", "hwm_restarted"):
    v = m("metasystem", k)
    if v is not None:
        mb = v * 1.048576
        print(f"memory {k}: {v:.1f} MiB = {mb:.1f} MB (target < 50 MB: {'met' if mb < 50 else 'NOT met'})")
PY
