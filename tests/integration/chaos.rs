//! `chaos`: a timed chaos monkey run in the daemon, followed by the CLI; `chaos stop`,
//! `chaos status`, one run at a time, bad arguments, and a shutdown in the middle of a run.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{Reaped, TestDaemon, BIN};

const TREE: &str = r#"
[root]
strategy = "one_for_one"
intensity = 1000
period = "10s"
backoff = "none"

[[root.children]]
name = "a"
kind = "heartbeat"
every = "200ms"

[[root.children]]
name = "b"
kind = "heartbeat"

[[root.children]]
name = "c"
kind = "heartbeat"

[[root.children]]
name = "grp"
kind = "supervisor"
strategy = "one_for_all"
intensity = 1000
period = "10s"
  [[root.children.children]]
  name = "x"
  kind = "heartbeat"
  [[root.children.children]]
  name = "y"
  kind = "heartbeat"
"#;

/// `metasystem --socket S ARGS` in the background, its stdout to `out` (a file: a long run
/// prints more than a pipe holds).
fn spawn_cli(d: &TestDaemon, args: &[&str], out: &Path) -> Reaped {
    let file = std::fs::File::create(out).unwrap_or_else(|e| panic!("{e}"));
    let socket = d.socket.display().to_string();
    let child = Command::new(BIN)
        .args(["--socket", &socket])
        .args(args)
        .env_remove("METASYSTEM_SOCKET")
        .env_remove("METASYSTEM_CONFIG")
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {BIN}: {e}"));
    Reaped(child)
}

/// Waits at most `limit` for the background CLI to exit; its exit code.
fn wait_cli(cli: &mut Reaped, limit: Duration, what: &str) -> i32 {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = cli.0.try_wait() {
            return status.code().unwrap_or(-1);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} did not end within {limit:?}");
}

/// The JSON lines a `chaos --json` follower printed.
fn lines(out: &Path) -> Vec<Value> {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn status(d: &TestDaemon) -> Value {
    d.json(&["chaos", "status"], 0)
}

/// The `chaos` events of run `run` whose action is `action`.
fn chaos_events(d: &TestDaemon, run: u64, action: &str) -> Vec<Value> {
    d.events(&["--kind", "chaos", "--limit", "100000"])
        .into_iter()
        .filter(|e| e["data"]["run"] == run && e["data"]["action"] == action)
        .collect()
}

/// Two minutes of kills every 200 ms to 1 s over workers and a nested one_for_all
/// supervisor: every kill recovers, each is an event, and the tree ends whole.
#[test]
fn a_two_minute_run_recovers_every_kill() {
    let d = TestDaemon::start(TREE);
    let out = d.dir.path().join("chaos.out");
    let mut cli = spawn_cli(
        &d,
        &[
            "chaos",
            "--for",
            "2m",
            "--every",
            "200ms..1s",
            "--seed",
            "7",
            "--json",
        ],
        &out,
    );
    // The run (2 min) and its last recoveries, with a margin; never more.
    let code = wait_cli(&mut cli, Duration::from_secs(120 + 60), "the chaos run");
    let lines = lines(&out);
    let started = &lines[0]["started"];
    assert_eq!(
        (
            started["path"].as_str(),
            started["seed"].as_u64(),
            started["state"].as_str()
        ),
        (Some("root"), Some(7), Some("running")),
        "{started}"
    );
    let report = &lines.last().unwrap_or_else(|| panic!("no output"))["report"];
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["state"], "ended", "{report}");
    assert_eq!(report["ended_by"], "duration", "{report}");
    assert_eq!(
        (
            report["every_min_ms"].as_u64(),
            report["every_max_ms"].as_u64()
        ),
        (Some(200), Some(1000))
    );
    let kills = report["kill_count"].as_u64().unwrap_or(0);
    // At most 1 s between steps for 2 minutes.
    assert!(kills >= 100, "{kills} kills: {report}");
    assert_eq!(report["recovered"], kills, "{report}");
    assert_eq!(
        (report["not_recovered"].as_u64(), report["pending"].as_u64()),
        (Some(0), Some(0)),
        "{report}"
    );
    let listed = report["kills"].as_array().cloned().unwrap_or_default();
    assert_eq!(listed.len() as u64, kills);
    for (i, k) in listed.iter().enumerate() {
        assert_eq!(k["n"], i as u64 + 1, "{k}");
        assert!(k["recovered_after_ms"].as_f64().is_some(), "{k}");
        let path = k["path"].as_str().unwrap_or("");
        assert!(path.starts_with("root/") && path != "root", "{k}");
    }
    let max = report["max_recovery_ms"].as_f64().unwrap_or(-1.0);
    let median = report["median_recovery_ms"].as_f64().unwrap_or(-1.0);
    assert!(0.0 <= median && median <= max && max < 60_000.0, "{report}");
    // Workers and the nested supervisor were all targets.
    for target in [
        "root/a",
        "root/b",
        "root/c",
        "root/grp",
        "root/grp/x",
        "root/grp/y",
    ] {
        assert!(
            listed.iter().any(|k| k["path"] == target),
            "{target} never killed"
        );
    }
    // The follower printed every kill once, settled.
    let followed: Vec<&Value> = lines.iter().filter_map(|l| l.get("kill")).collect();
    assert_eq!(followed.len() as u64, kills);

    // Every actor runs again.
    d.wait_until("every actor running", |d| {
        d.nodes().iter().all(|n| n["state"] == "running")
    });
    // Every kill is an event, and one recorded exit (`failed: injected failure`).
    let run = report["run"].as_u64().unwrap_or(0);
    let kill_events = chaos_events(&d, run, "kill");
    assert_eq!(kill_events.len() as u64, kills);
    for (event, kill) in kill_events.iter().zip(&listed) {
        assert_eq!(
            (&event["data"]["path"], &event["data"]["incarnation"]),
            (&kill["path"], &kill["incarnation"]),
            "{event}"
        );
    }
    let reports = chaos_events(&d, run, "report");
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0]["data"]["kill_count"], kills);
    assert_eq!(reports[0]["data"]["recovered"], kills);
    let injected = d
        .events(&["--kind", "exited", "--limit", "100000"])
        .iter()
        .filter(|e| e["data"]["error"] == "injected failure")
        .count();
    assert_eq!(injected as u64, kills);
    assert_eq!(d.json(&["status"], 0)["healthy"], true);
}

