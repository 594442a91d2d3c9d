//! The store under a daemon: a disk that fills up and frees again, reads while writes fail,
//! what `status` says about it, and the previous run.

use std::path::Path;

use crate::util::{fill, Mount, TestDaemon};

const TREE: &str = r#"
[root]
intensity = 1000
period = "1s"
backoff = "none"

[[root.children]]
name = "x"
kind = "heartbeat"
every = "1h"
"#;

/// Exits recorded as injected failures of `path`, read from the database file.
fn injected_exits(db: &Path, path: &str) -> usize {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    runtime.block_on(async {
        let pool = metasystem_actors::store::open_reader(db)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM events WHERE path = ? AND kind = 'exited' \
             AND json_extract(data, '$.error') = 'injected failure'",
        )
        .bind(path)
        .fetch_one(&pool)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        pool.close().await;
        n as usize
    })
}

fn kill_and_wait(d: &TestDaemon, incarnation: u64) {
    let out = d.cli(&["kill", "root/x"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    d.wait_until("root/x restarted", |d| {
        d.node("root/x")
            .is_some_and(|n| n["incarnation"] == incarnation && n["state"] == "running")
    });
}

/// Regression (the attack on the daemon): with the state dir on a full 1 MiB tmpfs, a few
/// kills, space freed, more kills: `events` showed every exit but the file held none after a
/// clean shutdown. Now every exit is in the file, `status` says writes are failing while they
/// are, and `events` keeps answering.
#[test]
fn every_event_survives_a_full_disk() {
    let mut d = TestDaemon::prepare("", TREE);
    let Some(_mount) = Mount::tmpfs(&d.state, "1m") else {
        crate::util::skipped("cannot mount a tmpfs here (needs root)");
        return;
    };
    d.launch(&[]);
    d.wait_ready();
    let filler = fill(&d.state);
    for n in 0..5u64 {
        kill_and_wait(&d, n + 2);
    }
    // Failing writes make the daemon unhealthy (exit 1) until they succeed again.
    d.wait_until("the store to report failing writes", |d| {
        let s = d.json(&["status"], 1);
        s["store"]["failing_since_ms"].is_i64() && s["healthy"] == false
    });
    let status = d.json(&["status"], 1);
    let waiting = status["store"]["queued"].as_u64().unwrap_or(0)
        + status["store"]["inflight"].as_u64().unwrap_or(0);
    assert!(waiting > 0, "{status}");
    // Reads go on while writes fail.
    let events = d.cli(&["events", "--limit", "5"]);
    assert_eq!(events.code, 0, "{}", events.stderr);

    std::fs::remove_file(&filler).unwrap_or_else(|e| panic!("{e}"));
    for n in 5..10u64 {
        kill_and_wait(&d, n + 2);
    }
    d.wait_until("healthy again", |d| d.cli(&["status"]).code == 0);
    assert_eq!(d.cli(&["shutdown"]).code, 0);
    assert_eq!(d.wait_exit(), 0, "{}", d.log_text());
    assert_eq!(
        injected_exits(&d.state.join("metastore.db"), "root/x"),
        10,
        "{}",
        d.log_text()
    );
}

/// `status` shows the store's counters and whether the previous run ended cleanly.
#[test]
fn status_tells_the_store_and_the_previous_run() {
    let mut d = TestDaemon::start(TREE);
    let first = d.json(&["status"], 0);
    assert_eq!(first["store"]["dropped"], 0);
    assert!(first["store"]["written"].is_u64(), "{first}");
    assert!(first["previous_run"].is_null(), "{first}");
    assert!(first["log_lines_dropped"].is_u64(), "{first}");
    // Killed: the run is left open.
    d.signal(rustix::process::Signal::KILL);
    let _ = d.wait_exit();
    let _ = std::fs::remove_file(&d.socket);
    d.launch(&[]);
    d.wait_ready();
    let second = d.json(&["status"], 0);
    assert_eq!(second["previous_run"]["clean"], false, "{second}");
    assert!(second["previous_run"]["stopped"].is_null(), "{second}");
    assert_eq!(d.terminate(), 0);
    // Stopped in order: the next run says so.
    d.launch(&[]);
    d.wait_ready();
    let third = d.json(&["status"], 0);
    assert_eq!(third["previous_run"]["clean"], true, "{third}");
    assert_eq!(third["previous_run"]["exit_code"], 0, "{third}");
    let human = d.cli(&["status"]);
    assert!(human.stdout.contains("previous run"), "{}", human.stdout);
}

/// Regression (found by the soak benchmark): kills sent at the same moment broke "every kill
/// accepted is one exit recorded". Two kills of one incarnation were both accepted (one exit),
/// and a one_for_all sibling killed while its group restarted was recorded as `shutdown`. Now
/// the second kill of a dying incarnation is refused, and a bystander that died of its own kill
/// is recorded as such.
#[test]
fn concurrent_kills_are_each_recorded_once() {
    let tree = r#"
[root]
intensity = 100000
period = "1s"

[[root.children]]
name = "all"
kind = "supervisor"
strategy = "one_for_all"
intensity = 100000
period = "1s"
  [[root.children.children]]
  name = "w1"
  kind = "heartbeat"
  every = "1h"
  [[root.children.children]]
  name = "w2"
  kind = "heartbeat"
  every = "1h"

[[root.children]]
name = "x"
kind = "heartbeat"
every = "1h"
"#;
    let mut d = TestDaemon::start(tree);
    let socket = d.socket.display().to_string();
    let kill = |path: &str| {
        std::process::Command::new(crate::util::BIN)
            .args(["--socket", &socket, "kill", path])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let mut accepted: std::collections::HashMap<&str, usize> = Default::default();
    for pair in [["root/x", "root/x"], ["root/all/w1", "root/all/w2"]] {
        for _ in 0..40 {
            let children = [kill(pair[0]), kill(pair[1])];
            for (path, child) in pair.iter().zip(children) {
                let status = child
                    .wait_with_output()
                    .unwrap_or_else(|e| panic!("{e}"))
                    .status;
                if status.code() == Some(0) {
                    *accepted.entry(path).or_default() += 1;
                }
            }
            // Let the restart finish before the next pair.
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    assert_eq!(d.cli(&["shutdown"]).code, 0);
    assert_eq!(d.wait_exit(), 0, "{}", d.log_text());
    let db = d.state.join("metastore.db");
    for path in ["root/x", "root/all/w1", "root/all/w2"] {
        let want = accepted.get(path).copied().unwrap_or(0);
        assert!(want > 0, "{path}: no kill accepted");
        assert_eq!(injected_exits(&db, path), want, "{path}");
    }
}
