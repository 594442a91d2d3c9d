//! Alerts from the real binary: a child restart becomes a notification that reaches a webhook
//! and a mail relay (the loopback sinks of `metasystem_actors::sinks`), the CLI shows it and
//! its attempts, tests channels and silences keys, and notifications stored while the receiver
//! was down survive a SIGKILL of the daemon and arrive exactly once after the restart.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use metasystem_actors::alerts::fingerprint;
use metasystem_actors::sinks::{refused_addr, HttpSink, Reply, Request, SmtpSink};
use serde_json::Value;

use crate::util::{run_cli, write_file, TestDaemon};

const WAIT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(50);

/// The sinks live on this runtime's worker threads while the test thread drives the CLI.
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

/// An alerts child sending to `channels` (every severity to `routed`), and heartbeats.
fn tree(channels: &str, routed: &str, beats: &[&str]) -> String {
    let mut t = format!(
        r#"
[root]
intensity = 10

[[root.children]]
name = "alerts"
kind = "alerts"
group_wait = "100ms"
after = {{ warning = 1 }}
retry = {{ initial = "50ms", max = "200ms" }}
timeout = "2s"
channels = [
{channels}
]
routes = {{ critical = [{routed}], warning = [{routed}], info = [{routed}] }}
"#
    );
    for b in beats {
        t.push_str(&format!(
            "\n[[root.children]]\nname = \"{b}\"\nkind = \"heartbeat\"\nevery = \"1h\"\n"
        ));
    }
    t
}

fn hook_channel(name: &str, url: &str) -> String {
    format!("  {{ name = \"{name}\", type = \"webhook\", url = \"{url}\" }},")
}

fn mail_channel(smtp: &SmtpSink) -> String {
    format!(
        "  {{ name = \"mail\", type = \"email\", smtp = \"{}\", tls = \"none\", \
         from = \"metasystem@example.org\", to = [\"ops@example.org\"] }},",
        smtp.host_port()
    )
}

fn wait_requests(rt: &tokio::runtime::Runtime, sink: &HttpSink, n: usize) -> Vec<Request> {
    rt.block_on(sink.wait_requests(n, WAIT))
}

/// `(fingerprint, status)` of every alert in `requests`.
fn alerts_in(requests: &[Request]) -> Vec<(String, String)> {
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
                        a["fingerprint"].as_str().unwrap_or_default().to_string(),
                        a["status"].as_str().unwrap_or_default().to_string(),
                    )
                })
        })
        .collect()
}

/// Polls `alerts --json` until `check` holds on it (bounded).
fn alerts_until(d: &TestDaemon, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let v = d.json(&["alerts"], 0);
        if check(&v) {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("alerts never showed {what}: {v:#}\nlog:\n{}", d.log_text());
        }
        std::thread::sleep(POLL);
    }
}

fn rows(v: &Value) -> Vec<Value> {
    v["alerts"].as_array().cloned().unwrap_or_default()
}

fn status_json(d: &TestDaemon) -> Value {
    d.cli(&["status", "--json"]).json()
}

