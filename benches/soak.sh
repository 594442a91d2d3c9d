#!/usr/bin/env bash
# Soak benchmark: every kind in one daemon, under load, for SECONDS (default 600).
#
#   cargo build --release && benches/soak.sh [SECONDS] [RATE]      (defaults 600 and 20)
#
# The daemon runs, at once:
# - chaos: a tree of 36 actors under every strategy (one_for_one, one_for_all, rest_for_one,
#   dynamic, and a nested level) whose 28 heartbeat workers are killed at random with
#   `metasystem kill` at RATE per second (one CLI process each, on an absolute schedule);
# - a sync target (`sync_target`, strategy newest) syncing every 10 s between a primary folder and
#   a target folder, with random edits on both sides: small text files created, rewritten,
#   appended to and deleted, and an SQLite database edited with python3's sqlite3 module on both
#   sides; it pushes a snapshot of metastore.db every 2 minutes;
# - probes flapping: tcp and http probes against a loopback HTTP listener the script starts and
#   stops every 2-6 s, a command probe failing while a flag file exists (flipped every 3-9 s), a
#   process probe of the managed program, a breakers probe, sqlite, sync_recency, disk and
#   memory probes; heal actions (a command, a restart of the managed program);
# - alerts (`after` 1 for every severity) going out through a webhook channel to a loopback sink
#   (python3 http.server) that records every POST body;
# - a managed program (`process`: python3 that forks a child, both carrying a unique marker in
#   their argv) killed with SIGKILL every 3-6 s;
# - breakers (one guarding the sync target, one forced open and reset by the script every few
#   seconds), metrics (anomalies watched on sync_run, alert_delivery and a probe's checks), heartbeats,
#   and the daemon's HTTP listener (/metrics and /health scraped every 5 s).
#
# Every 60 s one row: elapsed, RSS (kB), open fds, threads, store size (metastore.db + -wal).
# At the end, once the load has stopped, it checks (exit 0 only if all hold):
# - kills accepted == exits recorded: every kill the daemon accepted is an `exited` event
#   ("injected failure") in metastore.db, read from the file after an orderly shutdown, and no
#   kill hit a connection error;
# - files converged: after one more `metasystem sync` (up to 5 tries while a run reports work
#   left), the synced paths of the primary and the target are the same byte for byte (conflict
#   copies `*.conflict-*` and the run's temps excluded; backups live in the state dir); an
#   SQLite database that is not byte-identical is compared by content (iterdump), since sync
#   copies a database as a `VACUUM INTO` snapshot;
# - alerts consistent: once the outbox has drained and nothing new was decided for 8 s, for every
#   alert key the sink's last word (firing or resolved; none counts as resolved) equals the status
#   of the key's latest notification in `metasystem alerts --json` (which lists the newest 10,000:
#   a key whose latest is older is compared with the outbox in metastore.db, read-only), every
#   fingerprint the sink heard is in the outbox, and `alerts --json` agrees with the outbox;
# - leaked actors 0: the actors in `status` and `tree` at the end == the configured count;
# - orphans 0: no process carrying the managed program's marker is left after the daemon stops;
# - RSS flat: max/min of the RSS rows from minute 2 on (the end included) within 20% (the ratio
#   is printed; skipped for runs under 3 minutes);
# - the daemon stopped with 0.
#
# Needs: python3 (standard library only). SOAK_SEED=N makes the kills and the load repeatable;
# METASYSTEM_BIN picks the binary (default target/release/metasystem). Everything runs in a temp
# dir (config, state dir, socket, database, both sync folders), deleted at the end unless a check
# fails, when it is kept for inspection.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
rate=${2:-20}
[[ $seconds =~ ^[1-9][0-9]*$ && $rate =~ ^[1-9][0-9]*$ ]] \
  || { echo "usage: benches/soak.sh [SECONDS] [RATE]   (positive integers; defaults 600 and 20)" >&2; exit 2; }
bin=${METASYSTEM_BIN:-$(pwd)/target/release/metasystem}
[ -x "$bin" ] || { echo "build first: cargo build --release ($bin)" >&2; exit 2; }
command -v python3 >/dev/null || { echo "missing python3" >&2; exit 2; }
seed=${SOAK_SEED:-$RANDOM}
# The real interpreter (not a pyenv shim), so the managed program's pid is python's own.
pyexe=$(python3 -c 'import sys; print(sys.executable)')

work=$(mktemp -d /tmp/mssoak.XXXXXX)
# In the managed program's argv (and its child's), and nowhere else: what `pgrep -f` looks for.
marker="soak-managed-$(basename "$work")"
daemon_pid=
sink_pid=
load_pid=
keep=0
stop_pid() { # $1: pid; TERM, then (after 5 s) KILL
  [ -n "$1" ] && kill -0 "$1" 2>/dev/null || return 0
  kill "$1" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true
}
cleanup() {
  stop_pid "$daemon_pid"
  touch "$work/stop" 2>/dev/null || true
  stop_pid "$load_pid"
  stop_pid "$sink_pid"
  # What the managed program left, if anything (the check has counted it already).
  for p in $(pgrep -f -- "$marker" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
  if [ "$keep" = 1 ]; then echo "kept for inspection: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

state=$work/state
primary=$work/primary
target=$work/target
mkdir -p "$state" "$primary/files/sub" "$target"
read -r sink_port flap_port http_port < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(3)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])')

