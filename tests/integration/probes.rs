//! Probes, self-heal and `/health` on the real daemon: a tcp probe against a real listener
//! that goes away (status, `health`, `status`, `/health` over real HTTP, the alert at the
//! webhook), a command probe healed by a command action (recorded with its re-check), and a
//! heal action that does not help stopping at its hourly cap with a critical alert.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use metasystem_actors::alerts::fingerprint;
use metasystem_actors::sinks::HttpSink;
use serde_json::Value;

use crate::export::{http_address, request};
use crate::util::{write_file, TestDaemon};

const WAIT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(50);

fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("runtime: {e}"),
    }
}

/// An alerts child posting every severity to `hook` at once (no grouping wait).
fn alerts_child(hook: &str) -> String {
    format!(
        r#"
[[root.children]]
name = "alerts"
kind = "alerts"
group_wait = "0s"
channels = [{{ name = "hook", type = "webhook", url = "{hook}" }}]
"#
    )
}

/// Polls `health --json` until `check` holds (bounded).
fn health_until(d: &TestDaemon, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let out = d.cli(&["health", "--json"]);
        let v: Value = serde_json::from_str(out.stdout.trim()).unwrap_or(Value::Null);
        if check(&v) {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("health never showed {what}: {v:#}\nlog:\n{}", d.log_text());
        }
        std::thread::sleep(POLL);
    }
}

fn probe<'a>(v: &'a Value, path: &str) -> &'a Value {
    v["probes"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["path"] == path))
        .unwrap_or(&Value::Null)
}

