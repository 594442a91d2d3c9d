//! Start, stop and validate: orderly shutdown on SIGTERM/SIGINT (checked in the event store),
//! `check`, the embedded default, failures to start.

use crate::util::{run_cli, TestDaemon};

const ORDERED: &str = r#"
[root]
strategy = "rest_for_one"

[[root.children]]
name = "a"
kind = "heartbeat"

[[root.children]]
name = "grp"
kind = "supervisor"
  [[root.children.children]]
  name = "x"
  kind = "heartbeat"
  [[root.children.children]]
  name = "y"
  kind = "heartbeat"

[[root.children]]
name = "b"
kind = "heartbeat"
"#;

/// (path, kind, reason) of every stored event, oldest first, read from the database file.
fn stored_events(db: &std::path::Path) -> Vec<(String, String, String)> {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("{e}"),
    };
    runtime.block_on(async {
        let pool = match metasystem_actors::store::open_reader(db).await {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        let rows: Vec<(String, String, String)> =
            sqlx::query_as("SELECT path, kind, data FROM events ORDER BY id")
                .fetch_all(&pool)
                .await
                .unwrap_or_else(|e| panic!("cannot read the events: {e}"));
        pool.close().await;
        rows.into_iter()
            .map(|(path, kind, data)| {
                let reason = serde_json::from_str::<serde_json::Value>(&data)
                    .ok()
                    .and_then(|v| v["reason"].as_str().map(str::to_string))
                    .unwrap_or_default();
                (path, kind, reason)
            })
            .collect()
    })
}

fn exits(events: &[(String, String, String)]) -> Vec<(String, String)> {
    events
        .iter()
        .filter(|(_, kind, _)| kind == "exited")
        .map(|(p, _, r)| (p.clone(), r.clone()))
        .collect()
}

fn orderly(signal: rustix::process::Signal) {
    let mut d = TestDaemon::start(ORDERED);
    d.signal(signal);
    assert_eq!(d.wait_exit(), 0, "{}", d.log_text());
    assert!(!d.socket.exists());
    let events = stored_events(&d.state.join("metastore.db"));
    let starts: Vec<&str> = events
        .iter()
        .filter(|(_, k, _)| k == "started")
        .map(|(p, _, _)| p.as_str())
        .collect();
    assert_eq!(
        starts,
        [
            "root",
            "root/a",
            "root/grp/x",
            "root/grp/y",
            "root/grp",
            "root/b"
        ]
    );
    let shutdown = |p: &str| (p.to_string(), "shutdown".to_string());
    assert_eq!(
        exits(&events),
        [
            shutdown("root/b"),
            shutdown("root/grp/y"),
            shutdown("root/grp/x"),
            shutdown("root/grp"),
            shutdown("root/a"),
            shutdown("root"),
        ]
    );
    assert!(d.log_text().contains("stopped"));
}

#[test]
fn sigterm_shuts_down_in_reverse_start_order() {
    orderly(rustix::process::Signal::TERM);
}

#[test]
fn sigint_shuts_down_in_reverse_start_order() {
    orderly(rustix::process::Signal::INT);
}

#[test]
fn check_validates_without_starting_anything() {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    };
    let good = dir.path().join("good.toml");
    let bad = dir.path().join("bad.toml");
    let text = format!(
        "[daemon]\nstate_dir = \"{}/state\"\n{ORDERED}",
        dir.path().display()
    );
    crate::util::write_file(&good, &text);
    crate::util::write_file(
        &bad,
        "[daemon]\nstate_dir = \"/x\"\n[root]\nstrategy = \"one_for_none\"\nintensty = 1\n[[root.children]]\nname = \"a\"\nkind = \"heartbeat\"\nevery = \"-1s\"\n",
    );
    let ok = run_cli(&["check", &good.display().to_string()], &[]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert!(ok.stdout.contains("ok (6 actors)"), "{}", ok.stdout);
    assert!(!dir.path().join("state").exists(), "check started nothing");

    let bad_path = bad.display().to_string();
    let out = run_cli(&["check", &bad_path], &[]);
    assert_eq!(out.code, 1);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert!(
        lines[0].starts_with(&format!(
            "{bad_path}:4:12: `strategy` in [root] is \"one_for_none\""
        )),
        "{}",
        out.stderr
    );
    assert!(
        lines[1].starts_with(&format!(
            "{bad_path}:5:1: unknown key `intensty` in [root]; did you mean `intensity`?"
        )),
        "{}",
        out.stderr
    );
    assert!(
        lines[2].starts_with(&format!("{bad_path}:9:9: `every` in child `root/a`")),
        "{}",
        out.stderr
    );
    assert!(out.stderr.ends_with("3 error(s)\n"), "{}", out.stderr);

    let json = run_cli(&["check", &bad_path, "--json"], &[]);
    assert_eq!(json.code, 1);
    assert_eq!(json.json()["errors"].as_array().map(Vec::len), Some(3));

    let missing = run_cli(&["check", "/nonexistent/supervision.toml"], &[]);
    assert_eq!(missing.code, 1);
    assert!(
        missing
            .stderr
            .contains("/nonexistent/supervision.toml:1:1: cannot read"),
        "{}",
        missing.stderr
    );
}