/// `chaos stop` ends a run early (the report says so); a second run is refused while one
/// runs; the run goes on when its follower goes away; bad arguments are explained.
#[test]
fn stop_refusal_and_bad_arguments() {
    let d = TestDaemon::start(TREE);

    // Bad arguments: usage errors (exit 2) before anything is sent.
    for (args, says) in [
        (vec!["chaos", "--for", "0s"], "more than zero"),
        (vec!["chaos", "--for", "25h"], "over 24h"),
        (vec!["chaos", "--for", "soon"], "--for"),
        (vec!["chaos"], "--for"),
        (vec!["chaos", "--for", "1m", "--every", "1s"], "MIN..MAX"),
        (vec!["chaos", "--for", "1m", "--every", "1s-2s"], "MIN..MAX"),
        (
            vec!["chaos", "--for", "1m", "--every", "2s..1s"],
            "above the maximum",
        ),
        (
            vec!["chaos", "--for", "1m", "--every", "0s..1s"],
            "at least 1ms",
        ),
        (vec!["chaos", "--for", "1m", "--seed", "x"], "--seed"),
        (vec!["chaos", "root/grp", "stop"], "cannot be used"),
    ] {
        let out = d.cli(&args);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(says), "{args:?}: {}", out.stderr);
    }
    // Paths: not a tree path (usage), unknown, a worker (refused, exit 1).
    let out = d.cli(&["chaos", "root//x", "--for", "1m"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("not a tree path"), "{}", out.stderr);
    let e = d.json(&["chaos", "root/nope", "--for", "1m"], 1);
    assert_eq!(e["error"]["code"], "not_found", "{e}");
    assert!(e["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("root/nope")));
    let e = d.json(&["chaos", "root/a", "--for", "1m"], 1);
    assert_eq!(e["error"]["code"], "not_a_supervisor", "{e}");
    // The same checks in the daemon, for any client of the socket.
    let answers = d.raw(
        concat!(
            r#"{"id":1,"cmd":"chaos","for_ms":0}"#,
            "\n",
            r#"{"id":2,"cmd":"chaos","for_ms":86400001}"#,
            "\n",
            r#"{"id":3,"cmd":"chaos","for_ms":1000,"every_min_ms":0,"every_max_ms":5}"#,
            "\n",
            r#"{"id":4,"cmd":"chaos","for_ms":1000,"every_min_ms":50,"every_max_ms":5}"#,
            "\n",
        )
        .as_bytes(),
    );
    assert_eq!(answers.len(), 4);
    for (a, says) in answers
        .iter()
        .zip(["--for", "over 24h", "at least 1ms", "above the maximum"])
    {
        assert_eq!(a["error"]["code"], "bad_request", "{a}");
        assert!(
            a["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(says)),
            "{a}"
        );
    }
    // Nothing ran.
    assert_eq!(status(&d)["running"], false);
    let out = d.cli(&["chaos", "status"]);
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("no chaos run"), "{}", out.stdout);

    // A long run, followed in the background.
    let out = d.dir.path().join("follow.out");
    let mut follower = spawn_cli(
        &d,
        &[
            "chaos",
            "root",
            "--for",
            "10m",
            "--every",
            "50ms..150ms",
            "--seed",
            "3",
            "--json",
        ],
        &out,
    );
    d.wait_until("a few kills", |d| {
        status(d)["run"]["kill_count"].as_u64().unwrap_or(0) >= 3
    });
    // A second run is refused, naming the one that runs.
    let second = d.cli(&["chaos", "root/grp", "--for", "1m"]);
    assert_eq!(second.code, 1, "{}", second.stderr);
    assert!(
        second
            .stderr
            .contains("chaos run 1 over root is already running"),
        "{}",
        second.stderr
    );
    let e = d.json(&["chaos", "--for", "1m"], 1);
    assert_eq!(e["error"]["code"], "already_running", "{e}");

    // The follower goes away (Ctrl-C): the run goes on in the daemon.
    if let Some(pid) = rustix::process::Pid::from_raw(follower.0.id() as i32) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
    }
    wait_cli(&mut follower, Duration::from_secs(10), "the follower");
    let before = status(&d)["run"]["kill_count"].as_u64().unwrap_or(0);
    d.wait_until("more kills without a follower", |d| {
        let s = status(d);
        s["running"] == true && s["run"]["kill_count"].as_u64().unwrap_or(0) > before + 2
    });

    // Stopped early: the report says so.
    let stopped = d.json(&["chaos", "stop"], 0);
    assert_eq!(stopped["stopped"], true, "{stopped}");
    let report = &stopped["run"];
    assert_eq!(
        (
            report["run"].as_u64(),
            report["state"].as_str(),
            report["ended_by"].as_str()
        ),
        (Some(1), Some("ended"), Some("stopped")),
        "{report}"
    );
    let kills = report["kill_count"].as_u64().unwrap_or(0);
    assert!(kills > before, "{report}");
    assert_eq!(report["pending"], 0, "{report}");
    assert_eq!(report["recovered"], kills, "{report}");
    // No more kills after the stop: the run says it ended (the positive signal; its task
    // kills nothing once ended), and its count is the report's.
    let s = status(&d);
    assert_eq!(s["running"], false, "{s}");
    assert_eq!(s["run"]["kill_count"], kills, "{s}");
    let human = d.cli(&["chaos", "status"]);
    assert_eq!(human.code, 0);
    assert!(
        human.stdout.contains("stopped by `chaos stop`"),
        "{}",
        human.stdout
    );
    assert_eq!(chaos_events(&d, 1, "kill").len() as u64, kills);
    let recorded = chaos_events(&d, 1, "report");
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0]["data"]["ended_by"], "stopped");
    // Stopping again changes nothing.
    let again = d.json(&["chaos", "stop"], 0);
    assert_eq!(again["stopped"], false, "{again}");
    let out = d.cli(&["chaos", "stop"]);
    assert_eq!(out.code, 0);
    assert!(
        out.stdout.contains("no chaos run is running"),
        "{}",
        out.stdout
    );

    // The next run may start, and runs to its end.
    let short = d.cli(&[
        "chaos",
        "root/grp",
        "--for",
        "1s",
        "--every",
        "50ms..100ms",
        "--seed",
        "5",
    ]);
    assert_eq!(short.code, 0, "{}{}", short.stdout, short.stderr);
    for says in [
        "chaos run 2 started under root/grp",
        "Ctrl-C stops following",
        "kill #1",
        "ended (its --for elapsed)",
        "recovery: median",
    ] {
        assert!(short.stdout.contains(says), "{says}: {}", short.stdout);
    }
    let s = status(&d);
    assert_eq!(
        (s["run"]["run"].as_u64(), s["run"]["path"].as_str()),
        (Some(2), Some("root/grp"))
    );
    assert!(s["run"]["kills"]
        .as_array()
        .is_some_and(|k| k.iter().all(|k| k["path"]
            .as_str()
            .is_some_and(|p| p.starts_with("root/grp/")))));
    d.wait_until("every actor running", |d| {
        d.nodes().iter().all(|n| n["state"] == "running")
    });
}

