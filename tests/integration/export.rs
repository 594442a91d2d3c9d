//! The exports on the real daemon: `/metrics` and `/health` over real TCP on 127.0.0.1, the
//! listener's bounds, the config's refusal of a non-loopback address, and OTLP/HTTP received
//! by a collector stand-in. Every wait is bounded; the network is 127.0.0.1 only.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use prost::Message;

use crate::util::{run_cli, write_file, TestDaemon, ONE_CHILD};

#[path = "../../src/export/text_check.rs"]
mod text_check;

const TREE: &str = "[root]\n[[root.children]]\nname = \"a\"\nkind = \"heartbeat\"\n[[root.children]]\nname = \"b\"\nkind = \"heartbeat\"\n";
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// The address the daemon logged for its listener (`http = "127.0.0.1:0"`: the kernel picks
/// a free port).
pub(crate) fn http_address(d: &TestDaemon) -> SocketAddr {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let log = d.log_text();
        if let Some(at) = log.find("serving http://") {
            let rest = &log[at + "serving http://".len()..];
            if let Some(end) = rest.find("/metrics") {
                if let Ok(addr) = rest[..end].parse() {
                    return addr;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("no listener address in the log:\n{}", d.log_text());
}

/// One HTTP/1.1 request on a fresh connection; (status, headers, body).
pub(crate) fn request(addr: SocketAddr, method: &str, path: &str) -> (u16, String, String) {
    let mut s = match TcpStream::connect_timeout(&addr, IO_TIMEOUT) {
        Ok(s) => s,
        Err(e) => panic!("connect {addr}: {e}"),
    };
    let _ = s.set_read_timeout(Some(IO_TIMEOUT));
    let _ = s.set_write_timeout(Some(IO_TIMEOUT));
    let req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if let Err(e) = s.write_all(req.as_bytes()) {
        panic!("write: {e}");
    }
    let mut raw = Vec::new();
    if let Err(e) = s.read_to_end(&mut raw) {
        panic!("read {method} {path}: {e}");
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        panic!("no header end in {text:?}");
    };
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, head.to_ascii_lowercase(), body.to_string())
}

#[test]
fn metrics_are_served_in_the_prometheus_text_format() {
    let d = TestDaemon::start_with("http = \"127.0.0.1:0\"", TREE);
    let addr = http_address(&d);
    assert!(addr.ip().is_loopback());
    let (status, head, body) = request(addr, "GET", "/metrics");
    assert_eq!(status, 200, "{head}\n{body}");
    assert!(
        head.contains("content-type: text/plain; version=0.0.4; charset=utf-8"),
        "{head}"
    );
    let e = text_check::parse(&body).unwrap_or_else(|m| panic!("{m}\n{body}"));
    assert_eq!(e.types["metasystem_actor_starts_total"], "counter");
    let starts = e.find("metasystem_actor_starts_total");
    for child in ["root/a", "root/b"] {
        let s = starts
            .iter()
            .find(|s| s.label("subject") == Some(child))
            .unwrap_or_else(|| panic!("no starts of {child} in\n{body}"));
        assert!(s.value >= 1.0, "{body}");
    }
    assert_eq!(e.find("metasystem_up")[0].value, 1.0);
    assert_eq!(e.find("metasystem_store_dropped_rows_total")[0].value, 0.0);
    // HEAD: the headers only.
    let (status, _, body) = request(addr, "HEAD", "/metrics");
    assert_eq!((status, body.as_str()), (200, ""));
}

#[test]
fn health_is_pass_for_a_healthy_daemon_and_other_requests_are_refused() {
    let mut d = TestDaemon::start_with("http = \"127.0.0.1:0\"", ONE_CHILD);
    let addr = http_address(&d);
    let (status, head, body) = request(addr, "GET", "/health");
    assert_eq!(status, 200, "{body}");
    assert!(
        head.contains("content-type: application/health+json"),
        "{head}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(v["status"], "pass", "{body}");
    assert_eq!(v["version"], metasystem::VERSION);
    assert_eq!(v["checks"]["tree:nodes"][0]["running"], 2, "{body}");

    let (status, _, _) = request(addr, "GET", "/nope");
    assert_eq!(status, 404);
    let (status, head, _) = request(addr, "POST", "/metrics");
    assert_eq!(status, 405);
    assert!(head.contains("allow: get, head"), "{head}");
    let (status, _, _) = request(addr, "DELETE", "/health");
    assert_eq!(status, 405);

    // The listener stops with the daemon.
    assert_eq!(d.terminate(), 0);
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err());
}

#[test]
fn a_non_loopback_address_is_refused_by_check() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let path = dir.path().join("remote.toml");
    write_file(
        &path,
        format!("[daemon]\nstate_dir = \"/x\"\nhttp = \"0.0.0.0:9464\"\n{ONE_CHILD}"),
    );
    let shown = path.display().to_string();
    let out = run_cli(&["check", &shown], &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "{shown}:3:8: `http` in [daemon] is 0.0.0.0:9464, which is not a loopback address"
        )),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("set `http_allow_remote = true` in [daemon]"),
        "{}",
        out.stderr
    );
    write_file(
        &path,
        format!(
            "[daemon]\nstate_dir = \"/x\"\nhttp = \"0.0.0.0:9464\"\nhttp_allow_remote = true\n{ONE_CHILD}"
        ),
    );
    let out = run_cli(&["check", &shown], &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[test]
fn a_taken_address_stops_the_start() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = taken.local_addr().unwrap_or_else(|e| panic!("addr: {e}"));
    let mut d = TestDaemon::spawn(&format!("http = \"{addr}\""), ONE_CHILD);
    assert_eq!(d.wait_exit(), 75, "{}", d.log_text());
    let log = d.log_text();
    assert!(
        log.contains(&format!("cannot listen for HTTP on {addr}")),
        "{log}"
    );
    assert!(!d.socket.exists(), "the control socket is removed");
}

