//! The control socket under stress and abuse: permissions, other users, malformed input,
//! connection caps, a second daemon, stale sockets.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use crate::util::{TestDaemon, BIN};

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
        eprintln!("skipped: needs root to connect as another uid");
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

#[test]
fn connections_are_capped() {
    let d = TestDaemon::start_with("max_connections = 2", TREE);
    let hold: Vec<UnixStream> = (0..2)
        .filter_map(|_| UnixStream::connect(&d.socket).ok())
        .collect();
    assert_eq!(hold.len(), 2);
    // Make sure both are accepted and counted: each answers a request.
    for mut s in &hold {
        let _ = s.write_all(b"{\"id\":1,\"cmd\":\"status\"}\n");
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        let mut buf = [0u8; 1];
        assert_eq!(s.read(&mut buf).ok(), Some(1));
    }
    let refused = d.cli(&["status"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("too many control connections (at most 2)"),
        "{}",
        refused.stderr
    );
    drop(hold);
    d.wait_until("a free connection slot", |d| d.cli(&["status"]).code == 0);
}

#[test]
fn a_second_daemon_on_the_same_socket_is_refused() {
    let d = TestDaemon::start(TREE);
    // Another state dir, the same socket.
    let other = d.dir.path().join("other.toml");
    std::fs::write(
        &other,
        format!(
            "[daemon]\nstate_dir = \"{}\"\nsocket = \"{}\"\n",
            d.dir.path().join("other-state").display(),
            d.socket.display()
        ),
    )
    .unwrap_or_default();
    let out = Command::new(BIN)
        .args(["run", "--config", &other.display().to_string()])
        .env("RUST_LOG", "info")
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) => panic!("{e}"),
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
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

    std::fs::write(&d.socket, "not a socket").unwrap_or_default();
    d.launch(&[]);
    assert_eq!(d.wait_exit(), 2);
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

/// A client that sends requests and never reads the answers loses its connection once its
/// answers stop flowing; it does not hold a slot forever.
#[test]
fn a_client_that_never_reads_is_dropped() {
    let d = TestDaemon::start_with("max_connections = 1", TREE);
    let mut hog = match UnixStream::connect(&d.socket) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let requests: String = (0..20_000)
        .map(|i| format!("{{\"id\":{i},\"cmd\":\"tree\"}}\n"))
        .collect();
    let _ = hog.set_write_timeout(Some(Duration::from_secs(30)));
    let _ = hog.write_all(requests.as_bytes());
    // The daemon's answers fill the socket buffers and it gives up on this client (10 s).
    d.wait_until("the slot to be freed", |d| d.cli(&["status"]).code == 0);
    drop(hog);
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
        std::fs::create_dir(path).unwrap_or_default();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap_or_default();
    }
    let config = dir.path().join("s.toml");
    let write = |socket: &str| {
        std::fs::write(
            &config,
            format!(
                "[daemon]\nstate_dir = \"{}\"\nsocket = \"{socket}\"\n",
                state.display()
            ),
        )
        .unwrap_or_default();
    };
    write(&shared.join("ms.sock").display().to_string());
    let out = crate::util::run_cli(&["run", "--config", &config.display().to_string()], &[]);
    assert_eq!(out.code, 2, "{}", out.stderr);
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
    std::fs::write(
        &config,
        format!("[daemon]\nstate_dir = \"{}\"\n", state.display()),
    )
    .unwrap_or_default();
    let mut child = match Command::new(BIN)
        .args(["run", "--config", &config.display().to_string()])
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        Ok(c) => c,
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
    let _ = child.wait();
}

/// One daemon per state dir, even with different sockets.
#[test]
fn a_second_daemon_on_the_same_state_dir_is_refused() {
    let d = TestDaemon::start(TREE);
    let other = d.dir.path().join("other.toml");
    std::fs::write(
        &other,
        format!(
            "[daemon]\nstate_dir = \"{}\"\nsocket = \"{}\"\n",
            d.state.display(),
            d.dir.path().join("other-sock/ms.sock").display()
        ),
    )
    .unwrap_or_default();
    let out = crate::util::run_cli(&["run", "--config", &other.display().to_string()], &[]);
    assert_eq!(out.code, 2, "{}", out.stderr);
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
