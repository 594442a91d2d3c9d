//! The control socket under stress and abuse: permissions, other users, malformed input,
//! connection caps, a second daemon, stale sockets.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use crate::util::{TestDaemon, BIN, ONE_CHILD};

const TREE: &str = "[[root.children]]\nname = \"beat\"\nkind = \"heartbeat\"\n";

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0)
}

#[test]
fn socket_and_directory_are_private() {
    let d = TestDaemon::start(TREE);
    assert_eq!(mode(&d.state), 0o700);
    assert_eq!(mode(&d.socket), 0o600);
}

/// Another user is refused by the daemon itself (peer credentials), even when file permissions
/// would let it connect; the refusal is logged. Needs root to act as another user.
#[test]
fn another_user_is_refused() {
    if rustix::process::geteuid().as_raw() != 0 {
        crate::util::skipped("needs root to connect as another uid");
        return;
    }
    let d = TestDaemon::start(TREE);
    // Open the way on purpose so only the peer-credential check stands in between.
    for (path, m) in [
        (d.dir.path(), 0o755),
        (d.state.as_path(), 0o755),
        (d.socket.as_path(), 0o666),
    ] {
        if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(m)) {
            panic!("chmod {}: {e}", path.display());
        }
    }
    let out = Command::new(BIN)
        .args(["--socket", &d.socket.display().to_string(), "status"])
        .uid(65534)
        .gid(65534)
        .env("HOME", "/nonexistent")
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) => panic!("cannot run as nobody: {e}"),
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("uid 65534 may not control this daemon"),
        "{stderr}"
    );
    d.wait_until("the refusal in the log", |d| {
        d.log_text()
            .contains("refused a control connection from another user")
    });
    assert_eq!(d.cli(&["status"]).code, 0);
}

