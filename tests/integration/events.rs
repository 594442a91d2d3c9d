//! `events`: filters checked, large answers in pages, `events -f`, and `subscribe` streams
//! (backlog then live, a slow reader told what it lost, the end announced).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use crate::util::{Reaped, TestDaemon, BIN};

const TREE: &str = r#"
[root]
intensity = 1000
period = "1s"
backoff = "none"

[[root.children]]
name = "beat"
kind = "heartbeat"
every = "1h"
"#;

/// `n` heartbeats recorded now, through `call`.
fn beats(d: &TestDaemon, n: usize) {
    let lines: Vec<String> = (0..n)
        .map(|i| format!(r#"{{"id":{i},"cmd":"call","path":"root/beat","op":"beat"}}"#))
        .collect();
    let answers = d.burst(&lines);
    assert_eq!(answers.len(), n);
    assert!(answers.iter().all(|a| a["ok"] == true));
}

/// Large answers come in pages; the CLI puts them together, oldest first, nothing missing.
#[test]
fn large_answers_are_paged() {
    let d = TestDaemon::start(TREE);
    beats(&d, 3000);
    let raw = d.raw(
        br#"{"id":1,"cmd":"events","limit":100000}
"#,
    );
    let page = &raw[0]["result"];
    let n = page["events"].as_array().map(Vec::len).unwrap_or(0);
    assert!(n > 0 && n <= 500, "one page: {n}");
    assert!(page["next"]["after"].is_i64(), "{}", page["next"]);

    let all = d.events(&["--kind", "heartbeat", "--limit", "100000"]);
    let numbers: Vec<u64> = all
        .iter()
        .filter_map(|e| e["data"]["beat"].as_u64())
        .collect();
    assert!(numbers.len() >= 3001, "{}", numbers.len());
    assert!(
        numbers.windows(2).all(|w| w[1] == w[0] + 1),
        "in order, none missing"
    );
    let last = d.events(&["--kind", "heartbeat", "--limit", "2500"]);
    assert_eq!(last.len(), 2500);
    assert_eq!(last.last(), all.last(), "the most recent, oldest first");
    let ids: Vec<i64> = last.iter().filter_map(|e| e["id"].as_i64()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
}

/// Regression: `events --kind exitted` silently matched nothing.
#[test]
fn unknown_event_kinds_are_refused() {
    let d = TestDaemon::start(TREE);
    let out = d.cli(&["events", "--kind", "exitted"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("unknown event kind `exitted`")
            && out.stderr.contains("did you mean `exited`?"),
        "{}",
        out.stderr
    );
}

/// Lines of a child's stdout, read on a thread (so a test can wait with a timeout).
fn lines_of(child: &mut std::process::Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let Some(stdout) = child.stdout.take() else {
        panic!("no stdout")
    };
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            match line {
                Ok(l) => {
                    if tx.send(l).is_err() {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
    });
    rx
}

fn next_json(rx: &mpsc::Receiver<String>) -> Value {
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(line) => serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}")),
        Err(e) => panic!("no line within 20 s: {e}"),
    }
}

/// `events -f`: the last events first, then new ones as they are written; the end of the
/// daemon ends the stream with exit 0.
#[test]
fn follow_prints_history_then_new_events() {
    let mut d = TestDaemon::start(TREE);
    assert_eq!(d.cli(&["kill", "root/beat"]).code, 0);
    d.wait_until("the first exit stored", |d| {
        d.events(&["--kind", "exited"]).len() == 1
    });
    let socket = d.socket.display().to_string();
    let child = Command::new(BIN)
        .args([
            "--socket", &socket, "events", "-f", "--json", "--kind", "exited",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut follower = Reaped(child);
    let rx = lines_of(&mut follower.0);
    let first = next_json(&rx);
    assert_eq!(first["kind"], "exited");
    assert_eq!(first["data"]["error"], "injected failure");
    for incarnation in [3, 4] {
        assert_eq!(d.cli(&["kill", "root/beat"]).code, 0);
        let live = next_json(&rx);
        assert_eq!(live["path"], "root/beat", "{live}");
        assert_eq!(live["data"]["incarnation"], incarnation - 1, "{live}");
        assert!(live["id"].as_i64() > first["id"].as_i64());
    }
    assert_eq!(d.cli(&["shutdown"]).code, 0);
    // Regression (the attack): the stream ended before the tree stopped, so the shutdown's
    // own exits never reached it. They arrive, then the stream ends.
    let last = next_json(&rx);
    assert_eq!(
        (last["path"].as_str(), last["data"]["reason"].as_str()),
        (Some("root/beat"), Some("shutdown")),
        "{last}"
    );
    let mut status = None;
    for _ in 0..200 {
        if let Ok(Some(s)) = follower.0.try_wait() {
            status = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let Some(status) = status else {
        panic!("events -f did not end with the daemon")
    };
    let mut stderr = String::new();
    if let Some(mut e) = follower.0.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
    }
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("the stream ended: the daemon is shutting down"),
        "{stderr}"
    );
    assert_eq!(d.wait_exit(), 0);
}

/// A raw subscriber that stops reading falls behind: when it reads again it is told how many
/// events it lost, and what it got plus what it lost covers everything.
#[test]
fn a_slow_subscriber_is_told_what_it_lost() {
    let d = TestDaemon::start(TREE);
    let mut stream = UnixStream::connect(&d.socket).unwrap_or_else(|e| panic!("{e}"));
    let _ = stream.set_read_timeout(Some(Duration::from_secs(20)));
    let _ = stream.write_all(
        b"{\"id\":1,\"cmd\":\"subscribe\",\"topic\":\"events\",\"kind\":\"heartbeat\"}\n",
    );
    let mut reader = BufReader::new(stream.try_clone().unwrap_or_else(|e| panic!("{e}")));
    let mut line = String::new();
    let _ = reader.read_line(&mut line);
    let ack: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(ack["result"]["subscribed"], "events", "{ack}");
    // Not reading while 6,000 events are written: far more than the socket and the
    // subscriber's buffer hold.
    beats(&d, 6000);
    // Beats 2 to 6001 (the first was recorded at start, maybe before the subscription).
    let mut received = 0u64;
    let mut dropped = 0u64;
    for _ in 0..10_000 {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if let Some(n) = v["result"]["dropped"].as_u64() {
            dropped += n;
            continue;
        }
        let beat = v["result"]["event"]["data"]["beat"].as_u64().unwrap_or(0);
        if beat >= 2 {
            received += 1;
        }
        if beat == 6001 {
            break;
        }
    }
    assert!(dropped > 0, "received {received}, nothing dropped");
    // The newest are never the ones dropped; everything is accounted for.
    assert!(
        (6000..=6001).contains(&(received + dropped)),
        "{received} + {dropped}"
    );
    // The daemon is unharmed and the subscriber still gets what comes next.
    assert_eq!(d.json(&["call", "root/beat", "beat"], 0)["beat"], 6002);
    line.clear();
    let _ = reader.read_line(&mut line);
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(v["result"]["event"]["data"]["beat"], 6002, "{v}");
}

#[test]
fn subscriptions_check_their_filters() {
    let d = TestDaemon::start(TREE);
    let replies =
        d.raw(b"{\"id\":1,\"cmd\":\"subscribe\",\"topic\":\"events\",\"kind\":\"nope\"}\n");
    assert_eq!(replies.len(), 1, "refused before it starts: {replies:?}");
    assert_eq!(replies[0]["error"]["code"], "bad_request");
    let replies = d.raw(b"{\"id\":1,\"cmd\":\"subscribe\",\"topic\":\"gossip\"}\n");
    assert_eq!(replies[0]["error"]["code"], "bad_request", "{replies:?}");
}

/// Regression: a stored timestamp past year 9999 (a damaged or hand-edited file) killed the
/// connection task that formatted it. Such times are shown as their raw number.
#[test]
fn any_stored_time_can_be_read() {
    let d = TestDaemon::start(TREE);
    let db = d.state.join("metastore.db");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    runtime.block_on(async {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite:{}", db.display()))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        for at in [i64::MAX, 300_000_000_000_000, -5] {
            sqlx::query(
                "INSERT INTO events (at_ms, path, kind, message, data) VALUES (?, 'root/odd', 'heartbeat', 'odd', '{}')",
            )
            .bind(at)
            .execute(&pool)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        }
        pool.close().await;
    });
    let odd = d.events(&["--path", "root/odd"]);
    let shown: Vec<&str> = odd.iter().filter_map(|e| e["at"].as_str()).collect();
    assert_eq!(
        shown,
        [
            format!("{} ms since 1970", i64::MAX).as_str(),
            "300000000000000 ms since 1970",
            "-5 ms since 1970"
        ]
    );
    // The same connection goes on answering.
    let replies = d.raw(
        b"{\"id\":1,\"cmd\":\"events\",\"path\":\"root/odd\"}\n{\"id\":2,\"cmd\":\"status\"}\n",
    );
    assert_eq!(replies.len(), 2, "{replies:?}");
    assert_eq!(replies[1]["ok"], true);
    let human = d.cli(&["events", "--path", "root/odd"]);
    assert_eq!(human.code, 0, "{}", human.stderr);
}

/// Regression (the attack): `events -f --since 5s` printed the whole history when nothing
/// matched in the window. It follows from the newest event at the time of the query.
#[test]
fn follow_with_an_empty_window_does_not_replay_the_past() {
    let d = TestDaemon::start(TREE);
    assert_eq!(d.cli(&["kill", "root/beat"]).code, 0);
    d.wait_until("an old exit", |d| {
        d.events(&["--kind", "exited"]).len() == 1
    });
    std::thread::sleep(Duration::from_millis(1100));
    let socket = d.socket.display().to_string();
    let child = Command::new(BIN)
        .args([
            "--socket", &socket, "events", "-f", "--json", "--kind", "exited", "--since", "1s",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut follower = Reaped(child);
    let rx = lines_of(&mut follower.0);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(d.cli(&["kill", "root/beat"]).code, 0);
    let first = next_json(&rx);
    assert_eq!(
        first["data"]["incarnation"], 2,
        "only the new exit: {first}"
    );
}

/// Regression (the attack): `--json events` with an error wrote it inside the events array.
#[test]
fn json_errors_of_events_stand_alone() {
    let d = TestDaemon::start(TREE);
    let out = d.cli(&["events", "--json", "--kind", "bogus"]);
    assert_eq!(out.code, 2);
    let v = out.json();
    assert!(v.get("events").is_none(), "{v}");
    assert_eq!(v["error"]["code"], "bad_request");
    // Bad paths and limits are refused, not answered with nothing.
    let out = d.cli(&["events", "--path", ""]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    let replies = d.raw(b"{\"id\":1,\"cmd\":\"events\",\"limit\":0}\n");
    assert_eq!(replies[0]["error"]["code"], "bad_request", "{replies:?}");
}

/// Regression (the attack): many requests past their deadline kept running in the
/// background and stalled `events` for everyone for 40 s. Read-only work is abandoned at its
/// deadline, and a connection's next request waits for its previous one.
#[test]
fn timed_out_reads_do_not_pile_up() {
    let d = TestDaemon::start(TREE);
    beats(&d, 2000);
    let lines: Vec<String> = (0..1000)
        .map(|i| format!(r#"{{"id":{i},"cmd":"events","limit":500,"deadline_ms":1}}"#))
        .collect();
    let answers = d.burst(&lines);
    assert_eq!(answers.len(), 1000);
    let out = d.cli(&["--timeout", "5s", "events", "--limit", "1"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}