#[test]
fn a_restart_alert_reaches_the_webhook_and_the_mail_relay_and_the_cli_shows_it() {
    let rt = runtime();
    let hook = rt.block_on(HttpSink::start());
    let smtp = rt.block_on(SmtpSink::start());
    let dead = format!("http://{}/hook", rt.block_on(refused_addr()));
    let channels = [
        hook_channel("hook", &hook.url("/hook")),
        mail_channel(&smtp),
        hook_channel("dead", &dead),
    ]
    .join("\n");
    let d = TestDaemon::start(&tree(&channels, "\"hook\", \"mail\"", &["beat"]));

    assert_eq!(d.cli(&["kill", "root/beat"]).code, 0);
    let got = wait_requests(&rt, &hook, 1);
    assert_eq!(got.len(), 1, "log:\n{}", d.log_text());
    let v = got[0].json();
    assert_eq!(v["version"], "4");
    assert_eq!(v["receiver"], "hook");
    assert_eq!(v["status"], "firing");
    let alert = &v["alerts"][0];
    assert_eq!(alert["status"], "firing");
    assert_eq!(alert["labels"]["alertname"], "actor restarting: root/beat");
    assert_eq!(alert["labels"]["severity"], "warning");
    assert_eq!(alert["labels"]["path"], "root/beat");
    assert_eq!(alert["labels"]["source"], "root/beat");
    assert_eq!(alert["fingerprint"], fingerprint("restart:root/beat"));
    assert_eq!(v["alerts"].as_array().map(Vec::len), Some(1));

    let mails = rt.block_on(smtp.wait_mails(1, WAIT));
    assert_eq!(mails.len(), 1);
    let m = &mails[0];
    assert_eq!(
        m.header("Subject").as_deref(),
        Some("[metasystem] WARNING: actor restarting: root/beat")
    );
    assert!(m
        .header("From")
        .is_some_and(|f| f.contains("metasystem@example.org")));
    assert!(m
        .header("To")
        .is_some_and(|t| t.contains("ops@example.org")));
    assert_eq!(m.to, vec!["ops@example.org".to_string()]);
    assert!(m.body().contains("root/beat"), "{}", m.body());

    // Both rows sent, each with its one accepted attempt.
    let v = alerts_until(&d, "both sent", |v| {
        let r = rows(v);
        r.len() == 2 && r.iter().all(|r| r["state"] == "sent")
    });
    assert_eq!(v["undelivered"], 0);
    let mut channels: Vec<String> = rows(&v)
        .iter()
        .map(|r| r["channel"].as_str().unwrap_or_default().to_string())
        .collect();
    channels.sort();
    assert_eq!(channels, ["hook", "mail"]);
    for r in rows(&v) {
        assert_eq!(r["status"], "firing", "{r}");
        assert_eq!(r["key"], "restart:root/beat", "{r}");
        assert_eq!(r["attempts"], 1, "{r}");
        let history = r["history"].as_array().cloned().unwrap_or_default();
        assert_eq!(history.len(), 1, "{r}");
        assert_eq!(history[0]["outcome"], "accepted", "{r}");
    }
    assert_eq!(
        rows(&v).iter().find(|r| r["channel"] == "hook").unwrap()["history"][0]["code"],
        200
    );
    let human = d.cli(&["alerts"]);
    assert_eq!(human.code, 0);
    assert!(human.stdout.contains("undelivered: 0"), "{}", human.stdout);
    assert!(
        human.stdout.contains("actor restarting: root/beat") && human.stdout.contains("[sent]"),
        "{}",
        human.stdout
    );

    // `alerts test`: the answer, and the exit code says whether the channel took it.
    let test = d.cli(&["alerts", "test", "hook"]);
    assert_eq!(test.code, 0, "{}{}", test.stdout, test.stderr);
    assert!(
        test.stdout.contains("hook (webhook): accepted 200"),
        "{}",
        test.stdout
    );
    assert!(test.stdout.contains("ok"), "{}", test.stdout);
    let test_got = wait_requests(&rt, &hook, 2);
    assert_eq!(
        test_got[1].json()["alerts"][0]["fingerprint"],
        fingerprint("test:hook")
    );
    let down = d.cli(&["alerts", "test", "dead"]);
    assert_eq!(down.code, 1, "{}{}", down.stdout, down.stderr);
    assert!(
        down.stdout.contains("dead (webhook): transient"),
        "{}",
        down.stdout
    );
    // An unknown channel is refused as an unknown actor is: exit 1, as documented.
    let unknown = d.cli(&["alerts", "test", "nope"]);
    assert_eq!(unknown.code, 1, "{}", unknown.stderr);
    assert!(
        unknown.stderr.contains("no channel named `nope`"),
        "{}",
        unknown.stderr
    );
    // `call root/alerts test` is the same path: the same refusal (not_found), and the same
    // answer of the channel (regression, issue 21: it waited 10 s instead of the test's
    // wait and refused an unknown channel as a usage error).
    let err_code = |out: &crate::util::Out| out.json()["error"]["code"].clone();
    let via_alerts = d.cli(&["alerts", "test", "nope", "--json"]);
    let via_call = d.cli(&["call", "root/alerts", "test", "channel=nope", "--json"]);
    assert_eq!(via_call.code, 1, "{}", via_call.stderr);
    assert_eq!(err_code(&via_call), "not_found", "{}", via_call.stdout);
    assert_eq!(err_code(&via_call), err_code(&via_alerts));
    let called = d.json(&["call", "root/alerts", "test", "channel=dead"], 0);
    assert_eq!(
        (&called["channel"], &called["outcome"]),
        (&serde_json::json!("dead"), &serde_json::json!("transient")),
        "{called}"
    );

    // A silence is stored and listed.
    let silence = d.cli(&["alerts", "silence", "restart:root/beat", "--for", "1h"]);
    assert_eq!(silence.code, 0, "{}{}", silence.stdout, silence.stderr);
    let v = d.json(&["alerts"], 0);
    let silences = v["silences"].as_array().cloned().unwrap_or_default();
    assert_eq!(silences.len(), 1, "{v:#}");
    assert_eq!(silences[0]["pattern"], "restart:root/beat");
    // Tests are not alerts: still the two rows.
    assert_eq!(rows(&v).len(), 2);
    let lifted = d.cli(&["alerts", "unsilence", "restart:root/beat"]);
    assert_eq!(lifted.code, 0, "{}{}", lifted.stdout, lifted.stderr);
    assert_eq!(d.json(&["alerts"], 0)["silences"], serde_json::json!([]));
}

