//! The `alertmanager` channel against the real Alertmanager (Debian's
//! `prometheus-alertmanager`): a failing command probe's alert reaches a webhook sink through
//! Alertmanager with our labels, is kept alive by the resends, a silence made through
//! Alertmanager's API suppresses a matching alert, and the resolution arrives; with two
//! Alertmanagers, both get the alert, also the one that was down when it fired. A member that
//! refused a firing and took a resend is sent its end (a loopback sink stands for a member
//! that answers 400: the real one cannot be made to).
//!
//! Skipped with a message where the binary is missing; under `CI=true` that fails instead
//! (`.ci/run` installs it: `apt-get install -y prometheus-alertmanager`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use metasystem_actors::sinks::{HttpSink, Reply, Request};
use serde_json::{json, Value};

use crate::util::{write_file, TestDaemon};

const BINARY: &str = "/usr/bin/prometheus-alertmanager";
const WAIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(100);
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether the Alertmanager binary is here; if not, says the test is skipped, or fails it
/// under CI.
fn have_alertmanager() -> bool {
    Path::new(BINARY).exists() || crate::util::have_tool(BINARY, "prometheus-alertmanager")
}

fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("runtime: {e}"),
    }
}

/// A free loopback port (bound, then let go: the Alertmanager binds it next).
fn free_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr")
}

/// One HTTP/1.0 request (no chunked replies, the connection closes): (status, body).
fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> (u16, String) {
    let mut s = match TcpStream::connect_timeout(&addr, IO_TIMEOUT) {
        Ok(s) => s,
        Err(e) => return (0, format!("connect {addr}: {e}")),
    };
    let _ = s.set_read_timeout(Some(IO_TIMEOUT));
    let _ = s.set_write_timeout(Some(IO_TIMEOUT));
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    if let Err(e) = s.write_all(req.as_bytes()) {
        return (0, format!("write: {e}"));
    }
    let mut raw = Vec::new();
    if let Err(e) = s.read_to_end(&mut raw) {
        return (0, format!("read: {e}"));
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return (0, text);
    };
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, body.to_string())
}

/// A running Alertmanager, killed on drop.
struct Alertmanager {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Alertmanager {
    /// Starts one on `addr` (loopback), gossip off, its storage in `dir`, sending every
    /// alert group (one per alert) to `sink` with its resolution, soon.
    fn start(dir: &Path, addr: SocketAddr, sink: &HttpSink) -> Alertmanager {
        std::fs::create_dir_all(dir).expect("am dir");
        let config = dir.join("alertmanager.yml");
        write_file(
            &config,
            format!(
                "route:\n  receiver: sink\n  group_by: ['...']\n  group_wait: 100ms\n  \
                 group_interval: 500ms\n  repeat_interval: 1h\nreceivers:\n  - name: sink\n    \
                 webhook_configs:\n      - url: {}\n        send_resolved: true\n",
                sink.url("/am")
            ),
        );
        let log = dir.join("alertmanager.log");
        let out = std::fs::File::create(&log).expect("am log");
        let err = out.try_clone().expect("am log");
        let child = Command::new(BINARY)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--cluster.listen-address=")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start prometheus-alertmanager");
        let am = Alertmanager { child, addr, log };
        let deadline = Instant::now() + WAIT;
        while http(addr, "GET", "/-/ready", None).0 != 200 {
            assert!(
                Instant::now() < deadline,
                "alertmanager on {addr} never got ready:\n{}",
                am.log_text()
            );
            std::thread::sleep(POLL);
        }
        am
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The alerts it holds (`/api/v2/alerts`).
    fn alerts(&self) -> Vec<Value> {
        let (status, body) = http(self.addr, "GET", "/api/v2/alerts", None);
        if status != 200 {
            return Vec::new();
        }
        serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
    }

    /// Waits (bounded) for an alert whose label `alertkey` is `key` and that `check` accepts.
    fn wait_alert(&self, what: &str, key: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let found = self
                .alerts()
                .into_iter()
                .find(|a| a["labels"]["alertkey"] == key && check(a));
            if let Some(a) = found {
                return a;
            }
            assert!(
                Instant::now() < deadline,
                "alertmanager never showed {what}: {:#}\n{}",
                json!(self.alerts()),
                self.log_text()
            );
            std::thread::sleep(POLL);
        }
    }