#[test]
fn a_silent_client_does_not_hold_up_others_and_is_closed() {
    let d = TestDaemon::start_with("http = \"127.0.0.1:0\"", ONE_CHILD);
    let addr = http_address(&d);
    let mut silent =
        TcpStream::connect_timeout(&addr, IO_TIMEOUT).unwrap_or_else(|e| panic!("connect: {e}"));
    // Half a request line, then nothing.
    let _ = silent.write_all(b"GET /metr");
    let started = Instant::now();
    for _ in 0..5 {
        let asked = Instant::now();
        let (status, _, _) = request(addr, "GET", "/metrics");
        assert_eq!(status, 200);
        assert!(
            asked.elapsed() < Duration::from_secs(2),
            "{:?}",
            asked.elapsed()
        );
    }
    // The header timeout (5s) closes the silent one.
    let _ = silent.set_read_timeout(Some(Duration::from_secs(15)));
    let mut buf = [0u8; 256];
    let read = silent.read(&mut buf);
    let waited = started.elapsed();
    // Closed (EOF), or answered with an error status then closed; a timeout is a failure.
    if let Err(e) = read {
        panic!("the silent client was not closed: {e} after {waited:?}");
    }
    assert!(waited < Duration::from_secs(14), "{waited:?}");
    assert!(
        waited >= Duration::from_secs(3),
        "closed too soon: {waited:?}"
    );
}

/// A collector stand-in: accepts on 127.0.0.1, reads each POST (Content-Length bodies) and
/// sends (path, body) on the channel; answers 200. Ends after `limit`.
fn collector(limit: Duration) -> (SocketAddr, mpsc::Receiver<(String, Vec<u8>)>) {
    let std_listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = std_listener
        .local_addr()
        .unwrap_or_else(|e| panic!("addr: {e}"));
    let _ = std_listener.set_nonblocking(true);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => panic!("runtime: {e}"),
        };
        rt.block_on(async move {
            let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) else {
                return;
            };
            let _ = tokio::time::timeout(limit, async {
                for _ in 0..100 {
                    let Ok((stream, _)) = listener.accept().await else {
                        return;
                    };
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        let _ = tokio::time::timeout(IO_TIMEOUT, serve_posts(stream, tx)).await;
                    });
                }
            })
            .await;
        });
    });
    (addr, rx)
}