#[test]
fn alerts_stored_while_the_receiver_is_down_survive_a_sigkill_and_arrive_once() {
    let rt = runtime();
    let hook = rt.block_on(HttpSink::start());
    hook.set_default(Reply::new(503, "down for maintenance"));
    let channels = hook_channel("hook", &hook.url("/hook"));
    let mut d = TestDaemon::start(&tree(&channels, "\"hook\"", &["a", "b"]));

    assert_eq!(d.cli(&["kill", "root/a"]).code, 0);
    assert_eq!(d.cli(&["kill", "root/b"]).code, 0);
    // Refused at least once, and `status` counts them as undelivered.
    let refused = wait_requests(&rt, &hook, 2);
    assert!(refused.len() >= 2, "log:\n{}", d.log_text());
    let deadline = Instant::now() + WAIT;
    while status_json(&d)["alerts_undelivered"] != 2 {
        assert!(Instant::now() < deadline, "{:#}", status_json(&d));
        std::thread::sleep(POLL);
    }
    let human = d.cli(&["status"]);
    assert!(
        human.stdout.contains("2 notification(s) not yet delivered"),
        "{}",
        human.stdout
    );
    let v = d.json(&["alerts"], 0);
    assert_eq!(v["undelivered"], 2);
    assert!(rows(&v).iter().all(|r| r["state"] == "pending"), "{v:#}");

    d.signal(rustix::process::Signal::KILL);
    let _ = d.wait_exit();
    let _ = std::fs::remove_file(&d.socket);
    // Nothing is talking to the sink now: every request so far was refused.
    let before = hook.requests().len();
    hook.set_default(Reply::new(200, "ok"));
    d.launch(&[]);
    d.wait_ready();

    // The stored firing ones are sent; then, the restarted tree having no actor restarting,
    // their resolutions (what the receiver was told is held to what is true).
    let v = alerts_until(&d, "the stored alerts sent, then resolved", |v| {
        v["undelivered"] == 0 && rows(v).len() == 4 && rows(v).iter().all(|r| r["state"] == "sent")
    });
    for r in rows(&v).iter().filter(|r| r["status"] == "firing") {
        let history = r["history"].as_array().cloned().unwrap_or_default();
        assert!(history.len() >= 2, "{r}");
        assert_eq!(history.last().unwrap()["outcome"], "accepted", "{r}");
        assert!(history[..history.len() - 1]
            .iter()
            .all(|a| a["outcome"] == "transient" && a["code"] == 503));
    }
    // Give a duplicate time to show up, then count what was accepted.
    std::thread::sleep(Duration::from_millis(500));
    let got = hook.requests();
    let mut per: HashMap<(String, String), usize> = HashMap::new();
    for pair in alerts_in(&got[before..]) {
        *per.entry(pair).or_default() += 1;
    }
    let expected: HashMap<(String, String), usize> = ["root/a", "root/b"]
        .iter()
        .flat_map(|p| {
            ["firing", "resolved"].map(|status| {
                (
                    (fingerprint(&format!("restart:{p}")), status.to_string()),
                    1,
                )
            })
        })
        .collect();
    assert_eq!(per, expected, "log:\n{}", d.log_text());
    assert_eq!(status_json(&d)["alerts_undelivered"], 0);
    assert_eq!(d.terminate(), 0);
}