#[test]
fn a_tcp_probe_fails_when_its_port_closes_and_health_status_and_the_webhook_say_so() {
    let rt = runtime();
    let hook = rt.block_on(HttpSink::start());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let tree = format!(
        r#"
[root]
{alerts}
[[root.children]]
name = "port"
kind = "probe"
check = "tcp"
addr = "{addr}"
every = "200ms"
timeout = "1s"
failures_before_warning = 1
failures_before_critical = 2
"#,
        alerts = alerts_child(&hook.url("/hook"))
    );
    let d = TestDaemon::start_with("http = \"127.0.0.1:0\"", &tree);
    let http = http_address(&d);

    let v = health_until(&d, "the port passing", |v| {
        probe(v, "root/port")["last_status"] == "pass"
    });
    assert_eq!(v["status"], "pass");
    assert_eq!(probe(&v, "root/port")["check"], "tcp");
    assert!(probe(&v, "root/port")["value"].as_f64().is_some(), "{v:#}");
    let (code, _, body) = request(http, "GET", "/health");
    assert_eq!(code, 200, "{body}");
    let h: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        h["checks"]["probe:root/port"][0]["status"], "pass",
        "{body}"
    );
    assert_eq!(h["checks"]["probe:root/port"][0]["componentType"], "tcp");

    // The port closes: warn after one failure, fail after two.
    drop(listener);
    let v = health_until(&d, "the port failing", |v| {
        probe(v, "root/port")["status"] == "fail"
    });
    assert_eq!(v["status"], "fail");
    let out = d.cli(&["health"]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(out.stdout.contains("FAIL  root/port"), "{}", out.stdout);
    let status = d.cli(&["status"]);
    assert!(
        status.stdout.contains("probe:     root/port (fail)"),
        "{}",
        status.stdout
    );
    let (code, head, body) = request(http, "GET", "/health");
    assert_eq!(code, 503, "{body}");
    assert!(head.contains("application/health+json"), "{head}");
    let h: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(h["status"], "fail");
    assert_eq!(
        h["checks"]["probe:root/port"][0]["status"], "fail",
        "{body}"
    );
    assert!(
        h["output"]
            .as_str()
            .unwrap_or("")
            .contains("probe root/port fail"),
        "{body}"
    );

    // The changes are events, and the critical alert reaches the webhook.
    let events = d.events(&["--kind", "probe"]);
    let changes: Vec<String> = events
        .iter()
        .map(|e| {
            format!(
                "{}->{}",
                e["data"]["from"].as_str().unwrap_or(""),
                e["data"]["to"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert!(changes.contains(&"pass->warn".to_string()), "{changes:?}");
    assert!(changes.contains(&"warn->fail".to_string()), "{changes:?}");
    let want = fingerprint("probe:root/port:fail");
    let deadline = Instant::now() + WAIT;
    loop {
        let got = hook.requests();
        let found = got.iter().any(|r| {
            r.json()["alerts"].as_array().is_some_and(|a| {
                a.iter().any(|a| {
                    a["fingerprint"] == want.as_str() && a["labels"]["severity"] == "critical"
                })
            })
        });
        if found {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no critical probe alert at the webhook: {:?}",
            got.iter().map(|r| r.body_str()).collect::<Vec<_>>()
        );
        std::thread::sleep(POLL);
    }

    // Back: the port listens again, the probe passes.
    let again = TcpListener::bind(addr);
    if let Ok(_listener) = again {
        health_until(&d, "the port passing again", |v| {
            probe(v, "root/port")["status"] == "pass"
        });
        let (code, _, _) = request(http, "GET", "/health");
        assert_eq!(code, 200);
    }
}

#[test]
fn a_command_probe_is_healed_by_its_action_and_the_heal_is_recorded_with_its_recheck() {
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("ok");
    let tree = format!(
        r#"
[root]
[[root.children]]
name = "flag"
kind = "probe"
check = "command"
command = "/bin/sh"
args = ["-c", "test -f '{flag}'"]
every = "200ms"
failures_before_warning = 1
failures_before_critical = 1
heal = [{{ action = "command", command = "/bin/sh", args = ["-c", "touch '{flag}'"], cooldown = "1m" }}]
"#,
        flag = flag.display()
    );
    let d = TestDaemon::start(&tree);
    // The flag is missing: the probe fails, the heal action creates it, the re-check passes.
    let deadline = Instant::now() + WAIT;
    let actions = loop {
        let v = d.json(&["heal"], 0);
        let actions = v["actions"].as_array().cloned().unwrap_or_default();
        if !actions.is_empty() {
            break actions;
        }
        assert!(
            Instant::now() < deadline,
            "no heal action:\n{}",
            d.log_text()
        );
        std::thread::sleep(POLL);
    };
    assert!(flag.exists());
    let a = &actions[0];
    assert_eq!(a["probe"], "root/flag");
    assert_eq!(a["action"], "command");
    assert_eq!(a["outcome"], "done", "{a:#}");
    assert_eq!(a["recheck"], "pass", "{a:#}");
    health_until(&d, "the flag passing", |v| {
        probe(v, "root/flag")["status"] == "pass"
    });
    let human = d.cli(&["heal"]);
    assert!(
        human.stdout.contains("root/flag command"),
        "{}",
        human.stdout
    );
    assert!(
        human.stdout.contains("then the probe said pass"),
        "{}",
        human.stdout
    );
    // One action: the cooldown holds the rest, and the probe passes anyway.
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        d.json(&["heal"], 0)["actions"].as_array().map(Vec::len),
        Some(1)
    );
    let heal_events = d.events(&["--kind", "heal"]);
    assert_eq!(heal_events.len(), 1, "{heal_events:#?}");
}

#[test]
fn a_heal_action_that_does_not_help_stops_at_its_hourly_cap_with_a_critical_alert() {
    let rt = runtime();
    let hook = rt.block_on(HttpSink::start());
    let tree = format!(
        r#"
[root]
{alerts}
[[root.children]]
name = "never"
kind = "probe"
check = "command"
command = "/bin/false"
every = "100ms"
failures_before_warning = 1
failures_before_critical = 1
heal = [{{ action = "command", command = "/bin/true", cooldown = "0s", max_per_hour = 2 }}]
"#,
        alerts = alerts_child(&hook.url("/hook"))
    );
    let d = TestDaemon::start(&tree);
    let want = fingerprint("heal_cap:root/never:command:/bin/true");
    let deadline = Instant::now() + WAIT;
    loop {
        let got = hook.requests();
        let capped = got.iter().any(|r| {
            r.json()["alerts"]
                .as_array()
                .is_some_and(|a| a.iter().any(|a| a["fingerprint"] == want.as_str()))
        });
        if capped {
            break;
        }
        assert!(Instant::now() < deadline, "no cap alert:\n{}", d.log_text());
        std::thread::sleep(POLL);
    }
    // Many more checks, no more actions: exactly the cap, each re-checked (and still failing:
    // exit 1 is a warning).
    std::thread::sleep(Duration::from_millis(800));
    let v = d.json(&["heal"], 0);
    let actions = v["actions"].as_array().cloned().unwrap_or_default();
    assert_eq!(actions.len(), 2, "{v:#}");
    for a in &actions {
        assert_eq!(a["outcome"], "done", "{a:#}");
        assert_eq!(a["recheck"], "warn", "{a:#}");
    }
    // A restarted probe does not get a fresh cap: its runs of the last hour are read back.
    assert_eq!(d.cli(&["kill", "root/never"]).code, 0);
    std::thread::sleep(Duration::from_millis(800));
    let v = d.json(&["heal"], 0);
    assert_eq!(v["actions"].as_array().map(Vec::len), Some(2), "{v:#}");
}

#[test]
fn probe_configs_are_checked_with_positions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("supervision.toml");
    crate::util::write_file(
        &path,
        r#"
[root]
[[root.children]]
name = "p"
kind = "probe"
check = "disc"
[[root.children]]
name = "q"
kind = "probe"
check = "disk"
path = "/"
warn_below = "10 parsecs"
heal = [{ action = "restart", path = "root" }, { action = "explode" }]
[[root.children]]
name = "r"
kind = "probe"
check = "http"
url = "ftp://example.org/"
"#,
    );
    let shown = path.display().to_string();
    let out = crate::util::run_cli(&["check", &shown], &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    for needle in [
        ":6:9: `check` in child `root/p`",
        "did you mean `disk`?",
        "unknown unit \"parsecs\"",
        "`path` in a heal action of child `root/q` must be an actor below root",
        "`action` in a heal action of child `root/q` is \"explode\"",
        "`url` in child `root/r`",
    ] {
        assert!(
            out.stderr.contains(needle),
            "missing {needle:?} in:\n{}",
            out.stderr
        );
    }
}

/// The threads of process `pid` (Linux: `/proc/PID/task`); `None` elsewhere.
fn threads(pid: i32) -> Option<usize> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()
        .map(|d| d.count())
}

/// An SQLite database in rollback-journal mode, held under an EXCLUSIVE lock by the returned
/// connection: every check of it waits out the probe's busy timeout (2 s) on a thread of its
/// own, a slow blocking check made to order.
async fn locked_database(path: &std::path::Path) -> sqlx::SqliteConnection {
    use sqlx::{ConnectOptions, Executor};
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Delete);
    let mut conn = options.connect().await.unwrap();
    conn.execute("CREATE TABLE t(x INTEGER)").await.unwrap();
    conn.execute("BEGIN EXCLUSIVE").await.unwrap();
    conn.execute("INSERT INTO t VALUES (1)").await.unwrap();
    conn
}

#[test]
fn many_slow_blocking_checks_share_a_few_slots_status_answers_and_sigterm_exits_at_once() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("locked.db");
    let lock = rt.block_on(locked_database(&db));
    // 60 probes at 100 ms on a database whose every check takes 2 s, 2 slots: without the
    // bound, each probe keeps a check (a thread of sqlx's) running all the time.
    let mut tree = String::from("[root]\n");
    for i in 0..60 {
        tree.push_str(&format!(
            "[[root.children]]\nname = \"db{i}\"\nkind = \"probe\"\ncheck = \"sqlite\"\npath = \"{}\"\nevery = \"100ms\"\ntimeout = \"300ms\"\n",
            db.display()
        ));
    }
    let mut d = TestDaemon::start_with("blocking_checks = 2", &tree);
    // Checks are waiting for slots now; a run that got none within its timeout says so.
    let deadline = Instant::now() + WAIT;
    loop {
        let report = d.json(&["call", "root/db59", "status"], 0);
        let message = report["last"]["message"].as_str().unwrap_or_default();
        if message.contains("waiting for a slot") {
            assert_eq!(report["last"]["status"], "warn", "{report:#}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no check went without a slot: {report:#}\nlog:\n{}",
            d.log_text()
        );
        std::thread::sleep(POLL);
    }
    std::thread::sleep(Duration::from_secs(2));
    // The daemon answers at once, and runs two SQLite checks, not sixty.
    for _ in 0..5 {
        let asked = Instant::now();
        let out = d.cli(&["status", "--json"]);
        assert!(out.code == 0 || out.code == 1, "{}", out.stderr);
        assert!(
            asked.elapsed() < Duration::from_secs(3),
            "status took {:?}",
            asked.elapsed()
        );
        if let Some(n) = threads(d.pid()) {
            // The scheduler, the log writer, a few of the blocking pool's and sqlx's threads
            // (the store's, two checks'), not one per probe.
            assert!(n < 30, "{n} threads");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let stopping = Instant::now();
    assert_eq!(d.terminate(), 0, "log:\n{}", d.log_text());
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "SIGTERM took {:?} to end the daemon",
        stopping.elapsed()
    );
    drop(lock);
}

#[test]
fn a_probe_is_pending_until_its_first_check_completes_and_health_json_says_warn() {
    let dir = tempfile::tempdir().unwrap();
    let go = dir.path().join("go");
    // The first check waits for the test's go-ahead.
    let tree = format!(
        r#"
[root]
[[root.children]]
name = "slow"
kind = "probe"
check = "command"
command = "/bin/sh"
args = ["-c", "while [ ! -f '{go}' ]; do sleep 0.05; done"]
every = "1m"
timeout = "1m"
"#,
        go = go.display()
    );
    let d = TestDaemon::start_with("http = \"127.0.0.1:0\"", &tree);
    let http = http_address(&d);

    let report = d.json(&["call", "root/slow", "status"], 0);
    assert_eq!(report["status"], "pending", "{report:#}");
    assert_eq!(report["pending"], true, "{report:#}");
    assert_eq!(report["last"], Value::Null, "{report:#}");
    let status = d.json(&["status"], 0);
    assert_eq!(
        status["probes_pending"],
        serde_json::json!(["root/slow (command)"]),
        "{status:#}"
    );
    let human = d.cli(&["status"]);
    assert!(
        human
            .stdout
            .contains("probes:    1 not checked yet (pending): root/slow (command)"),
        "{}",
        human.stdout
    );
    // /health knows pass, warn and fail only: not checked yet is a warn (200), not a pass.
    let (code, _, body) = request(http, "GET", "/health");
    assert_eq!(code, 200, "{body}");
    let h: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(h["status"], "warn", "{body}");
    assert_eq!(h["output"], "1 probe not checked yet", "{body}");
    let check = &h["checks"]["probe:root/slow"][0];
    assert_eq!(check["status"], "warn", "{body}");
    assert_eq!(check["output"], "not checked yet", "{body}");

    // The first result: pass, everywhere.
    write_file(&go, "");
    let deadline = Instant::now() + WAIT;
    loop {
        let report = d.json(&["call", "root/slow", "status"], 0);
        if report["status"] == "pass" {
            assert_eq!(report["pending"], false, "{report:#}");
            break;
        }
        assert_eq!(report["status"], "pending", "{report:#}");
        assert!(Instant::now() < deadline, "never checked: {report:#}");
        std::thread::sleep(POLL);
    }
    let status = d.json(&["status"], 0);
    assert_eq!(status.get("probes_pending"), None, "{status:#}");
    let v = d.json(&["health"], 0);
    assert_eq!(v["status"], "pass", "{v:#}");
    assert_eq!(probe(&v, "root/slow")["pending"], false, "{v:#}");
    let (code, _, body) = request(http, "GET", "/health");
    assert_eq!(code, 200, "{body}");
    let h: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(h["status"], "pass", "{body}");
    assert_eq!(
        h["checks"]["probe:root/slow"][0]["status"], "pass",
        "{body}"
    );
}

/// Polls `call PATH check` until the probe's own result says `message` (bounded): the run the
/// test forced is recorded through the store's batched lane, a moment later.
fn check_until(d: &TestDaemon, path: &str, message: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let v = d.json(&["call", path, "check"], 0);
        if v["last"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with(message))
        {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{path} never said {message:?}: {v:#}\nlog:\n{}",
            d.log_text()
        );
        std::thread::sleep(POLL);
    }
}

/// `sync_recency` on targets that never synced: one offline (a drive never plugged in since
/// install) warns "offline, never synced"; one that is there but whose runs fail (its primary
/// folder is missing) says "never synced" and names the last run's outcome.
#[test]
fn sync_recency_tells_offline_never_synced_from_never_synced() {
    let remote = tempfile::tempdir().unwrap();
    let there = remote.path().join("there");
    std::fs::create_dir(&there).unwrap();
    let tree = format!(
        r#"
[root]
[[root.children]]
name = "away"
kind = "sync_target"
target = "{away}"
paths = ["shared"]
every = "1h"

[[root.children]]
name = "failing"
kind = "sync_target"
target = "{there}"
primary = "no-such-folder"
every = "1h"

[[root.children]]
name = "away_recency"
kind = "probe"
check = "sync_recency"
target = "away"
every = "1h"

[[root.children]]
name = "failing_recency"
kind = "probe"
check = "sync_recency"
target = "failing"
every = "1h"

[[root.children]]
name = "away_asked"
kind = "probe"
check = "sync_recency"
target = "away"
alert_offline = true
every = "1h"
"#,
        away = remote.path().join("unplugged/drive").display(),
        there = there.display(),
    );
    let d = TestDaemon::start(&tree);
    let v = d.json(&["sync", "away"], 75);
    assert_eq!(v["reports"][0]["outcome"], "skipped", "{v:#}");
    let v = d.json(&["sync", "failing"], 1);
    assert_eq!(v["reports"][0]["outcome"], "error", "{v:#}");

    // Informational by default: it passes, saying so (a drive never plugged in warns nobody).
    let v = check_until(&d, "root/away_recency", "offline, never synced (first run");
    assert_eq!(v["last"]["status"], "pass", "{v:#}");
    assert_eq!(v["status"], "pass", "{v:#}");
    assert!(
        v["last"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("informational")),
        "{v:#}"
    );
    assert_eq!(v["last"]["details"]["offline"], true, "{v:#}");
    let v = check_until(&d, "root/away_asked", "offline, never synced (first run");
    assert_eq!(v["last"]["status"], "warn", "asked to warn: {v:#}");
    let v = check_until(
        &d,
        "root/failing_recency",
        "never synced: the target is there but no run succeeded (last run: error;",
    );
    assert_eq!(v["last"]["status"], "warn", "{v:#}");
    assert!(
        v["last"]["details"]["last_reason"]
            .as_str()
            .is_some_and(|r| r.contains("no-such-folder")),
        "{v:#}"
    );
}

/// The processes whose command line is exactly `want` (read from /proc).
fn processes_running(want: &[&str]) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&str> = cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .filter_map(|a| std::str::from_utf8(a).ok())
            .collect();
        // A zombie has an empty command line: it is dead.
        if args == want {
            out.push(pid);
        }
    }
    out
}

