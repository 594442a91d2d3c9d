//! Managed processes on the real daemon, with real programs and real signals: a program
//! killed with SIGKILL is replaced at once; one that exits before `healthy_after` backs off
//! and, past intensity, its supervisor gives up (escalation); a stop that the program ignores
//! ends with SIGKILL of its whole group; the daemon killed with SIGKILL leaves nothing behind;
//! output logs rotate by size and keep their count; `logs -n` and `logs -f` (across a
//! restart); the daemon's own `log_file` rotates, in JSON; bad configs are refused naming the
//! key; a program flooding its output does not grow the daemon; a full disk for the logs
//! does not stop the program. Every wait is bounded.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{run_cli, write_file, Mount, Reaped, TestDaemon, BIN};

const WAIT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(20);

/// A process child of the root.
fn process(name: &str, script: &str, extra: &str) -> String {
    format!(
        r#"
[[root.children]]
name = "{name}"
kind = "process"
command = "sh"
args = ["-c", {script:?}]
{extra}
"#
    )
}

/// The pids of processes whose command line contains `marker`.
fn pids_with(marker: &str) -> Vec<i32> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        // A zombie has an empty command line; it is dead already.
        if text.contains(marker) && !text.contains("sh -c") {
            found.push(pid);
        }
    }
    found
}

/// Waits (bounded) until no process's command line contains `marker`.
fn wait_gone(marker: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let left = pids_with(marker);
        if left.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            for pid in &left {
                if let Some(p) = rustix::process::Pid::from_raw(*pid) {
                    let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
                }
            }
            panic!("processes still running with {marker:?}: {left:?}");
        }
        std::thread::sleep(POLL);
    }
}

fn status(d: &TestDaemon, path: &str) -> Value {
    let out = d.cli(&["call", path, "status", "--json"]);
    serde_json::from_str(out.stdout.trim()).unwrap_or(Value::Null)
}

/// Polls the process's status until `check` holds (bounded).
fn status_until(d: &TestDaemon, path: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let s = status(d, path);
        if check(&s) {
            return s;
        }
        if Instant::now() >= deadline {
            panic!(
                "{path} never showed {what}: {s:#}\nevents: {:#?}\nlog:\n{}",
                d.events(&["--path", path]),
                d.log_text()
            );
        }
        std::thread::sleep(POLL);
    }
}

fn kill(pid: i64, signal: rustix::process::Signal) {
    if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(p, signal);
    }
}