/// The tree of [`tree`] with a root that gives up at its second restart.
fn fragile_tree(channels: &str) -> String {
    tree(channels, "\"hook\"", &["a", "b"]).replace(
        "[root]\nintensity = 10",
        "[root]\nintensity = 1\nperiod = \"1h\"",
    )
}

/// Kills two children of a root with intensity 1: the root gives up and the daemon exits 3.
fn make_the_root_give_up(d: &mut TestDaemon) -> i32 {
    assert_eq!(d.cli(&["kill", "root/a"]).code, 0);
    let _ = d.cli(&["kill", "root/b"]);
    d.wait_exit()
}

fn gave_up_root(requests: &[Request]) -> usize {
    let fp = fingerprint("gave_up:root");
    alerts_in(requests)
        .iter()
        .filter(|(f, status)| *f == fp && status == "firing")
        .count()
}

/// The alerts actor stops with the tree, so the daemon itself sends "root gave up" before it
/// exits; a receiver that is down then gets it from the next start.
#[test]
fn a_root_give_up_is_sent_before_the_daemon_exits_or_by_the_next_start() {
    let rt = runtime();
    let hook = rt.block_on(HttpSink::start());
    let channels = hook_channel("hook", &hook.url("/hook"));
    let mut d = TestDaemon::start(&fragile_tree(&channels));
    assert_eq!(make_the_root_give_up(&mut d), 3, "log:\n{}", d.log_text());
    // Already there when the process has exited: nothing was left to a later start.
    let got = hook.requests();
    assert!(
        gave_up_root(&got) >= 1,
        "{:#?}\nlog:\n{}",
        alerts_in(&got),
        d.log_text()
    );
    let critical = got
        .iter()
        .flat_map(|r| r.json()["alerts"].as_array().cloned().unwrap_or_default())
        .find(|a| a["fingerprint"] == fingerprint("gave_up:root"))
        .unwrap_or_default();
    assert_eq!(critical["labels"]["severity"], "critical", "{critical:#}");
    assert_eq!(critical["labels"]["alertname"], "supervisor gave up: root");

    // Receiver down: the give-up stays in the outbox, and the next start delivers it.
    let _ = std::fs::remove_file(&d.socket);
    hook.set_default(Reply::new(503, "down"));
    let before = hook.requests().len();
    d.launch(&[]);
    d.wait_ready();
    assert_eq!(make_the_root_give_up(&mut d), 3, "log:\n{}", d.log_text());
    // Tried (and refused) before the exit.
    assert!(
        gave_up_root(&hook.requests()[before..]) >= 1,
        "log:\n{}",
        d.log_text()
    );
    let _ = std::fs::remove_file(&d.socket);
    let refused = hook.requests().len();
    hook.set_default(Reply::new(200, "ok"));
    d.launch(&[]);
    d.wait_ready();
    let deadline = Instant::now() + WAIT;
    while gave_up_root(&hook.requests()[refused..]) == 0 {
        assert!(Instant::now() < deadline, "log:\n{}", d.log_text());
        std::thread::sleep(POLL);
    }
    alerts_until(&d, "nothing undelivered", |v| v["undelivered"] == 0);
    assert_eq!(d.terminate(), 0);
}