/// Waits (bounded) until each of `wants` runs.
fn until_running(d: &TestDaemon, wants: &[&[&str]]) {
    let deadline = Instant::now() + WAIT;
    while wants.iter().any(|w| processes_running(w).is_empty()) {
        assert!(Instant::now() < deadline, "log:\n{}", d.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Asserts that none of `wants` runs any more (after at most 5 s).
fn assert_gone(d: &TestDaemon, wants: &[&[&str]]) {
    for want in wants {
        let still = until_none(want, Duration::from_secs(5));
        assert!(
            still.is_empty(),
            "{want:?} still running: {still:?}\nlog:\n{}",
            d.log_text()
        );
    }
}

/// Waits (bounded) until no process runs `want`; answers those still running at the end.
fn until_none(want: &[&str], within: Duration) -> Vec<u32> {
    let deadline = Instant::now() + within;
    loop {
        let left = processes_running(want);
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// No orphans: what a command probe leaves behind is killed with its run, even a child that
/// called `setsid` (out of the group the run kills); and what probes left when the daemon was
/// SIGKILLed (hanging programs, setsid children) is killed by the next start.
#[test]
fn command_probes_leave_no_orphans_setsid_or_sigkill() {
    let left = ["sleep", "987651"];
    let hung = ["sleep", "987652"];
    let escaped = ["sleep", "987653"];
    let tree = r#"
[root]
[[root.children]]
name = "leaves"
kind = "probe"
check = "command"
command = "/bin/sh"
args = ["-c", "setsid sleep 987651 >/dev/null 2>&1 & exit 0"]
every = "200ms"

[[root.children]]
name = "hangs"
kind = "probe"
check = "command"
command = "/bin/sh"
args = ["-c", "setsid sleep 987653 >/dev/null 2>&1 & sleep 987652"]
every = "1h"
timeout = "1h"
"#;
    let mut d = TestDaemon::start(tree);
    // Several runs of `leaves` have ended; each one's setsid child went with it.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        processes_running(&left).len() <= 1,
        "orphans of ended runs: {:?}",
        processes_running(&left)
    );
    // `hangs` hangs, with a setsid child: the daemon is SIGKILLed meanwhile.
    until_running(&d, &[&hung, &escaped]);
    d.signal(rustix::process::Signal::KILL);
    let _ = d.wait_exit();
    let _ = std::fs::remove_file(&d.socket);
    // The restart kills what the earlier start left; its own probes start again (and hang
    // again), so the tree without them is the one restarted.
    d.write_config("[root]\n[[root.children]]\nname = \"beat\"\nkind = \"heartbeat\"\n");
    d.launch(&[]);
    d.wait_ready();
    assert_gone(&d, &[&left, &hung, &escaped]);
    assert_eq!(d.terminate(), 0);
}

/// Regressions of the attack on the orphan killer: a restart whose config spells the state
/// dir another way (`DIR/./state/`) still kills what the earlier start left; and a probe
/// killed (`kill root/P`, no orderly stop) mid-check, then a shutdown, leaves nothing (its
/// check stops with it, and the shutdown kills what its runs left).
#[test]
fn leftovers_are_killed_however_the_state_dir_is_spelled_and_after_a_kill_then_shutdown() {
    let hung = ["sleep", "987661"];
    let escaped = ["sleep", "987662"];
    let probe = r#"
[root]
[[root.children]]
name = "hangs"
kind = "probe"
check = "command"
command = "/bin/sh"
args = ["-c", "setsid sleep 987662 >/dev/null 2>&1 </dev/null & sleep 987661"]
every = "1h"
timeout = "1h"
"#;
    let mut d = TestDaemon::start(probe);
    until_running(&d, &[&hung, &escaped]);
    d.signal(rustix::process::Signal::KILL);
    let _ = d.wait_exit();
    let _ = std::fs::remove_file(&d.socket);
    // The same state dir, spelled otherwise.
    let other = format!(
        "[daemon]\nstate_dir = \"{}/./state/\"\nsocket = \"{}\"\n[root]\n[[root.children]]\nname = \"beat\"\nkind = \"heartbeat\"\n",
        d.dir.path().display(),
        d.socket.display()
    );
    std::fs::write(&d.config, other).unwrap();
    d.launch(&[]);
    d.wait_ready();
    assert_gone(&d, &[&hung, &escaped]);
    assert_eq!(d.terminate(), 0);

    // A probe killed mid-check, then a shutdown.
    d.write_config(probe);
    d.launch(&[]);
    d.wait_ready();
    until_running(&d, &[&hung, &escaped]);
    assert_eq!(d.cli(&["kill", "root/hangs"]).code, 0);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(d.terminate(), 0);
    assert_gone(&d, &[&hung, &escaped]);
}

/// A `sync` heal action through the real tree adapter: the probe finds a file missing in the
/// target, the action runs the real sync target (not a fake), the file arrives, and the heal
/// is recorded with the run's summary and a passing re-check.
#[test]
fn a_sync_heal_action_runs_the_real_sync_target() {
    let remote = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let target = remote.path().join("target");
    std::fs::create_dir(&target).unwrap_or_else(|e| panic!("{e}"));
    let copied = target.join("shared/notes.txt");
    let tree = format!(
        r#"
[root]
[[root.children]]
name = "t"
kind = "sync_target"
target = "{target}"
paths = ["shared"]
every = "1h"
[[root.children]]
name = "arrived"
kind = "probe"
check = "command"
command = "/bin/sh"
args = ["-c", "test -f '{copied}'"]
every = "200ms"
failures_before_warning = 1
failures_before_critical = 1
heal = [{{ action = "sync", target = "t", cooldown = "1m" }}]
"#,
        target = target.display(),
        copied = copied.display()
    );
    let mut d = TestDaemon::prepare("", &tree);
    std::fs::create_dir_all(d.state.join("shared")).unwrap_or_else(|e| panic!("{e}"));
    write_file(d.state.join("shared/notes.txt"), "hello");
    d.launch(&[]);
    d.wait_ready();
    let deadline = Instant::now() + WAIT;
    let actions = loop {
        let v = d.json(&["heal"], 0);
        let actions = v["actions"].as_array().cloned().unwrap_or_default();
        if !actions.is_empty() {
            break actions;
        }
        assert!(
            Instant::now() < deadline,
            "no heal action:\n{}",
            d.log_text()
        );
        std::thread::sleep(POLL);
    };
    let a = &actions[0];
    assert_eq!(a["action"], "sync", "{a:#}");
    assert_eq!(a["outcome"], "done", "{a:#}");
    assert_eq!(a["detail"], "synced t: 1 file(s) changed", "{a:#}");
    assert_eq!(a["recheck"], "pass", "{a:#}");
    assert_eq!(
        std::fs::read_to_string(&copied).unwrap_or_default(),
        "hello"
    );
}

/// `metasystem probes` lists each probe's latest report without running a check (`health`
/// runs them all): the check's count of runs does not move; exit 1 while one fails.
#[test]
fn the_probes_command_lists_the_latest_reports_without_checking() {
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(e) => panic!("tempdir: {e}"),
    };
    let runs = dir.path().join("runs");
    let tree = format!(
        r#"
[root]

[[root.children]]
name = "flaky"
kind = "probe"
check = "command"
every = "1h"
failures_before_critical = 1
command = "/bin/sh"
args = ["-c", "echo x >> '{}'; exit 2"]
"#,
        runs.display()
    );
    let d = TestDaemon::start(&tree);
    let count = || {
        std::fs::read_to_string(&runs)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    let deadline = Instant::now() + WAIT;
    let v = loop {
        let out = d.cli(&["probes", "--json"]);
        let v: Value = serde_json::from_str(out.stdout.trim()).unwrap_or(Value::Null);
        if probe(&v, "root/flaky")["status"] == "fail" {
            assert_eq!(out.code, 1, "{}", out.stderr);
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "never failed: {v}\n{}",
            d.log_text()
        );
        std::thread::sleep(POLL);
    };
    assert_eq!(v["status"], "fail", "{v}");
    let checked = count();
    for _ in 0..5 {
        assert_eq!(d.cli(&["probes"]).code, 1);
    }
    assert_eq!(count(), checked, "`probes` ran the check");
    let human = d.cli(&["probes"]);
    assert!(human.stdout.contains("root/flaky"), "{}", human.stdout);
    // `health` runs it.
    assert_eq!(d.cli(&["health"]).code, 1);
    assert_eq!(count(), checked + 1);
}