#[test]
fn garbage_huge_and_half_written_lines() {
    let d = TestDaemon::start(TREE);
    let mut input = Vec::new();
    input.extend_from_slice(b"garbage\n");
    input.extend_from_slice(b"{\"id\":2,\"cmd\":\"status\"}\n");
    input.extend_from_slice(b"\n");
    input.extend(vec![b'z'; 200_000]);
    input.extend_from_slice(b"\n");
    input.extend_from_slice(b"\xff\xfe\n");
    input.extend_from_slice(b"{\"id\":3,\"cmd\":\"reboot\"}\n");
    input.extend_from_slice(b"{\"id\":4,\"cmd\":\"tree\"}\r\n");
    input.extend_from_slice(b"{\"id\":5,\"cmd\":\"sta");
    let replies = d.raw(&input);
    let summary: Vec<(serde_json::Value, bool, String)> = replies
        .iter()
        .map(|r| {
            (
                r["id"].clone(),
                r["ok"].as_bool().unwrap_or(false),
                r["error"]["code"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let row = |id: serde_json::Value, ok: bool, code: &str| (id, ok, code.to_string());
    use serde_json::Value::Null;
    assert_eq!(
        summary,
        [
            row(Null, false, "bad_request"),
            row(2.into(), true, ""),
            row(Null, false, "line_too_long"),
            row(Null, false, "bad_request"),
            row(3.into(), false, "bad_request"),
            row(4.into(), true, ""),
            row(Null, false, "bad_request"),
        ],
        "{replies:#?}"
    );
    // A client that writes half a request and vanishes does not hurt anyone.
    if let Ok(mut s) = UnixStream::connect(&d.socket) {
        let _ = s.write_all(b"{\"id\":9,\"cmd\":");
    }
    assert_eq!(d.cli(&["status"]).code, 0);
    // Many requests in one write are answered in order.
    let many: String = (0..200)
        .map(|i| format!("{{\"id\":{i},\"cmd\":\"status\"}}\n"))
        .collect();
    let replies = d.raw(many.as_bytes());
    let ids: Vec<u64> = replies.iter().filter_map(|r| r["id"].as_u64()).collect();
    assert_eq!(ids, (0..200).collect::<Vec<u64>>());
}

/// Refusals are logged once per 10 s with a count, not once each (one flood wrote 4,969
/// lines): 40 connections from another user.
#[test]
fn refusals_do_not_flood_the_log() {
    if rustix::process::geteuid().as_raw() != 0 {
        crate::util::skipped("needs root to connect as another uid");
        return;
    }
    let d = TestDaemon::start(TREE);
    for (path, m) in [
        (d.dir.path(), 0o755),
        (d.state.as_path(), 0o755),
        (d.socket.as_path(), 0o666),
    ] {
        crate::util::chmod(path, m);
    }
    for _ in 0..40 {
        let out = Command::new(BIN)
            .args(["--socket", &d.socket.display().to_string(), "status"])
            .uid(65534)
            .gid(65534)
            .env("HOME", "/nonexistent")
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out.status.code(), Some(2));
    }
    d.wait_until("the refusal in the log", |d| {
        d.log_text()
            .contains("refused a control connection from another user")
    });
    let lines = d
        .log_text()
        .lines()
        .filter(|l| l.contains("refused a control connection"))
        .count();
    assert!(lines <= 2, "40 refusals logged as {lines} lines");
}

#[test]
fn a_second_daemon_on_the_same_socket_is_refused() {
    let d = TestDaemon::start(TREE);
    // Another state dir, the same socket.
    let other = d.dir.path().join("other.toml");
    crate::util::write_file(
        &other,
        format!(
            "[daemon]\nstate_dir = \"{}\"\nsocket = \"{}\"\n{}",
            d.dir.path().join("other-state").display(),
            d.socket.display(),
            crate::util::ONE_CHILD
        ),
    );
    let out = Command::new(BIN)
        .args(["run", "--config", &other.display().to_string()])
        .env("RUST_LOG", "info")
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) => panic!("{e}"),
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{stderr}");
    assert!(
        stderr.contains("another metasystem daemon is already running"),
        "{stderr}"
    );
    assert_eq!(d.cli(&["status"]).code, 0, "the first one is unharmed");
}

#[test]
fn a_stale_socket_is_replaced_and_a_non_socket_is_not() {
    let mut d = TestDaemon::start(TREE);
    d.signal(rustix::process::Signal::KILL);
    let _ = d.wait_exit();
    assert!(d.socket.exists(), "SIGKILL leaves the socket file behind");
    d.launch(&[]);
    d.wait_ready();
    assert_eq!(d.cli(&["status"]).code, 0);
    assert_eq!(d.terminate(), 0);

    crate::util::write_file(&d.socket, "not a socket");
    d.launch(&[]);
    assert_eq!(d.wait_exit(), 75);
    assert!(
        d.log_text().contains("exists and is not a socket"),
        "{}",
        d.log_text()
    );
    assert_eq!(
        std::fs::read_to_string(&d.socket).unwrap_or_default(),
        "not a socket"
    );
}

/// Regression (the attack): clients that pipeline requests and read their answers slowly
/// held every slot and locked the operator out for as long as they kept reading. A connection
/// whose answer waits on its client gives its slot to a new connection.
#[test]
fn slow_readers_never_lock_the_operator_out() {
    let d = TestDaemon::start_with("max_connections = 4", TREE);
    let requests: String = (0..3000)
        .map(|i| format!("{{\"id\":{i},\"cmd\":\"tree\"}}\n"))
        .collect();
    let hogs: Vec<UnixStream> = (0..4)
        .map(|_| {
            let mut hog = UnixStream::connect(&d.socket).unwrap_or_else(|e| panic!("{e}"));
            let mut writer = hog.try_clone().unwrap_or_else(|e| panic!("{e}"));
            let text = requests.clone();
            std::thread::spawn(move || {
                let _ = writer.set_write_timeout(Some(Duration::from_secs(20)));
                let _ = writer.write_all(text.as_bytes());
            });
            // Reads a little now and then, never enough.
            let _ = hog.set_read_timeout(Some(Duration::from_millis(10)));
            let mut buf = [0u8; 64];
            let _ = hog.read(&mut buf);
            hog
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..3 {
        let out = d.cli(&["--timeout", "5s", "status"]);
        assert_eq!(out.code, 0, "{}", out.stderr);
    }
    drop(hogs);
}

/// Regression (the attack): with max_connections = 1 one `events -f` locked everyone out.
/// The smallest cap is 2, and streams take at most half.
#[test]
fn a_stream_never_takes_the_last_slot() {
    let d = TestDaemon::start_with("max_connections = 2", TREE);
    let mut stream = UnixStream::connect(&d.socket).unwrap_or_else(|e| panic!("{e}"));
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    stream
        .write_all(b"{\"id\":1,\"cmd\":\"subscribe\",\"topic\":\"events\"}\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let mut reader = BufReader::new(stream.try_clone().unwrap_or_else(|e| panic!("{e}")));
    let mut line = String::new();
    let _ = reader.read_line(&mut line);
    assert!(line.contains("subscribed"), "{line}");
    for _ in 0..5 {
        assert_eq!(d.cli(&["status"]).code, 0);
    }
    let one = TestDaemon::prepare("max_connections = 1", TREE);
    let config = one.config.display().to_string();
    let check = crate::util::run_cli(&["check", &config], &[]);
    assert_eq!(check.code, 1);
    assert!(
        check
            .stderr
            .contains("`max_connections` in [daemon] must be between 2 and 1024"),
        "{}",
        check.stderr
    );
}

/// A client that sends requests and never reads the answers loses its connection once its
/// answers stop flowing; it does not hold a slot forever.
#[test]
fn a_client_that_never_reads_is_dropped() {
    let d = TestDaemon::start(TREE);
    let mut hog = match UnixStream::connect(&d.socket) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let requests: String = (0..20_000)
        .map(|i| format!("{{\"id\":{i},\"cmd\":\"tree\"}}\n"))
        .collect();
    let _ = hog.set_write_timeout(Some(Duration::from_secs(30)));
    // The daemon's answers fill the socket buffers; after 10 s it gives up on this client and
    // closes, so the write fails.
    let started = std::time::Instant::now();
    let written = hog.write_all(requests.as_bytes());
    assert!(written.is_err(), "the daemon kept the connection");
    assert!(started.elapsed() < Duration::from_secs(25));
    assert_eq!(d.cli(&["status"]).code, 0);
}

/// The socket's directory must be private; an existing open one is refused and never
/// chmodded, except the state dir itself, which is tightened (it is metasystem's own).
#[test]
fn only_private_directories_hold_the_socket() {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    };
    let shared = dir.path().join("shared");
    let state = dir.path().join("state");
    for (path, mode) in [(&shared, 0o1777), (&state, 0o755)] {
        if let Err(e) = std::fs::create_dir(path) {
            panic!("{}: {e}", path.display());
        }
        crate::util::chmod(path, mode);
    }
    let config = dir.path().join("s.toml");
    let write = |socket: &str| {
        crate::util::write_file(
            &config,
            format!(
                "[daemon]\nstate_dir = \"{}\"\nsocket = \"{socket}\"\n{}",
                state.display(),
                crate::util::ONE_CHILD
            ),
        );
    };
    write(&shared.join("ms.sock").display().to_string());
    let out = crate::util::run_cli(&["run", "--config", &config.display().to_string()], &[]);
    assert_eq!(out.code, 75, "{}", out.stderr);
    assert!(
        out.stderr.contains("must be private (0700)"),
        "{}",
        out.stderr
    );
    assert_eq!(mode(&shared), 0o777, "a shared directory is never chmodded");
    assert_eq!(
        std::fs::metadata(&shared)
            .map(|m| m.permissions().mode() & 0o7777)
            .unwrap_or(0),
        0o1777
    );
    // The state dir, ours, is tightened; the default socket inside it works.
    crate::util::write_file(
        &config,
        format!(
            "[daemon]\nstate_dir = \"{}\"\n{}",
            state.display(),
            crate::util::ONE_CHILD
        ),
    );
    let mut child = match Command::new(BIN)
        .args(["run", "--config", &config.display().to_string()])
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        Ok(c) => crate::util::Reaped(c),
        Err(e) => panic!("{e}"),
    };
    let socket = state.join("control.sock").display().to_string();
    let mut up = false;
    for _ in 0..400 {
        if crate::util::run_cli(&["--socket", &socket, "status"], &[]).code == 0 {
            up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(up);
    assert_eq!(mode(&state), 0o700);
    let _ = crate::util::run_cli(&["--socket", &socket, "shutdown"], &[]);
    let _ = child.0.wait();
}

/// One daemon per state dir, even with different sockets.
#[test]
fn a_second_daemon_on_the_same_state_dir_is_refused() {
    let d = TestDaemon::start(TREE);
    let other = d.dir.path().join("other.toml");
    crate::util::write_file(
        &other,
        format!(
            "[daemon]\nstate_dir = \"{}\"\nsocket = \"{}\"\n{}",
            d.state.display(),
            d.dir.path().join("other-sock/ms.sock").display(),
            crate::util::ONE_CHILD
        ),
    );
    let out = crate::util::run_cli(&["run", "--config", &other.display().to_string()], &[]);
    assert_eq!(out.code, 75, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "another metasystem daemon (pid {}) is using the state dir",
            d.pid()
        )),
        "{}",
        out.stderr
    );
    assert_eq!(d.cli(&["status"]).code, 0);
}

/// Connections that answer one request and then idle, each holding a slot.
fn idle_clients(d: &TestDaemon, n: usize) -> Vec<BufReader<UnixStream>> {
    (0..n)
        .map(|i| {
            let mut s = UnixStream::connect(&d.socket).unwrap_or_else(|e| panic!("{e}"));
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            s.write_all(format!("{{\"id\":{i},\"cmd\":\"status\"}}\n").as_bytes())
                .unwrap_or_else(|e| panic!("{e}"));
            let mut reader = BufReader::new(s);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            assert!(line.contains("\"ok\":true"), "{line}");
            reader
        })
        .collect()
}

/// Regression: 32 idle connections refused every CLI command for 10 minutes. Now a new
/// connection takes the slot of the one idle longest, which is told why it was closed.
#[test]
fn idle_connections_never_lock_the_operator_out() {
    let d = TestDaemon::start(TREE);
    let mut held = idle_clients(&d, 32);
    for _ in 0..3 {
        let out = d.cli(&["status"]);
        assert_eq!(out.code, 0, "{}", out.stderr);
    }
    // The first (idle longest) was evicted with a reason.
    let mut line = String::new();
    let _ = held[0].read_line(&mut line);
    assert!(line.contains("\"code\":\"evicted\""), "{line}");
    drop(held);
}

/// Regression: a client sending "\n" every 100 s kept its slot past the idle timeout. Only a
/// complete request counts as activity now.
#[test]
fn blank_lines_do_not_keep_a_connection_alive() {
    let d = TestDaemon::start_with("idle_timeout = \"1s\"", TREE);
    let mut s = UnixStream::connect(&d.socket).unwrap_or_else(|e| panic!("{e}"));
    let started = std::time::Instant::now();
    let mut closed = false;
    for _ in 0..60 {
        if s.write_all(b"\n").is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut rest = String::new();
    let ended = closed || s.read_to_string(&mut rest).is_ok();
    assert!(ended, "still open after {:?}", started.elapsed());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "closed after {:?}",
        started.elapsed()
    );
}

/// Streams take at most half the slots; past that a subscription is refused and requests
/// still get through.
#[test]
fn streams_leave_room_for_requests() {
    let d = TestDaemon::start_with("max_connections = 2", TREE);
    let subscribe = b"{\"id\":1,\"cmd\":\"subscribe\",\"topic\":\"events\"}\n";
    let mut stream = UnixStream::connect(&d.socket).unwrap_or_else(|e| panic!("{e}"));
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    stream
        .write_all(subscribe)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut reader = BufReader::new(stream.try_clone().unwrap_or_else(|e| panic!("{e}")));
    let mut line = String::new();
    let _ = reader.read_line(&mut line);
    assert!(line.contains("subscribed"), "{line}");
    let second = d.raw(subscribe);
    assert_eq!(second[0]["error"]["code"], "too_many_streams", "{second:?}");
    for _ in 0..5 {
        assert_eq!(d.cli(&["status"]).code, 0, "requests still get in");
    }
}

/// Regression: duplicate keys in a request were resolved silently by the last one
/// (`{"cmd":"status","cmd":"shutdown"}` shut the daemon down).
#[test]
fn duplicate_keys_are_refused() {
    let d = TestDaemon::start(TREE);
    let replies = d.raw(b"{\"id\":1,\"cmd\":\"status\",\"cmd\":\"shutdown\"}\n");
    assert_eq!(replies[0]["error"]["code"], "bad_request", "{replies:?}");
    assert!(replies[0]["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("duplicate key `cmd`")));
    assert_eq!(d.cli(&["status"]).code, 0, "still running");
}

/// Every request has a deadline in the server: past it the client gets `timeout`, and the
/// work is not cut in half (a reload that adds 300 children still adds them all).
#[test]
fn a_request_past_its_deadline_times_out_and_the_work_goes_on() {
    let d = TestDaemon::start(TREE);
    let mut tree = String::from(TREE);
    for i in 0..300 {
        tree.push_str(&format!(
            "[[root.children]]\nname = \"extra{i}\"\nkind = \"heartbeat\"\nevery = \"1h\"\n"
        ));
    }
    d.write_config(&tree);
    let replies = d.raw(b"{\"id\":1,\"cmd\":\"reload\",\"deadline_ms\":1}\n");
    assert_eq!(replies[0]["error"]["code"], "timeout", "{replies:?}");
    assert!(
        replies[0]["error"]["message"].as_str().is_some_and(
            |m| m.contains("`reload` did not finish within 1ms; it may still complete")
        ),
        "{replies:?}"
    );
    d.wait_until("all 300 children", |d| d.nodes().len() == 302);
    // The reload finished and released its lock: the next one has nothing to do.
    let again = d.json(&["reload"], 0);
    assert_eq!(
        again["changes"].as_array().map(Vec::len),
        Some(0),
        "{again}"
    );
}

/// Regression (issue 21): a request giving a field its default value was refused as naming an
/// unknown field; an unknown field still is.
#[test]
fn explicit_defaults_are_accepted_over_the_socket() {
    let d = TestDaemon::start(ONE_CHILD);
    let answers = d.raw(
        b"{\"id\":1,\"cmd\":\"reload\",\"dry_run\":false}\n\
          {\"id\":2,\"cmd\":\"events\",\"since_s\":null}\n\
          {\"id\":3,\"cmd\":\"events\",\"bogus\":1}\n",
    );
    assert_eq!(answers.len(), 3, "{answers:?}");
    assert_eq!(answers[0]["ok"], true, "{}", answers[0]);
    assert_eq!(answers[1]["ok"], true, "{}", answers[1]);
    assert_eq!(answers[2]["ok"], false, "{}", answers[2]);
    assert!(
        answers[2]["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("bogus")),
        "{}",
        answers[2]
    );
}
