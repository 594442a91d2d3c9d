//! The real Prometheus scraping the real daemon: Debian's `prometheus` started on a temp dir
//! with `deploy/prometheus.yml` pointed at our listener (scrape every second), then asked
//! over its HTTP API whether the target is up and what it stored; `promtool check config` on
//! the shipped file and `promtool check metrics` on a scrape of ours. Everything on
//! 127.0.0.1; every wait bounded. Skipped (failing under CI) without prometheus/promtool.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::export::{http_address, request};
use crate::util::{have_tool, write_file, TestDaemon};

const TREE: &str = "[root]\n[[root.children]]\nname = \"a\"\nkind = \"heartbeat\"\n[[root.children]]\nname = \"b\"\nkind = \"heartbeat\"\n";
const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/prometheus.yml");
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Prometheus starting (it replays an empty WAL) and its first scrapes; generous for a
/// loaded 2-core CI machine.
const PROMETHEUS_TIMEOUT: Duration = Duration::from_secs(60);

/// The Prometheus process, killed and reaped however the test ends.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    log: std::path::PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Starts `prometheus` on `config` with its storage in `dir`, on a free loopback port;
    /// returns once `/-/ready` answers 200.
    fn start(dir: &Path, config: &Path) -> Prometheus {
        // A free port: bound by the kernel, released, handed over (a small race with other
        // tests binding port 0, which the kernel does not hand out again at once).
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap_or_else(|e| panic!("free port: {e}"));
        let log = dir.join("prometheus.log");
        let stderr = std::fs::File::create(&log).unwrap_or_else(|e| panic!("log: {e}"));
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start prometheus: {e}"));
        let mut p = Prometheus { child, addr, log };
        let deadline = Instant::now() + PROMETHEUS_TIMEOUT;
        loop {
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!("prometheus exited with {status}:\n{}", p.log_text());
            }
            if get(addr, "/-/ready").is_some_and(|(status, _)| status == 200) {
                return p;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready at {addr}:\n{}",
                p.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// An instant query's result vector (`/api/v1/query`).
    fn query(&self, expr: &str) -> Vec<Value> {
        let path = format!("/api/v1/query?query={}", percent_encode(expr));
        let Some((status, body)) = get(self.addr, &path) else {
            panic!("no answer to {path}:\n{}", self.log_text());
        };
        assert_eq!(status, 200, "{path}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        assert_eq!(v["status"], "success", "{body}");
        assert_eq!(v["data"]["resultType"], "vector", "{body}");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// Queries `expr` until `done` accepts its result (bounded); that result.
    fn query_until(&self, expr: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + PROMETHEUS_TIMEOUT;
        loop {
            let result = self.query(expr);
            if done(&result) {
                return result;
            }
            if Instant::now() >= deadline {
                let targets = get(self.addr, "/api/v1/targets").map(|(_, b)| b);
                panic!(
                    "{expr}: still {result:?} after {PROMETHEUS_TIMEOUT:?}\ntargets: {targets:?}\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// GET over HTTP/1.0 (so no chunked body); (status, body), or None when nothing answers.
fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).ok()?;
    let _ = s.set_read_timeout(Some(IO_TIMEOUT));
    let _ = s.set_write_timeout(Some(IO_TIMEOUT));
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// A query string value: everything but unreserved characters percent-encoded.
fn percent_encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The shipped config with its target replaced by `target` and a 1 s scrape interval; fails
/// if the file no longer has what is replaced (the test would silently scrape nothing).
fn config_for(target: SocketAddr) -> String {
    let shipped = std::fs::read_to_string(SHIPPED).unwrap_or_else(|e| panic!("{SHIPPED}: {e}"));
    let mut text = shipped.clone();
    for (from, to) in [
        (
            "targets: [\"127.0.0.1:9464\"]",
            format!("targets: [\"{target}\"]"),
        ),
        ("scrape_interval: 15s", "scrape_interval: 1s".to_string()),
        ("scrape_timeout: 5s", "scrape_timeout: 1s".to_string()),
    ] {
        assert_eq!(text.matches(from).count(), 1, "{from:?} once in {SHIPPED}");
        text = text.replace(from, &to);
    }
    text
}

fn label<'a>(series: &'a Value, name: &str) -> Option<&'a str> {
    series["metric"][name].as_str()
}

fn value(series: &Value) -> f64 {
    series["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no value in {series}"))
}

#[test]
fn prometheus_scrapes_the_daemon_with_the_shipped_config() {
    if !have_tool("prometheus", "prometheus") {
        return;
    }
    let d = TestDaemon::start_with("http = \"127.0.0.1:0\"", TREE);
    let target = http_address(&d);
    // A restart of root/a, so a per-actor counter has a value other than the starts.
    let out = d.cli(&["kill", "root/a"]);
    assert_eq!(out.code, 0, "{}", out.stderr);

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let config = dir.path().join("prometheus.yml");
    write_file(&config, config_for(target));
    let p = Prometheus::start(dir.path(), &config);

    let up = p.query_until("up{job=\"metasystem\"}", |r| {
        r.len() == 1 && value(&r[0]) == 1.0
    });
    assert_eq!(label(&up[0], "instance"), Some(target.to_string().as_str()));

    // One of our series, as Prometheus stored it: its labels (ours and the target's) and value.
    let restarts = p.query_until(
        "metasystem_actor_restarts_total{job=\"metasystem\",subject=\"root/a\"}",
        |r| r.len() == 1 && value(&r[0]) >= 1.0,
    );
    let s = &restarts[0];
    assert_eq!(
        label(s, "__name__"),
        Some("metasystem_actor_restarts_total")
    );
    assert_eq!(label(s, "subject"), Some("root/a"));
    assert_eq!(label(s, "instance"), Some(target.to_string().as_str()));
    assert_eq!(value(s), 1.0, "one kill, one restart: {s}");
    // The crash is an exit that failed; the ordered starts of root/b ok.
    let exits = p.query(
        "metasystem_actor_exits_total{job=\"metasystem\",subject=\"root/a\",outcome=\"failed\"}",
    );
    assert_eq!(exits.len(), 1, "{exits:?}");
    assert_eq!(value(&exits[0]), 1.0);
    let starts = p.query("metasystem_actor_starts_total{subject=\"root/b\",outcome=\"ok\"}");
    assert_eq!(starts.len(), 1, "{starts:?}");
    assert!(value(&starts[0]) >= 1.0);

    // The build as labels: the package version and the commit.
    let info = p.query("metasystem_build_info");
    assert_eq!(info.len(), 1, "{info:?}");
    assert_eq!(label(&info[0], "version"), Some(env!("CARGO_PKG_VERSION")));
    let revision = label(&info[0], "revision").unwrap_or_default();
    assert!(
        metasystem::BUILD.starts_with(revision) && !revision.is_empty(),
        "{revision:?} vs {}",
        metasystem::BUILD
    );
    // Every family of ours made it: a sample Prometheus cannot parse fails the whole scrape.
    let scraped = p.query("scrape_samples_scraped{job=\"metasystem\"}");
    assert_eq!(scraped.len(), 1, "{scraped:?}");
    assert!(value(&scraped[0]) >= 10.0, "{scraped:?}");
}

#[test]
fn promtool_accepts_the_shipped_config_and_our_exposition() {
    if !have_tool("promtool", "prometheus") {
        return;
    }
    let out = Command::new("promtool")
        .args(["check", "config", SHIPPED])
        .output()
        .unwrap_or_else(|e| panic!("promtool: {e}"));
    assert!(
        out.status.success(),
        "promtool check config {SHIPPED}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // A scrape with as many families as a heartbeat tree gives: starts, exits, restarts and
    // their delays, after a kill.
    let d = TestDaemon::start_with("http = \"127.0.0.1:0\"", TREE);
    let addr = http_address(&d);
    assert_eq!(d.cli(&["kill", "root/a"]).code, 0);
    d.wait_until("root/a restarted", |_| {
        request(addr, "GET", "/metrics")
            .2
            .contains("metasystem_actor_restart_delay_seconds_count{subject=\"root/a\"} 1")
    });
    let (status, _, body) = request(addr, "GET", "/metrics");
    assert_eq!(status, 200);
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("promtool: {e}"));
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(body.as_bytes())
            .unwrap_or_else(|e| panic!("promtool stdin: {e}"));
    }
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("promtool: {e}"));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics ({}):\n{said}\non:\n{body}",
        out.status
    );
}