/// `check` warns (exit 0: the file is valid) about a channel the daemon would skip here.
#[test]
fn check_warns_about_a_channel_the_daemon_would_skip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("supervision.toml");
    let channels = [
        "  { name = \"mail\", type = \"email\", smtp = \"127.0.0.1:25\", from = \"a@example.org\", \
         to = [\"b@example.org\"], username = \"a\", password_env = \"METASYSTEM_TEST_UNSET_PASSWORD\" },",
        "  { name = \"hook\", type = \"webhook\" },",
        "  { name = \"log\", type = \"log\" },",
    ]
    .join("\n");
    write_file(&path, tree(&channels, "\"log\"", &[]));
    let shown = path.display().to_string();
    let out = run_cli(&["check", &shown], &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("ok (2 actors)"), "{}", out.stdout);
    let warnings: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(warnings.len(), 2, "{}", out.stderr);
    assert!(
        warnings[0].starts_with("warning: root/alerts: email channel `mail`")
            && warnings[0].contains("METASYSTEM_TEST_UNSET_PASSWORD"),
        "{}",
        out.stderr
    );
    assert!(
        warnings[1].starts_with("warning: root/alerts: webhook channel `hook`"),
        "{}",
        out.stderr
    );
    let json = run_cli(&["check", &shown, "--json"], &[]);
    assert_eq!(json.json()["warnings"].as_array().map(Vec::len), Some(2));
    // With the variable set, the mail channel is complete.
    let set = run_cli(
        &["check", &shown],
        &[("METASYSTEM_TEST_UNSET_PASSWORD", "x")],
    );
    assert_eq!(set.stderr.lines().count(), 1, "{}", set.stderr);
}

/// An alerts child sending to `hook`, and a command probe `svc` that fails while `down`
/// exists (warning after 1 failure, critical after 3: a restart must not walk it up again).
fn probe_tree(hook: &HttpSink, down: &std::path::Path, extra: &str) -> String {
    format!(
        r#"{}
[[root.children]]
name = "svc"
kind = "probe"
check = "command"
command = "/bin/sh"
args = ["-c", "test ! -e '{}' || exit 2"]
every = "200ms"
failures_before_warning = 1
failures_before_critical = 3
{extra}
"#,
        tree(&hook_channel("hook", &hook.url("/hook")), "\"hook\"", &[]),
        down.display()
    )
}

/// The `(key-fingerprint, status)` pairs the receiver got for the probe's statuses, in order.
fn probe_view(requests: &[Request]) -> Vec<(&'static str, String)> {
    let warn = fingerprint("probe:root/svc:warn");
    let fail = fingerprint("probe:root/svc:fail");
    alerts_in(requests)
        .into_iter()
        .filter_map(|(fp, status)| {
            if fp == warn {
                Some(("warn", status))
            } else if fp == fail {
                Some(("fail", status))
            } else {
                None
            }
        })
        .collect()
}

/// Waits until the receiver's last word on the probe is `last` (bounded); answers the view.
fn probe_until(
    rt: &tokio::runtime::Runtime,
    hook: &HttpSink,
    d: &TestDaemon,
    last: &[(&str, &str)],
) -> Vec<(&'static str, String)> {
    let deadline = Instant::now() + WAIT;
    loop {
        let view = probe_view(&hook.requests());
        let tail: Vec<(&str, &str)> = view.iter().map(|(k, s)| (*k, s.as_str())).collect();
        if tail.ends_with(last) {
            return view;
        }
        if Instant::now() >= deadline {
            panic!(
                "the receiver never saw {last:?}: {view:?}\nlog:\n{}",
                d.log_text()
            );
        }
        let _ = rt;
        std::thread::sleep(POLL);
    }
}

