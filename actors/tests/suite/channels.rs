//! Alert channels over real loopback conversations: the HTTP and SMTP sinks of
//! `metasystem_actors::sinks` stand in for Alertmanager receivers, Slack, Discord and a mail
//! relay. Real clock; every wait is bounded.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use metasystem_actors::alerts::channel::{
    prepare, Channel, ChannelKind, ChannelSpec, Deliverer, EmailSpec, Outcome, Tls, USER_AGENT,
};
use metasystem_actors::alerts::{fingerprint, Notification, Severity, Status};
use metasystem_actors::sinks::{refused_addr, HttpSink, Reply, SmtpScript, SmtpSink};
use serde_json::{json, Value};

/// No test step may take longer than this.
const LIMIT: Duration = Duration::from_secs(30);
const WAIT: Duration = Duration::from_secs(10);

async fn bounded<T>(f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(LIMIT, f).await {
        Ok(v) => v,
        Err(_) => panic!("step took longer than {LIMIT:?}"),
    }
}

fn deliverer() -> Deliverer {
    Deliverer::new(Duration::from_secs(3), "testhost".to_string()).expect("deliverer")
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn note(severity: Severity, status: Status, title: &str) -> Notification {
    let key = format!("{severity}:{title}");
    Notification {
        id: 7,
        fingerprint: fingerprint(&key),
        key,
        status,
        severity,
        title: title.to_string(),
        body: format!("details of {title}"),
        source: "root/sync/icloud".to_string(),
        labels: BTreeMap::new(),
        starts_at_ms: 1_700_000_000_000,
        ends_at_ms: match status {
            Status::Firing => None,
            Status::Resolved => Some(1_700_000_090_500),
        },
        occurrences: 2,
    }
}

fn http_channel(name: &str, kind: fn(Option<String>) -> ChannelKind, url: String) -> Channel {
    let spec = ChannelSpec {
        name: name.to_string(),
        kind: kind(Some(url)),
    };
    prepare(&spec, &no_env).expect("complete spec")
}

fn webhook(url: Option<String>) -> ChannelKind {
    ChannelKind::Webhook { url }
}
fn slack(url: Option<String>) -> ChannelKind {
    ChannelKind::Slack { url }
}
fn discord(url: Option<String>) -> ChannelKind {
    ChannelKind::Discord { url }
}

fn units(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}

// ------------------------------------------------------------------------------------------
// Webhook

#[tokio::test]
async fn webhook_posts_alertmanager_v4() {
    let sink = HttpSink::start().await;
    sink.push(Reply::new(200, "thanks"));
    let ch = http_channel("ops", webhook, sink.url("/hook?token=abc"));
    let mut a = note(Severity::Critical, Status::Firing, "disk full");
    a.labels.insert("mount".into(), "/data".into());
    let b = note(Severity::Critical, Status::Resolved, "disk slow");
    let out = bounded(deliverer().send(&ch, &[a.clone(), b.clone()])).await;
    assert_eq!(
        out,
        Outcome::Accepted {
            code: Some(200),
            answer: "thanks".into()
        }
    );

    let reqs = sink.wait_requests(1, WAIT).await;
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.target, "/hook?token=abc");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("user-agent"), Some(USER_AGENT));
    assert!(USER_AGENT.starts_with("metasystem/"));

    let v = r.json();
    let top: Vec<&str> = v
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    let mut top_sorted = top.clone();
    top_sorted.sort_unstable();
    assert_eq!(
        top_sorted,
        [
            "alerts",
            "commonAnnotations",
            "commonLabels",
            "externalURL",
            "groupKey",
            "groupLabels",
            // Ours: the same for every attempt of this message (also its header).
            "idempotencyKey",
            "receiver",
            "status",
            "truncatedAlerts",
            "version"
        ]
    );
    assert_eq!(v["idempotencyKey"].as_str(), r.header("idempotency-key"));
    assert_eq!(v["version"], "4");
    assert_eq!(v["groupKey"], "{}:ops");
    assert_eq!(v["truncatedAlerts"], 0);
    assert_eq!(v["status"], "firing");
    assert_eq!(v["receiver"], "ops");
    assert_eq!(v["groupLabels"], json!({}));
    assert_eq!(v["externalURL"], "");
    assert_eq!(
        v["commonLabels"],
        json!({"severity": "critical", "source": "root/sync/icloud", "instance": "testhost"})
    );
    assert_eq!(v["commonAnnotations"], json!({}));

    let alerts = v["alerts"].as_array().expect("alerts");
    assert_eq!(alerts.len(), 2);
    assert_eq!(
        alerts[0],
        json!({
            "status": "firing",
            "labels": {
                "alertname": "disk full",
                "severity": "critical",
                "source": "root/sync/icloud",
                "instance": "testhost",
                "mount": "/data",
            },
            "annotations": {"summary": "disk full", "description": "details of disk full"},
            "startsAt": "2023-11-14T22:13:20Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "",
            "fingerprint": a.fingerprint,
            "episode": format!("{}:{}", a.fingerprint, a.starts_at_ms),
        })
    );
    assert_eq!(alerts[1]["status"], "resolved");
    assert_eq!(alerts[1]["endsAt"], "2023-11-14T22:14:50.500Z");
    assert_eq!(alerts[1]["fingerprint"], b.fingerprint.as_str());

    // All resolved: the group is resolved.
    let out = bounded(deliverer().send(&ch, &[b])).await;
    assert!(out.is_accepted(), "{out:?}");
    let reqs = sink.wait_requests(2, WAIT).await;
    assert_eq!(reqs[1].json()["status"], "resolved");
}