#[test]
fn a_process_killed_with_sigkill_is_replaced_at_once() {
    let d = TestDaemon::start(&process(
        "p",
        "echo up $$; exec sleep 5151.1",
        "healthy_after = \"0s\"",
    ));
    let first = status_until(&d, "root/p", "running", |s| s["state"] == "running");
    let pid = first["pid"].as_i64().unwrap_or(0);
    assert!(pid > 0, "{first:#}");
    let killed = Instant::now();
    kill(pid, rustix::process::Signal::KILL);
    let second = status_until(&d, "root/p", "a new pid", |s| {
        s["state"] == "running" && s["pid"].as_i64().is_some_and(|p| p != pid)
    });
    let took = killed.elapsed();
    assert_eq!(second["runs"], 2, "{second:#}");
    assert!(
        second["last_exit_message"]
            .as_str()
            .is_some_and(|m| m.contains("killed by SIGKILL")),
        "{second:#}"
    );
    // Polling through the CLI costs most of this; the daemon's own part is milliseconds.
    assert!(took < Duration::from_secs(5), "replaced after {took:?}");
    // The tree saw a crash and a restart, and the process events tell the story.
    let node = d.node("root/p").unwrap_or(Value::Null);
    assert_eq!(node["restarts"], 1, "{node:#}");
    let messages: Vec<String> = d
        .events(&["--path", "root/p", "--kind", "process"])
        .iter()
        .map(|e| e["message"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(messages.len(), 3, "{messages:#?}");
    assert!(
        messages[1].contains(&format!("pid {pid}: killed by SIGKILL")),
        "{messages:#?}"
    );
    assert!(messages[2].starts_with("started pid"), "{messages:#?}");
    d.cli(&["shutdown"]);
    wait_gone("5151.1", Duration::from_secs(10));
}

#[test]
fn a_process_exiting_before_healthy_after_backs_off_then_escalates() {
    let tree = r#"
[root]
strategy = "one_for_one"
intensity = 50
period = "60s"

[[root.children]]
name = "group"
kind = "supervisor"
strategy = "one_for_one"
intensity = 3
period = "30s"
backoff = { initial = "100ms", max = "5s", factor = 2.0, jitter = "none" }
  [[root.children.children]]
  name = "p"
  kind = "process"
  command = "sh"
  args = ["-c", "exit 0"]
  restart = "transient"
  healthy_after = "2s"
"#;
    let d = TestDaemon::start_with("", tree);
    // Past 3 restarts in 30 s the group gives up; its parent restarts it (escalation).
    d.wait_until("the group to give up", |d| {
        d.events(&["--kind", "gave_up"])
            .iter()
            .any(|e| e["path"] == "root/group")
    });
    let exits = d.events(&["--path", "root/group/p", "--kind", "process"]);
    let failed: Vec<&Value> = exits
        .iter()
        .filter(|e| e["data"]["failed_start"] == true)
        .collect();
    assert!(failed.len() >= 4, "{exits:#?}");
    assert!(
        failed[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("failed start: exited with status 0")),
        "{exits:#?}"
    );
    // Exit code 0 is normal, but too soon: the transient child was restarted all the same,
    // each time after a longer delay.
    let delays: Vec<f64> = d
        .events(&["--path", "root/group/p", "--kind", "restart_scheduled"])
        .iter()
        .filter_map(|e| e["data"]["delay_ms"].as_f64())
        .collect();
    assert!(delays.len() >= 3, "{delays:?}");
    assert!(
        delays[0] < delays[1] && delays[1] < delays[2],
        "backoff must grow: {delays:?}"
    );
    let root_restarts = d.events(&["--path", "root/group", "--kind", "restart_scheduled"]);
    assert!(!root_restarts.is_empty(), "the root restarted the group");
    d.cli(&["shutdown"]);
}

#[test]
fn stop_timeout_kills_the_whole_group() {
    // The program and what it forks ignore SIGTERM (an ignored signal stays ignored across
    // fork and exec).
    let d = TestDaemon::start(&process(
        "stubborn",
        "trap '' TERM; sleep 5252.1 & sleep 5252.2 & wait; sleep 5252.3",
        "healthy_after = \"0s\"\nstop_timeout = \"700ms\"",
    ));
    d.wait_until("both grandchildren", |_| pids_with("5252.").len() == 2);
    let asked = Instant::now();
    let out = d.cli(&["stop", "root/stubborn"]);
    let took = asked.elapsed();
    assert_eq!(out.code, 0, "{} {}", out.stdout, out.stderr);
    assert!(took >= Duration::from_millis(700), "stopped in {took:?}");
    assert!(took < Duration::from_secs(10), "stopped in {took:?}");
    wait_gone("5252.", Duration::from_secs(2));
    let events = d.events(&["--path", "root/stubborn", "--kind", "process"]);
    let last = events.last().cloned().unwrap_or(Value::Null);
    assert_eq!(last["data"]["killed"], true, "{events:#?}");
    assert_eq!(last["data"]["signal"], "SIGKILL", "{events:#?}");
    assert!(
        d.log_text().contains("killing its process group"),
        "{}",
        d.log_text()
    );
    d.cli(&["shutdown"]);
}

#[test]
fn the_daemon_killed_with_sigkill_leaves_no_process_behind() {
    let tree = format!(
        "{}{}",
        process(
            "forker",
            "sleep 5353.1 & sleep 5353.2 & wait",
            "healthy_after = \"0s\""
        ),
        process("plain", "exec sleep 5353.3", "healthy_after = \"0s\"")
    );
    let mut d = TestDaemon::start(&tree);
    d.wait_until("three sleepers", |_| pids_with("5353.").len() == 3);
    // This daemon's reaper helper (other tests' daemons have their own).
    let daemon = d.pid();
    let reapers: Vec<i32> = pids_with("__reap-process-groups")
        .into_iter()
        .filter(|pid| parent_of(*pid) == Some(daemon))
        .collect();
    assert_eq!(reapers.len(), 1, "{reapers:?}");
    d.signal(rustix::process::Signal::KILL);
    assert_eq!(d.wait_exit(), -1);
    wait_gone("5353.", Duration::from_secs(5));
    // Nor the helper that killed them.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Path::new(&format!("/proc/{}", reapers[0])).exists() && parent_of(reapers[0]).is_some() {
        assert!(
            Instant::now() < deadline,
            "the reaper {} is still there",
            reapers[0]
        );
        std::thread::sleep(POLL);
    }
}

/// The parent pid of `pid`, while it is alive (a zombie counts as gone).
fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let mut fields = after.split_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    fields.next()?.parse().ok()
}