/// A shutdown does not wait for a run: it ends at once, and its report is recorded.
#[test]
fn a_shutdown_ends_a_run() {
    let mut d = TestDaemon::start(TREE);
    let out = d.dir.path().join("follow.out");
    let mut follower = spawn_cli(
        &d,
        &["chaos", "--for", "10m", "--every", "20ms..50ms", "--json"],
        &out,
    );
    d.wait_until("a few kills", |d| {
        status(d)["run"]["kill_count"].as_u64().unwrap_or(0) >= 3
    });
    let asked = Instant::now();
    assert_eq!(d.cli(&["shutdown"]).code, 0);
    assert_eq!(d.wait_exit(), 0);
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "{:?}",
        asked.elapsed()
    );
    // The follower saw the report, or lost the daemon; either way it ends.
    wait_cli(&mut follower, Duration::from_secs(10), "the follower");
    d.launch(&[]);
    d.wait_ready();
    let reports = chaos_events(&d, 1, "report");
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0]["data"]["ended_by"], "shutdown");
    assert_eq!(
        reports[0]["data"]["kill_count"].as_u64(),
        Some(chaos_events(&d, 1, "kill").len() as u64)
    );
    // A new daemon has no run of its own yet.
    assert_eq!(status(&d)["running"], false);
}