# The webhook sink: every POST body, one JSON line each, in the order received (one message is
# in flight per channel, so that is the order they were sent in).
python3 - "$sink_port" "$work/hook.jsonl" > "$work/sink.log" 2>&1 <<'PY' &
import http.server, json, sys, threading, time
port, out = int(sys.argv[1]), sys.argv[2]
lock = threading.Lock()
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        with lock, open(out, "a") as f:
            f.write(json.dumps({"at": time.time(), "key": self.headers.get("idempotency-key"),
                                "body": json.loads(body)}) + "\n")
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
PY
sink_pid=$!

# The starting files: 24 small text files and one SQLite database in the primary; the first
# sync copies them to the target.
python3 - "$primary/files" <<'PY'
import os, sqlite3, sys
root = sys.argv[1]
for i in range(24):
    name = os.path.join(root, ("sub/" if i % 3 == 0 else "") + f"note{i:02d}.txt")
    with open(name, "w") as f:
        f.write(f"note {i}\n" * (1 + i))
con = sqlite3.connect(os.path.join(root, "data.db"))
con.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, side TEXT, n INTEGER, body TEXT)")
con.executemany("INSERT INTO items (side, n, body) VALUES (?, ?, ?)",
                [("primary", i, "x" * (i % 50)) for i in range(200)])
con.commit()
con.close()
PY

# The tree. Chaos part: every supervisor has a restart intensity that 20 kills/s never reaches
# and no backoff (`backoff = "none"`, OTP's immediate restart: since the default became 100 ms
# doubling up to 30 s, most kills would find their worker still waiting to restart), so a killed
# worker is back at once; its leaves are heartbeats (every 1 s). The rest: one child of each
# other kind, the managed program under a supervisor of its own (with a short backoff).
cfg=$work/supervision.toml
python3 - "$work" "$state" "$primary" "$target" "$sink_port" "$flap_port" "$http_port" "$pyexe" "$marker" > "$cfg" <<'PY'
import json, sys
work, state, primary, target, sink, flap, http, pyexe, marker = sys.argv[1:]
q = json.dumps  # a TOML basic string is a JSON string for these values
SUP = 'intensity = 100000\nperiod = "1s"'
NO_BACKOFF = 'backoff = "none"'
out = [f'[daemon]\nstate_dir = {q(state)}\nsocket = {q(state + "/control.sock")}\n'
       f'http = "127.0.0.1:{http}"\n',
       f'[root]\nstrategy = "one_for_one"\n{SUP}\n{NO_BACKOFF}\n']

def workers(prefix, n):
    for i in range(1, n + 1):
        out.append(f'[[{prefix}.children]]\nname = "w{i}"\nkind = "heartbeat"\nevery = "1s"\n')

def supervisor(prefix, name, strategy, backoff=NO_BACKOFF):
    out.append(f'[[{prefix}.children]]\nname = "{name}"\nkind = "supervisor"\n'
               f'strategy = "{strategy}"\n{SUP}\n{backoff}\n')
    return f"{prefix}.children"

def child(name, kind, body):
    out.append(f'[[root.children]]\nname = "{name}"\nkind = "{kind}"\n{body}')

out.append('[[root.children]]\nname = "beat"\nkind = "heartbeat"\nevery = "1s"\n')
for strategy in ("one_for_one", "one_for_all", "rest_for_one", "dynamic"):
    workers(supervisor("root", strategy, strategy), 5)
nested = supervisor("root", "nested", "one_for_one")
workers(supervisor(nested, "inner_all", "one_for_all"), 3)
workers(supervisor(nested, "inner_rest", "rest_for_one"), 3)
out.append(f'[[{nested}.children]]\nname = "solo"\nkind = "heartbeat"\nevery = "1s"\n')

child("metrics", "metrics",
      'anomalies = ["sync_run", "alert_delivery", "probe_check:root/data_db"]\n')
child("alerts", "alerts",
      'group_wait = "1s"\ntimeout = "5s"\n'
      'after = { critical = 1, warning = 1, info = 1 }\n'
      'retry = { initial = "200ms", max = "2s" }\n'
      f'channels = [{{ name = "hook", type = "webhook", url = "http://127.0.0.1:{sink}/hook" }}]\n'
      'routes = { critical = ["hook"], warning = ["hook"], info = ["hook"] }\n')
child("breakers", "breakers",
      'breakers.soak_sync = { failure_threshold = 3, success_threshold = 1, open_for = "5s", open_for_max = "20s", half_open_calls = 1 }\n'
      'breakers.soak_flap = { failure_threshold = 3, success_threshold = 1, open_for = "5s", open_for_max = "20s", half_open_calls = 1 }\n')
child("sync", "sync_target",
      f'primary = {q(primary)}\ntarget = {q(target)}\npaths = ["files"]\n'
      'every = "10s"\nmin_interval = "5s"\nstrategy = "newest"\n'
      'snapshots = ["metastore.db"]\nsnapshot_every = "2m"\nbreaker = "soak_sync"\n')
supervisor("root", "apps", "one_for_one",
           'backoff = { initial = "100ms", max = "2s", factor = 2.0, jitter = "full", reset_after = "10s" }')
