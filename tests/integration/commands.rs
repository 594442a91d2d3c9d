//! Every CLI command against a running daemon, human and JSON, and their exit codes.

use crate::util::{node_field, run_cli, TestDaemon};

const TREE: &str = r#"
[root]
strategy = "one_for_one"
intensity = 10
period = "10s"

[[root.children]]
name = "beat"
kind = "heartbeat"
every = "100ms"

[[root.children]]
name = "grp"
kind = "supervisor"
intensity = 10
  [[root.children.children]]
  name = "x"
  kind = "heartbeat"
"#;

#[test]
fn status_reports_version_pid_and_uptime() {
    let d = TestDaemon::start(TREE);
    let s = d.json(&["status"], 0);
    assert_eq!(s["version"], metasystem::VERSION);
    assert_eq!(s["pid"], d.pid());
    assert!(s["uptime_s"].is_u64());
    assert_eq!(s["healthy"], true);
    assert_eq!(s["running"], 4);
    let human = d.cli(&["status"]);
    assert_eq!(human.code, 0);
    assert!(
        human.stdout.contains("healthy") && human.stdout.contains("4 running"),
        "{}",
        human.stdout
    );
}

#[test]
fn tree_json_contract() {
    let d = TestDaemon::start(TREE);
    let nodes = d.nodes();
    let rows: Vec<(String, String, String, u64, u64)> = nodes
        .iter()
        .map(|n| {
            (
                n["path"].as_str().unwrap_or("").to_string(),
                n["kind"].as_str().unwrap_or("").to_string(),
                n["state"].as_str().unwrap_or("").to_string(),
                n["restarts"].as_u64().unwrap_or(99),
                n["incarnation"].as_u64().unwrap_or(99),
            )
        })
        .collect();
    let expect = |p: &str, k: &str| (p.to_string(), k.to_string(), "running".to_string(), 0, 1);
    assert_eq!(
        rows,
        [
            expect("root", "supervisor"),
            expect("root/beat", "heartbeat"),
            expect("root/grp", "supervisor"),
            expect("root/grp/x", "heartbeat"),
        ]
    );
    let human = d.cli(&["tree"]);
    assert_eq!(human.code, 0);
    for p in ["root/beat", "root/grp/x", "STATE", "running"] {
        assert!(human.stdout.contains(p), "{}", human.stdout);
    }
}