    /// Creates a silence for an hour; its id.
    fn silence(&self, label: &str, value: &str) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs() as i64;
        let rfc = |secs: i64| metasystem_actors::alerts::channel::text::rfc3339(secs * 1000);
        let body = json!({
            "matchers": [{"name": label, "value": value, "isRegex": false, "isEqual": true}],
            "startsAt": rfc(now - 60),
            "endsAt": rfc(now + 3600),
            "createdBy": "metasystem test",
            "comment": "silenced by the test",
        });
        let (status, answer) = http(self.addr, "POST", "/api/v2/silences", Some(&body));
        assert_eq!(status, 200, "silence: {answer}");
        let v: Value = serde_json::from_str(&answer).expect("silence answer");
        v["silenceID"].as_str().expect("silenceID").to_string()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The daemon's tree: an alerts child with one Alertmanager channel (`urls`, resent every
/// second), and a command probe per flag file (critical while the file is missing: exit 2).
fn tree(urls: &[String], probes: &[(&str, &Path)]) -> String {
    let urls: Vec<String> = urls.iter().map(|u| format!("\"{u}\"")).collect();
    let mut t = format!(
        r#"
[root]
intensity = 10

[[root.children]]
name = "alerts"
kind = "alerts"
group_wait = "100ms"
retry = {{ initial = "50ms", max = "500ms" }}
timeout = "2s"
channels = [{{ name = "am", type = "alertmanager", urls = [{}], resend_interval = "1s" }}]
"#,
        urls.join(", ")
    );
    for (name, flag) in probes {
        t.push_str(&format!(
            r#"
[[root.children]]
name = "{name}"
kind = "probe"
check = "command"
command = "/bin/sh"
args = ["-c", "test -f '{}' || exit 2"]
every = "200ms"
failures_before_warning = 1
failures_before_critical = 1
"#,
            flag.display()
        ));
    }
    t
}

/// The alerts of Alertmanager's webhook notifications received so far: (source, status).
fn notified(requests: &[Request]) -> Vec<(String, String)> {
    requests
        .iter()
        .flat_map(|r| {
            r.json()["alerts"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|a| {
                    (
                        a["labels"]["source"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                        a["status"].as_str().unwrap_or_default().to_string(),
                    )
                })
        })
        .collect()
}

/// Waits (bounded) until the sink got a notification of the alert `key` at `status` (a probe
/// that fails goes through warn to fail: each its own key); that alert.
fn wait_notified(sink: &HttpSink, key: &str, status: &str, log: &dyn Fn() -> String) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        for r in sink.requests() {
            for a in r.json()["alerts"].as_array().cloned().unwrap_or_default() {
                if a["labels"]["alertkey"] == key && a["status"] == status {
                    return a;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "the sink never got {key} {status}: {:?}\n{}",
            notified(&sink.requests()),
            log()
        );
        std::thread::sleep(POLL);
    }
}

#[test]
fn alerts_reach_alertmanager_with_our_labels_obey_its_silences_and_resolve() {
    if !have_alertmanager() {
        return;
    }
    let rt = runtime();
    let sink = rt.block_on(HttpSink::start());
    let dir = tempfile::tempdir().expect("tempdir");
    let am = Alertmanager::start(&dir.path().join("am"), free_addr(), &sink);
    let flag_a = dir.path().join("a.ok");
    let flag_b = dir.path().join("b.ok");
    write_file(&flag_b, "ok");
    let d = TestDaemon::start(&tree(&[am.url()], &[("a", &flag_a), ("b", &flag_b)]));
    let log = || {
        format!(
            "daemon:\n{}\nalertmanager:\n{}",
            d.log_text(),
            am.log_text()
        )
    };

    // (1) a fails: its alert reaches the sink through Alertmanager, with our labels.
    let got = wait_notified(&sink, "probe:root/a:fail", "firing", &log);
    let labels = &got["labels"];
    assert_eq!(
        labels["alertname"], "probe fail: root/a (command)",
        "{got:#}"
    );
    assert_eq!(labels["severity"], "critical");
    assert_eq!(labels["alertkey"], "probe:root/a:fail");
    assert_eq!(labels["probe"], "root/a");
    assert_eq!(labels["check"], "command");
    assert!(
        labels["host"].as_str().is_some_and(|h| !h.is_empty()),
        "{got:#}"
    );
    assert_eq!(
        got["annotations"]["summary"],
        "probe fail: root/a (command)"
    );
    // Alertmanager holds it active, valid for four resend intervals; the resends move its
    // end forward (a live alert never times out).
    let first = am.wait_alert("a active", "probe:root/a:fail", |a| {
        a["status"]["state"] == "active"
    });
    let ends = first["endsAt"].as_str().unwrap_or_default().to_string();
    let starts = first["startsAt"].as_str().unwrap_or_default().to_string();
    am.wait_alert("a's end moved by a resend", "probe:root/a:fail", |a| {
        a["endsAt"].as_str().is_some_and(|e| e > ends.as_str())
    });
    let again = am.wait_alert("a", "probe:root/a:fail", |_| true);
    assert_eq!(
        again["startsAt"],
        starts.as_str(),
        "the episode's start stays"
    );

    // (2) A silence made through Alertmanager's API holds a new alert matching it.
    let silence = am.silence("source", "root/b");
    std::fs::remove_file(&flag_b).expect("remove b's flag");
    let held = am.wait_alert("b suppressed by the silence", "probe:root/b:fail", |a| {
        a["status"]["state"] == "suppressed"
    });
    assert_eq!(held["status"]["silencedBy"], json!([silence]), "{held:#}");
    assert_eq!(held["labels"]["alertkey"], "probe:root/b:fail");

    // (3) a recovers: the resolution reaches the sink (and b, silenced, never did).
    write_file(&flag_a, "ok");
    let resolved = wait_notified(&sink, "probe:root/a:fail", "resolved", &log);
    assert_eq!(resolved["startsAt"], got["startsAt"], "{resolved:#}");
    let sent = notified(&sink.requests());
    assert!(
        !sent.iter().any(|(source, _)| source == "root/b"),
        "a silenced alert was notified: {sent:?}"
    );
    // Alertmanager lists only alerts that have not ended: a leaves its list.
    let deadline = Instant::now() + WAIT;
    while am
        .alerts()
        .iter()
        .any(|a| a["labels"]["source"] == "root/a")
    {
        assert!(Instant::now() < deadline, "a never ended in alertmanager");
        std::thread::sleep(POLL);
    }
}

#[test]
fn an_ha_pair_both_get_the_alert_also_the_one_down_when_it_fired() {
    if !have_alertmanager() {
        return;
    }
    let rt = runtime();
    let sink1 = rt.block_on(HttpSink::start());
    let sink2 = rt.block_on(HttpSink::start());
    let dir = tempfile::tempdir().expect("tempdir");
    let am1 = Alertmanager::start(&dir.path().join("am1"), free_addr(), &sink1);
    // The second is down when the alert fires: its port is free, nothing listens.
    let addr2 = free_addr();
    let url2 = format!("http://{addr2}");
    let flag = dir.path().join("x.ok");
    let d = TestDaemon::start(&tree(&[am1.url(), url2.clone()], &[("x", &flag)]));
    let log = || format!("daemon:\n{}\nam1:\n{}", d.log_text(), am1.log_text());

    // The first takes it: delivered, though the second refused the connection (its answer
    // is recorded beside the first's).
    wait_notified(&sink1, "probe:root/x:fail", "firing", &log);
    let deadline = Instant::now() + WAIT;
    let row = loop {
        let v = d.json(&["alerts"], 0);
        let row = v["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .find(|r| r["status"] == "firing" && r["state"] == "sent");
        if let Some(row) = row {
            break row;
        }
        assert!(Instant::now() < deadline, "no sent row: {v:#}");
        std::thread::sleep(POLL);
    };
    let recipients = row["recipients"].as_array().cloned().unwrap_or_default();
    let state_of = |url: &str| {
        recipients
            .iter()
            .find(|r| r["recipient"] == url)
            .map(|r| r["state"].as_str().unwrap_or_default().to_string())
    };
    assert_eq!(state_of(&am1.url()).as_deref(), Some("sent"), "{row:#}");
    assert_eq!(state_of(&url2).as_deref(), Some("pending"), "{row:#}");
    // The second comes up and hears it from the resends.
    let am2 = Alertmanager::start(&dir.path().join("am2"), addr2, &sink2);
    let log2 = || format!("daemon:\n{}\nam2:\n{}", d.log_text(), am2.log_text());
    let firing = wait_notified(&sink2, "probe:root/x:fail", "firing", &log2);
    assert_eq!(firing["labels"]["alertkey"], "probe:root/x:fail");
    // Both hear the resolution.
    write_file(&flag, "ok");
    wait_notified(&sink1, "probe:root/x:fail", "resolved", &log);
    wait_notified(&sink2, "probe:root/x:fail", "resolved", &log2);
}

/// Regression (attack round of issue 23): a member that refused the firing for good (400, say
/// a bad deploy of it) and took a later resend holds the alert; its end was skipped as "never
/// heard" (the outbox row's one attempt was refused), so it held the alert until `endsAt`, up
/// to four resend intervals. Every end goes out on a channel that resends.
#[test]
fn a_member_that_refused_the_firing_and_took_a_resend_is_sent_the_end() {
    let rt = runtime();
    let member = rt.block_on(HttpSink::start());
    member.push(Reply::new(400, "bad alert"));
    let dir = tempfile::tempdir().expect("tempdir");
    let flag = dir.path().join("x.ok");
    let d = TestDaemon::start(&tree(&[member.url("")], &[("x", &flag)]));
    const KEY: &str = "probe:root/x:fail";
    // The wall time a request arrived at (the sink stamps them with an `Instant`).
    let (inst0, wall0) = (Instant::now(), SystemTime::now());
    let wall_ms = |at: Instant| {
        let wall = match at.checked_duration_since(inst0) {
            Some(after) => wall0 + after,
            None => wall0 - inst0.duration_since(at),
        };
        wall.duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default()
    };
    // This key's alerts in each request: (arrived at, endsAt) in ms since the epoch.
    let ends = || -> Vec<(i64, i64)> {
        member
            .requests()
            .iter()
            .flat_map(|r| {
                let at = wall_ms(r.at);
                r.json()
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|a| a["labels"]["alertkey"] == KEY)
                    .filter_map(move |a| {
                        let ends = humantime::parse_rfc3339(a["endsAt"].as_str()?).ok()?;
                        let ms = ends
                            .duration_since(SystemTime::UNIX_EPOCH)
                            .ok()?
                            .as_millis();
                        Some((at, ms as i64))
                    })
            })
            .collect()
    };
    let log = || format!("daemon:\n{}\nrequests: {:?}", d.log_text(), ends());
    // Refused once, then taken from a resend.
    let deadline = Instant::now() + WAIT;
    while ends().len() < 2 {
        assert!(
            Instant::now() < deadline,
            "no resend after the refusal\n{}",
            log()
        );
        std::thread::sleep(POLL);
    }
    let v = d.json(&["alerts"], 0);
    assert!(
        v.to_string().contains("bad alert"),
        "the refusal is not on record: {v:#}"
    );
    // A firing alert ends four resend intervals after its send; its end, when it resolved.
    assert!(ends().iter().all(|&(at, ends)| ends > at), "{}", log());
    write_file(&flag, "ok");
    let deadline = Instant::now() + WAIT;
    while !ends().iter().any(|&(at, ends)| ends <= at) {
        assert!(
            Instant::now() < deadline,
            "the member that took a resend never heard the end\n{}",
            log()
        );
        std::thread::sleep(POLL);
    }
}

/// Regression (attack round of issue 23): `alerts test` on a channel with several
/// Alertmanagers showed one outcome for the message; each member's answer is shown.
#[test]
fn alerts_test_shows_each_members_answer() {
    let rt = runtime();
    let member = rt.block_on(HttpSink::start());
    let down = format!(
        "http://{}",
        rt.block_on(metasystem_actors::sinks::refused_addr())
    );
    let d = TestDaemon::start(&tree(&[member.url(""), down.clone()], &[]));
    let out = d.cli(&["alerts", "test", "am"]);
    // One member took it: the message is delivered (exit 0), and the other's failure shows.
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let line = |url: &str| {
        out.stdout
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{url}:")))
            .map(str::to_string)
    };
    let up =
        line(&member.url("")).unwrap_or_else(|| panic!("no line for the member: {}", out.stdout));
    assert!(up.contains("accepted 200"), "{up}");
    let gone = line(&down).unwrap_or_else(|| panic!("no line for the down member: {}", out.stdout));
    assert!(gone.contains("transient"), "{gone}");
    let v = d.json(&["alerts", "test", "am"], 0);
    assert_eq!(v["recipients"].as_array().map(Vec::len), Some(2), "{v:#}");
}