out.append(f'[[root.children.children]]\nname = "app"\nkind = "process"\ncommand = {q(pyexe)}\n'
           f'args = ["-c", "import os, time; os.fork(); time.sleep(1e6)", {q(marker)}]\n'
           'healthy_after = "500ms"\nstop_signal = "TERM"\nstop_timeout = "2s"\n')
child("port", "probe",
      f'check = "tcp"\naddr = "127.0.0.1:{flap}"\nevery = "1s"\ntimeout = "500ms"\n'
      'heal = [{ action = "command", command = "/bin/true", on = "fail", cooldown = "10s", max_per_hour = 3600 }]\n')
child("web", "probe",
      f'check = "http"\nurl = "http://127.0.0.1:{flap}/"\nstatus = 200\nevery = "2s"\ntimeout = "1s"\n')
child("flag", "probe",
      f'check = "command"\ncommand = "/bin/sh"\nargs = ["-c", {q("test ! -e " + work + "/flag")}]\n'
      'every = "1s"\n')
child("app_up", "probe",
      'check = "process"\nprocess = "root/apps/app"\nmin_uptime = "2s"\nmax_restarts = 1000\n'
      'every = "1s"\n'
      'heal = [{ action = "restart", path = "root/apps/app", on = "fail", cooldown = "30s", max_per_hour = 3600 }]\n')
child("open_breakers", "probe", 'check = "breakers"\nevery = "2s"\n')
child("data_db", "probe",
      f'check = "sqlite"\npath = {q(primary + "/files/data.db")}\ntables = ["items"]\nevery = "5s"\n')
child("store", "probe",
      'check = "sqlite"\npath = "metastore.db"\ntables = ["events", "samples"]\nevery = "2m"\ntimeout = "1m"\n')
child("recency", "probe",
      'check = "sync_recency"\ntarget = "sync"\nwarn_after = "1m"\nfail_after = "5m"\nevery = "10s"\n')
child("disk", "probe", 'check = "disk"\npath = "."\nwarn_below = "100MB"\nfail_below = "50MB"\nevery = "30s"\n')
child("memory", "probe", 'check = "memory"\nevery = "30s"\n')
print("\n".join(out))
PY
check_out=$("$bin" check "$cfg") || { echo "generated config is invalid: $cfg" >&2; keep=1; exit 2; }
configured=$(sed -n 's/.*ok (\([0-9]*\) actors).*/\1/p' <<<"$check_out")
[ -n "$configured" ] || { echo "cannot read the actor count from: $check_out" >&2; keep=1; exit 2; }

"$bin" --config "$cfg" run 2>"$work/daemon.log" &
daemon_pid=$!
# Wait (bounded, 10 s) until it answers.
for _ in $(seq 1 100); do
  "$bin" --config "$cfg" status >/dev/null 2>&1 && break
  kill -0 "$daemon_pid" 2>/dev/null || { echo "daemon exited at start:" >&2; cat "$work/daemon.log" >&2; keep=1; exit 2; }
  sleep 0.1
done
"$bin" --config "$cfg" status >/dev/null 2>&1 || { echo "daemon does not answer after 10 s" >&2; keep=1; exit 2; }
# The first sync (a union of both sides), so the edits start from a synced pair.
"$bin" --config "$cfg" --timeout 60s sync sync >/dev/null 2>&1 \
  || { echo "the first sync failed:" >&2; "$bin" --config "$cfg" sync status >&2 || true; keep=1; exit 2; }

echo "== machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r)"
echo "== versions: $("$bin" --version) ($(git rev-parse --short HEAD 2>/dev/null || echo '?')), $(python3 --version)"
echo "== soak: ${seconds}s, every kind in one daemon ($configured actors): random kills at ${rate}/s (seed $seed), sync every 10 s with edits on both sides, probes flapping, webhook alerts, SIGKILLs of a managed program every 3-6 s; daemon pid $daemon_pid"

# The load besides the kills, for SECONDS, in threads of one process: the flapping listener and
# flag, edits on both sides of the sync, SIGKILLs of the managed program, a breaker forced open
# and reset, scrapes of /metrics and /health. When time is up it leaves everything healthy (the
# listener up, the flag gone, the breaker reset), writes load.json, and keeps the listener up
# until the file `stop` appears (at most 30 minutes).
python3 - "$bin" "$cfg" "$work" "$flap_port" "$http_port" "$seconds" "$seed" <<'PY' > "$work/load.log" 2>&1 &
import http.server, json, os, random, sqlite3, subprocess, sys, threading, time, urllib.request
bin, cfg, work, flap, http_port, seconds, seed = sys.argv[1:]
flap, http_port, seconds, seed = int(flap), int(http_port), int(seconds), int(seed)
deadline = time.monotonic() + seconds
stats = {k: 0 for k in ("listener_flips", "flag_flips", "edits_text", "edits_db", "edit_errors",
                        "db_busy", "creates", "deletes", "process_kills", "process_kill_misses",
                        "breaker_opens", "breaker_resets", "breaker_errors", "scrapes",
                        "scrape_errors")}
lock = threading.Lock()
def count(k, n=1):
    with lock:
        stats[k] += n
def cli(*args, timeout=30):
    return subprocess.run([bin, "--config", cfg, "--timeout", "20s", *args],
                          capture_output=True, text=True, timeout=timeout)
