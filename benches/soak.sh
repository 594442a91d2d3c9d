#!/usr/bin/env bash
# Soak benchmark: a tree of 36 actors under every strategy (one_for_one, one_for_all, rest_for_one,
# dynamic, and a nested level), random `metasystem kill`s of its leaf workers at RATE per second
# for SECONDS. Checks that every kill the daemon accepted is recorded as an exit in metastore.db
# (read from the file after an orderly shutdown), and reports the daemon's RSS, threads and open
# fds at the start, every 30 s and at the end, and the kill latency (the whole CLI process).
#
#   cargo build --release && benches/soak.sh [SECONDS] [RATE]      (defaults 180 and 20)
#
# Needs: python3 (standard library only). SOAK_SEED=N makes the sequence of kills repeatable.
# Everything runs in a temp dir (config, state dir, socket, database), deleted at the end unless
# the check fails, when it is kept for inspection. Exit code 0 only if kills accepted == exits
# recorded, no kill hit a connection error and the daemon stopped with 0.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-180}
rate=${2:-20}
[[ $seconds =~ ^[1-9][0-9]*$ && $rate =~ ^[1-9][0-9]*$ ]] \
  || { echo "usage: benches/soak.sh [SECONDS] [RATE]   (positive integers; defaults 180 and 20)" >&2; exit 2; }
bin=$(pwd)/target/release/metasystem
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 2; }
command -v python3 >/dev/null || { echo "missing python3" >&2; exit 2; }
seed=${SOAK_SEED:-$RANDOM}