#[tokio::test]
async fn http_statuses_classify() {
    let sink = HttpSink::start().await;
    let ch = http_channel("hook", webhook, sink.url("/"));
    let batch = [note(Severity::Warning, Status::Firing, "x")];
    let d = deliverer();

    sink.push(Reply::new(500, "boom"));
    let out = bounded(d.send(&ch, &batch)).await;
    assert!(
        matches!(&out, Outcome::Transient { code: Some(500), error, retry_after: None } if error.contains("boom")),
        "{out:?}"
    );

    sink.push(Reply::new(503, "").header("Retry-After", "7"));
    let out = bounded(d.send(&ch, &batch)).await;
    assert!(
        matches!(out, Outcome::Transient { code: Some(503), retry_after: Some(r), .. } if r == Duration::from_secs(7)),
        "{out:?}"
    );

    sink.push(Reply::new(408, ""));
    assert!(bounded(d.send(&ch, &batch)).await.is_transient());

    sink.push(Reply::new(400, "invalid_payload"));
    let out = bounded(d.send(&ch, &batch)).await;
    assert!(
        matches!(&out, Outcome::Permanent { code: Some(400), error } if error.contains("invalid_payload")),
        "{out:?}"
    );

    sink.push(Reply::new(404, "no_service"));
    assert!(bounded(d.send(&ch, &batch)).await.is_permanent());

    // A redirect is not followed (a POST would turn into a GET): permanent.
    sink.push(Reply::new(301, "").header("Location", "http://127.0.0.1:1/"));
    let out = bounded(d.send(&ch, &batch)).await;
    assert!(
        matches!(
            out,
            Outcome::Permanent {
                code: Some(301),
                ..
            }
        ),
        "{out:?}"
    );

    sink.push(Reply::new(204, ""));
    let out = bounded(d.send(&ch, &batch)).await;
    assert_eq!(
        out,
        Outcome::Accepted {
            code: Some(204),
            answer: String::new()
        }
    );

    // A huge answer is capped.
    sink.push(Reply::new(200, "y".repeat(100_000)));
    match bounded(d.send(&ch, &batch)).await {
        Outcome::Accepted { answer, .. } => assert!(answer.len() <= 1024, "{}", answer.len()),
        other => panic!("{other:?}"),
    }

    // The connection closes without an answer: transient.
    sink.push(Reply::hang_up());
    let out = bounded(d.send(&ch, &batch)).await;
    assert!(
        matches!(out, Outcome::Transient { code: None, .. }),
        "{out:?}"
    );
    assert_eq!(sink.requests().len(), 9);
}