async fn serve_posts(mut stream: tokio::net::TcpStream, tx: mpsc::Sender<(String, Vec<u8>)>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = Vec::new();
    // Keep-alive: up to 20 requests on one connection.
    for _ in 0..20 {
        let head_end = loop {
            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            if buf.len() > 64 * 1024 {
                return;
            }
            let mut chunk = [0u8; 8192];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let path = head.split(' ').nth(1).unwrap_or("").to_string();
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())
                    .flatten()
            })
            .unwrap_or(0);
        if length > 16 * 1024 * 1024 {
            return;
        }
        while buf.len() < head_end + length {
            let mut chunk = [0u8; 8192];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body = buf[head_end..head_end + length].to_vec();
        buf.drain(..head_end + length);
        let _ = tx.send((path, body));
        let answer =
            b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n";
        if stream.write_all(answer).await.is_err() {
            return;
        }
    }
}

fn string_attr(
    attrs: &[opentelemetry_proto::tonic::common::v1::KeyValue],
    key: &str,
) -> Option<String> {
    attrs.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            AnyValue::StringValue(s) => Some(s.clone()),
            _ => None,
        }
    })
}

/// The starts of `subject` in an export (all outcomes), if it holds them.
fn starts_of(request: &ExportMetricsServiceRequest, subject: &str) -> Option<i64> {
    use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value;
    let mut found = None;
    for rm in &request.resource_metrics {
        let Some(resource) = rm.resource.as_ref() else {
            continue;
        };
        if string_attr(&resource.attributes, "service.name").as_deref() != Some("metasystem") {
            continue;
        }
        let metrics = rm.scope_metrics.iter().flat_map(|sm| sm.metrics.iter());
        for m in metrics.filter(|m| m.name == "metasystem.actor_starts") {
            let Some(Data::Sum(sum)) = &m.data else {
                continue;
            };
            assert!(sum.is_monotonic, "starts are a counter");
            for p in &sum.data_points {
                if string_attr(&p.attributes, "subject").as_deref() == Some(subject) {
                    let n = match p.value {
                        Some(Value::AsInt(n)) => n,
                        Some(Value::AsDouble(f)) => f as i64,
                        None => 0,
                    };
                    *found.get_or_insert(0) += n;
                }
            }
        }
    }
    found
}

#[test]
fn metrics_are_exported_over_otlp_http() {
    let (addr, received) = collector(Duration::from_secs(60));
    let telemetry =
        format!("[telemetry]\notlp_endpoint = \"http://{addr}\"\notlp_interval = \"1s\"\n{TREE}");
    let mut d = TestDaemon::start(&telemetry);
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut seen = Vec::new();
    let found = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break None;
        }
        let Ok((path, body)) = received.recv_timeout(left) else {
            break None;
        };
        assert_eq!(path, "/v1/metrics");
        let request = ExportMetricsServiceRequest::decode(body.as_slice())
            .unwrap_or_else(|e| panic!("not an ExportMetricsServiceRequest: {e}"));
        let resource = request
            .resource_metrics
            .first()
            .and_then(|r| r.resource.as_ref());
        if let Some(r) = resource {
            assert_eq!(
                string_attr(&r.attributes, "service.version").as_deref(),
                Some(env!("CARGO_PKG_VERSION"))
            );
            assert!(string_attr(&r.attributes, "host.name").is_some());
        }
        if let Some(n) = starts_of(&request, "root/a") {
            break Some(n);
        }
        seen.push(format!("{request:?}"));
    };
    let Some(starts) = found else {
        panic!(
            "no export with actor starts within 15s; received {:?}\nlog:\n{}",
            seen,
            d.log_text()
        );
    };
    assert!(starts >= 1, "{starts}");
    // The daemon stops cleanly with the export on, and exports once more on the way out.
    while received.try_recv().is_ok() {}
    assert_eq!(d.terminate(), 0, "{}", d.log_text());
    let last = received.recv_timeout(Duration::from_secs(5));
    assert!(last.is_ok(), "no final export at shutdown");
}