def pause(rng, lo, hi):
    """Sleeps a random while; False once time is up."""
    left = deadline - time.monotonic()
    if left <= 0:
        return False
    time.sleep(min(left, rng.uniform(lo, hi)))
    return time.monotonic() < deadline

class Quiet(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"up\n")
listener = {"server": None}
def listener_up():
    if listener["server"] is None:
        try:
            s = http.server.ThreadingHTTPServer(("127.0.0.1", flap), Quiet)
        except OSError:
            return
        threading.Thread(target=s.serve_forever, daemon=True).start()
        listener["server"] = s
def listener_down():
    s, listener["server"] = listener["server"], None
    if s is not None:
        s.shutdown(); s.server_close()

def flapper(rng):
    while True:
        listener_up()
        if not pause(rng, 2, 6): break
        listener_down(); count("listener_flips")
        if not pause(rng, 2, 6): break
        count("listener_flips")
    listener_up()

def flagger(rng):
    flag = os.path.join(work, "flag")
    while pause(rng, 3, 9):
        if os.path.exists(flag): os.remove(flag)
        else: open(flag, "w").close()
        count("flag_flips")
    if os.path.exists(flag): os.remove(flag)

NAMES = [("sub/" if i % 3 == 0 else "") + f"note{i:02d}.txt" for i in range(36)]
def editor(rng):
    sides = {"primary": os.path.join(work, "primary", "files"),
             "target": os.path.join(work, "target", "files")}
    while pause(rng, 0.2, 1.2):
        side = rng.choice(list(sides))
        root = sides[side]
        try:
            if rng.random() < 0.25:
                db = os.path.join(root, "data.db")
                if not os.path.exists(db):
                    continue
                con = sqlite3.connect(db, timeout=2)
                try:
                    op = rng.random()
                    if op < 0.5:
                        con.executemany("INSERT INTO items (side, n, body) VALUES (?, ?, ?)",
                                        [(side, rng.randrange(10**6), "y" * rng.randrange(200))
                                         for _ in range(rng.randint(1, 20))])
                    elif op < 0.8:
                        con.execute("UPDATE items SET n = n + 1, body = ? WHERE id % ? = 0",
                                    (side * rng.randint(1, 5), rng.randint(5, 40)))
                    else:
                        con.execute("DELETE FROM items WHERE id % ? = 0", (rng.randint(20, 60),))
                    con.commit()
                    count("edits_db")
                except sqlite3.OperationalError:
                    count("db_busy")
                finally:
                    con.close()
                continue
            path = os.path.join(root, rng.choice(NAMES))
            if not os.path.exists(path):
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w") as f:
                    f.write(f"{side} created {time.time()}\n")
                count("creates")
            elif rng.random() < 0.08:
                os.remove(path); count("deletes")
            elif rng.random() < 0.5:
                with open(path, "a") as f:
                    f.write(f"{side} {rng.random()}\n" * rng.randint(1, 5))
                count("edits_text")
            else:
                with open(path, "w") as f:
                    f.write(f"{side} rewrote {rng.random()}\n" * rng.randint(1, 40))
                count("edits_text")
        except OSError:
            count("edit_errors")

def killer(rng):
    while pause(rng, 3, 6):
        try:
            r = cli("--json", "call", "root/apps/app", "status")
            pid = json.loads(r.stdout).get("pid") if r.returncode == 0 else None
            if pid:
                os.kill(int(pid), 9); count("process_kills")
            else:
                count("process_kill_misses")
        except (ValueError, OSError, subprocess.TimeoutExpired):
            count("process_kill_misses")

def breaker(rng):
    opened = False
    while pause(rng, 3, 8) if opened else pause(rng, 5, 12):
        try:
            r = cli("breakers", "reset" if opened else "open", "soak_flap")
            if r.returncode == 0:
                count("breaker_resets" if opened else "breaker_opens")
                opened = not opened
            else:
                count("breaker_errors")
        except subprocess.TimeoutExpired:
            count("breaker_errors")
    if opened:
        cli("breakers", "reset", "soak_flap")

def scraper(rng):
    while pause(rng, 4, 6):
        for page in ("metrics", "health"):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{http_port}/{page}", timeout=5).read()
                count("scrapes")
            except urllib.error.HTTPError:
                count("scrapes")  # /health answers 503 while a probe fails
            except OSError:
                count("scrape_errors")

master = random.Random(seed)
threads = [threading.Thread(target=f, args=(random.Random(master.random()),))
           for f in (flapper, flagger, editor, killer, breaker, scraper)]
for t in threads: t.start()
for t in threads: t.join()
listener_up()
with open(os.path.join(work, "load.json.tmp"), "w") as f:
    json.dump(stats, f)
os.rename(os.path.join(work, "load.json.tmp"), os.path.join(work, "load.json"))
stop = os.path.join(work, "stop")
end = time.monotonic() + 1800
while not os.path.exists(stop) and time.monotonic() < end:
    time.sleep(0.2)
listener_down()
PY
load_pid=$!