work=$(mktemp -d /tmp/mssoak.XXXXXX)
daemon_pid=
keep=0
cleanup() {
  if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
    kill "$daemon_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$daemon_pid" 2>/dev/null || true
  fi
  if [ "$keep" = 1 ]; then echo "kept for inspection: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

# The tree. Every supervisor: restart intensity that 20 kills/s never reaches, no backoff (OTP's
# immediate restart), so a killed worker is back at once. Leaves are heartbeats (every 1 s).
state=$work/state
cfg=$work/supervision.toml
python3 - "$state" > "$cfg" <<'PY'
import sys
state = sys.argv[1]
SUP = 'intensity = 100000\nperiod = "1s"'
out = [f'[daemon]\nstate_dir = "{state}"\nsocket = "{state}/control.sock"\n',
       f'[root]\nstrategy = "one_for_one"\n{SUP}\n']

def workers(prefix, n):
    for i in range(1, n + 1):
        out.append(f'[[{prefix}.children]]\nname = "w{i}"\nkind = "heartbeat"\nevery = "1s"\n')

def supervisor(prefix, name, strategy):
    out.append(f'[[{prefix}.children]]\nname = "{name}"\nkind = "supervisor"\n'
               f'strategy = "{strategy}"\n{SUP}\n')
    return f"{prefix}.children"

out.append('[[root.children]]\nname = "beat"\nkind = "heartbeat"\nevery = "1s"\n')
for strategy in ("one_for_one", "one_for_all", "rest_for_one", "dynamic"):
    workers(supervisor("root", strategy, strategy), 5)
nested = supervisor("root", "nested", "one_for_one")
workers(supervisor(nested, "inner_all", "one_for_all"), 3)
workers(supervisor(nested, "inner_rest", "rest_for_one"), 3)
out.append(f'[[{nested}.children]]\nname = "solo"\nkind = "heartbeat"\nevery = "1s"\n')
print("\n".join(out))
PY
"$bin" check "$cfg" >/dev/null || { echo "generated config is invalid: $cfg" >&2; keep=1; exit 2; }

"$bin" --config "$cfg" run 2>"$work/daemon.log" &
daemon_pid=$!
# Wait (bounded, 10 s) until it answers.
for _ in $(seq 1 100); do
  "$bin" --config "$cfg" status >/dev/null 2>&1 && break
  kill -0 "$daemon_pid" 2>/dev/null || { echo "daemon exited at start:" >&2; cat "$work/daemon.log" >&2; exit 2; }
  sleep 0.1
done
"$bin" --config "$cfg" status >/dev/null 2>&1 || { echo "daemon does not answer after 10 s" >&2; keep=1; exit 2; }

echo "== machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r)"
echo "== versions: $("$bin" --version) ($(git rev-parse --short HEAD 2>/dev/null || echo '?')), $(python3 --version)"
echo "== soak: ${seconds}s of random kills at ${rate}/s (seed $seed), daemon pid $daemon_pid"

# The driver: kills on an absolute schedule (kill i is due at start + i/RATE; a slow call delays
# the next ones, which then run back to back until the schedule is caught up), one at a time,
# each timed as a whole process. Samples the daemon's /proc every 30 s. One kill at a time means
# a kill never reaches the daemon while the exit of the previous one is still in flight.
set +e
python3 - "$bin" "$cfg" "$daemon_pid" "$seconds" "$rate" "$seed" "$work/driver.json" <<'PY'
import json, math, os, random, subprocess, sys, time
bin, cfg, pid, seconds, rate, seed, out = sys.argv[1:]
pid, seconds, rate, seed = int(pid), int(seconds), int(rate), int(seed)

def cli(*args, timeout=15):
    return subprocess.run([bin, "--config", cfg, "--timeout", "10s", *args, "--json"],
                          capture_output=True, text=True, timeout=timeout)

def sample():
    status = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            status[k] = v.split()
    return {"rss_kb": int(status["VmRSS"][0]), "threads": int(status["Threads"][0]),
            "fds": len(os.listdir(f"/proc/{pid}/fd"))}

def daemon_status():
    r = cli("status")
    return json.loads(r.stdout) if r.stdout.strip() else {"error": r.stderr.strip()}

st = daemon_status()
actors = sum(st.get(k, 0) for k in ("running", "restarting", "stopped", "failed"))
tree = json.loads(cli("tree").stdout)["nodes"]
leaves = [n["path"] for n in tree if n["kind"] == "heartbeat"]
strategies = sorted({n["strategy"] for n in tree if n["kind"] == "supervisor"})
rng = random.Random(seed)

samples = [dict(t=0.0, **sample())]
latencies, accepted, refused, errors = [], {}, {}, []
lag_max, late = 0.0, 0
slowest = (0.0, 0.0)  # (seconds, when: seconds into the run)
total = seconds * rate
start = time.monotonic()
t_start = time.perf_counter()
next_sample = 30.0

def progress(s, n):
    print(f"   t={s['t']:5.0f}s  RSS {s['rss_kb']/1024:5.1f} MB  threads {s['threads']}  fds {s['fds']}"
          f"  kills {n} (accepted {sum(accepted.values())})", flush=True)

progress(samples[0], 0)
for i in range(total):
    due = start + i / rate
    now = time.monotonic()
    if now < due:
        time.sleep(due - now)
    else:
        lag = now - due
        lag_max = max(lag_max, lag)
        late += lag > 1 / rate
    if time.monotonic() - start >= next_sample:
        if not os.path.exists(f"/proc/{pid}"):
            errors.append("daemon gone")
            break
        samples.append(dict(t=time.monotonic() - start, **sample()))
        progress(samples[-1], i)
        next_sample += 30.0
    path = rng.choice(leaves)
    t0 = time.perf_counter()
    try:
        r = cli("kill", path)
    except subprocess.TimeoutExpired:
        errors.append(f"kill {path}: timed out")
        continue
    latencies.append(time.perf_counter() - t0)
    if latencies[-1] > slowest[0]:
        slowest = (latencies[-1], t0 - t_start)
    if r.returncode == 0:
        accepted[path] = accepted.get(path, 0) + 1
    elif r.returncode == 1:
        try:
            code = json.loads(r.stdout)["error"]["code"]
        except (ValueError, KeyError, TypeError):
            code = "unparsed: " + (r.stdout + r.stderr).strip()[:200]
        refused[code] = refused.get(code, 0) + 1
    else:
        errors.append(f"kill {path}: exit {r.returncode}: {(r.stdout + r.stderr).strip()[:200]}")
        if not os.path.exists(f"/proc/{pid}"):
            errors.append("daemon gone")
            break
elapsed = time.monotonic() - start

# The end: right after the last kill, then once restarts have settled (1 s).
end = {}
if os.path.exists(f"/proc/{pid}"):
    end = dict(t=elapsed, **sample())
    time.sleep(1)
    settled = dict(t=time.monotonic() - start, **sample())
    samples += [end, settled]
    progress(end, len(latencies))
    st_end = daemon_status()
else:
    st_end = {"error": "daemon gone"}

lat = sorted(latencies)
def pct(q):
    return lat[min(len(lat) - 1, max(0, math.ceil(q * len(lat)) - 1))] * 1000 if lat else float("nan")
json.dump(dict(actors=actors, leaves=len(leaves), strategies=strategies, seed=seed,
               attempted=len(latencies), accepted=accepted, refused=refused, errors=errors,
               elapsed=elapsed, late=late, lag_max=lag_max, samples=samples,
               p50=pct(0.50), p90=pct(0.90), p99=pct(0.99), max=pct(1.0), max_at=slowest[1],
               status_start=st, status_end=st_end), open(out, "w"))
PY
driver_rc=$?
set -e
[ -f "$work/driver.json" ] || { echo "driver failed (exit $driver_rc)" >&2; keep=1; exit 1; }

# Orderly shutdown; wait (bounded, 30 s) for the daemon to exit, then read its exit code.
daemon_rc=none
if kill -0 "$daemon_pid" 2>/dev/null; then
  "$bin" --config "$cfg" shutdown >/dev/null 2>&1 || echo "shutdown request failed" >&2
  for _ in $(seq 1 300); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
fi
if kill -0 "$daemon_pid" 2>/dev/null; then
  daemon_rc="still running 30 s after shutdown"
else
  set +e; wait "$daemon_pid"; daemon_rc=$?; set -e
  daemon_pid=
fi

# The record: exits in the database file, read after the daemon stopped.
set +e
python3 - "$work/driver.json" "$state/metastore.db" "$seconds" "$rate" "$daemon_rc" <<'PY'
import json, sqlite3, sys
d = json.load(open(sys.argv[1]))
db, seconds, rate, daemon_rc = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]