#[tokio::test]
async fn rate_limits_carry_retry_after() {
    let sink = HttpSink::start().await;
    let d = deliverer();
    let batch = [note(Severity::Critical, Status::Firing, "x")];

    // Discord style: JSON body with seconds as a float (it wins over the header).
    let ch = http_channel("dc", discord, sink.url("/api/webhooks/1/t"));
    sink.push(
        Reply::new(
            429,
            r#"{"message": "You are being rate limited.", "retry_after": 0.75, "global": false}"#,
        )
        .header("Retry-After", "1")
        .header("Content-Type", "application/json"),
    );
    let out = bounded(d.send(&ch, &batch)).await;
    assert!(
        matches!(out, Outcome::Transient { code: Some(429), retry_after: Some(r), .. } if r == Duration::from_millis(750)),
        "{out:?}"
    );

    // Absurd values are capped to an hour.
    sink.push(Reply::new(429, r#"{"retry_after": 1e12}"#));
    let out = bounded(d.send(&ch, &batch)).await;
    assert!(
        matches!(out, Outcome::Transient { retry_after: Some(r), .. } if r == Duration::from_secs(3600)),
        "{out:?}"
    );

    // Slack style: a Retry-After header in seconds.
    let ch = http_channel("sl", slack, sink.url("/services/T/B/X"));
    sink.push(Reply::new(429, "rate_limited").header("Retry-After", "30"));
    let out = bounded(d.send(&ch, &batch)).await;
    assert!(
        matches!(out, Outcome::Transient { code: Some(429), retry_after: Some(r), .. } if r == Duration::from_secs(30)),
        "{out:?}"
    );

    // An HTTP date in the future.
    let at = std::time::SystemTime::now() + Duration::from_secs(120);
    sink.push(Reply::new(429, "").header("Retry-After", httpdate::fmt_http_date(at)));
    let out = bounded(d.send(&ch, &batch)).await;
    match out {
        Outcome::Transient {
            retry_after: Some(r),
            ..
        } => assert!(
            r > Duration::from_secs(100) && r <= Duration::from_secs(120),
            "{r:?}"
        ),
        other => panic!("{other:?}"),
    }

    // A negative body value and a garbage header: no retry_after, still transient.
    sink.push(Reply::new(429, r#"{"retry_after": -5}"#).header("Retry-After", "soon"));
    let out = bounded(d.send(&ch, &batch)).await;
    assert!(
        matches!(
            out,
            Outcome::Transient {
                code: Some(429),
                retry_after: None,
                ..
            }
        ),
        "{out:?}"
    );
}

#[tokio::test]
async fn unreachable_and_slow_endpoints_are_transient() {
    let addr = refused_addr().await;
    let ch = http_channel("hook", webhook, format!("http://{addr}/hook"));
    let batch = [note(Severity::Info, Status::Firing, "x")];
    let out = bounded(deliverer().send(&ch, &batch)).await;
    assert!(
        matches!(out, Outcome::Transient { code: None, .. }),
        "{out:?}"
    );

    let sink = HttpSink::start().await;
    sink.push(Reply::new(200, "late").delay(Duration::from_secs(5)));
    let ch = http_channel("hook", webhook, sink.url("/"));
    let quick = Deliverer::new(Duration::from_millis(300), "h".into()).expect("deliverer");
    let started = std::time::Instant::now();
    let out = bounded(quick.send(&ch, &batch)).await;
    assert!(
        matches!(out, Outcome::Transient { code: None, .. }),
        "{out:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

// ------------------------------------------------------------------------------------------
// Slack and Discord

#[tokio::test]
async fn slack_payload_on_the_wire() {
    let sink = HttpSink::start().await;
    let ch = http_channel("chat", slack, sink.url("/services/T/B/X"));
    let mut n = note(
        Severity::Critical,
        Status::Firing,
        "actor restarting: root/sync",
    );
    n.labels.insert("tree".into(), "main".into());
    let out = bounded(deliverer().send(&ch, std::slice::from_ref(&n))).await;
    assert!(out.is_accepted(), "{out:?}");
    let reqs = sink.wait_requests(1, WAIT).await;
    let r = &reqs[0];
    assert_eq!(r.path(), "/services/T/B/X");
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v = r.json();
    assert_eq!(
        s(&v, "/text"),
        "🔴 CRITICAL: actor restarting: root/sync — details of actor restarting: root/sync"
    );
    assert_eq!(s(&v, "/blocks/0/type"), "header");
    assert_eq!(s(&v, "/blocks/0/text/type"), "plain_text");
    assert_eq!(
        s(&v, "/blocks/0/text/text"),
        "🔴 CRITICAL: actor restarting: root/sync"
    );
    assert_eq!(s(&v, "/blocks/1/type"), "section");
    assert_eq!(s(&v, "/blocks/1/text/type"), "mrkdwn");
    let section = s(&v, "/blocks/1/text/text");
    for needle in [
        "*[CRITICAL] actor restarting: root/sync*",
        "*Source:* root/sync/icloud",
        "*Started:* 2023-11-14T22:13:20Z",
        "*Occurrences:* 2",
        "*Labels:* tree=main",
        "details of actor restarting",
    ] {
        assert!(section.contains(needle), "{needle} in {section}");
    }
    assert_eq!(
        s(&v, "/blocks/2/elements/0/text"),
        format!("fingerprint `{}`", &n.fingerprint[..8])
    );
}

#[tokio::test]
async fn slack_respects_limits() {
    let sink = HttpSink::start().await;
    let ch = http_channel("chat", slack, sink.url("/s"));
    let huge = "Ünïcødé 🔥 ".repeat(2000);
    let batch: Vec<_> = (0..30)
        .map(|i| {
            let mut n = note(Severity::Warning, Status::Firing, &format!("{i} {huge}"));
            n.body = huge.repeat(2);
            n
        })
        .collect();
    let out = bounded(deliverer().send(&ch, &batch)).await;
    assert!(out.is_accepted(), "{out:?}");
    let v = sink.wait_requests(1, WAIT).await[0].json();
    assert!(units(s(&v, "/text")) <= 3000);
    let blocks = v["blocks"].as_array().expect("blocks");
    assert!(blocks.len() <= 50, "{}", blocks.len());
    assert!(units(s(&v, "/blocks/0/text/text")) <= 150);
    for b in blocks {
        if b["type"] == "section" {
            let t = s(b, "/text/text");
            assert!(!t.is_empty() && units(t) <= 3000, "{}", units(t));
        }
    }
    assert!(s(blocks.last().expect("block"), "/text/text").contains("more not shown"));
}

#[tokio::test]
async fn discord_payload_and_wait() {
    let sink = HttpSink::start().await;
    let ch = http_channel("dc", discord, sink.url("/api/webhooks/1/tok?thread_id=42"));
    assert_eq!(
        ch.url().map(|u| u.ends_with("?thread_id=42&wait=true")),
        Some(true)
    );
    sink.push(Reply::new(200, r#"{"id": "1"}"#));
    let a = note(Severity::Critical, Status::Firing, "down");
    let b = note(Severity::Warning, Status::Resolved, "slow");
    let out = bounded(deliverer().send(&ch, &[a.clone(), b])).await;
    assert_eq!(
        out,
        Outcome::Accepted {
            code: Some(200),
            answer: r#"{"id": "1"}"#.into()
        }
    );
    let r = &sink.wait_requests(1, WAIT).await[0];
    assert_eq!(r.path(), "/api/webhooks/1/tok");
    let mut q: Vec<&str> = r.query().split('&').collect();
    q.sort_unstable();
    assert_eq!(q, ["thread_id=42", "wait=true"]);
    let v = r.json();
    assert_eq!(s(&v, "/content"), "🔴 2 alerts: 1 firing, 1 resolved");
    assert_eq!(v["allowed_mentions"], json!({"parse": []}));
    let embeds = v["embeds"].as_array().expect("embeds");
    assert_eq!(embeds.len(), 2);
    assert_eq!(s(&embeds[0], "/title"), "[CRITICAL] down");
    assert_eq!(embeds[0]["color"], 0xD32F2F);
    assert_eq!(s(&embeds[0], "/timestamp"), "2023-11-14T22:13:20Z");
    assert!(s(&embeds[0], "/description").contains("**Source:** root/sync/icloud"));
    assert!(s(&embeds[0], "/footer/text").contains(&a.fingerprint[..8]));
    assert_eq!(s(&embeds[1], "/title"), "[RESOLVED] slow");
    assert_eq!(embeds[1]["color"], 0x2E7D32, "resolved is green");
}

#[tokio::test]
async fn discord_respects_limits() {
    let sink = HttpSink::start().await;
    let ch = http_channel("dc", discord, sink.url("/w"));
    let huge = "ñ🔥".repeat(20_000);
    let batch: Vec<_> = (0..14)
        .map(|i| {
            let mut n = note(Severity::Info, Status::Firing, &format!("{i}{huge}"));
            n.body = huge.clone();
            n
        })
        .collect();
    let out = bounded(deliverer().send(&ch, &batch)).await;
    assert!(out.is_accepted(), "{out:?}");
    let r = &sink.wait_requests(1, WAIT).await[0];
    assert_eq!(r.query(), "wait=true");
    let v = r.json();
    assert!(units(s(&v, "/content")) <= 2000);
    assert!(s(&v, "/content").contains("+4 more"));
    let embeds = v["embeds"].as_array().expect("embeds");
    assert_eq!(embeds.len(), 10);
    let mut total = 0;
    for e in embeds {
        let t = units(s(e, "/title"));
        let d = units(s(e, "/description"));
        let f = units(s(e, "/footer/text"));
        assert!(t <= 256 && d <= 4096);
        total += t + d + f;
    }
    assert!(total <= 6000, "{total}");
}

#[tokio::test]
async fn log_channel_accepts() {
    let ch = prepare(
        &ChannelSpec {
            name: "journal".into(),
            kind: ChannelKind::Log,
        },
        &no_env,
    )
    .expect("log");
    assert_eq!(ch.max_per_message(), usize::MAX);
    let batch = [
        note(Severity::Critical, Status::Firing, "a"),
        note(Severity::Warning, Status::Firing, "b"),
        note(Severity::Info, Status::Resolved, "c"),
    ];
    let out = deliverer().send(&ch, &batch).await;
    assert!(
        matches!(out, Outcome::Accepted { code: None, .. }),
        "{out:?}"
    );
    // Nothing to send is not a failure.
    assert!(deliverer().send(&ch, &[]).await.is_accepted());
}

// ------------------------------------------------------------------------------------------
// Email

fn email_spec(sink: &SmtpSink) -> EmailSpec {
    EmailSpec {
        smtp: Some(sink.host_port()),
        tls: Tls::None,
        from: Some("Metasystem <alerts@example.com>".into()),
        to: vec![
            "ops@example.com".into(),
            "Oncall <oncall@example.org>".into(),
        ],
        username: None,
        password_env: None,
    }
}

fn email_channel(spec: EmailSpec, env: &dyn Fn(&str) -> Option<String>) -> Channel {
    prepare(
        &ChannelSpec {
            name: "mail".into(),
            kind: ChannelKind::Email(spec),
        },
        env,
    )
    .expect("complete email spec")
}

#[tokio::test]
async fn email_over_smtp() {
    let sink = SmtpSink::start().await;
    let ch = email_channel(email_spec(&sink), &no_env);
    assert_eq!(ch.type_name(), "email");
    assert_eq!(ch.max_per_message(), 50);
    let mut a = note(Severity::Critical, Status::Firing, "disk full");
    a.labels.insert("mount".into(), "/data".into());
    let b = note(Severity::Warning, Status::Resolved, "disk slow");
    let out = bounded(deliverer().send(&ch, &[a.clone(), b.clone()])).await;
    match &out {
        Outcome::Accepted { code, answer } => {
            assert_eq!(*code, Some(250));
            assert!(answer.starts_with("250 "), "{answer}");
            assert!(answer.contains("queued"), "{answer}");
        }
        other => panic!("{other:?}"),
    }

    // One message per batch, in an envelope per recipient (a refused one fails alone).
    let mails = sink.wait_mails(2, WAIT).await;
    assert_eq!(mails.len(), 2, "one envelope per recipient");
    assert_eq!(mails[0].to, ["ops@example.com"]);
    assert_eq!(mails[1].to, ["oncall@example.org"]);
    assert_eq!(mails[0].body(), mails[1].body());
    assert_eq!(mails[0].header("Message-ID"), mails[1].header("Message-ID"));
    let m = &mails[0];
    assert_eq!(m.helo, "testhost");
    assert_eq!(m.from, "alerts@example.com");
    assert_eq!(m.auth, None);
    assert_eq!(
        m.header("From").as_deref(),
        Some("Metasystem <alerts@example.com>")
    );
    let to = m.header("To").expect("To");
    assert!(
        to.contains("ops@example.com") && to.contains("Oncall <oncall@example.org>"),
        "{to}"
    );
    assert_eq!(
        m.header("Subject").as_deref(),
        Some("[metasystem] CRITICAL: disk full (+1 more)")
    );
    let date = m.header("Date").expect("Date");
    assert!(
        httpdate::parse_http_date(&date.replace("+0000", "GMT")).is_ok(),
        "{date}"
    );
    assert_eq!(
        m.header("X-Metasystem-Fingerprint").as_deref(),
        Some(a.fingerprint.as_str())
    );
    assert!(m.header("Message-ID").is_some());
    let ct = m.header("Content-Type").expect("Content-Type");
    assert!(
        ct.starts_with("text/plain") && ct.to_ascii_lowercase().contains("utf-8"),
        "{ct}"
    );
    let body = m.body();
    for needle in [
        "2 notification(s) from metasystem on testhost.",
        "Status:      firing",
        "Severity:    critical",
        "Title:       disk full",
        "Source:      root/sync/icloud",
        "Started:     2023-11-14T22:13:20Z",
        "Occurrences: 2",
        "Labels:      mount=/data",
        "details of disk full",
        "Status:      resolved",
        "Ended:       2023-11-14T22:14:50.500Z",
    ] {
        assert!(body.contains(needle), "{needle} in {body}");
    }
    assert!(body.contains(&format!("Fingerprint: {}", a.fingerprint)));
    assert!(body.contains(&format!("Fingerprint: {}", b.fingerprint)));
    // The session ended with QUIT.
    let quit_seen = {
        let mut seen = false;
        for _ in 0..100 {
            if sink.commands().iter().any(|c| c == "QUIT") {
                seen = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        seen
    };
    assert!(quit_seen, "{:?}", sink.commands());
}

#[tokio::test]
async fn email_dot_stuffing_and_long_lines_survive() {
    let sink = SmtpSink::start().await;
    let ch = email_channel(email_spec(&sink), &no_env);
    let mut n = note(Severity::Info, Status::Firing, "dots");
    n.body = ".leading dot\n..two dots\nend".into();
    let out = bounded(deliverer().send(&ch, &[n])).await;
    assert!(out.is_accepted(), "{out:?}");
    let m = &sink.wait_mails(1, WAIT).await[0];
    assert!(
        m.body().contains("\r\n.leading dot\r\n..two dots\r\nend"),
        "{}",
        m.body()
    );
}

#[tokio::test]
async fn email_auth_credentials() {
    let sink = SmtpSink::start().await;
    let mut spec = email_spec(&sink);
    spec.username = Some("bot@example.com".into());
    spec.password_env = Some("METASYSTEM_TEST_SMTP_PW".into());
    let env = |k: &str| (k == "METASYSTEM_TEST_SMTP_PW").then(|| "s3cret pässword".to_string());
    let ch = email_channel(spec.clone(), &env);
    assert!(!format!("{ch:?}").contains("s3cret"));
    let out =
        bounded(deliverer().send(&ch, &[note(Severity::Critical, Status::Firing, "x")])).await;
    assert!(out.is_accepted(), "{out:?}");
    let m = &sink.wait_mails(1, WAIT).await[0];
    assert_eq!(
        m.auth,
        Some(("bot@example.com".to_string(), "s3cret pässword".to_string()))
    );
    assert!(sink.commands().iter().any(|c| c.starts_with("AUTH PLAIN")));

    // A server offering only LOGIN.
    let login = SmtpSink::start_with(SmtpScript {
        auth_mechanisms: "LOGIN".into(),
        ..SmtpScript::default()
    })
    .await;
    spec.smtp = Some(login.host_port());
    let ch = email_channel(spec, &env);
    let out =
        bounded(deliverer().send(&ch, &[note(Severity::Critical, Status::Firing, "x")])).await;
    assert!(out.is_accepted(), "{out:?}");
    let m = &login.wait_mails(1, WAIT).await[0];
    assert_eq!(
        m.auth,
        Some(("bot@example.com".to_string(), "s3cret pässword".to_string()))
    );
    assert!(login.commands().iter().any(|c| c.starts_with("AUTH LOGIN")));

    // Rejected credentials: permanent.
    let strict = SmtpSink::start_with(SmtpScript {
        auth_reply: Some((535, "5.7.8 authentication failed".into())),
        ..SmtpScript::default()
    })
    .await;
    let mut spec = email_spec(&strict);
    spec.username = Some("bot".into());
    spec.password_env = Some("METASYSTEM_TEST_SMTP_PW".into());
    let ch = email_channel(spec, &env);
    let out =
        bounded(deliverer().send(&ch, &[note(Severity::Critical, Status::Firing, "x")])).await;
    assert!(
        matches!(
            out,
            Outcome::Permanent {
                code: Some(535),
                ..
            }
        ),
        "{out:?}"
    );
    assert!(strict.mails().is_empty());
}

#[tokio::test]
async fn smtp_replies_classify() {
    let batch = [note(Severity::Critical, Status::Firing, "x")];
    let d = deliverer();
    type Case = (fn(&mut SmtpScript), u16, bool);
    let cases: [Case; 4] = [
        (
            |s| s.mail_reply = Some((451, "4.3.0 try again later".into())),
            451,
            true,
        ),
        (
            |s| s.mail_reply = Some((550, "5.1.0 sender rejected".into())),
            550,
            false,
        ),
        (
            |s| s.data_reply = Some((452, "4.3.1 insufficient storage".into())),
            452,
            true,
        ),
        (
            |s| s.data_reply = Some((554, "5.6.0 message rejected".into())),
            554,
            false,
        ),
    ];
    for (script, code, transient) in cases {
        let sink = SmtpSink::start().await;
        sink.script(script);
        let ch = email_channel(email_spec(&sink), &no_env);
        let out = bounded(d.send(&ch, &batch)).await;
        match (&out, transient) {
            (Outcome::Transient { code: c, error, .. }, true)
            | (Outcome::Permanent { code: c, error }, false) => {
                assert_eq!(*c, Some(code), "{out:?}");
                assert!(error.contains(&code.to_string()), "{error}");
            }
            _ => panic!("{code}: {out:?}"),
        }
    }

    let sink = SmtpSink::start().await;
    sink.script(|s| s.rcpt_reply = Some((550, "5.1.1 no such user".into())));
    let ch = email_channel(email_spec(&sink), &no_env);
    let out = bounded(d.send(&ch, &batch)).await;
    assert!(out.is_permanent(), "{out:?}");
}

#[tokio::test]
async fn smtp_unreachable_is_transient() {
    let addr = refused_addr().await;
    let spec = EmailSpec {
        smtp: Some(addr.to_string()),
        tls: Tls::None,
        from: Some("a@example.com".into()),
        to: vec!["b@example.com".into()],
        username: None,
        password_env: None,
    };
    let ch = email_channel(spec, &no_env);
    let out = bounded(deliverer().send(&ch, &[note(Severity::Info, Status::Firing, "x")])).await;
    assert!(
        matches!(out, Outcome::Transient { code: None, .. }),
        "{out:?}"
    );
}

#[tokio::test]
async fn starttls_required_but_not_offered_fails_fast() {
    for offer in [false, true] {
        let sink = SmtpSink::start_with(SmtpScript {
            offer_starttls: offer,
            ..SmtpScript::default()
        })
        .await;
        let mut spec = email_spec(&sink);
        spec.tls = Tls::StartTls;
        spec.username = Some("bot".into());
        spec.password_env = Some("PW".into());
        let env = |k: &str| (k == "PW").then(|| "pw".to_string());
        let ch = email_channel(spec, &env);
        let started = std::time::Instant::now();
        let out =
            bounded(deliverer().send(&ch, &[note(Severity::Info, Status::Firing, "x")])).await;
        assert!(!out.is_accepted(), "{out:?}");
        match (&out, offer) {
            (Outcome::Transient { error, .. }, false) => {
                assert!(error.contains("STARTTLS"), "{error}")
            }
            (Outcome::Transient { code, .. }, true) => assert_eq!(*code, Some(454)),
            _ => panic!("{out:?}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        // Neither credentials nor the message went out in clear text.
        assert!(sink.mails().is_empty());
        assert!(
            !sink
                .commands()
                .iter()
                .any(|c| c.starts_with("AUTH") || c.starts_with("MAIL")),
            "{:?}",
            sink.commands()
        );
    }
}

#[tokio::test]
async fn implicit_tls_against_a_plain_server_fails_fast() {
    let sink = SmtpSink::start().await;
    let mut spec = email_spec(&sink);
    spec.tls = Tls::Tls;
    let ch = email_channel(spec, &no_env);
    let started = std::time::Instant::now();
    let out = bounded(deliverer().send(&ch, &[note(Severity::Info, Status::Firing, "x")])).await;
    assert!(out.is_transient(), "{out:?}");
    assert!(started.elapsed() < Duration::from_secs(15));
    assert!(sink.mails().is_empty());
}

// ------------------------------------------------------------------------------------------
// prepare

#[test]
fn prepare_names_what_is_missing() {
    let full = EmailSpec {
        smtp: Some("mail.example.com:587".into()),
        tls: Tls::StartTls,
        from: Some("alerts@example.com".into()),
        to: vec!["ops@example.com".into()],
        username: Some("bot".into()),
        password_env: Some("SMTP_PASSWORD".into()),
    };
    let env = |k: &str| (k == "SMTP_PASSWORD").then(|| "pw".to_string());
    let email = |f: &dyn Fn(&mut EmailSpec)| {
        let mut spec = full.clone();
        f(&mut spec);
        ChannelSpec {
            name: "ops".into(),
            kind: ChannelKind::Email(spec),
        }
    };
    let err = |spec: ChannelSpec, env: &dyn Fn(&str) -> Option<String>| {
        prepare(&spec, env)
            .expect_err("incomplete spec")
            .to_string()
    };
    assert!(prepare(&email(&|_| {}), &env).is_ok());

    assert_eq!(
        err(email(&|s| s.to.clear()), &env),
        "email channel `ops`: no `to`"
    );
    assert_eq!(
        err(email(&|s| s.from = None), &env),
        "email channel `ops`: no `from`"
    );
    assert_eq!(
        err(email(&|s| s.smtp = None), &env),
        "email channel `ops`: no `smtp`"
    );
    assert_eq!(
        err(email(&|_| {}), &no_env),
        "email channel `ops`: `password_env` SMTP_PASSWORD is not set"
    );
    assert_eq!(
        err(email(&|s| s.password_env = None), &env),
        "email channel `ops`: `username` without `password_env`"
    );
    assert_eq!(
        err(email(&|s| s.username = None), &env),
        "email channel `ops`: `password_env` without `username`"
    );
    let e = err(email(&|s| s.to.push("not an address".into())), &env);
    assert!(
        e.starts_with("email channel `ops`: `to` \"not an address\" is not an email address"),
        "{e}"
    );
    let e = err(email(&|s| s.from = Some("@@".into())), &env);
    assert!(e.starts_with("email channel `ops`: `from`"), "{e}");
    let e = err(
        email(&|s| s.smtp = Some("mail.example.com:smtp".into())),
        &env,
    );
    assert!(e.contains("is not host:port"), "{e}");
    assert!(!e.contains('\n'));

    for (kind, name) in [
        (webhook as fn(Option<String>) -> ChannelKind, "webhook"),
        (slack, "slack"),
        (discord, "discord"),
    ] {
        let spec = ChannelSpec {
            name: "hook".into(),
            kind: kind(None),
        };
        assert_eq!(
            err(spec, &no_env),
            format!("{name} channel `hook`: no `url`")
        );
        let spec = ChannelSpec {
            name: "hook".into(),
            kind: kind(Some("ftp://example.com/x".into())),
        };
        assert_eq!(
            err(spec, &no_env),
            format!("{name} channel `hook`: `url` is not an http(s) URL")
        );
    }
}

#[tokio::test]
async fn email_non_ascii_is_mime_encoded() {
    let sink = SmtpSink::start().await;
    let ch = email_channel(email_spec(&sink), &no_env);
    let mut a = note(Severity::Critical, Status::Firing, "disk fülł");
    a.body = "line one\nline two ünïcode".into();
    let out = bounded(deliverer().send(&ch, &[a])).await;
    assert!(out.is_accepted(), "{out:?}");
    let m = &sink.wait_mails(1, WAIT).await[0];
    let subject = m.header("Subject").expect("Subject");
    assert!(subject.starts_with("[metasystem] CRITICAL: "), "{subject}");
    assert!(
        subject.is_ascii() && subject.contains("=?utf-8?"),
        "{subject}"
    );
    assert_eq!(
        m.header("Content-Transfer-Encoding").as_deref(),
        Some("quoted-printable")
    );
    assert!(
        m.body().contains("Title:       disk f=C3=BCl=C5=82"),
        "{}",
        m.body()
    );
    assert!(m.data.is_ascii());
}

/// The label of each failed delivery, for the retry statistics: the HTTP status, the class of
/// a request that got none, the SMTP reply's class, or `connect`; kinds as the delivery
/// decided (retried or not). Accepted: none.
#[tokio::test]
async fn failures_carry_the_retry_statistics_labels() {
    use metasystem_actors::alerts::channel::failure;
    use metasystem_actors::retry::ErrorKind::{Permanent, Transient};
    let d = deliverer();
    let batch = [note(Severity::Critical, Status::Firing, "x")];
    let labelled = |(out, label): (Outcome, Option<String>)| {
        failure(&out, label).map(|(l, k)| (l, k, out.code()))
    };

    let sink = HttpSink::start().await;
    let ch = http_channel("hook", webhook, sink.url("/"));
    sink.push(Reply::new(503, "down"));
    sink.push(Reply::new(429, "slow down"));
    sink.push(Reply::new(400, "bad"));
    sink.push(Reply::new(200, "ok"));
    sink.push(Reply::hang_up());
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(labelled(bounded(d.send_labelled(&ch, &batch)).await));
    }
    assert_eq!(got[0], Some(("http_503".into(), Transient, Some(503))));
    assert_eq!(got[1], Some(("http_429".into(), Transient, Some(429))));
    assert_eq!(got[2], Some(("http_400".into(), Permanent, Some(400))));
    assert_eq!(got[3], None);
    match &got[4] {
        Some((label, Transient, None)) => assert!(label.starts_with("http_"), "{label}"),
        other => panic!("{other:?}"),
    }

    let refused = format!("http://{}/", refused_addr().await);
    let ch = http_channel("hook", webhook, refused);
    assert_eq!(
        labelled(bounded(d.send_labelled(&ch, &batch)).await),
        Some(("connect".into(), Transient, None))
    );

    for (reply, label, kind) in [
        ((451, "4.3.0 try again later"), "smtp_4xx", Transient),
        ((550, "5.1.0 sender rejected"), "smtp_5xx", Permanent),
    ] {
        let sink = SmtpSink::start().await;
        sink.script(|s| s.mail_reply = Some((reply.0, reply.1.into())));
        let ch = email_channel(email_spec(&sink), &no_env);
        assert_eq!(
            labelled(bounded(d.send_labelled(&ch, &batch)).await),
            Some((label.into(), kind, Some(reply.0)))
        );
    }
    let spec = EmailSpec {
        smtp: Some(refused_addr().await.to_string()),
        ..email_spec(&SmtpSink::start().await)
    };
    let ch = email_channel(spec, &no_env);
    assert_eq!(
        labelled(bounded(d.send_labelled(&ch, &batch)).await),
        Some(("connect".into(), Transient, None))
    );
}
