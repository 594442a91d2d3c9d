#!/usr/bin/env bash
# Alerts benchmark: does the receiver's picture match reality after an outage and after a
# SIGKILL? N command probes (default 1000) flap (each fails while its flag file exists); the
# alerts child posts Alertmanager v4 webhooks to a loopback receiver (python) that records
# every request it accepts, and answers 503 while a "down" file exists.
#
#   cargo build --release && benches/alerts.sh
#
# Phase 1: the receiver is down for OUTAGE seconds (default 60) while the flags flip every
# second; then it comes back, the flipping stops, and once the outbox has drained the
# receiver's last word on each probe is compared with `health`.
# Phase 2: the flags flip for 10 s, the daemon is SIGKILLed, flags flip while it is down, it
# starts again, and the same comparison is made once the probes have looked and the outbox
# has drained.
# Reported per phase: alerts whose last notification disagrees with reality (target 0),
# probes failing that the receiver never heard of (lost, target 0), and repeats of one
# notification: how many, and how many of them came with another Idempotency-Key (target 0).
#
# N, OUTAGE, WORK (default a temp dir) and METASYSTEM_BIN can be set. Needs python3.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${N:-1000}
outage=${OUTAGE:-60}
bin=${METASYSTEM_BIN:-${CARGO_TARGET_DIR:-$(pwd)/target}/release/metasystem}
[ -x "$bin" ] || { echo "build first: cargo build --release ($bin)" >&2; exit 2; }
command -v python3 >/dev/null || { echo "needs python3" >&2; exit 2; }
work=${WORK:-$(mktemp -d /tmp/msalerts.XXXXXX)}
mkdir -p "$work/flags" "$work/state"
daemon_pid=
receiver_pid=
cleanup() {
  [ -n "$daemon_pid" ] && kill -9 "$daemon_pid" 2>/dev/null || true
  [ -n "$receiver_pid" ] && kill "$receiver_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The receiver: POST bodies and their Idempotency-Key, one JSON line each, in order.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 - "$port" "$work" <<'PY' &
import http.server, json, os, sys, threading
port, work = int(sys.argv[1]), sys.argv[2]
lock = threading.Lock()
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        if os.path.exists(os.path.join(work, "down")):
            self.send_response(503); self.end_headers(); return
        with lock, open(os.path.join(work, "got.jsonl"), "a") as f:
            f.write(json.dumps({"key": self.headers.get("idempotency-key"),
                                "body": json.loads(body)}) + "\n")
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
PY
receiver_pid=$!

config=$work/supervision.toml
{
  cat <<EOF
[daemon]
state_dir = "$work/state"
socket = "$work/state/control.sock"

[root]
intensity = 100

[[root.children]]
name = "alerts"
kind = "alerts"
group_wait = "1s"
retry = { initial = "500ms", max = "5s" }
timeout = "5s"
channels = [{ name = "hook", type = "webhook", url = "http://127.0.0.1:$port/hook" }]
EOF
  for i in $(seq 1 "$n"); do
    printf '\n[[root.children]]\nname = "p%d"\nkind = "probe"\ncheck = "command"\ncommand = "/bin/sh"\nargs = ["-c", "test ! -e %s/flags/%d"]\nevery = "2s"\n' \
      "$i" "$work" "$i"
  done
} > "$config"

ms() { "$bin" --socket "$work/state/control.sock" "$@"; }
start() {
  "$bin" --config "$config" run >> "$work/daemon.log" 2>&1 &
  daemon_pid=$!
  for _ in $(seq 1 300); do ms status >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "the daemon did not start; log:" >&2; tail -20 "$work/daemon.log" >&2; exit 1
}
flip() { # flip K random flags
  python3 - "$work/flags" "$n" "$1" <<'PY'
import os, random, sys
d, n, k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in random.sample(range(1, n + 1), k):
    p = os.path.join(d, str(i))
    if os.path.exists(p): os.remove(p)
    else: open(p, "w").close()
PY
}
drained() { # the outbox is empty and the probes have looked twice since the flags settled
  sleep 5
  for _ in $(seq 1 600); do
    if ms status --json 2>/dev/null | python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin).get("alerts_undelivered",1)==0 else 1)'; then
      sleep 3; return 0
    fi
    sleep 1
  done
  echo "the outbox never drained" >&2; return 1
}
compare() { # $1: phase name
  ms health --json > "$work/health.json" || true
  python3 - "$work" "$n" "$1" <<'PY'
import json, sys, collections
work, n, phase = sys.argv[1], int(sys.argv[2]), sys.argv[3]
health = json.load(open(f"{work}/health.json"))
status = {}
def walk(v):
    if isinstance(v, dict):
        p = v.get("path")
        if isinstance(p, str) and p.startswith("root/p") and "status" in v:
            status[p] = v["status"]
        for x in v.values(): walk(x)
    elif isinstance(v, list):
        for x in v: walk(x)
walk(health)
def fp(k):
    h = 0xcbf29ce484222325
    for b in k.encode(): h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
    return "%016x" % h
last, seen = {}, collections.defaultdict(set)
repeats = other_key = 0
try:
    lines = open(f"{work}/got.jsonl").read().splitlines()
except FileNotFoundError:
    lines = []
for line in lines:
    r = json.loads(line)
    for a in r["body"]["alerts"]:
        ident = (a["fingerprint"], a.get("episode"), a["status"])
        if ident in seen:
            repeats += 1
            if r["key"] not in seen[ident]: other_key += 1
        seen[ident].add(r["key"])
        last[a["fingerprint"]] = a["status"]
wrong = lost = failing = 0
for i in range(1, n + 1):
    p = f"root/p{i}"
    s = status.get(p)
    if s is None: continue
    truth = s != "pass"
    failing += truth
    told = last.get(fp(f"probe:{p}:warn")) == "firing" or last.get(fp(f"probe:{p}:fail")) == "firing"
    if truth != told:
        wrong += 1
        if truth and fp(f"probe:{p}:warn") not in last and fp(f"probe:{p}:fail") not in last:
            lost += 1
print(f"{phase}: probes {len(status)}, failing {failing}; receiver's last word wrong for {wrong} "
      f"(lost {lost}); requests {len(lines)}; notifications repeated {repeats}, "
      f"with another idempotency key {other_key}")
PY
}

echo "== $n command probes flapping; outage ${outage}s; $(nproc) cores; $("$bin" --version 2>/dev/null || echo metasystem)"
start
sleep 10
echo "-- phase 1: receiver down ${outage}s while the flags flip"
touch "$work/down"
end=$((SECONDS + outage))
while [ $SECONDS -lt $end ]; do flip $((n / 20)); sleep 1; done
rm -f "$work/down"
drained
compare "after a ${outage}s outage"

echo "-- phase 2: SIGKILL while the flags flip"
end=$((SECONDS + 10))
while [ $SECONDS -lt $end ]; do flip $((n / 20)); sleep 1; done
kill -9 "$daemon_pid"; wait "$daemon_pid" 2>/dev/null || true
rm -f "$work/state/control.sock"
flip $((n / 10))
start
drained
compare "after a SIGKILL"
ms shutdown >/dev/null 2>&1 || true
wait "$daemon_pid" 2>/dev/null || true
daemon_pid=
