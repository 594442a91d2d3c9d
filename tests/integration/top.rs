//! `metasystem top` as a person uses it: in a real terminal (a detached tmux session of a fixed
//! size) against a real daemon running the default tree; the screen read with capture-pane,
//! keys typed with send-keys. `top --summary` without a terminal.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{TestDaemon, BIN};

/// The embedded default tree, under the test's own `[daemon]`.
fn default_tree() -> String {
    let text = include_str!("../../supervision.toml");
    let at = text.find("\n[root]").expect("the default has a [root]");
    text[at..].to_string()
}

/// A tmux server of the test's own (`-L`), killed when dropped.
struct Tmux {
    name: String,
}

const SESSION: &str = "top";
const WAIT: Duration = Duration::from_secs(20);

impl Tmux {
    /// `None` (and a message) when tmux is not installed and this is not CI.
    fn start(command: &str, width: u16, height: u16) -> Option<Tmux> {
        let found = Command::new("tmux")
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            assert!(
                std::env::var_os("CI").is_none(),
                "tmux is needed for the dashboard tests in CI (.ci/run installs it)"
            );
            eprintln!("SKIPPED: tmux is not installed (apt-get install -y tmux)");
            return None;
        }
        let t = Tmux {
            name: format!("metasystem-top-{}-{}", std::process::id(), fastrand_id()),
        };
        let (w, h) = (width.to_string(), height.to_string());
        t.run(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            SESSION,
            "-x",
            &w,
            "-y",
            &h,
            command,
        ]);
        // The pane outlives the program, so what it left on the screen can be read.
        t.run(&["set-option", "-t", SESSION, "remain-on-exit", "on"]);
        Some(t)
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.name)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("tmux runs");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", SESSION])
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", SESSION];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    fn format(&self, f: &str) -> String {
        self.run(&["display-message", "-p", "-t", SESSION, f])
            .trim()
            .to_string()
    }

    /// Waits (bounded) until the screen satisfies `check`; the screen.
    fn wait(&self, what: &str, check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        let mut screen = String::new();
        while Instant::now() < deadline {
            screen = self.screen();
            if check(&screen) {
                return screen;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("timed out waiting for {what}; the screen:\n{screen}");
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.name, "kill-server"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn fastrand_id() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64)
}

/// The command run in the pane: top, then what the terminal is like after it (raw mode off
/// shows `icanon` and `echo` in stty's settings, not `-icanon -echo`).
fn pane_command(d: &TestDaemon) -> String {
    format!(
        "{BIN} --socket '{}' top --refresh 1s; echo \"top exited $?\"; echo \"tty: $(stty -a | tr ' ' '\\n' | grep -x -e -icanon -e icanon -e echo -e -echo | tr '\\n' ' ') :tty-end\"; sleep 60",
        d.socket.display()
    )
}

fn event_ids(d: &TestDaemon, path: &str) -> Vec<(i64, String)> {
    d.events(&["--path", path])
        .iter()
        .map(|e| {
            (
                e["id"].as_i64().unwrap_or(0),
                e["kind"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn the_dashboard_shows_the_tree_acts_resizes_survives_a_daemon_restart_and_quits() {
    let mut d = TestDaemon::start(&default_tree());
    let Some(t) = Tmux::start(&pane_command(&d), 160, 50) else {
        return;
    };
    // Content: tree rows with states, a sync target, a breaker, a probe, the sparkline.
    let screen = t.wait("the tree, sync, breakers and probes", |s| {
        s.contains("· connected")
            && s.contains("heartbeat")
            && s.contains("running")
            && s.contains("icloud_sync")
            && s.contains("open_breakers")
            && s.contains("external")
    });
    for want in [
        "PATH",
        "STATE",
        "RESTARTS",
        "UPTIME",
        "TARGET",
        "BREAKER",
        "PROBE",
        "HEARTBEAT",
        "restarts/min",
    ] {
        assert!(screen.contains(want), "{want} missing:\n{screen}");
    }
    assert!(
        screen.contains("offline"),
        "the sync targets are offline here:\n{screen}"
    );

    // Keys: filter to the heartbeat, restart it; the daemon records the restart.
    let before = event_ids(&d, "root/heartbeat");
    let last = before.iter().map(|e| e.0).max().unwrap_or(0);
    t.keys(&["/"]);
    t.keys(&["-l", "heartbeat"]);
    t.keys(&["Enter"]);
    t.wait("the filter applied", |s| {
        s.contains("filter: heartbeat") && s.contains("tree (1 of")
    });
    t.keys(&["r"]);
    t.wait("the restart's answer", |s| {
        s.contains("restart root/heartbeat: done")
    });
    d.wait_until("the heartbeat's restart in the events", |d| {
        event_ids(d, "root/heartbeat")
            .iter()
            .any(|(id, kind)| *id > last && kind == "started")
    });
    // Esc clears the filter.
    t.keys(&["Escape"]);
    t.wait("the whole tree again", |s| {
        !s.contains("filter: heartbeat") && s.contains("open_breakers")
    });

    // Resize: the new size is drawn (the sparkline's border at the new width).
    t.run(&["resize-window", "-t", SESSION, "-x", "100", "-y", "30"]);
    let screen = t.wait("the redraw at 100x30", |s| {
        let lines: Vec<&str> = s.lines().collect();
        lines.len() <= 30
            && lines.iter().any(|l| l.contains("restarts/min"))
            && lines.iter().all(|l| l.chars().count() <= 100)
            && s.contains("heartbeat")
    });
    assert!(screen.contains("· connected"), "{screen}");
    t.run(&["resize-window", "-t", SESSION, "-x", "160", "-y", "50"]);

    // The daemon goes away (killed: no goodbye on the stream): "disconnected", the last data
    // still shown; it comes back: data.
    d.signal(rustix::process::Signal::KILL);
    d.wait_exit();
    t.wait("disconnected", |s| {
        s.contains("disconnected") && s.contains("heartbeat")
    });
    d.launch(&[]);
    d.wait_ready();
    t.wait("connected again", |s| {
        s.contains("· connected") && !s.contains("disconnected") && s.contains("icloud_sync")
    });

    // q quits; the terminal is back to normal: main screen, raw mode off.
    t.keys(&["q"]);
    let screen = t.wait("top's exit and the terminal's settings", |s| {
        s.contains(":tty-end")
    });
    assert!(screen.contains("top exited 0"), "{screen}");
    assert!(
        screen.contains("icanon") && !screen.contains("-icanon") && !screen.contains("-echo"),
        "the terminal is still raw:\n{screen}"
    );
    assert_eq!(
        t.format("#{alternate_on}"),
        "0",
        "still on the alternate screen"
    );
}

#[test]
fn the_summary_is_json_with_every_section() {
    let d = TestDaemon::start(&default_tree());
    let v = d.json(&["top", "--summary"], 0);
    for section in [
        "tree",
        "sync",
        "breakers",
        "probes",
        "alerts",
        "restarts_per_minute",
    ] {
        assert!(v.get(section).is_some(), "{section} missing: {v}");
    }
    let tree = v["tree"].as_array().expect("tree rows");
    assert!(tree.iter().any(|n| n["path"] == "root/heartbeat"), "{v}");
    let sync = v["sync"].as_array().expect("sync rows");
    assert!(
        sync.iter().any(|s| s["name"] == "icloud"
            && s["online"] == false
            && s.get("success_rate_24h").is_some()),
        "{v}"
    );
    let breakers = v["breakers"].as_array().expect("breakers");
    assert!(
        breakers
            .iter()
            .any(|b| b["name"] == "icloud_sync" && b["state"] == "closed"),
        "{v}"
    );
    let probes = v["probes"].as_array().expect("probes");
    assert!(
        probes.iter().any(|p| p["path"] == "root/open_breakers"),
        "{v}"
    );
    // The kinds' panels are sections too (the heartbeat's, from its kind file).
    let beats = v["heartbeats"].as_array().expect("heartbeats");
    assert!(beats.iter().any(|h| h["path"] == "root/heartbeat"), "{v}");
    assert_eq!(v["restarts_per_minute"].as_array().map(Vec::len), Some(30));
    // No daemon: a connection error, exit 2.
    let out = crate::util::run_cli(&["--socket", "/nonexistent/sock", "top", "--summary"], &[]);
    assert_eq!(out.code, 2, "{}", out.stderr);
}

/// A small tree for the action keys: a heartbeat, a breaker, a sync target on temp dirs.
fn action_tree(target: &std::path::Path) -> String {
    format!(
        r#"
[root]

[[root.children]]
name = "breakers"
kind = "breakers"
breakers.t_sync = {{ failure_threshold = 3, success_threshold = 1, open_for = "1m", half_open_calls = 1 }}

[[root.children]]
name = "heartbeat"
kind = "heartbeat"
every = "1h"

[[root.children]]
name = "t"
kind = "sync_target"
target = "{}"
paths = ["shared"]
every = "1h"
breaker = "t_sync"
"#,
        target.display()
    )
}

fn node_state(d: &TestDaemon, path: &str) -> (String, u64) {
    let n = d.node(path).unwrap_or_default();
    (
        n["state"].as_str().unwrap_or("").to_string(),
        n["incarnation"].as_u64().unwrap_or(0),
    )
}

/// Types `/TEXT` Enter and waits until the tree shows only what matches.
fn filter(t: &Tmux, text: &str) {
    t.keys(&["/"]);
    t.keys(&["-l", text]);
    t.keys(&["Enter"]);
    t.wait("the filter applied", |s| {
        s.contains(&format!("filter: {text}")) && s.contains("tree (1 of")
    });
}

#[test]
fn stop_and_kill_ask_first_and_any_other_key_cancels() {
    let remote = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = TestDaemon::start(&action_tree(remote.path()));
    let Some(t) = Tmux::start(&pane_command(&d), 160, 40) else {
        return;
    };
    t.wait("the tree", |s| {
        s.contains("· connected") && s.contains("heartbeat")
    });
    filter(&t, "heartbeat");
    let (state, incarnation) = node_state(&d, "root/heartbeat");
    assert_eq!(state, "running");
    let exits = |d: &TestDaemon| {
        d.events(&["--path", "root/heartbeat", "--kind", "exited"])
            .len()
    };
    assert_eq!(exits(&d), 0);

    // s asks; n cancels: still running, same incarnation, nothing exited.
    t.keys(&["s"]);
    t.wait("the stop question", |s| {
        s.contains("stop root/heartbeat? y/n")
    });
    t.keys(&["n"]);
    t.wait("the stop cancelled", |s| {
        s.contains("stop root/heartbeat: cancelled")
    });
    // x asks; q cancels it (and does not quit the dashboard).
    t.keys(&["x"]);
    t.wait("the kill question", |s| {
        s.contains("kill root/heartbeat? y/n")
    });
    t.keys(&["q"]);
    let screen = t.wait("the kill cancelled", |s| {
        s.contains("kill root/heartbeat: cancelled")
    });
    assert!(!screen.contains("top exited"), "{screen}");
    // A round trip through the daemon after the keys: nothing happened to the heartbeat.
    assert_eq!(node_state(&d, "root/heartbeat"), (state, incarnation));
    assert_eq!(exits(&d), 0);

    // s, y: stopped.
    t.keys(&["s"]);
    t.wait("the stop question", |s| {
        s.contains("stop root/heartbeat? y/n")
    });
    t.keys(&["y"]);
    t.wait("the stop's answer", |s| {
        s.contains("stop root/heartbeat: done")
    });
    assert_eq!(node_state(&d, "root/heartbeat").0, "stopped");
    // g starts it again (no question).
    t.keys(&["g"]);
    t.wait("the start's answer", |s| {
        s.contains("start root/heartbeat: done")
    });
    let (state, incarnation) = node_state(&d, "root/heartbeat");
    assert_eq!(state, "running");

    // x, y: killed as a crash, and its supervisor starts a new incarnation.
    t.keys(&["x"]);
    t.wait("the kill question", |s| {
        s.contains("kill root/heartbeat? y/n")
    });
    t.keys(&["y"]);
    t.wait("the kill's answer", |s| {
        s.contains("kill root/heartbeat: done")
    });
    d.wait_until("the heartbeat's crash and its restart", |d| {
        let crashed = d
            .events(&["--path", "root/heartbeat", "--kind", "exited"])
            .iter()
            .any(|e| {
                e["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains("injected failure")
            });
        let (s, i) = node_state(d, "root/heartbeat");
        crashed && s == "running" && i > incarnation
    });

    t.keys(&["q"]);
    let screen = t.wait("top's exit", |s| s.contains(":tty-end"));
    assert!(screen.contains("top exited 0"), "{screen}");
}

#[test]
fn the_sync_and_breaker_keys_act_through_the_daemon() {
    let remote = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let target = remote.path();
    let d = TestDaemon::start(&action_tree(target));
    std::fs::create_dir_all(d.state.join("shared")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir_all(target.join("shared")).unwrap_or_else(|e| panic!("{e}"));
    crate::util::write_file(d.state.join("shared/notes.txt"), "from here");
    crate::util::write_file(target.join("shared/todo.txt"), "from there");
    let Some(t) = Tmux::start(&pane_command(&d), 160, 40) else {
        return;
    };
    t.wait("the tree and the breaker", |s| {
        s.contains("· connected") && s.contains("sync_target") && s.contains("t_sync")
    });

    // y on the selected sync target: it syncs both ways.
    filter(&t, "sync_target");
    t.keys(&["y"]);
    t.wait("the sync's answer", |s| s.contains("sync t: done"));
    assert_eq!(
        std::fs::read_to_string(target.join("shared/notes.txt")).unwrap_or_default(),
        "from here"
    );
    assert_eq!(
        std::fs::read_to_string(d.state.join("shared/todo.txt")).unwrap_or_default(),
        "from there"
    );
    let s = d.json(&["sync", "status"], 0);
    assert_eq!(s["targets"][0]["last"]["outcome"], "success", "{s}");
    t.keys(&["Escape"]);

    // A breaker forced open through the CLI shows; Tab to the breakers, b resets it.
    let forced = d.json(&["breakers", "open", "t_sync"], 0);
    assert_eq!(forced["state"], "forced_open");
    t.wait("the forced-open breaker", |s| s.contains("forced_open"));
    t.keys(&["Tab"]);
    t.keys(&["b"]);
    t.wait("the reset's answer", |s| {
        s.contains("reset breaker t_sync: done")
    });
    let breakers = d.cli(&["breakers", "--json"]).json();
    let row = breakers["breakers"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["name"] == "t_sync"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(row["state"], "closed", "{breakers}");
    t.wait("the breaker closed on screen", |s| {
        !s.contains("forced_open")
    });

    t.keys(&["q"]);
    let screen = t.wait("top's exit", |s| s.contains(":tty-end"));
    assert!(screen.contains("top exited 0"), "{screen}");
}