con = sqlite3.connect(db)
recorded, reasons = {}, {}
for path, data in con.execute("SELECT path, data FROM events WHERE kind = 'exited'"):
    data = json.loads(data) if data else {}
    if data.get("error") == "injected failure":
        recorded[path] = recorded.get(path, 0) + 1
    else:
        why = data.get("reason", "?")
        reasons[why] = reasons.get(why, 0) + 1
kinds = dict(con.execute("SELECT kind, count(*) FROM events GROUP BY kind"))
con.close()

acc, rec = sum(d["accepted"].values()), sum(recorded.values())
s = d["samples"]
first, last = s[0], s[-1]
mb = lambda kb: f"{kb/1024:.1f}"
refused = ", ".join(f"{k} {v}" for k, v in sorted(d["refused"].items())) or "none"
others = ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())) or "none"
store = d["status_end"].get("store", {})
end_states = {k: d["status_end"].get(k) for k in ("running", "restarting", "stopped", "failed")}
ok = acc == rec and not d["errors"] and daemon_rc == "0"

print(f"""== results
duration            {d['elapsed']:.1f} s (asked {seconds} s), rate {rate}/s, seed {d['seed']}
schedule            {d['late']} kills late by more than 1/rate, max lag {d['lag_max']*1000:.1f} ms
actors              {d['actors']} (root included; {d['leaves']} leaf workers killed at random; strategies {', '.join(d['strategies'])})
kills               {d['attempted']} sent: {acc} accepted, refused: {refused}, errors: {len(d['errors'])}
exits recorded      {rec} injected failures in metastore.db after shutdown: {'EQUAL' if acc == rec else 'NOT EQUAL'} to kills accepted
other exits         {others} (bystanders of group restarts, and the final shutdown)
events in file      {sum(kinds.values())} ({', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))})
RSS                 {mb(first['rss_kb'])} -> {mb(last['rss_kb'])} MB (samples: {' '.join(mb(x['rss_kb']) for x in s)})
threads             {first['threads']} -> {last['threads']}
open fds            {first['fds']} -> {last['fds']}
kill latency        p50 {d['p50']:.2f} ms, p90 {d['p90']:.2f} ms, p99 {d['p99']:.2f} ms, max {d['max']:.2f} ms at t={d['max_at']:.0f}s (whole CLI process)
tree at the end     {', '.join(f'{k} {v}' for k, v in end_states.items())}
store at the end    written {store.get('written')}, dropped {store.get('dropped')}, write failures {store.get('write_failures')}
daemon exit code    {daemon_rc}""")
for e in d["errors"][:10]:
    print(f"error: {e}")
if acc != rec:
    for path in sorted(set(d["accepted"]) | set(recorded)):
        a, r = d["accepted"].get(path, 0), recorded.get(path, 0)
        if a != r:
            print(f"mismatch: {path}: {a} kills accepted, {r} exits recorded")
print("== PASS" if ok else "== FAIL")
sys.exit(0 if ok else 1)
PY
rc=$?
set -e
[ "$rc" = 0 ] || keep=1
exit "$rc"