/// With no file given and none at the default place, `run` uses the embedded default; the CLI
/// finds the socket the same way.
#[test]
fn the_embedded_default_runs() {
    let home = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    };
    let home_s = home.path().display().to_string();
    let env = [("HOME", home_s.as_str())];
    let check = run_cli(&["check"], &env);
    assert_eq!(check.code, 0, "{}", check.stderr);
    assert!(
        check.stdout.starts_with("<embedded supervision.toml>: ok"),
        "{}",
        check.stdout
    );

    let mut child = match std::process::Command::new(crate::util::BIN)
        .arg("run")
        .env("HOME", &home_s)
        .env_remove("METASYSTEM_CONFIG")
        .env_remove("METASYSTEM_SOCKET")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        Ok(c) => crate::util::Reaped(c),
        Err(e) => panic!("{e}"),
    };
    let socket = home.path().join(".metasystem/control.sock");
    let mut up = false;
    for _ in 0..400 {
        if socket.exists() && run_cli(&["status"], &env).code == 0 {
            up = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let status = run_cli(&["status", "--json"], &env);
    // A config created at the default place after the start is picked up by the next reload.
    crate::util::write_file(
        home.path().join(".metasystem/supervision.toml"),
        format!(
            "{}\n[[root.children]]\nname = \"extra\"\nkind = \"heartbeat\"\n",
            include_str!("../../supervision.toml")
        ),
    );
    let reload = run_cli(&["reload", "--json"], &env);
    let _ = run_cli(&["shutdown"], &env);
    let mut code = None;
    for _ in 0..400 {
        if let Ok(Some(s)) = child.0.try_wait() {
            code = s.code();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    assert!(up, "the default daemon did not come up");
    let s = status.json();
    assert_eq!(s["config"], "<embedded supervision.toml>");
    assert_eq!(s["socket"], socket.display().to_string());
    assert_eq!(code, Some(0));
    assert!(home.path().join(".metasystem/metastore.db").exists());
    let reload = reload.json();
    assert!(
        reload["warnings"][0]
            .as_str()
            .is_some_and(|w| w.contains("now comes from") && w.contains("supervision.toml")),
        "{reload}"
    );
    assert_eq!(reload["changes"][0]["path"], "root/extra");
}

/// A mistyped METASYSTEM_CONFIG is an error, never a silent fall back to the default.
#[test]
fn a_missing_named_config_is_an_error() {
    let env = [("METASYSTEM_CONFIG", "/nonexistent/ms.toml")];
    let check = run_cli(&["check"], &env);
    assert_eq!(check.code, 1);
    assert!(
        check
            .stderr
            .contains("/nonexistent/ms.toml:1:1: cannot read"),
        "{}",
        check.stderr
    );
    let run = run_cli(&["run"], &env);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("/nonexistent/ms.toml"),
        "{}",
        run.stderr
    );
}

#[test]
fn failures_to_start_are_explained() {
    // An invalid config: every error, each once, exit 2 (not retried by the unit).
    let mut d = TestDaemon::spawn(
        "",
        "[root]\nstratgy = \"one_for_one\"\n[[root.children]]\nname = \"a\"\nkind = \"heartbat\"\n",
    );
    assert_eq!(d.wait_exit(), 2);
    let log = d.log_text();
    for error in [
        "unknown key `stratgy` in [root]; did you mean `strategy`?",
        "unknown kind \"heartbat\"",
    ] {
        assert_eq!(log.matches(error).count(), 1, "{error} in:\n{log}");
    }
    assert!(log.contains("2 error(s); not starting"), "{log}");

    // A state dir that cannot be created.
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    };
    let blocker = dir.path().join("file");
    crate::util::write_file(&blocker, "x");
    let config = dir.path().join("s.toml");
    crate::util::write_file(
        &config,
        format!(
            "[daemon]\nstate_dir = \"{}/state\"\n{}",
            blocker.display(),
            crate::util::ONE_CHILD
        ),
    );
    let out = run_cli(&["run", "--config", &config.display().to_string()], &[]);
    assert_eq!(out.code, 75);
    assert!(
        out.stderr
            .contains(&format!("cannot create {}/state", blocker.display())),
        "{}",
        out.stderr
    );
}

/// Under systemd (NOTIFY_SOCKET, WATCHDOG_USEC): READY=1 only once the whole tree is up (the
/// first thing the test does after READY=1 is ask for the tree, without waiting: every actor
/// already runs), WATCHDOG=1 pings from the heartbeat at half the watchdog interval that keep
/// coming, also after the heartbeat itself crashed and was restarted, and STOPPING=1 on
/// shutdown. A real datagram socket stands in for systemd; every wait is bounded.
#[test]
fn systemd_notify_and_watchdog() {
    use std::os::unix::net::UnixDatagram;
    use std::time::{Duration, Instant};
    let mut d = TestDaemon::prepare(
        "",
        "[[root.children]]\nname = \"beat\"\nkind = \"heartbeat\"\nevery = \"1h\"\n\
         [[root.children]]\nname = \"group\"\nkind = \"supervisor\"\n\
         [[root.children.children]]\nname = \"inner\"\nkind = \"heartbeat\"\n",
    );
    let notify_path = d.dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap_or_else(|e| panic!("{e}"));
    let notify_s = notify_path.display().to_string();
    let mut buf = [0u8; 4096];
    // Everything that arrives within `window` (bounded by the window, not by a count).
    let mut collect = |window: Duration| {
        let deadline = Instant::now() + window;
        let mut got = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let _ = notify.set_read_timeout(Some(left.max(Duration::from_millis(1))));
            match notify.recv(&mut buf) {
                Ok(n) => got.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
                Err(_) => break,
            }
        }
        got
    };
    d.launch(&[
        ("NOTIFY_SOCKET", notify_s.as_str()),
        ("WATCHDOG_USEC", "200000"),
    ]);
    // READY=1 (bounded: 20 s), then at once the tree.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut before_ready = Vec::new();
    while !before_ready.iter().any(|m: &String| m.contains("READY=1")) {
        assert!(
            Instant::now() < deadline,
            "no READY=1; seen {before_ready:?}\n{}",
            d.log_text()
        );
        before_ready.extend(collect(Duration::from_millis(100)));
    }
    let status = d.json(&["status"], 0);
    assert_eq!(
        status["running"], 4,
        "READY=1 before the tree was up: {status}"
    );
    for path in ["root", "root/beat", "root/group", "root/group/inner"] {
        assert_eq!(
            d.node(path).map(|n| n["state"].clone()),
            Some(serde_json::json!("running")),
            "{path} not running at READY=1"
        );
    }
    // Pings every 100 ms: over 1.5 s, at least 5 (slack for a slow machine).
    let seen = collect(Duration::from_millis(1500));
    let pings = seen.iter().filter(|m| m.contains("WATCHDOG=1")).count();
    assert!(pings >= 5, "{pings} pings in 1.5 s: {seen:?}");
    // The heartbeat crashes and is restarted: the pings go on.
    assert_eq!(d.cli(&["kill", "root/beat"]).code, 0);
    let seen = collect(Duration::from_millis(1500));
    let pings = seen.iter().filter(|m| m.contains("WATCHDOG=1")).count();
    assert!(
        pings >= 5,
        "{pings} pings in 1.5 s after a heartbeat crash: {seen:?}"
    );
    assert!(!seen.iter().any(|m| m.contains("READY=1")), "{seen:?}");
    assert_eq!(d.terminate(), 0);
    let after = collect(Duration::from_secs(5));
    assert!(
        after.iter().any(|m| m.contains("STOPPING=1")),
        "no STOPPING=1: {after:?}"
    );
}