# The driver: kills on an absolute schedule (kill i is due at start + i/RATE; a slow call delays
# the next ones, which then run back to back until the schedule is caught up), one at a time,
# each timed as a whole process. One kill at a time means a kill never reaches the daemon while
# the exit of the previous one is still in flight. Every 60 s it samples the daemon's /proc and
# the store's size and prints a row.
set +e
SOAK_MARKER=$marker python3 - "$bin" "$cfg" "$daemon_pid" "$seconds" "$rate" "$seed" "$work/driver.json" "$state" "$work/hook.jsonl" <<'PY'
import json, math, os, random, subprocess, sys, time
bin, cfg, pid, seconds, rate, seed, out, state, hook = sys.argv[1:]
marker = os.environ["SOAK_MARKER"]  # not in argv: `marked` counts the managed program's processes
pid, seconds, rate, seed = int(pid), int(seconds), int(rate), int(seed)
EVERY = 60.0

def cli(*args, timeout=15):
    return subprocess.run([bin, "--config", cfg, "--timeout", "10s", *args, "--json"],
                          capture_output=True, text=True, timeout=timeout)

def lines(path):
    try:
        with open(path, "rb") as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0

def marked():
    n = 0
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/cmdline", "rb") as f:
                    n += marker.encode() in f.read()
            except OSError:
                pass
    return n

def sample(t):
    status = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            status[k] = v.split()
    store = 0
    for name in ("metastore.db", "metastore.db-wal"):
        try:
            store += os.stat(os.path.join(state, name)).st_size
        except FileNotFoundError:
            pass
    return {"t": t, "rss_kb": int(status["VmRSS"][0]), "threads": int(status["Threads"][0]),
            "fds": len(os.listdir(f"/proc/{pid}/fd")), "store_bytes": store,
            "posts": lines(hook), "marked": marked()}

def daemon_status():
    r = cli("status")
    return json.loads(r.stdout) if r.stdout.strip() else {"error": r.stderr.strip()}

st = daemon_status()
actors = sum(st.get(k, 0) for k in ("running", "restarting", "stopped", "failed"))
tree = json.loads(cli("tree").stdout)["nodes"]
leaves = [n["path"] for n in tree if n["kind"] == "heartbeat"]
strategies = sorted({n["strategy"] for n in tree if n["kind"] == "supervisor"})
kinds = sorted({n["kind"] for n in tree})
rng = random.Random(seed)

latencies, accepted, refused, errors = [], {}, {}, []
lag_max, late = 0.0, 0
slowest = (0.0, 0.0)  # (seconds, when: seconds into the run)
total = seconds * rate
start = time.monotonic()
t_start = time.perf_counter()
next_sample = EVERY

def row(s):
    s["kills"] = sum(accepted.values())
    print(f"   {s['t']:7.0f} {s['rss_kb']:8d} {s['fds']:5d} {s['threads']:7d} {s['store_bytes']:12d}"
          f" {s['kills']:7d} {s['posts']:6d} {s['marked']:6d}", flush=True)

print("   elapsed   RSS kB   fds threads  store bytes   kills  posts marked", flush=True)
samples = [sample(0.0)]
row(samples[0])
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
        samples.append(sample(time.monotonic() - start))
        row(samples[-1])
        next_sample += EVERY
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

# The end: right after the last kill.
if os.path.exists(f"/proc/{pid}"):
    samples.append(sample(elapsed))
    row(samples[-1])
    st_end = daemon_status()
else:
    st_end = {"error": "daemon gone"}

lat = sorted(latencies)
def pct(q):
    return lat[min(len(lat) - 1, max(0, math.ceil(q * len(lat)) - 1))] * 1000 if lat else float("nan")
json.dump(dict(actors=actors, leaves=len(leaves), strategies=strategies, kinds=kinds, seed=seed,
               attempted=len(latencies), accepted=accepted, refused=refused, errors=errors,
               elapsed=elapsed, late=late, lag_max=lag_max, samples=samples,
               p50=pct(0.50), p90=pct(0.90), p99=pct(0.99), max=pct(1.0), max_at=slowest[1],
               status_start=st, status_end=st_end), open(out, "w"))
PY
driver_rc=$?
set -e
[ -f "$work/driver.json" ] || { echo "driver failed (exit $driver_rc)" >&2; keep=1; exit 1; }

# The load stops at the same deadline; wait for it (bounded, 60 s).
for _ in $(seq 1 600); do [ -f "$work/load.json" ] && break; sleep 0.1; done
[ -f "$work/load.json" ] || { echo "the load did not finish; its log:" >&2; tail -20 "$work/load.log" >&2; echo '{}' > "$work/load.json"; }

# The end checks that need the daemon running: the last sync and the trees compared, the alerts
# settled and compared with what the sink heard, the actors counted.
echo "== load stopped; settling (final sync, alerts drained)"
set +e
python3 - "$bin" "$cfg" "$work" "$configured" "$work/finish.json" <<'PY'
import json, os, sqlite3, subprocess, sys, time
bin, cfg, work, configured, out = sys.argv[1:]
configured = int(configured)
res = {}