#[test]
fn stop_start_restart_kill() {
    let d = TestDaemon::start(TREE);
    let out = d.cli(&["stop", "root/grp/x"]);
    assert_eq!((out.code, out.stdout.trim()), (0, "root/grp/x: stopped"));
    assert_eq!(
        d.node("root/grp/x").map(|n| n["state"].clone()),
        Some("stopped".into())
    );
    // A stopped actor is not a failure: the tree is still healthy.
    assert_eq!(d.cli(&["tree"]).code, 0);

    let out = d.cli(&["start", "root/grp/x"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let x = d.node("root/grp/x").unwrap_or_default();
    assert_eq!(
        (x["state"].as_str(), x["incarnation"].as_u64()),
        (Some("running"), Some(2))
    );

    // Regression: `stop` on a stopped actor succeeded while `start` on a running one failed.
    // Both now answer alike: done, nothing changed (as systemctl does).
    let started = d.cli(&["start", "root/grp/x"]);
    assert_eq!(
        (started.code, started.stdout.trim()),
        (0, "root/grp/x: already running")
    );
    let json = d.json(&["start", "root/grp/x"], 0);
    assert_eq!(
        (json["changed"].clone(), json["state"].clone()),
        (false.into(), "running".into())
    );
    assert_eq!(d.json(&["stop", "root/beat"], 0)["changed"], true);
    let stopped = d.cli(&["stop", "root/beat"]);
    assert_eq!(
        (stopped.code, stopped.stdout.trim()),
        (0, "root/beat: already stopped")
    );
    let json = d.json(&["stop", "root/beat"], 0);
    assert_eq!(
        (json["changed"].clone(), json["state"].clone()),
        (false.into(), "stopped".into())
    );
    assert_eq!(d.json(&["start", "root/beat"], 0)["changed"], true);

    assert_eq!(d.cli(&["restart", "root/grp"]).code, 0);
    let nodes = d.nodes();
    assert_eq!(node_field(&nodes, "root/grp")["incarnation"], 2);
    assert_eq!(
        node_field(&nodes, "root/grp/x")["incarnation"],
        1,
        "a fresh subtree"
    );

    let killed = d.json(&["kill", "root/beat"], 0);
    assert_eq!(killed["path"], "root/beat");
    d.wait_until("beat restarted", |d| {
        d.node("root/beat")
            .is_some_and(|n| n["incarnation"] == 3 && n["state"] == "running")
    });
    let beat = d.node("root/beat").unwrap_or_default();
    assert_eq!(beat["restarts"], 1);
    assert_eq!(beat["last_exit"], "failed: injected failure");
}

#[test]
fn operation_errors_have_exit_codes() {
    let d = TestDaemon::start(TREE);
    let missing = d.cli(&["stop", "root/nope"]);
    assert_eq!(missing.code, 1);
    assert!(
        missing.stderr.contains("root/nope: no such actor"),
        "{}",
        missing.stderr
    );
    let bad = d.cli(&["stop", "not-a-path"]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("not a tree path"), "{}", bad.stderr);
    let root = d.cli(&["kill", "root"]);
    assert_eq!(root.code, 1);
    let json = d.json(&["stop", "root/nope"], 1);
    assert_eq!(json["error"]["code"], "not_found");
    // Under --json an error is JSON on stdout and a line for people on stderr.
    let both = d.cli(&["stop", "root/nope", "--json"]);
    assert!(
        both.stderr.contains("root/nope: no such actor"),
        "{}",
        both.stderr
    );
    // The daemon is unharmed.
    assert_eq!(d.cli(&["status"]).code, 0);
}

#[test]
fn events_are_recorded_and_filtered() {
    let d = TestDaemon::start(TREE);
    d.wait_until("a few heartbeats", |d| {
        d.events(&["--path", "root/beat", "--kind", "heartbeat"])
            .len()
            >= 3
    });
    let started = d.events(&["--kind", "started"]);
    let paths: Vec<&str> = started.iter().filter_map(|e| e["path"].as_str()).collect();
    for p in ["root", "root/beat", "root/grp", "root/grp/x"] {
        assert!(paths.contains(&p), "{paths:?}");
    }
    let e = &started[0];
    assert!(e["at"].as_str().is_some_and(|t| t.ends_with('Z')), "{e}");
    assert!(e["data"]["incarnation"].is_u64());
    // The path and its subtree, nothing else (an empty answer must fail this).
    let grp = d.events(&["--path", "root/grp"]);
    let mut grp_paths: Vec<&str> = grp.iter().filter_map(|e| e["path"].as_str()).collect();
    grp_paths.sort_unstable();
    grp_paths.dedup();
    assert_eq!(grp_paths, ["root/grp", "root/grp/x"], "{grp:?}");
    assert!(d.events(&["--since", "1h"]).len() >= started.len());
    let human = d.cli(&["events", "--kind", "started"]);
    assert!(
        human.stdout.contains("root/grp/x") && human.stdout.contains("started"),
        "{}",
        human.stdout
    );
}

#[test]
fn without_a_daemon_commands_say_so() {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    };
    let socket = dir.path().join("nobody-home.sock").display().to_string();
    let out = run_cli(&["--socket", &socket, "status"], &[]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("cannot connect") && out.stderr.contains("is the daemon running"),
        "{}",
        out.stderr
    );
    let usage = run_cli(&["frobnicate"], &[]);
    assert_eq!(usage.code, 2);
    let missing_arg = run_cli(&["stop"], &[]);
    assert_eq!(missing_arg.code, 2);
    let json = run_cli(&["--socket", &socket, "status", "--json"], &[]);
    assert_eq!(json.code, 2);
    assert_eq!(json.json()["error"]["code"], "connection");
    assert!(json.stderr.contains("cannot connect"), "{}", json.stderr);
}

/// Regression: `--timeout 500ms` was reported as "within 0s". A listener that never answers
/// stands in for a wedged daemon.
#[test]
fn a_timeout_is_reported_as_given() {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    };
    let path = dir.path().join("silent.sock");
    let _listener = match std::os::unix::net::UnixListener::bind(&path) {
        Ok(l) => l,
        Err(e) => panic!("{e}"),
    };
    let socket = path.display().to_string();
    let out = run_cli(&["--socket", &socket, "--timeout", "500ms", "status"], &[]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("no answer from the daemon within 500ms"),
        "{}",
        out.stderr
    );
}