/// Regression: `check` counted actors without the root, `status` with it.
#[test]
fn check_and_status_count_actors_alike() {
    let d = TestDaemon::start(ORDERED);
    let config = d.config.display().to_string();
    let check = run_cli(&["check", &config, "--json"], &[]);
    assert_eq!(check.code, 0, "{}", check.stderr);
    let status = d.json(&["status"], 0);
    assert_eq!(check.json()["actors"], status["running"]);
    assert_eq!(status["running"], 6);
}

/// Regression: logging wrote to stderr on the scheduler thread, so a stderr pipe nobody reads
/// froze the whole daemon (status, SIGTERM, watchdog pings) after ~64 KiB of log. Now lines
/// the pipe cannot take are dropped and counted, and the daemon answers.
#[test]
fn a_stderr_nobody_reads_does_not_freeze_the_daemon() {
    let mut d = TestDaemon::prepare(
        "",
        "[root]\nintensity = 100\nbackoff = \"none\"\n[[root.children]]\nname = \"beat\"\nkind = \"heartbeat\"\nevery = \"100ms\"\n",
    );
    // The read end stays open and is never read: writes block once the pipe is full.
    let (_reader, writer) = std::io::pipe().unwrap_or_else(|e| panic!("pipe: {e}"));
    d.launch_with(&[("RUST_LOG", "trace")], std::process::Stdio::from(writer));
    d.wait_ready();
    // Every `events` request logs its SQL at debug level: thousands of them write far more
    // than the pipe (64 KiB) and the log buffer hold.
    let burst: Vec<String> = (0..6000)
        .map(|i| format!("{{\"id\":{i},\"cmd\":\"events\",\"limit\":1}}"))
        .collect();
    let replies = d.burst(&burst);
    assert_eq!(replies.len(), 6000);
    d.wait_until("log lines to be dropped", |d| {
        d.json(&["status"], 0)["log_lines_dropped"]
            .as_u64()
            .is_some_and(|n| n > 0)
    });
    for _ in 0..3 {
        assert_eq!(d.cli(&["kill", "root/beat"]).code, 0);
    }
    assert!(d.json(&["call", "root/beat", "beat"], 0)["beat"].is_u64());
    assert_eq!(d.terminate(), 0);
}