/// What the receiver believes is held to what is true through every restart path: the
/// probe recovers while the daemon is SIGKILLed, or stopped, or while its alerts actor is
/// killed, or across a reload that restarts it; the resolution comes each time. A probe
/// still failing after a restart sends nothing new (no resolved, no warn step).
#[test]
fn a_receiver_is_told_the_truth_after_every_kind_of_restart() {
    let rt = runtime();
    let hook = rt.block_on(HttpSink::start());
    let dir = tempfile::tempdir().unwrap();
    let down = dir.path().join("down");
    write_file(&down, "");
    let mut d = TestDaemon::start(&probe_tree(&hook, &down, ""));
    probe_until(&rt, &hook, &d, &[("fail", "firing")]);

    // 1. SIGKILL while failing, restarted still failing: nothing new for the receiver.
    d.signal(rustix::process::Signal::KILL);
    let _ = d.wait_exit();
    let _ = std::fs::remove_file(&d.socket);
    let before = probe_view(&hook.requests());
    d.launch(&[]);
    d.wait_ready();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        probe_view(&hook.requests()),
        before,
        "a restart while failing tells the receiver nothing new\nlog:\n{}",
        d.log_text()
    );

    // 2. SIGKILL, then it recovers while the daemon is down: resolved after the restart.
    d.signal(rustix::process::Signal::KILL);
    let _ = d.wait_exit();
    let _ = std::fs::remove_file(&d.socket);
    std::fs::remove_file(&down).unwrap();
    d.launch(&[]);
    d.wait_ready();
    probe_until(&rt, &hook, &d, &[("fail", "resolved")]);

    // 3. Failing again (a new episode, at once), then a clean shutdown, recovered meanwhile.
    write_file(&down, "");
    probe_until(&rt, &hook, &d, &[("warn", "firing")]);
    probe_until(&rt, &hook, &d, &[("warn", "resolved"), ("fail", "firing")]);
    assert_eq!(d.terminate(), 0);
    std::fs::remove_file(&down).unwrap();
    d.launch(&[]);
    d.wait_ready();
    probe_until(&rt, &hook, &d, &[("fail", "resolved")]);

    // 4. The alerts actor killed; the probe fails and recovers around it.
    write_file(&down, "");
    probe_until(&rt, &hook, &d, &[("fail", "firing")]);
    assert_eq!(d.cli(&["kill", "root/alerts"]).code, 0);
    std::fs::remove_file(&down).unwrap();
    probe_until(&rt, &hook, &d, &[("fail", "resolved")]);

    // 5. A reload that restarts the alerts actor (its group_wait changed) while the probe
    // goes from failing to passing.
    write_file(&down, "");
    probe_until(&rt, &hook, &d, &[("fail", "firing")]);
    d.write_config(&probe_tree(&hook, &down, "").replace("100ms", "150ms"));
    std::fs::remove_file(&down).unwrap();
    assert_eq!(d.cli(&["reload"]).code, 0, "log:\n{}", d.log_text());
    probe_until(&rt, &hook, &d, &[("fail", "resolved")]);

    // 6. The probe removed from the config while failing: its alert ends with it.
    write_file(&down, "");
    probe_until(&rt, &hook, &d, &[("fail", "firing")]);
    d.write_config(&tree(
        &hook_channel("hook", &hook.url("/hook")),
        "\"hook\"",
        &[],
    ));
    assert_eq!(d.cli(&["reload"]).code, 0, "log:\n{}", d.log_text());
    probe_until(&rt, &hook, &d, &[("fail", "resolved")]);
    assert_eq!(d.terminate(), 0);
}