def cli(*args, timeout=150):
    try:
        return subprocess.run([bin, "--config", cfg, "--timeout", "120s", *args],
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(args, 124, "", "timed out")

def jcli(*args):
    r = cli(*args, "--json")
    try:
        return json.loads(r.stdout)
    except ValueError:
        return {"error": (r.stdout + r.stderr).strip()[:300]}

# Files: one more sync, then primary vs target, byte for byte.
def is_db(path):
    try:
        with open(path, "rb") as f:
            return f.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False

def dump(path):
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return list(con.iterdump())
    finally:
        con.close()

def listing(root):
    files, skipped = {}, {"conflict copies": [], "temps": [], "journals": []}
    for d, dirs, names in os.walk(root):
        dirs.sort()
        for name in sorted(dirs + names):
            full = os.path.join(d, name)
            rel = os.path.relpath(full, root)
            if ".conflict-" in name:
                skipped["conflict copies"].append(rel); continue
            if name.startswith(".msync-") or ".msync-tmp" in name:
                skipped["temps"].append(rel); continue
            if name.endswith(("-journal", "-wal", "-shm")):
                skipped["journals"].append(rel); continue
            if os.path.islink(full):
                files[rel] = ("link", os.readlink(full))
            elif os.path.isdir(full):
                files[rel] = ("dir", None)
            else:
                files[rel] = ("file", None)
    return files, skipped

def compare():
    a_root, b_root = os.path.join(work, "primary", "files"), os.path.join(work, "target", "files")
    a, a_skip = listing(a_root)
    b, b_skip = listing(b_root)
    diffs, by_content = [], []
    for rel in sorted(set(a) | set(b)):
        if rel not in a or rel not in b:
            diffs.append(f"{rel}: only in the {'primary' if rel in a else 'target'}")
            continue
        if a[rel][0] != b[rel][0] or a[rel][1] != b[rel][1]:
            diffs.append(f"{rel}: {a[rel][0]} in the primary, {b[rel][0]} in the target")
            continue
        if a[rel][0] != "file":
            continue
        pa, pb = os.path.join(a_root, rel), os.path.join(b_root, rel)
        with open(pa, "rb") as f: da = f.read()
        with open(pb, "rb") as f: db = f.read()
        if da == db:
            continue
        if is_db(pa) and is_db(pb):
            if dump(pa) == dump(pb):
                by_content.append(rel); continue
            diffs.append(f"{rel}: databases differ in content")
        else:
            diffs.append(f"{rel}: contents differ ({len(da)} and {len(db)} bytes)")
    return dict(files=sum(1 for v in a.values() if v[0] == "file"),
                dirs=sum(1 for v in a.values() if v[0] == "dir"), diffs=diffs,
                by_content=by_content, skipped_primary=a_skip, skipped_target=b_skip)

runs = []
for attempt in range(5):
    r = cli("sync", "sync")
    runs.append({"rc": r.returncode, "summary": (r.stdout + r.stderr).strip().splitlines()[:1]})
    if r.returncode in (0, 3):
        c = compare()
        if r.returncode == 0 and not c["diffs"]:
            break
    time.sleep(3)
c = compare()
res["sync"] = dict(runs=runs, **c)
print(f"   final sync: {len(runs)} run(s), exit codes {[x['rc'] for x in runs]}; "
      f"{c['files']} files, {len(c['diffs'])} differences", flush=True)

# Alerts: wait until the outbox is empty and nothing new was decided for 8 s (at most 120 s),
# then compare the sink's last word per fingerprint with the daemon's latest notification per
# key in `alerts --json` (its newest 10,000). A run decides more than that, so the keys whose
# latest notification is older are compared with the outbox itself (the rows `alerts` lists),
# read from metastore.db (read-only, while the daemon runs).
db = os.path.join(work, "state", "metastore.db")
def outbox(sql):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()
def newest():
    return outbox("SELECT coalesce(max(id), 0) FROM alert_outbox")[0][0]

def hook_lines():
    try:
        with open(os.path.join(work, "hook.jsonl")) as f:
            return [json.loads(l) for l in f if l.strip()]
    except FileNotFoundError:
        return []

t0 = time.monotonic()
listing, hook, settled = None, [], False
prev, since = None, time.monotonic()
while time.monotonic() - t0 < 120:
    und, top = jcli("status").get("alerts_undelivered"), newest()
    if und != 0 or top != prev:
        prev, since = top, time.monotonic()
    elif time.monotonic() - since >= 8:
        hook = hook_lines()
        listing = jcli("alerts", "--limit", "10000")
        rows = outbox("SELECT id, key, fingerprint, status, state FROM alert_outbox WHERE channel = 'hook' ORDER BY id")
        if newest() == top and jcli("status").get("alerts_undelivered") == 0:
            settled = True
            break
        prev, since = None, time.monotonic()
    time.sleep(1)
if not settled:
    hook = hook_lines()
    listing = jcli("alerts", "--limit", "10000")
    rows = outbox("SELECT id, key, fingerprint, status, state FROM alert_outbox WHERE channel = 'hook' ORDER BY id")
notes = listing.get("alerts", [])
latest = {}  # key -> the latest notification in `alerts --json`
for n in notes:
    if n["key"] not in latest or n["id"] > latest[n["key"]]["id"]:
        latest[n["key"]] = n
stored = {}  # key -> the latest row of the outbox
for id_, key, fp, status, state in rows:
    stored[key] = {"id": id_, "key": key, "fingerprint": fp, "status": status, "state": state}
told, posted_alerts = {}, 0
for h in hook:
    for a in h["body"].get("alerts", []):
        told[a["fingerprint"]] = a["status"]
        posted_alerts += 1
mismatch = []
def compare_with(where, latest_of):
    for key, n in sorted(latest_of.items()):
        daemon = "firing" if n["status"] == "firing" else "resolved"
        heard = told.get(n["fingerprint"], "none")
        if (daemon == "firing") != (heard == "firing"):
            mismatch.append(f"{key}: {where}'s latest notification #{n['id']} {n['status']} "
                            f"[{n['state']}], the sink's last word {heard}")
compare_with("`alerts --json`", latest)
compare_with("the outbox", {k: v for k, v in stored.items() if k not in latest})
# What `alerts --json` shows is what the outbox holds.
disagree = [f"{k}: `alerts --json` #{latest[k]['id']}, the outbox #{stored.get(k, {}).get('id')}"
            for k in latest if stored.get(k, {}).get("id") != latest[k]["id"]]
known = {v["fingerprint"] for v in stored.values()}
unmatched = sorted(fp for fp in told if fp not in known)
states = {}
for _, _, _, _, state in rows:
    states[state] = states.get(state, 0) + 1
res["alerts"] = dict(settled=settled, settle_s=time.monotonic() - t0, notifications=len(rows),
                     listed=len(notes), listed_keys=len(latest), states=states, keys=len(stored),
                     firing=sorted(k for k, n in stored.items() if n["status"] == "firing"),
                     posts=len(hook), posted_alerts=posted_alerts, mismatch=mismatch,
                     disagree=disagree, unmatched=unmatched, undelivered=listing.get("undelivered"))
print(f"   alerts: {'settled' if settled else 'NOT settled'} after {res['alerts']['settle_s']:.0f} s; "
      f"{len(stored)} keys, {len(rows)} notifications ({len(notes)} listed), {len(hook)} POSTs", flush=True)

# Actors: what runs now against the configured count.
st = jcli("status")
tree = jcli("tree").get("nodes", [])
res["actors"] = dict(configured=configured,
                     status=sum(st.get(k, 0) for k in ("running", "restarting", "stopped", "failed")),
                     states={k: st.get(k) for k in ("running", "restarting", "stopped", "failed")},
                     tree=len(tree),
                     not_running=[f"{n['path']} {n['state']}" for n in tree if n.get("state") != "running"])
res["health"] = {p.get("path"): p.get("status") for p in jcli("probes").get("probes", [])
                 if isinstance(p, dict)}
json.dump(res, open(out, "w"))
PY
set -e
[ -f "$work/finish.json" ] || { echo '{}' > "$work/finish.json"; }

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
# Orphans: what carries the managed program's marker once the daemon is gone (after 2 s for the
# kernel to reap what was killed).
sleep 2
orphans=$(pgrep -f -- "$marker" | tr '\n' ' ' || true)
touch "$work/stop"
stop_pid "$load_pid"; load_pid=

# The record: exits in the database file, read after the daemon stopped; every check.
set +e
python3 - "$work" "$state/metastore.db" "$seconds" "$rate" "$daemon_rc" "$orphans" <<'PY'
import json, sqlite3, sys
work, db, seconds, rate, daemon_rc, orphans = sys.argv[1:]
seconds, rate = int(seconds), int(rate)
d = json.load(open(f"{work}/driver.json"))
load = json.load(open(f"{work}/load.json"))
fin = json.load(open(f"{work}/finish.json"))

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
sigkills = con.execute("SELECT count(*) FROM events WHERE kind = 'process' "
                       "AND json_extract(data, '$.signal') = 'SIGKILL'").fetchone()[0]
sync_runs = dict(con.execute("SELECT kind, count(*) FROM events WHERE kind IN ('sync_event', 'sync_error') GROUP BY kind"))
con.close()

acc, rec = sum(d["accepted"].values()), sum(recorded.values())
s = d["samples"]
first, last = s[0], s[-1]
refused = ", ".join(f"{k} {v}" for k, v in sorted(d["refused"].items())) or "none"
others = ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())) or "none"
store = d["status_end"].get("store", {})