#[test]
fn output_logs_rotate_by_size_and_logs_shows_the_last_lines() {
    let script = "i=0; while [ $i -lt 400 ]; do echo \"line $i of the output, padded to some length\"; i=$((i+1)); done; echo done >&2; exec sleep 5454.1";
    let d = TestDaemon::start(&process(
        "chatty",
        script,
        "healthy_after = \"0s\"\nlog_max_size = \"4KiB\"\nlog_keep = 2",
    ));
    let log = d.state.join("logs/root/chatty/output.log");
    d.wait_until("the last line", |d| {
        d.cli(&["logs", "root/chatty", "-n", "1"]).stdout == "done\n"
    });
    let size = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
    assert!(size > 0 && size <= 4096, "{size}");
    for n in 1..=2 {
        let rotated = d.state.join(format!("logs/root/chatty/output.log.{n}"));
        let len = std::fs::metadata(&rotated).map(|m| m.len()).unwrap_or(0);
        assert!(len > 3000 && len <= 4096, "{}: {len}", rotated.display());
    }
    assert!(!d.state.join("logs/root/chatty/output.log.3").exists());
    let out = d.cli(&["logs", "root/chatty", "-n", "3"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "line 398 of the output, padded to some length\nline 399 of the output, padded to some length\ndone\n"
    );
    // More lines than the current file holds come from the rotated ones, in order.
    let many = d.cli(&["logs", "root/chatty", "-n", "150"]).stdout;
    let lines: Vec<&str> = many.lines().collect();
    assert_eq!(lines.len(), 150);
    assert_eq!(lines[0], "line 251 of the output, padded to some length");
    // Not a process, not an actor: refused, saying why.
    let out = d.cli(&["logs", "root"]);
    assert_eq!(out.code, 2, "{}", out.stdout);
    assert!(out.stderr.contains("not a process"), "{}", out.stderr);
    let out = d.cli(&["logs", "root/nope"]);
    assert_eq!(out.code, 1);
    let out = d.cli(&["logs", "root/chatty", "--stderr"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("stderr = \"separate\""),
        "{}",
        out.stderr
    );
    d.cli(&["shutdown"]);
    wait_gone("5454.1", Duration::from_secs(10));
}

#[test]
fn logs_follow_streams_new_output_across_a_restart() {
    let d = TestDaemon::start(&process(
        "ticker",
        "echo start $$; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.05; done",
        "healthy_after = \"0s\"\nstderr = \"separate\"",
    ));
    let first = status_until(&d, "root/ticker", "running", |s| s["state"] == "running");
    let socket = d.socket.display().to_string();
    let child = Command::new(BIN)
        .args(["--socket", &socket, "logs", "root/ticker", "-f", "-n", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut child = Reaped(child);
    let stdout = child.0.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    // Read lines on a thread, so every wait here is bounded.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let next = |what: &str| -> String {
        match rx.recv_timeout(WAIT) {
            Ok(line) => line,
            Err(e) => panic!("no line while waiting for {what}: {e}"),
        }
    };
    let mut ticks = 0;
    while ticks < 5 {
        if next("ticks").starts_with("tick ") {
            ticks += 1;
        }
    }
    kill(
        first["pid"].as_i64().unwrap_or(0),
        rustix::process::Signal::KILL,
    );
    let deadline = Instant::now() + WAIT;
    loop {
        let line = next("the new run's first line");
        if line.starts_with("start ") && line != format!("start {}", first["pid"]) {
            break;
        }
        assert!(Instant::now() < deadline, "no new run seen");
    }
    assert!(next("a tick of the new run").starts_with("tick "));
    d.cli(&["shutdown"]);
}

#[test]
fn the_daemon_log_file_rotates_by_size_in_json() {
    let padding = "x".repeat(400);
    let d = TestDaemon::start_with(
        "log_file = \"logs/daemon.log\"\nlog_rotate = \"2KiB\"\nlog_keep = 2\nlog_format = \"json\"\nlog_stderr = true",
        &process(
            "p",
            &format!("echo {padding}; exec sleep 5555.1"),
            "healthy_after = \"0s\"",
        ),
    );
    // Each restart logs its (long) command line: enough to rotate a few times.
    for _ in 0..25 {
        let out = d.cli(&["restart", "root/p"]);
        assert_eq!(out.code, 0, "{}", out.stderr);
    }
    let log = d.state.join("logs/daemon.log");
    d.wait_until("two rotated daemon logs", |d| {
        d.state.join("logs/daemon.log.2").exists()
    });
    assert!(!d.state.join("logs/daemon.log.3").exists());
    for file in [
        log.clone(),
        d.state.join("logs/daemon.log.1"),
        d.state.join("logs/daemon.log.2"),
    ] {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        assert!(
            text.len() <= 2048 || text.lines().count() == 1,
            "{}: {} bytes",
            file.display(),
            text.len()
        );
        for line in text.lines() {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {line}", file.display()));
            assert!(v["level"].is_string(), "{line}");
        }
    }
    // stderr gets the same lines.
    assert!(d.log_text().contains("\"level\""), "{}", d.log_text());
    d.cli(&["shutdown"]);
    wait_gone("5555.1", Duration::from_secs(10));
}

/// `check` on a config with one process child with `extra` keys: its output (exit 1).
fn check_error(extra: &str) -> String {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = dir.path().join("s.toml");
    write_file(
        &file,
        format!(
            "[daemon]\nstate_dir = \"{}\"\n[root]\n[[root.children]]\nname = \"p\"\nkind = \"process\"\n{extra}\n",
            dir.path().display()
        ),
    );
    let out = run_cli(&["check", &file.display().to_string()], &[]);
    assert_eq!(out.code, 1, "{extra}: {} {}", out.stdout, out.stderr);
    out.stderr
}

#[test]
fn bad_process_configs_are_refused_naming_the_key() {
    let cases: &[(&str, &str)] = &[
        ("args = [\"x\"]", "missing the required key `command`"),
        (
            "command = \"no-such-program-xyz\"",
            "`command` in child `root/p`: no program \"no-such-program-xyz\" in PATH",
        ),
        (
            "command = \"/etc/passwd\"",
            "`command` in child `root/p`: /etc/passwd is not executable",
        ),
        (
            "command = \"sh\"\nuser = \"no-such-user-xyz\"",
            "`user` in child `root/p`: no user \"no-such-user-xyz\"",
        ),
        (
            "command = \"sh\"\ngroup = \"no-such-group-xyz\"",
            "`group` in child `root/p`: no group \"no-such-group-xyz\"",
        ),
        (
            "command = \"sh\"\ncwd = \"not/there\"",
            "`cwd` in child `root/p`:",
        ),
        (
            "command = \"sh\"\nstop_signal = \"TERMINATE\"",
            "`stop_signal` in child `root/p` is \"TERMINATE\"",
        ),
        (
            "command = \"sh\"\nexit_codes = [0, 300]",
            "`exit_codes` in child `root/p`",
        ),
        (
            "command = \"sh\"\nstop_timeout = \"0s\"",
            "`stop_timeout` in child `root/p`",
        ),
        (
            "command = \"sh\"\nlog_max_size = \"10\"",
            "`log_max_size` in child `root/p`",
        ),
        (
            "command = \"sh\"\nstderr = \"both\"",
            "`stderr` in child `root/p` is \"both\"",
        ),
        (
            "command = \"sh\"\nenv = { A = 1 }",
            "`A` in `env` of child `root/p` must be a string",
        ),
        (
            "command = \"sh\"\nargs = [\"a\\u0000b\"]",
            "`args` in child `root/p`: an argument cannot hold a NUL byte",
        ),
        (
            "command = \"sh\"\nenv = { \"A=B\" = \"x\" }",
            "\"A=B\" is not a variable name",
        ),
        (
            "command = \"sh\"\ncomand = \"x\"",
            "unknown key `comand` in child `root/p`; did you mean `command`?",
        ),
    ];
    for (extra, expected) in cases {
        let err = check_error(extra);
        assert!(
            err.contains(expected),
            "{extra}:\n{err}\n(expected {expected:?})"
        );
        assert!(
            err.contains("s.toml:"),
            "errors carry their position: {err}"
        );
    }
    // A relative cwd that exists is under the state dir, and so is a relative command.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir_all(dir.path().join("work/bin")).unwrap_or_else(|e| panic!("{e}"));
    write_file(dir.path().join("work/bin/app"), "#!/bin/sh\nexit 0\n");
    crate::util::chmod(dir.path().join("work/bin/app"), 0o755);
    let file = dir.path().join("s.toml");
    write_file(
        &file,
        format!(
            "[daemon]\nstate_dir = \"{}\"\n[root]\n[[root.children]]\nname = \"p\"\nkind = \"process\"\ncwd = \"work\"\ncommand = \"bin/app\"\n",
            dir.path().display()
        ),
    );
    let out = run_cli(&["check", &file.display().to_string()], &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

/// The daemon's resident memory, in KiB.
fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_process_flooding_its_output_does_not_grow_the_daemon() {
    let d = TestDaemon::start(&process(
        "flood",
        "exec yes 5656.1-flooding-the-pipe",
        "healthy_after = \"0s\"\nlog_max_size = \"1MB\"\nlog_keep = 1",
    ));
    status_until(&d, "root/flood", "logging", |s| {
        s["log_written"].as_u64().is_some_and(|n| n > 10_000_000)
    });
    let before = rss_kib(d.pid());
    // A follower attached meanwhile holds at most a bounded backlog.
    let socket = d.socket.display().to_string();
    let follower = Command::new(BIN)
        .args(["--socket", &socket, "logs", "root/flood", "-f", "-n", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let _follower = Reaped(follower);
    let start = Instant::now();
    let mut worst = 0;
    while start.elapsed() < Duration::from_secs(3) {
        worst = worst.max(rss_kib(d.pid()));
        // The daemon answers meanwhile.
        let asked = Instant::now();
        assert_eq!(d.cli(&["status"]).code, 0);
        assert!(asked.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(200));
    }
    let s = status(&d, "root/flood");
    let written = s["log_written"].as_u64().unwrap_or(0);
    assert!(written > 20_000_000, "{s:#}");
    assert!(
        worst < before + 16 * 1024,
        "RSS grew from {before} KiB to {worst} KiB while {written} bytes were logged"
    );
    for f in ["output.log", "output.log.1"] {
        let len = std::fs::metadata(d.state.join("logs/root/flood").join(f))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(len <= 1_000_000, "{f}: {len}");
    }
    assert!(!d.state.join("logs/root/flood/output.log.2").exists());
    d.cli(&["shutdown"]);
    wait_gone("5656.1", Duration::from_secs(10));
}

#[test]
fn a_full_disk_for_the_logs_loses_output_not_the_process() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let Some(_mount) = Mount::tmpfs(&dir.path().join("m"), "64k") else {
        crate::util::skipped("mounting a tmpfs needs root");
        return;
    };
    // The process's log folder is the small tmpfs.
    let d = TestDaemon::prepare(
        "",
        &process(
            "full",
            "i=0; while true; do echo \"tick $i and some padding to fill the disk\"; i=$((i+1)); sleep 0.001; done",
            "healthy_after = \"0s\"",
        ),
    );
    let logs = d.state.join("logs/root");
    std::fs::create_dir_all(&logs).unwrap_or_else(|e| panic!("{e}"));
    std::os::unix::fs::symlink(dir.path().join("m"), logs.join("full"))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut d = d;
    d.launch(&[]);
    d.wait_ready();
    let s = status_until(&d, "root/full", "dropped output", |s| {
        s["log_dropped"].as_u64().is_some_and(|n| n > 0) && s["log_failing"] == true
    });
    let pid = s["pid"].clone();
    std::thread::sleep(Duration::from_millis(500));
    let later = status(&d, "root/full");
    assert_eq!(later["state"], "running", "{later:#}");
    assert_eq!(later["pid"], pid, "the same run goes on: {later:#}");
    assert!(
        later["log_dropped"].as_u64() > s["log_dropped"].as_u64(),
        "it kept writing (and losing): {later:#}"
    );
    assert!(
        d.log_text().contains("cannot write the output log"),
        "{}",
        d.log_text()
    );
    d.cli(&["shutdown"]);
    let _ = d.wait_exit();
}

#[test]
fn a_process_probe_fails_while_it_is_down_and_its_restart_heals_it() {
    let tree = format!(
        "{}{}",
        process("web", "exec sleep 5757.1", "healthy_after = \"0s\""),
        r#"
[[root.children]]
name = "web-up"
kind = "probe"
check = "process"
process = "root/web"
every = "200ms"
failures_before_warning = 1
failures_before_critical = 1
heal = [{ action = "restart", path = "root/web", cooldown = "1s", on = "fail" }]
"#
    );
    let d = TestDaemon::start(&tree);
    let first = status_until(&d, "root/web", "running", |s| s["state"] == "running");
    d.wait_until("the probe to pass", |d| {
        let v = d.json(&["call", "root/web-up", "status"], 0);
        v["status"] == "pass"
    });
    // Stopped by hand, it is found down and restarted by the heal action.
    assert_eq!(d.cli(&["stop", "root/web"]).code, 0);
    let second = status_until(&d, "root/web", "running again", |s| {
        s["state"] == "running" && s["pid"] != first["pid"]
    });
    assert_eq!(second["runs"], 2, "{second:#}");
    let heal = d.json(&["heal"], 0);
    let actions = heal["actions"].as_array().cloned().unwrap_or_default();
    assert!(
        actions.iter().any(|a| a["action"] == "restart"
            && a["target"] == "root/web"
            && a["outcome"] == "done"),
        "{heal:#}"
    );
    let events = d.events(&["--path", "root/web-up", "--kind", "probe"]);
    assert!(
        events.iter().any(|e| e["message"]
            .as_str()
            .is_some_and(|m| m.contains("root/web is not running"))),
        "{events:#?}"
    );
    d.cli(&["shutdown"]);
    wait_gone("5757.1", Duration::from_secs(10));
}

#[test]
fn a_stopped_program_is_continued_so_it_can_act_on_its_stop_signal() {
    let d = TestDaemon::start(&process(
        "frozen",
        "trap 'echo bye; exit 0' TERM; while true; do sleep 0.05; done",
        "healthy_after = \"0s\"\nstop_timeout = \"8s\"",
    ));
    let s = status_until(&d, "root/frozen", "running", |s| s["state"] == "running");
    kill(
        s["pid"].as_i64().unwrap_or(0),
        rustix::process::Signal::STOP,
    );
    let asked = Instant::now();
    assert_eq!(d.cli(&["stop", "root/frozen"]).code, 0);
    let took = asked.elapsed();
    // Continued, it handled SIGTERM at once instead of waiting 8 s for the SIGKILL.
    assert!(took < Duration::from_secs(4), "stopped after {took:?}");
    let events = d.events(&["--path", "root/frozen", "--kind", "process"]);
    let last = events.last().cloned().unwrap_or(Value::Null);
    assert_eq!(last["data"]["killed"], false, "{events:#?}");
    d.cli(&["shutdown"]);
}

#[test]
fn the_log_file_is_written_while_nobody_reads_stderr() {
    let padding = "y".repeat(2000);
    let mut d = TestDaemon::prepare(
        "log_file = \"logs/daemon.log\"\nlog_stderr = true",
        &process(
            "p",
            &format!("echo {padding}; exec sleep 5858.1"),
            "healthy_after = \"0s\"",
        ),
    );
    // stderr is a pipe whose reader never reads: it is full after 64 KiB.
    let (_unread, write) = rustix::pipe::pipe().unwrap_or_else(|e| panic!("{e}"));
    d.launch_with(&[], Stdio::from(write));
    d.wait_ready();
    for _ in 0..60 {
        let out = d.cli(&["restart", "root/p"]);
        assert_eq!(out.code, 0, "{}", out.stderr);
    }
    let log = d.state.join("logs/daemon.log");
    d.wait_until("every start in the log file", |_| {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.matches("started `sh -c").count() >= 61
    });
    d.cli(&["shutdown"]);
    wait_gone("5858.1", Duration::from_secs(10));
}