/// "actor restarting" resolves once the actor has run for its supervisor's `reset_after`
/// after the restart (before, only at shutdown); "supervisor gave up" resolves when its
/// parent has it running again.
#[test]
fn restart_and_give_up_alerts_resolve_when_the_actor_runs_again() {
    let rt = runtime();
    let hook = rt.block_on(HttpSink::start());
    let t = tree(&hook_channel("hook", &hook.url("/hook")), "\"hook\"", &["beat"]).replace(
        "[root]\nintensity = 10",
        "[root]\nintensity = 10\nbackoff = { initial = \"10ms\", max = \"50ms\", reset_after = \"1s\" }",
    ) + r#"
[[root.children]]
name = "grp"
kind = "supervisor"
intensity = 1
period = "1h"
  [[root.children.children]]
  name = "x"
  kind = "heartbeat"
  every = "1h"
"#;
    let d = TestDaemon::start(&t);
    assert_eq!(d.cli(&["kill", "root/beat"]).code, 0);
    let restart = fingerprint("restart:root/beat");
    let deadline = Instant::now() + WAIT;
    loop {
        let seen = alerts_in(&hook.requests());
        if seen.contains(&(restart.clone(), "resolved".into())) {
            let firing = seen
                .iter()
                .position(|p| *p == (restart.clone(), "firing".into()));
            let resolved = seen
                .iter()
                .position(|p| *p == (restart.clone(), "resolved".into()));
            assert!(firing < resolved, "{seen:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{seen:?}\nlog:\n{}",
            d.log_text()
        );
        std::thread::sleep(POLL);
    }

    // grp gives up at its child's second restart; root restarts grp within the channel's
    // group_wait here: the give-up is resolved before any message about it went out, so the
    // receiver is told nothing of it (and never that it fires).
    assert_eq!(d.cli(&["kill", "root/grp/x"]).code, 0);
    std::thread::sleep(Duration::from_millis(300));
    let _ = d.cli(&["kill", "root/grp/x"]);
    let gave_up = fingerprint("gave_up:root/grp");
    let deadline = Instant::now() + WAIT;
    loop {
        let v = d.json(&["alerts"], 0);
        let settled: Vec<Value> = rows(&v)
            .into_iter()
            .filter(|r| r["fingerprint"] == gave_up)
            .collect();
        // Read after the outbox says settled: a delivery is recorded after the sink has it
        // (read before, a resolution delivered in between was missing from it).
        let seen = alerts_in(&hook.requests());
        if settled.len() >= 2 && settled.iter().all(|r| r["state"] != "pending") {
            let last = seen.iter().rev().find(|(fp, _)| *fp == gave_up);
            assert!(
                last.is_none_or(|(_, s)| s == "resolved"),
                "{gave_up}: {seen:?}\noutbox: {settled:?}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{seen:?}\nlog:\n{}",
            d.log_text()
        );
        std::thread::sleep(POLL);
    }
}

/// A fresh install on a machine without iCloud or the external drive: the embedded default
/// tree decides no alert (before: "never synced" warnings at start and anomalies in the
/// daemon's own probe timings within minutes). Run for `METASYSTEM_QUIET_SECS` (default 30 s;
/// the issue's 10-minute run: 600).
#[test]
fn the_default_tree_on_a_fresh_install_raises_no_alert() {
    let secs: u64 = std::env::var("METASYSTEM_QUIET_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let home = tempfile::tempdir().unwrap();
    let embedded = include_str!("../../supervision.toml");
    let tree = match embedded.find("\n[root]") {
        Some(at) => &embedded[at..],
        None => panic!("the embedded default has no [root]"),
    };
    // The default targets' folders under a home of its own, where neither exists.
    let tree = tree.replace("~/", &format!("{}/", home.path().display()));
    let mut d = TestDaemon::start(&tree);
    let deadline = Instant::now() + Duration::from_secs(secs);
    // The disk probe warns below 10 GB free, and is right to: a build machine can be that full
    // (CI was). Its alert is allowed when the state dir's file system really is below that.
    let low_disk = free_bytes(&d.state) < 10_000_000_000;
    while Instant::now() < deadline {
        let mut decided = d.events(&["--kind", "alert"]);
        if low_disk {
            decided.retain(|e| {
                !e["data"]["key"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("probe:root/disk:")
            });
        }
        assert!(
            decided.is_empty(),
            "a fresh install raised: {decided:#?}\nlog:\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let health = d.cli(&["health", "--json"]);
    assert!(
        health.stdout.contains("never synced"),
        "health shows the targets' state: {}",
        health.stdout
    );
    let v = d.json(&["alerts"], 0);
    let mut firing = rows(&v);
    if low_disk {
        firing.retain(|r| {
            !r["key"]
                .as_str()
                .unwrap_or("")
                .starts_with("probe:root/disk:")
        });
    }
    assert!(firing.is_empty(), "{v:#}");
    assert_eq!(d.terminate(), 0);
}

/// Bytes available to an unprivileged user on the file system holding `path` (`df`).
fn free_bytes(path: &std::path::Path) -> u64 {
    let out = std::process::Command::new("df")
        .args(["-B1", "--output=avail"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(u64::MAX)
}

/// A restart storm under a supervisor without backoff raises "actor restarting" once its
/// restarts in a row reach `after` (the default, 5), and resolves once it stays up. Before,
/// every restart there was numbered #1 and cleared the condition: nothing was ever raised.
#[test]
fn a_restart_storm_without_backoff_is_raised() {
    let rt = runtime();
    let hook = rt.block_on(HttpSink::start());
    let t = tree(
        &hook_channel("hook", &hook.url("/hook")),
        "\"hook\"",
        &["beat"],
    )
    .replace("after = { warning = 1 }\n", "")
    .replace(
        "[root]\nintensity = 10",
        "[root]\nintensity = 100\nbackoff = \"none\"",
    );
    let d = TestDaemon::start(&t);
    for _ in 0..8 {
        assert_eq!(d.cli(&["kill", "root/beat"]).code, 0);
        std::thread::sleep(Duration::from_millis(200));
    }
    let restart = fingerprint("restart:root/beat");
    let deadline = Instant::now() + WAIT;
    loop {
        let seen: Vec<String> = alerts_in(&hook.requests())
            .into_iter()
            .filter(|(fp, _)| *fp == restart)
            .map(|(_, s)| s)
            .collect();
        if seen.last().is_some_and(|s| s == "resolved") {
            assert_eq!(seen, ["firing", "resolved"], "one episode, told once");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the storm was never told: {seen:?}\nalerts: {}\nlog:\n{}",
            d.cli(&["alerts"]).stdout,
            d.log_text()
        );
        std::thread::sleep(POLL);
    }
}

/// Regression (attack round of issue 23): while a retry was in flight, `alerts` showed its
/// time, now past, as the "next" attempt (read as a retry that never came).
#[test]
fn a_retry_in_flight_is_not_shown_as_a_past_next_attempt() {
    let rt = runtime();
    let hook = rt.block_on(HttpSink::start());
    // The first attempt fails; the retry hangs until the client's timeout (8 s here: the
    // window in which it is in flight).
    hook.push(Reply::new(503, "busy"));
    hook.set_default(Reply::new(200, "ok").delay(Duration::from_secs(30)));
    let channels = hook_channel("slow", &hook.url("/hook"));
    let tree =
        tree(&channels, "\"slow\"", &["beat"]).replace("timeout = \"2s\"", "timeout = \"8s\"");
    let d = TestDaemon::start(&tree);
    assert_eq!(d.cli(&["kill", "root/beat"]).code, 0);
    // The retry has arrived (and waits for its answer).
    let got = wait_requests(&rt, &hook, 2);
    assert!(got.len() >= 2, "no retry: {}", d.log_text());
    let out = d.cli(&["alerts"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("attempt 1 failed; retrying now"),
        "{}",
        out.stdout
    );
    let v = d.json(&["alerts"], 0);
    let row = &v["alerts"][0];
    assert!(row["next_attempt"].is_null(), "{row:#}");
}