checks = []
def check(name, ok, detail):
    checks.append((name, ok, detail))

check("kills accepted == exits recorded", acc == rec and not d["errors"],
      f"{acc} accepted, {rec} recorded, {len(d['errors'])} kill errors")
sy = fin.get("sync", {})
conflicts = len(sy.get("skipped_primary", {}).get("conflict copies", [])) + \
            len(sy.get("skipped_target", {}).get("conflict copies", []))
check("files converged", bool(sy) and not sy.get("diffs"),
      f"{sy.get('files')} files in {sy.get('dirs')} folders, {len(sy.get('diffs', []))} differences"
      f" after {len(sy.get('runs', []))} final sync run(s) (exit codes {[r['rc'] for r in sy.get('runs', [])]});"
      f" {len(sy.get('by_content', []))} database(s) equal by content, not bytes;"
      f" {conflicts} conflict copies excluded")
al = fin.get("alerts", {})
al_ok = bool(al) and al.get("settled") and not al.get("mismatch") and not al.get("unmatched") \
        and not al.get("disagree")
check("alerts consistent", al_ok,
      f"{al.get('keys')} keys: {len(al.get('mismatch', []))} where the sink's last word differs"
      f" from the daemon's latest notification ({al.get('listed_keys')} keys by `alerts --json`,"
      f" which lists the newest {al.get('listed')}; the others by the outbox);"
      f" {len(al.get('disagree', []))} where `alerts --json` and the outbox differ;"
      f" {len(al.get('unmatched', []))} fingerprints the sink heard that the daemon never sent;"
      f" {al.get('notifications')} notifications"
      f" ({', '.join(f'{k} {v}' for k, v in sorted(al.get('states', {}).items()))}),"
      f" {al.get('posts')} POSTs carrying {al.get('posted_alerts')} alerts;"
      f" settled {'yes' if al.get('settled') else 'NO'} in {al.get('settle_s', 0):.0f} s;"
      f" firing at the end {len(al.get('firing', []))}")