/// Regression: the unit's RestartPreventExitStatus=2 made a full disk at start a permanent
/// stop. An environment that is not ready (here a full state dir) exits 75, which the service
/// manager retries; only an invalid config exits 2.
#[test]
fn a_full_disk_at_start_is_not_ready_not_invalid() {
    let mut d = TestDaemon::prepare("", ORDERED);
    let Some(_mount) = crate::util::Mount::tmpfs(&d.state, "64k") else {
        crate::util::skipped("cannot mount a tmpfs here (needs root)");
        return;
    };
    // Fill it up.
    let filler = d.state.join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 128 * 1024]);
    d.launch(&[]);
    let code = d.wait_exit();
    assert_eq!(code, 75, "{}", d.log_text());
    assert!(
        d.log_text().contains("cannot open the store"),
        "{}",
        d.log_text()
    );
}

/// Regression: a reload that finished during shutdown sent READY=1 after STOPPING=1, telling
/// systemd the daemon was up again while it stopped. SIGHUP and SIGTERM back to back, three
/// times: nothing but STOPPING and the final status may follow STOPPING=1.
#[test]
fn ready_never_follows_stopping() {
    use std::os::unix::net::UnixDatagram;
    let mut d = TestDaemon::prepare("", ORDERED);
    let notify_path = d.dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap_or_else(|e| panic!("{e}"));
    let _ = notify.set_read_timeout(Some(std::time::Duration::from_secs(10)));
    let notify_s = notify_path.display().to_string();
    let mut buf = [0u8; 4096];
    for round in 0..3 {
        d.launch(&[("NOTIFY_SOCKET", notify_s.as_str())]);
        d.wait_ready();
        // Drain READY=1 from the start.
        let mut started = false;
        for _ in 0..20 {
            match notify.recv(&mut buf) {
                Ok(n) if String::from_utf8_lossy(&buf[..n]).contains("READY=1") => {
                    started = true;
                    break;
                }
                Ok(_) => {}
                Err(e) => panic!("round {round}: no READY=1: {e}"),
            }
        }
        assert!(started);
        d.signal(rustix::process::Signal::HUP);
        d.signal(rustix::process::Signal::TERM);
        assert_eq!(d.wait_exit(), 0, "{}", d.log_text());
        let _ = notify.set_read_timeout(Some(std::time::Duration::from_millis(500)));
        let mut after_stopping = Vec::new();
        let mut stopping = false;
        for _ in 0..50 {
            match notify.recv(&mut buf) {
                Ok(n) => {
                    let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                    if stopping {
                        after_stopping.push(m.clone());
                    }
                    if m.contains("STOPPING=1") {
                        stopping = true;
                    }
                }
                Err(_) => break,
            }
        }
        let _ = notify.set_read_timeout(Some(std::time::Duration::from_secs(10)));
        assert!(stopping, "round {round}: no STOPPING=1");
        assert!(
            after_stopping.iter().all(|m| !m.contains("READY=1")),
            "round {round}: {after_stopping:?}"
        );
    }
}