/// A heal action's own breaker (`heal:PROBE:ACTION:TARGET`) is shown by `breakers`, `status`
/// and `/health` like the shared ones, and an operator can reset it.
#[test]
fn a_heal_actions_breaker_is_shown_by_breakers_status_and_health() {
    const OP: &str = "heal:root/x:command:/bin/false";
    let tree = r#"
[root]
[[root.children]]
name = "x"
kind = "probe"
check = "command"
command = "/bin/false"
every = "100ms"
failures_before_warning = 1
failures_before_critical = 1
heal = [{ action = "command", command = "/bin/false", cooldown = "0s", max_per_hour = 1000 }]
"#;
    let d = TestDaemon::start_with("http = \"127.0.0.1:0\"", tree);
    let addr = http_address(&d);
    let state_of = |v: &serde_json::Value| {
        v["breakers"]
            .as_array()
            .and_then(|b| b.iter().find(|b| b["name"] == OP))
            .map(|b| b["state"].as_str().unwrap_or_default().to_string())
    };
    // Listed from the start (closed); three failed runs open it.
    let deadline = Instant::now() + Duration::from_secs(20);
    let listed = loop {
        let out = d.cli(&["breakers", "--json"]);
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_default();
        if state_of(&v).as_deref() == Some("open") {
            assert_eq!(out.code, 1, "something is not closed: {}", out.stdout);
            break v;
        }
        assert!(state_of(&v).is_some(), "{}", out.stdout);
        assert!(Instant::now() < deadline, "never opened: {}", out.stdout);
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(state_of(&listed).as_deref(), Some("open"));
    let status = d.json(&["status"], 0);
    assert_eq!(
        status["breakers_open"],
        serde_json::json!([format!("{OP} (open)")]),
        "{status:#}"
    );
    let (code, _, body) = request(addr, "GET", "/health");
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    let check = &v["checks"][format!("breaker:{OP}")][0];
    assert_eq!(check["observedValue"], "open", "{body}");
    assert_ne!(v["status"], "pass", "{body}");
    // The operator resets it.
    let reset = d.json(&["breakers", "reset", OP], 0);
    assert_eq!(reset["name"], OP);
    assert_eq!(reset["state"], "closed");
}

/// Regression (issue 21): the registries of probes and sync targets withdrew an entry in
/// `post_stop`, which ractor skips on a kill: a killed actor that is not restarted (a
/// temporary child) stayed listed by `status`, `sync status` and `/health`. Entries are now
/// held by the actor's state.
#[test]
fn a_killed_child_that_is_not_restarted_is_not_listed() {
    let target = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let tree = format!(
        r#"
[root]
intensity = 10
[[root.children]]
name = "p"
kind = "probe"
restart = "temporary"
check = "command"
command = "/bin/false"
every = "100ms"
failures_before_warning = 1
failures_before_critical = 1
[[root.children]]
name = "t"
kind = "sync_target"
restart = "temporary"
target = "{}"
paths = ["shared"]
every = "1h"
[[root.children]]
name = "beat"
kind = "heartbeat"
"#,
        target.path().display()
    );
    let d = TestDaemon::start_with("http = \"127.0.0.1:0\"", &tree);
    let addr = http_address(&d);
    d.wait_until("the probe failing", |d| {
        d.json(&["status"], 0)["probes_failing"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    });
    let listed = d.json(&["sync", "status"], 0);
    assert_eq!(
        listed["targets"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
    for path in ["root/p", "root/t"] {
        assert_eq!(d.cli(&["kill", path]).code, 0);
    }
    d.wait_until("both gone from the tree", |d| {
        d.node("root/p").is_none() && d.node("root/t").is_none()
    });
    let status = d.json(&["status"], 0);
    assert!(
        status["probes_failing"]
            .as_array()
            .is_none_or(|a| a.is_empty()),
        "{status:#}"
    );
    let sync = d.json(&["sync", "status"], 0);
    assert!(
        sync["targets"].as_array().is_none_or(|a| a.is_empty()),
        "{sync:#}"
    );
    let (_, _, body) = request(addr, "GET", "/health");
    assert!(!body.contains("probe:root/p"), "{body}");
}