orphan_pids = orphans.split()
check("orphans 0", not orphan_pids,
      f"{len(orphan_pids)} processes with the managed program's marker after the daemon stopped"
      + (f": pids {' '.join(orphan_pids)}" if orphan_pids else ""))
ac = fin.get("actors", {})
check("leaked actors 0", bool(ac) and ac.get("status") == ac.get("configured") == ac.get("tree"),
      f"configured {ac.get('configured')}, status {ac.get('status')} "
      f"({', '.join(f'{k} {v}' for k, v in ac.get('states', {}).items())}), tree {ac.get('tree')}")
late = [x["rss_kb"] for x in s if x["t"] >= 120]
if seconds >= 180 and len(late) >= 2:
    ratio = max(late) / min(late)
    check("RSS flat from minute 2", ratio <= 1.2,
          f"max/min {ratio:.3f} over {len(late)} samples ({min(late)}..{max(late)} kB; limit 1.20)")
else:
    print(f"RSS flat from minute 2: skipped (a {seconds} s run has no samples after minute 2 to compare)")
check("daemon exit code 0", daemon_rc == "0", daemon_rc)

print(f"""== results
duration            {d['elapsed']:.1f} s (asked {seconds} s), rate {rate}/s, seed {d['seed']}
kinds               {', '.join(d['kinds'])}
schedule            {d['late']} kills late by more than 1/rate, max lag {d['lag_max']*1000:.1f} ms
actors              {d['actors']} (root included; {d['leaves']} heartbeat workers killed at random; strategies {', '.join(d['strategies'])})
kills               {d['attempted']} sent: {acc} accepted, refused: {refused}, errors: {len(d['errors'])}
exits recorded      {rec} injected failures in metastore.db after shutdown: {'EQUAL' if acc == rec else 'NOT EQUAL'} to kills accepted
other exits         {others}
managed program     {load.get('process_kills')} SIGKILLs sent ({load.get('process_kill_misses')} times not running), {sigkills} exits by SIGKILL recorded
sync                {sync_runs.get('sync_event', 0)} runs ({sync_runs.get('sync_error', 0)} sync_error events); edits: text {load.get('edits_text')}, creates {load.get('creates')}, deletes {load.get('deletes')}, database {load.get('edits_db')} (busy {load.get('db_busy')}), errors {load.get('edit_errors')}
flapping            listener {load.get('listener_flips')} flips, flag {load.get('flag_flips')} flips, breaker {load.get('breaker_opens')} opens / {load.get('breaker_resets')} resets ({load.get('breaker_errors')} errors); HTTP scrapes {load.get('scrapes')} ({load.get('scrape_errors')} errors)
events in file      {sum(kinds.values())} ({', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))})
RSS                 {first['rss_kb']} -> {last['rss_kb']} kB; threads {first['threads']} -> {last['threads']}; fds {first['fds']} -> {last['fds']}
store               {first['store_bytes']} -> {last['store_bytes']} bytes (db + wal); written {store.get('written')}, dropped {store.get('dropped')}, write failures {store.get('write_failures')}
kill latency        p50 {d['p50']:.2f} ms, p90 {d['p90']:.2f} ms, p99 {d['p99']:.2f} ms, max {d['max']:.2f} ms at t={d['max_at']:.0f}s (whole CLI process)
probes at the end   {', '.join(f'{k} {v}' for k, v in sorted(fin.get('health', {}).items()))}""")
print("\nper minute (markdown):\n\n| elapsed (s) | RSS (kB) | fds | threads | store (bytes) | kills accepted | webhook POSTs |\n| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for x in s:
    print(f"| {x['t']:.0f} | {x['rss_kb']:,} | {x['fds']} | {x['threads']} | {x['store_bytes']:,} | {x.get('kills', 0):,} | {x['posts']:,} |")
print("\n== checks")
for name, ok, detail in checks:
    print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}")
for e in d["errors"][:10]:
    print(f"kill error: {e}")
if acc != rec:
    for path in sorted(set(d["accepted"]) | set(recorded)):
        a, r = d["accepted"].get(path, 0), recorded.get(path, 0)
        if a != r:
            print(f"mismatch: {path}: {a} kills accepted, {r} exits recorded")
for x in sy.get("diffs", [])[:20]:
    print(f"not converged: {x}")
for x in al.get("mismatch", [])[:20]:
    print(f"alert mismatch: {x}")
for x in al.get("disagree", [])[:10]:
    print(f"alerts --json vs outbox: {x}")
for x in al.get("unmatched", [])[:10]:
    print(f"alert heard but never sent: fingerprint {x}")
for x in ac.get("not_running", [])[:10]:
    print(f"not running at the end: {x}")
if al.get("firing"):
    print(f"firing at the end: {', '.join(al['firing'][:20])}")
ok = all(c[1] for c in checks)
print("== PASS" if ok else "== FAIL")
sys.exit(0 if ok else 1)
PY
rc=$?
set -e
[ "$rc" = 0 ] || keep=1
exit "$rc"