/// Regression (the attack): a run that ended with exit 3 (the root gave up) was reported as
/// "stopped in order" by the next run's `status`.
#[test]
fn a_run_that_gave_up_is_not_called_clean() {
    let mut d = TestDaemon::start(
        "[root]\nintensity = 0\n[[root.children]]\nname = \"x\"\nkind = \"heartbeat\"\n",
    );
    assert_eq!(d.cli(&["kill", "root/x"]).code, 0);
    assert_eq!(d.wait_exit(), 3, "{}", d.log_text());
    d.launch(&[]);
    d.wait_ready();
    let status = d.json(&["status"], 0);
    let run = &status["previous_run"];
    assert_eq!(
        (run["clean"].clone(), run["exit_code"].clone()),
        (false.into(), 3.into()),
        "{status}"
    );
    let human = d.cli(&["status"]);
    assert!(
        human.stdout.contains("with exit 3 (the tree failed)"),
        "{}",
        human.stdout
    );
}

/// Regression (the attack): a shutdown while the disk was full lost the queued events, yet
/// exited 0 and recorded a clean stop. It now exits 75 and is not called clean.
#[test]
fn a_shutdown_that_cannot_write_is_not_clean() {
    let mut d = TestDaemon::prepare(
        "",
        "[root]\nintensity = 100\n[[root.children]]\nname = \"x\"\nkind = \"heartbeat\"\nevery = \"100ms\"\n",
    );
    let Some(_mount) = crate::util::Mount::tmpfs(&d.state, "1m") else {
        crate::util::skipped("cannot mount a tmpfs here (needs root)");
        return;
    };
    d.launch(&[]);
    d.wait_ready();
    let filler = crate::util::fill(&d.state);
    d.wait_until("failing writes", |d| d.cli(&["status"]).code == 1);
    assert_eq!(d.cli(&["shutdown"]).code, 0);
    assert_eq!(d.wait_exit(), 75, "{}", d.log_text());
    assert!(
        d.log_text()
            .contains("stopped with events the disk refused"),
        "{}",
        d.log_text()
    );
    std::fs::remove_file(&filler).unwrap_or_else(|e| panic!("{e}"));
    d.launch(&[]);
    d.wait_ready();
    let status = d.json(&["status"], 0);
    assert_eq!(status["previous_run"]["clean"], false, "{status}");
}

/// Regression (the attack): at a low open-files limit the daemon ran out of descriptors,
/// could not accept, so could not evict idle clients either; the operator was locked out and
/// the log flooded. The connection cap is fitted under the limit.
#[test]
fn the_connection_cap_fits_the_open_files_limit() {
    if std::process::Command::new("prlimit")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: needs prlimit (util-linux)");
        return;
    }
    let d = TestDaemon::prepare(
        "max_connections = 1024",
        "[root]\n[[root.children]]\nname = \"x\"\nkind = \"heartbeat\"\n",
    );
    // prlimit runs the daemon with a hard limit of 128 open files.
    let log = std::fs::File::create(&d.log).unwrap_or_else(|e| panic!("{e}"));
    let child = std::process::Command::new("prlimit")
        .args(["--nofile=128:128", crate::util::BIN, "run", "--config"])
        .arg(&d.config)
        .env("RUST_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let _daemon = crate::util::Reaped(child);
    d.wait_until_up();
    assert!(
        d.log_text()
            .contains("max_connections does not fit under the open-files limit; using 64"),
        "{}",
        d.log_text()
    );
    let idle: Vec<std::os::unix::net::UnixStream> = (0..150)
        .filter_map(|_| std::os::unix::net::UnixStream::connect(&d.socket).ok())
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(700));
    for _ in 0..3 {
        let out = d.cli(&["--timeout", "5s", "status"]);
        assert_eq!(out.code, 0, "{}", out.stderr);
    }
    drop(idle);
}