#[test]
fn shutdown_stops_the_daemon_cleanly() {
    let mut d = TestDaemon::start(TREE);
    let out = d.cli(&["shutdown"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(d.wait_exit(), 0, "{}", d.log_text());
    assert!(!d.socket.exists(), "the socket file is removed");
}

/// `call PATH [OP] [ARGS]` reaches the handler of the actor's kind, which asks the actor and
/// renders its typed reply; errors say what and where.
#[test]
fn call_routes_operations_to_the_kind() {
    let d = TestDaemon::start(TREE);
    let ops = d.json(&["call", "root/beat"], 0);
    assert_eq!(ops["kind"], "heartbeat");
    let names: Vec<&str> = ops["ops"]
        .as_array()
        .map(|a| a.iter().filter_map(|o| o["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["status", "beat"]);
    let human = d.cli(&["call", "root/beat"]);
    assert!(
        human.stdout.contains("root/beat (heartbeat): operations"),
        "{}",
        human.stdout
    );

    let beat = d.json(&["call", "root/beat", "beat"], 0);
    let n = beat["beat"].as_u64().unwrap_or(0);
    assert!(n >= 2, "a beat at start plus this one: {beat}");
    let status = d.json(&["call", "root/beat", "status"], 0);
    assert_eq!(status["every_s"], 0.1);
    assert!(status["beats"].as_u64().unwrap_or(0) >= n, "{status}");
    assert!(status["last_beat_ms"].as_i64().unwrap_or(0) > 0, "{status}");
    let human = d.cli(&["call", "root/beat", "status"]);
    assert!(human.stdout.contains("every_s"), "{}", human.stdout);

    let grp = d.json(&["call", "root/grp", "status"], 0);
    assert_eq!(
        (
            grp["strategy"].as_str(),
            grp["intensity"].as_u64(),
            grp["children"].as_u64()
        ),
        (Some("one_for_one"), Some(10), Some(1))
    );
    let root = d.json(&["call", "root", "status"], 0);
    assert_eq!(root["children"], 2);

    let typo = d.json(&["call", "root/beat", "stauts"], 2);
    let message = typo["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("no operation `stauts`") && message.contains("did you mean `status`?"),
        "{typo}"
    );
    let extra = d.json(&["call", "root/beat", "status", "x=1"], 2);
    assert!(
        extra["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("bad arguments for `status`") && m.contains("`x`")),
        "{extra}"
    );
    let missing = d.json(&["call", "root/nope", "status"], 1);
    assert_eq!(missing["error"]["code"], "not_found");
    let malformed = d.cli(&["call", "root/beat", "status", "novalue"]);
    assert_eq!(malformed.code, 2);
    assert!(
        malformed.stderr.contains("KEY=VALUE"),
        "{}",
        malformed.stderr
    );

    assert_eq!(d.cli(&["stop", "root/beat"]).code, 0);
    let stopped = d.json(&["call", "root/beat", "status"], 1);
    assert_eq!(stopped["error"]["code"], "not_running");
}

/// Regression: `metasystem events | head -1` and `tree | head -1` panicked (exit 101) when the
/// reader went away. They must stop quietly.
#[test]
fn a_closed_stdout_ends_output_quietly() {
    let d = TestDaemon::start(TREE);
    d.wait_until("events", |d| d.events(&[]).len() >= 4);
    let socket = d.socket.display().to_string();
    for args in [
        vec!["events"],
        vec!["tree"],
        vec!["events", "--json"],
        vec!["call", "root/beat"],
    ] {
        // A pipe whose reader is already gone: every write fails with EPIPE.
        let (reader, writer) = match std::io::pipe() {
            Ok(p) => p,
            Err(e) => panic!("pipe: {e}"),
        };
        drop(reader);
        let out = std::process::Command::new(crate::util::BIN)
            .arg("--socket")
            .arg(&socket)
            .args(&args)
            .stdin(std::process::Stdio::null())
            .stdout(writer)
            .output();
        let out = match out {
            Ok(o) => o,
            Err(e) => panic!("{e}"),
        };
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

/// Regression: `every = "100ms"` recorded 37 beats in 5.9 s (it compared against the last
/// recorded beat while ticks jitter). Counted from the events' own times: at least 90% of the
/// beats the interval calls for.
#[test]
fn the_heartbeat_records_every_beat() {
    let d = TestDaemon::start(TREE);
    d.wait_until("20 beats", |d| {
        d.events(&["--path", "root/beat", "--kind", "heartbeat"])
            .len()
            >= 20
    });
    let beats = d.events(&["--path", "root/beat", "--kind", "heartbeat"]);
    let times: Vec<i64> = beats.iter().filter_map(|e| e["at_ms"].as_i64()).collect();
    let (first, last) = (times[0], times[times.len() - 1]);
    let expected = (last - first) as f64 / 100.0 + 1.0;
    let got = times.len() as f64;
    assert!(
        got >= 0.9 * expected && got <= expected + 1.0,
        "{got} beats over {} ms (expected about {expected})",
        last - first
    );
}

/// The heartbeat kind's line in `status` (its kind file's `status`): each running heartbeat
/// with its interval and beats, in JSON and for people.
#[test]
fn status_has_a_line_per_heartbeat() {
    let d = TestDaemon::start(TREE);
    d.wait_until("a beat in status", |d| {
        d.json(&["status"], 0)["heartbeats"]
            .as_array()
            .and_then(|hs| hs.iter().find(|h| h["path"] == "root/beat"))
            .is_some_and(|h| h["beats"].as_u64().unwrap_or(0) >= 1)
    });
    let s = d.json(&["status"], 0);
    let paths: Vec<&str> = s["heartbeats"]
        .as_array()
        .map(|hs| hs.iter().filter_map(|h| h["path"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(paths, ["root/beat", "root/grp/x"], "{s}");
    assert_eq!(s["heartbeats"][0]["every_s"], 0.1);
    assert!(s["heartbeats"][0]["last_beat_ms"].is_i64(), "{s}");
    let human = d.cli(&["status"]);
    assert!(
        human
            .stdout
            .contains("heartbeat: root/beat every 100ms: last beat ")
            && human.stdout.contains("heartbeat: root/grp/x every 10s"),
        "{}",
        human.stdout
    );
    // A stopped heartbeat has no line.
    assert_eq!(d.cli(&["stop", "root/grp/x"]).code, 0);
    let s = d.json(&["status"], 0);
    assert_eq!(s["heartbeats"].as_array().map(Vec::len), Some(1), "{s}");
}

/// Regression (the attack): invalid paths were answered "not found" and echoed raw (a
/// newline, a NUL, 60 KB of it).
#[test]
fn invalid_paths_are_refused_and_shown_safely() {
    let d = TestDaemon::start(TREE);
    for bad in ["root/\n", "root/grp/..", "root/-x"] {
        let out = d.json(&["stop", bad], 2);
        assert_eq!(out["error"]["code"], "invalid_path", "{bad:?}: {out}");
    }
    let nul = d.raw(b"{\"id\":1,\"cmd\":\"stop\",\"path\":\"root/a\\u0000b\"}\n");
    assert_eq!(nul[0]["error"]["code"], "invalid_path", "{nul:?}");
    assert!(
        nul[0]["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.contains('\0') && m.contains("\\0")),
        "escaped: {nul:?}"
    );
    let long = format!("root/{}", "x".repeat(60_000));
    let out = d.cli(&["stop", &long]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.len() < 600, "{}", out.stderr.len());
}

/// Regression (the attack): a burst of clients was partly refused though none was idle or
/// slow. A refused client tries again within its timeout.
#[test]
fn a_burst_of_clients_all_get_answers() {
    let d = TestDaemon::start_with("max_connections = 4", TREE);
    let socket = d.socket.display().to_string();
    let children: Vec<std::process::Child> = (0..40)
        .map(|_| {
            std::process::Command::new(crate::util::BIN)
                .args(["--socket", &socket, "--timeout", "20s", "status"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `tree` says whether the tree is healthy (the daemon's one judgement, as `status` makes it),
/// and its exit code follows: 0 for a running tree, 1 while a child restarts.
#[test]
fn tree_says_whether_the_tree_is_healthy() {
    let d = TestDaemon::start(
        "[root]\nintensity = 1000\n[[root.children]]\nname = \"beat\"\nkind = \"heartbeat\"\n",
    );
    let t = d.json(&["tree"], 0);
    assert_eq!(t["healthy"], true, "{t:#}");
    let d = TestDaemon::start(
        "[root]\nintensity = 1000\nbackoff = { initial = \"30s\", max = \"30s\" }\n[[root.children]]\nname = \"quick\"\nkind = \"process\"\ncommand = \"/bin/false\"\n",
    );
    d.wait_until("the process restarting", |d| {
        d.node("root/quick")
            .is_some_and(|n| n["state"] == "restarting")
    });
    let t = d.json(&["tree"], 1);
    assert_eq!(t["healthy"], false, "{t:#}");
}
