//! The alerts actor end to end: a real store on a temp file, the actor spawned directly, and
//! the loopback HTTP and SMTP sinks of `metasystem_actors::sinks` as the receivers. Also the
//! retry runs of the deliveries (one per batch, stored) and the adaptive first retry delay.
//!
//! Real clock with short settings (group_wait 200 ms, retries from 50 ms): the sinks and SQLite
//! do real I/O on other threads, and a paused clock auto-advances while the runtime waits for
//! them, firing the actor's store timeouts and retry timers at the wrong moments. Every wait
//! polls with a deadline.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::time::{Duration, SystemTime};

use metasystem_actors::alerts::actor::{AlertsActor, AlertsArgs, AlertsMessage, AlertsStatus};
use metasystem_actors::alerts::channel::{ChannelKind, ChannelSpec, EmailSpec, Tls};
use metasystem_actors::alerts::{
    fingerprint, Alert, Alerts, PerSeverity, Policy, Severity, Status,
};
use metasystem_actors::metrics::Metrics;
use metasystem_actors::retry::{self, ErrorKind, Outcome, RunSummary};
use metasystem_actors::sinks::{HttpSink, Reply, Request, SmtpSink};
use metasystem_actors::store::outbox::{self, OutboxRow};
use metasystem_actors::store::{unix_ms, Store};
use ractor::{Actor, ActorRef};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// No wait in these tests lasts longer than this.
const WAIT: Duration = Duration::from_secs(10);
const GROUP_WAIT: Duration = Duration::from_millis(200);
/// Long enough that a message that should not come would have come.
const QUIET: Duration = Duration::from_millis(600);

async fn bounded<T>(f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(30), f).await {
        Ok(v) => v,
        Err(_) => panic!("step took longer than 30s"),
    }
}

fn policy() -> Policy {
    Policy {
        dedup_window: Duration::from_secs(3600),
        after: PerSeverity {
            info: 1,
            warning: 1,
            critical: 1,
        },
        cooldown: PerSeverity {
            info: Duration::ZERO,
            warning: Duration::ZERO,
            critical: Duration::ZERO,
        },
        // Reminders follow the dedup window alone.
        repeat_interval: Duration::ZERO,
    }
}

fn webhook(name: &str, sink: &HttpSink) -> ChannelSpec {
    ChannelSpec {
        name: name.into(),
        kind: ChannelKind::Webhook {
            url: Some(sink.url("/hook")),
        },
    }
}

fn email(name: &str, sink: &SmtpSink) -> ChannelSpec {
    ChannelSpec {
        name: name.into(),
        kind: ChannelKind::Email(EmailSpec {
            smtp: Some(sink.host_port()),
            tls: Tls::None,
            from: Some("metasystem@example.org".into()),
            to: vec!["ops@example.org".into()],
            username: None,
            password_env: None,
        }),
    }
}

fn everywhere(names: &[&str]) -> PerSeverity<Vec<String>> {
    let all: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    PerSeverity {
        info: all.clone(),
        warning: all.clone(),
        critical: all,
    }
}

fn args(store: &Store, alerts: &Alerts, channels: Vec<ChannelSpec>) -> AlertsArgs {
    let names: Vec<&str> = channels.iter().map(|c| c.name.as_str()).collect();
    let routes = everywhere(&names);
    AlertsArgs {
        path: "root/alerts".into(),
        store: store.clone(),
        alerts: alerts.clone(),
        metrics: Metrics::new(store.clone()),
        policy: policy(),
        group_wait: GROUP_WAIT,
        routes,
        channels,
        retry_initial: Duration::from_millis(50),
        retry_max: Duration::from_millis(200),
        retry_adaptive: false,
        timeout: Duration::from_secs(3),
        hostname: "testhost".into(),
    }
}

struct Rig {
    _dir: tempfile::TempDir,
    store: Store,
    alerts: Alerts,
    actor: ActorRef<AlertsMessage>,
    join: JoinHandle<()>,
}

async fn open_store(dir: &tempfile::TempDir) -> Store {
    match Store::open(&dir.path().join("a.db"), Duration::from_secs(24 * 3600)).await {
        Ok((store, _)) => store,
        Err(e) => panic!("store did not open: {e}"),
    }
}

async fn spawn(args: AlertsArgs) -> (ActorRef<AlertsMessage>, JoinHandle<()>) {
    match Actor::spawn(None, AlertsActor, args).await {
        Ok(pair) => pair,
        Err(e) => panic!("alerts actor did not start: {e}"),
    }
}

impl Rig {
    async fn start(channels: Vec<ChannelSpec>) -> Rig {
        Rig::start_with(channels, |_| {}).await
    }

    async fn start_with(channels: Vec<ChannelSpec>, tune: impl FnOnce(&mut AlertsArgs)) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(&dir).await;
        let alerts = Alerts::new(store.clone());
        let mut a = args(&store, &alerts, channels);
        tune(&mut a);
        let (actor, join) = spawn(a).await;
        // As in a daemon whose tree has started.
        alerts.started();
        Rig {
            _dir: dir,
            store,
            alerts,
            actor,
            join,
        }
    }

    async fn status(&self) -> AlertsStatus {
        ractor::call!(self.actor, AlertsMessage::Status).unwrap()
    }

    async fn rows(&self) -> Vec<OutboxRow> {
        let mut rows = outbox::recent(self.store.reader(), 1000).await.unwrap();
        rows.reverse();
        rows
    }

    /// Polls the outbox until `pred` holds on its rows (oldest first), or panics.
    async fn rows_until(&self, what: &str, pred: impl Fn(&[OutboxRow]) -> bool) -> Vec<OutboxRow> {
        let deadline = Instant::now() + WAIT;
        loop {
            let rows = self.rows().await;
            if pred(&rows) {
                return rows;
            }
            if Instant::now() >= deadline {
                panic!("outbox never got to: {what}; rows: {rows:#?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn silence(&self, pattern: &str, until_ms: Option<i64>) -> Vec<(String, i64)> {
        let pattern = pattern.to_string();
        ractor::call!(self.actor, |reply| AlertsMessage::Silence {
            pattern,
            until_ms,
            reply
        })
        .unwrap()
        .unwrap()
    }

    async fn stop(self) -> (tempfile::TempDir, Store) {
        self.actor.stop(None);
        bounded(self.join).await.unwrap();
        (self._dir, self.store)
    }
}

fn warning(title: &str) -> Alert {
    Alert::new(Severity::Warning, title, "root/x").body(format!("details of {title}"))
}

fn critical(title: &str) -> Alert {
    Alert::new(Severity::Critical, title, "root/x").body(format!("details of {title}"))
}

/// Every `(fingerprint, status)` in the webhook requests, in order.
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

fn counts(pairs: &[(String, String)]) -> HashMap<(String, String), usize> {
    let mut out = HashMap::new();
    for p in pairs {
        *out.entry(p.clone()).or_default() += 1;
    }
    out
}

/// Waits for `n` requests, then checks no more came for a while.
async fn exactly(sink: &HttpSink, n: usize) -> Vec<Request> {
    let got = bounded(sink.wait_requests(n, WAIT)).await;
    assert_eq!(got.len(), n, "{:#?}", alerts_in(&got));
    tokio::time::sleep(QUIET).await;
    let got = sink.requests();
    assert_eq!(
        got.len(),
        n,
        "more than {n} requests: {:#?}",
        alerts_in(&got)
    );
    got
}

fn key(severity: Severity, title: &str) -> String {
    format!("{severity}:{title}")
}

#[tokio::test]
async fn an_alert_is_sent_at_its_nth_consecutive_occurrence_only() {
    let sink = HttpSink::start().await;
    let rig = Rig::start_with(vec![webhook("hook", &sink)], |a| a.policy.after.warning = 3).await;
    rig.alerts.raise(warning("disk low"));
    rig.alerts.raise(warning("disk low"));
    tokio::time::sleep(GROUP_WAIT + QUIET).await;
    assert!(
        sink.requests().is_empty(),
        "{:#?}",
        sink.requests().iter().map(|r| r.json()).collect::<Vec<_>>()
    );
    assert!(rig.rows().await.is_empty());
    assert_eq!(rig.status().await.pending_threshold, 2);

    rig.alerts.raise(warning("disk low"));
    let got = exactly(&sink, 1).await;
    assert_eq!(
        alerts_in(&got),
        vec![(
            fingerprint(&key(Severity::Warning, "disk low")),
            "firing".into()
        )]
    );
    let rows = rig
        .rows_until("sent", |r| r.len() == 1 && r[0].state == "sent")
        .await;
    assert_eq!(rows[0].notification.occurrences, 3);
    rig.stop().await;
}

/// Repeats within the interval are folded; at the interval a reminder carries them (sent
/// when it is due, whether or not the alert is raised again).
#[tokio::test]
async fn repeats_are_one_message_and_a_reminder_after_the_interval_folds_them() {
    let sink = HttpSink::start().await;
    let rig = Rig::start_with(vec![webhook("hook", &sink)], |a| {
        a.policy.dedup_window = Duration::from_millis(1500)
    })
    .await;
    let started = Instant::now();
    for _ in 0..10 {
        rig.alerts.raise(warning("flapping"));
    }
    exactly(&sink, 1).await;
    assert_eq!(rig.status().await.deduplicated, 9);
    // Still within the interval: folded, not sent.
    rig.alerts.raise(warning("flapping"));
    tokio::time::sleep(GROUP_WAIT * 2).await;
    assert_eq!(sink.requests().len(), 1);
    // At the interval, with nothing raising it again, the reminder.
    let got = exactly(&sink, 2).await;
    assert!(started.elapsed() >= Duration::from_millis(1500));
    let fp = fingerprint(&key(Severity::Warning, "flapping"));
    assert_eq!(alerts_in(&got[1..]), vec![(fp, "firing".to_string())]);
    let rows = rig
        .rows_until("both sent", |r| {
            r.len() == 2 && r.iter().all(|r| r.state == "sent")
        })
        .await;
    assert_eq!(rows[0].notification.occurrences, 1);
    // The reminder: the 10 repeats since the first message.
    assert_eq!(rows[1].notification.occurrences, 10);
    assert_eq!(
        rows[0].notification.starts_at_ms,
        rows[1].notification.starts_at_ms
    );
    rig.stop().await;
}

/// A condition that fails, resolves and fails again within the cooldown is a new episode:
/// notified at once (before, it was muted for the cooldown, and the receiver's last message
/// said "resolved" while it failed).
#[tokio::test]
async fn a_second_failure_soon_after_a_resolution_is_notified_at_once() {
    let sink = HttpSink::start().await;
    let rig = Rig::start_with(vec![webhook("hook", &sink)], |a| {
        a.policy.cooldown.warning = Duration::from_secs(3600)
    })
    .await;
    rig.alerts.raise(warning("link down"));
    bounded(sink.wait_requests(1, WAIT)).await;
    rig.alerts.clear(key(Severity::Warning, "link down"));
    bounded(sink.wait_requests(2, WAIT)).await;
    rig.alerts.raise(warning("link down"));
    bounded(sink.wait_requests(3, WAIT)).await;
    let got = exactly(&sink, 3).await;
    let fp = fingerprint(&key(Severity::Warning, "link down"));
    assert_eq!(
        alerts_in(&got),
        vec![
            (fp.clone(), "firing".into()),
            (fp.clone(), "resolved".into()),
            (fp, "firing".into())
        ]
    );
    rig.stop().await;
}

#[tokio::test]
async fn alerts_within_group_wait_go_out_as_one_alertmanager_v4_post() {
    let sink = HttpSink::start().await;
    let rig = Rig::start(vec![webhook("hook", &sink)]).await;
    let titles = ["disk low", "sync stalled", "battery low"];
    for t in titles {
        rig.alerts.raise(warning(t).label("zone", "home"));
    }
    let got = exactly(&sink, 1).await;
    let r = &got[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path(), "/hook");
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v = r.json();
    assert_eq!(v["version"], "4");
    assert_eq!(v["status"], "firing");
    assert_eq!(v["receiver"], "hook");
    assert_eq!(v["groupKey"], "{}:hook");
    assert_eq!(v["truncatedAlerts"], 0);
    assert_eq!(v["commonLabels"]["severity"], "warning");
    assert_eq!(v["commonLabels"]["zone"], "home");
    assert_eq!(v["commonLabels"]["instance"], "testhost");
    let alerts = v["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 3);
    for (a, t) in alerts.iter().zip(titles) {
        assert_eq!(a["status"], "firing");
        assert_eq!(a["labels"]["alertname"], t);
        assert_eq!(a["labels"]["source"], "root/x");
        assert_eq!(a["annotations"]["summary"], t);
        assert_eq!(a["annotations"]["description"], format!("details of {t}"));
        assert_eq!(a["fingerprint"], fingerprint(&key(Severity::Warning, t)));
        assert_eq!(a["endsAt"], "0001-01-01T00:00:00Z");
        assert!(a["startsAt"].as_str().unwrap().ends_with('Z'), "{a}");
    }
    // One attempt recorded for the three rows.
    let rows = rig
        .rows_until("sent", |r| {
            r.len() == 3 && r.iter().all(|r| r.state == "sent")
        })
        .await;
    let ids: Vec<i64> = rows.iter().map(|r| r.notification.id).collect();
    let attempts = outbox::attempts(rig.store.reader(), &ids).await.unwrap();
    assert_eq!(attempts.len(), 3);
    assert!(attempts
        .iter()
        .all(|a| a.outcome == "accepted" && a.code == Some(200)));
    rig.stop().await;
}

#[tokio::test]
async fn a_resolution_is_sent_at_once_not_after_group_wait() {
    let sink = HttpSink::start().await;
    let wait = Duration::from_millis(1500);
    let rig = Rig::start_with(vec![webhook("hook", &sink)], |a| a.group_wait = wait).await;
    let raised = Instant::now();
    rig.alerts.raise(critical("disk full"));
    bounded(sink.wait_requests(1, WAIT)).await;
    assert!(
        raised.elapsed() >= wait,
        "the firing one waits for its group"
    );
    let cleared = Instant::now();
    rig.alerts.clear(key(Severity::Critical, "disk full"));
    let got = bounded(sink.wait_requests(2, WAIT)).await;
    let took = cleared.elapsed();
    assert!(took < wait, "the resolution took {took:?}");
    let v = got[1].json();
    assert_eq!(v["status"], "resolved");
    assert_eq!(v["alerts"][0]["status"], "resolved");
    assert_ne!(v["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(
        v["alerts"][0]["startsAt"],
        got[0].json()["alerts"][0]["startsAt"]
    );
    rig.stop().await;
}

#[tokio::test]
async fn silenced_keys_are_not_sent_until_unsilenced_but_resolutions_are() {
    let sink = HttpSink::start().await;
    let rig = Rig::start(vec![webhook("hook", &sink)]).await;
    let hour_later = unix_ms(SystemTime::now()) + 3_600_000;
    let noisy = key(Severity::Warning, "noisy");
    let active = rig.silence(&noisy, Some(hour_later)).await;
    assert_eq!(active, vec![(noisy.clone(), hour_later)]);
    rig.alerts.raise(warning("noisy"));
    tokio::time::sleep(GROUP_WAIT + QUIET).await;
    assert!(sink.requests().is_empty());
    assert_eq!(rig.status().await.silenced, 1);
    // Stored: a restarted actor keeps it.
    let stored = outbox::silences(rig.store.reader(), unix_ms(SystemTime::now()))
        .await
        .unwrap();
    assert_eq!(stored, vec![(noisy.clone(), hour_later)]);

    assert!(rig.silence(&noisy, None).await.is_empty());
    rig.alerts.raise(warning("noisy"));
    let got = exactly(&sink, 1).await;
    assert_eq!(
        alerts_in(&got),
        vec![(fingerprint(&noisy), "firing".into())]
    );

    // Silenced after it was sent: its resolution still goes out (a glob this time).
    rig.silence("warning:*", Some(hour_later)).await;
    rig.alerts.clear(noisy.clone());
    let got = exactly(&sink, 2).await;
    assert_eq!(
        alerts_in(&got[1..]),
        vec![(fingerprint(&noisy), "resolved".into())]
    );
    rig.stop().await;
}

#[tokio::test]
async fn severities_route_to_their_channels() {
    let pager = HttpSink::start().await;
    let chat = HttpSink::start().await;
    let rig = Rig::start_with(
        vec![webhook("pager", &pager), webhook("chat", &chat)],
        |a| {
            a.routes = PerSeverity {
                info: vec!["chat".into()],
                warning: vec!["chat".into()],
                critical: vec!["pager".into(), "chat".into()],
            }
        },
    )
    .await;
    rig.alerts.raise(warning("slow"));
    rig.alerts.raise(critical("down"));
    let to_chat = exactly(&chat, 1).await;
    let to_pager = exactly(&pager, 1).await;
    let mut chat_got = alerts_in(&to_chat);
    chat_got.sort();
    let mut expected = vec![
        (
            fingerprint(&key(Severity::Warning, "slow")),
            "firing".to_string(),
        ),
        (
            fingerprint(&key(Severity::Critical, "down")),
            "firing".to_string(),
        ),
    ];
    expected.sort();
    assert_eq!(chat_got, expected);
    assert_eq!(
        alerts_in(&to_pager),
        vec![(
            fingerprint(&key(Severity::Critical, "down")),
            "firing".into()
        )]
    );
    rig.stop().await;
}

#[tokio::test]
async fn an_incomplete_channel_is_skipped_and_the_others_deliver() {
    let sink = HttpSink::start().await;
    let smtp = SmtpSink::start().await;
    let mut mail = email("mail", &smtp);
    if let ChannelKind::Email(e) = &mut mail.kind {
        e.username = Some("ops".into());
        e.password_env = Some("METASYSTEM_TEST_UNSET_PASSWORD_VARIABLE".into());
    }
    let rig = Rig::start(vec![mail, webhook("hook", &sink)]).await;
    let status = rig.status().await;
    let skipped = status.channels.iter().find(|c| c.name == "mail").unwrap();
    assert!(
        skipped
            .skipped
            .as_deref()
            .is_some_and(|why| why.contains("METASYSTEM_TEST_UNSET_PASSWORD_VARIABLE")),
        "{skipped:?}"
    );
    rig.alerts.raise(critical("down"));
    exactly(&sink, 1).await;
    let rows = rig
        .rows_until("done", |r| {
            r.len() == 2 && r.iter().all(|r| r.state != "pending")
        })
        .await;
    let state: BTreeMap<&str, &str> = rows
        .iter()
        .map(|r| (r.channel.as_str(), r.state.as_str()))
        .collect();
    assert_eq!(
        state,
        BTreeMap::from([("hook", "sent"), ("mail", "skipped")])
    );
    let mail_row = rows.iter().find(|r| r.channel == "mail").unwrap();
    assert!(mail_row
        .last_error
        .as_deref()
        .is_some_and(|e| e.contains("password_env")));
    assert_eq!(smtp.sessions(), 0);
    rig.stop().await;
}

#[tokio::test]
async fn a_receiver_down_then_up_gets_each_alert_exactly_once() {
    let sink = HttpSink::start().await;
    const FAILURES: usize = 4;
    for _ in 0..FAILURES {
        sink.push(Reply::new(503, "down for maintenance"));
    }
    let rig = Rig::start(vec![webhook("hook", &sink)]).await;
    let titles = ["a", "b", "c", "d", "e"];
    for t in titles {
        rig.alerts.raise(critical(t));
    }
    let rows = rig
        .rows_until("all sent", |r| {
            r.len() == titles.len() && r.iter().all(|r| r.state == "sent")
        })
        .await;
    tokio::time::sleep(QUIET).await;
    let got = sink.requests();
    assert!(got.len() > FAILURES, "{} requests", got.len());
    // The ones answered 200: every alert once.
    let accepted = alerts_in(&got[FAILURES..]);
    let per = counts(&accepted);
    assert_eq!(per.len(), titles.len(), "{accepted:?}");
    assert!(per.values().all(|n| *n == 1), "{per:?}");
    for t in titles {
        assert!(per.contains_key(&(fingerprint(&key(Severity::Critical, t)), "firing".into())));
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.notification.id).collect();
    let attempts = outbox::attempts(rig.store.reader(), &ids).await.unwrap();
    for row in &rows {
        let mine: Vec<_> = attempts
            .iter()
            .filter(|a| a.outbox_id == row.notification.id)
            .collect();
        assert_eq!(mine.len() as u32, row.attempts, "{row:?}");
        assert_eq!(mine.last().unwrap().outcome, "accepted");
        assert!(mine[..mine.len() - 1]
            .iter()
            .all(|a| a.outcome == "transient" && a.code == Some(503)));
    }
    let total: u32 = rows.iter().map(|r| r.attempts).sum();
    assert!(total as usize >= titles.len() + FAILURES, "{total}");
    let status = rig.status().await;
    assert_eq!(status.delivery_failures, FAILURES as u64);
    assert_eq!(status.channels[0].pending, 0);
    assert_eq!(status.channels[0].consecutive_failures, 0);
    rig.stop().await;
}

#[tokio::test]
async fn a_429_retry_after_is_honoured() {
    let sink = HttpSink::start().await;
    sink.push(Reply::new(429, "slow down").header("Retry-After", "1"));
    let rig = Rig::start(vec![webhook("hook", &sink)]).await;
    rig.alerts.raise(critical("down"));
    let first = bounded(sink.wait_requests(1, WAIT)).await;
    let seen = Instant::now();
    assert_eq!(first.len(), 1);
    let got = bounded(sink.wait_requests(2, WAIT)).await;
    assert_eq!(got.len(), 2);
    assert!(
        seen.elapsed() >= Duration::from_millis(900),
        "{:?}",
        seen.elapsed()
    );
    let rows = rig
        .rows_until("sent", |r| r.len() == 1 && r[0].state == "sent")
        .await;
    let attempts = outbox::attempts(rig.store.reader(), &[rows[0].notification.id])
        .await
        .unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(
        (attempts[0].outcome.as_str(), attempts[0].code),
        ("transient", Some(429))
    );
    assert!(
        attempts[1].at_ms - attempts[0].at_ms >= 1000,
        "retried after {} ms",
        attempts[1].at_ms - attempts[0].at_ms
    );
    rig.stop().await;
}

#[tokio::test]
async fn a_permanent_refusal_ends_failed_without_retries() {
    let sink = HttpSink::start().await;
    sink.set_default(Reply::new(400, "bad payload"));
    let rig = Rig::start(vec![webhook("hook", &sink)]).await;
    rig.alerts.raise(critical("down"));
    exactly(&sink, 1).await;
    let rows = rig
        .rows_until("failed", |r| r.len() == 1 && r[0].state == "failed")
        .await;
    assert_eq!(rows[0].attempts, 1);
    assert!(rows[0]
        .last_error
        .as_deref()
        .is_some_and(|e| e.contains("400")));
    assert!(rows[0].done_ms.is_some());
    rig.stop().await;
}

#[tokio::test]
async fn a_restarted_actor_delivers_what_was_pending_and_resolves_what_was_firing() {
    let sink = HttpSink::start().await;
    let rig = Rig::start(vec![webhook("hook", &sink)]).await;
    let store_args =
        |store: &Store, alerts: &Alerts| args(store, alerts, vec![webhook("hook", &sink)]);
    // Notified by the first incarnation.
    rig.alerts.raise(critical("old"));
    exactly(&sink, 1).await;
    rig.rows_until("sent", |r| r.len() == 1 && r[0].state == "sent")
        .await;
    // Then the receiver goes down: these stay pending.
    sink.set_default(Reply::new(503, "down"));
    rig.alerts.raise(critical("new1"));
    rig.alerts.raise(critical("new2"));
    bounded(sink.wait_requests(3, WAIT)).await;
    let alerts = rig.alerts.clone();
    let (dir, store) = rig.stop().await;
    // Whatever delivery was in flight has been answered (503) before the receiver comes back.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let pending = outbox::pending(store.reader()).await.unwrap();
    assert_eq!(pending.len(), 2, "{pending:#?}");
    let before = sink.requests().len();
    sink.set_default(Reply::new(200, "ok"));

    let (actor, join) = spawn(store_args(&store, &alerts)).await;
    let got = bounded(sink.wait_requests(before + 1, WAIT)).await;
    let resumed = counts(&alerts_in(&got[before..]));
    for t in ["new1", "new2"] {
        assert_eq!(
            resumed.get(&(fingerprint(&key(Severity::Critical, t)), "firing".into())),
            Some(&1),
            "{resumed:?}"
        );
    }
    // A repeat of the old one is deduplicated; its clear sends the resolution.
    tokio::time::sleep(QUIET).await;
    let n = sink.requests().len();
    alerts.raise(critical("old"));
    alerts.clear(key(Severity::Critical, "old"));
    let got = exactly(&sink, n + 1).await;
    let old_fp = fingerprint(&key(Severity::Critical, "old"));
    assert_eq!(
        alerts_in(&got[n..]),
        vec![(old_fp.clone(), "resolved".into())]
    );
    assert_eq!(
        got[n].json()["alerts"][0]["startsAt"],
        got[0].json()["alerts"][0]["startsAt"]
    );
    let all = counts(&alerts_in(&got[before..]));
    assert!(all.values().all(|n| *n == 1), "{all:?}");
    actor.stop(None);
    bounded(join).await.unwrap();
    assert!(outbox::pending(store.reader()).await.unwrap().is_empty());
    drop(dir);
}

#[tokio::test]
async fn email_goes_to_the_smtp_relay() {
    let smtp = SmtpSink::start().await;
    let rig = Rig::start(vec![email("mail", &smtp)]).await;
    rig.alerts.raise(critical("disk full").label("mount", "/"));
    let mails = bounded(smtp.wait_mails(1, WAIT)).await;
    assert_eq!(mails.len(), 1);
    let m = &mails[0];
    assert_eq!(m.from, "metasystem@example.org");
    assert_eq!(m.to, vec!["ops@example.org".to_string()]);
    assert_eq!(
        m.header("Subject").as_deref(),
        Some("[metasystem] CRITICAL: disk full")
    );
    assert!(m.header("From").unwrap().contains("metasystem@example.org"));
    assert!(m.header("To").unwrap().contains("ops@example.org"));
    assert_eq!(
        m.header("X-Metasystem-Fingerprint"),
        Some(fingerprint(&key(Severity::Critical, "disk full")))
    );
    assert!(m.body().contains("disk full"), "{}", m.body());
    rig.rows_until("sent", |r| r.len() == 1 && r[0].state == "sent")
        .await;
    rig.alerts.clear(key(Severity::Critical, "disk full"));
    let mails = bounded(smtp.wait_mails(2, WAIT)).await;
    assert_eq!(
        mails[1].header("Subject").as_deref(),
        Some("[metasystem] RESOLVED: disk full")
    );
    rig.stop().await;
}

#[tokio::test]
async fn a_test_message_answers_what_the_channel_said() {
    let sink = HttpSink::start().await;
    sink.push(Reply::new(200, "thanks"));
    let rig = Rig::start(vec![webhook("hook", &sink)]).await;
    let report = ractor::call!(rig.actor, |reply| AlertsMessage::Test {
        channel: "hook".into(),
        reply
    })
    .unwrap()
    .unwrap();
    assert_eq!(report.channel, "hook");
    assert_eq!(report.kind, "webhook");
    assert_eq!(report.outcome, "accepted");
    assert_eq!(report.code, Some(200));
    assert_eq!(report.detail, "thanks");
    let got = sink.requests();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].json()["alerts"][0]["fingerprint"],
        fingerprint("test:hook")
    );

    sink.push(Reply::new(503, "busy"));
    let report = ractor::call!(rig.actor, |reply| AlertsMessage::Test {
        channel: "hook".into(),
        reply
    })
    .unwrap()
    .unwrap();
    assert_eq!(
        (report.outcome.as_str(), report.code),
        ("transient", Some(503))
    );

    let unknown = ractor::call!(rig.actor, |reply| AlertsMessage::Test {
        channel: "nope".into(),
        reply
    })
    .unwrap();
    assert!(unknown.is_err_and(|e| matches!(
        e,
        metasystem_actors::alerts::actor::TestError::NoSuchChannel(ref m) if m.contains("hook")
    )));
    // A test is not an alert: nothing in the outbox.
    assert!(rig.rows().await.is_empty());
    rig.stop().await;
}

/// Regression: a condition that cleared while its firing notification still waited in its
/// group had its resolution sent at once and the firing one after it, so the receiver was left
/// believing it was firing.
#[tokio::test]
async fn a_resolution_never_overtakes_the_firing_notification_still_in_its_group() {
    let sink = HttpSink::start().await;
    let rig = Rig::start_with(vec![webhook("hook", &sink)], |a| {
        a.group_wait = Duration::from_millis(1500)
    })
    .await;
    rig.alerts.raise(critical("blip"));
    rig.alerts.raise(critical("other"));
    rig.alerts.clear(key(Severity::Critical, "blip"));
    // The firing still in its group is superseded by the resolution, and the resolution of
    // an episode the receiver never heard of is not sent either (as Alertmanager does not).
    let rows = rig
        .rows_until("all settled", |r| {
            r.len() == 3 && r.iter().all(|r| r.state != "pending")
        })
        .await;
    let states: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r.notification.status.as_str(), r.state.as_str()))
        .collect();
    assert!(states.contains(&("firing", "skipped")), "{states:?}");
    assert!(states.contains(&("resolved", "skipped")), "{states:?}");
    tokio::time::sleep(QUIET).await;
    let got = sink.requests();
    let blip = fingerprint(&key(Severity::Critical, "blip"));
    let order: Vec<String> = alerts_in(&got)
        .into_iter()
        .filter(|(fp, _)| *fp == blip)
        .map(|(_, status)| status)
        .collect();
    assert!(order.is_empty(), "{order:?}");
    let other = fingerprint(&key(Severity::Critical, "other"));
    assert_eq!(
        alerts_in(&got)
            .iter()
            .filter(|(fp, _)| *fp == other)
            .count(),
        1
    );
    rig.stop().await;
}

/// Regression: a delivered row left memory before its `sent` record committed; when that
/// record took longer than the actor waits for the store (another writer held the database),
/// the next resync found the row still pending and sent it again.
#[tokio::test]
async fn a_delivery_whose_record_is_late_is_not_sent_again_by_the_resync() {
    use sqlx::{Connection, Executor};
    let sink = HttpSink::start().await;
    sink.push(Reply::new(200, "ok").delay(Duration::from_millis(500)));
    let rig = Rig::start(vec![webhook("hook", &sink)]).await;
    rig.alerts.raise(critical("late record"));
    bounded(sink.wait_requests(1, WAIT)).await;
    // While the answer is on its way, another writer takes the database for longer than the
    // actor waits for its record (5 s).
    let db = rig._dir.path().join("a.db");
    let mut other = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    other.execute("BEGIN EXCLUSIVE").await.unwrap();
    tokio::time::sleep(Duration::from_millis(6500)).await;
    let pending = outbox::pending(rig.store.reader()).await.unwrap();
    assert_eq!(
        pending.len(),
        1,
        "the record should still be waiting: {pending:#?}"
    );
    rig.actor.cast(AlertsMessage::Resync).unwrap();
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        sink.requests().len(),
        1,
        "sent again: {:#?}",
        alerts_in(&sink.requests())
    );
    other.execute("ROLLBACK").await.unwrap();
    rig.rows_until("sent", |r| r.len() == 1 && r[0].state == "sent")
        .await;
    rig.actor.cast(AlertsMessage::Resync).unwrap();
    exactly(&sink, 1).await;
    rig.stop().await;
}

/// The runs of `op` in the store, polled until there are `n` (the recorder writes them from a
/// task of its own).
async fn runs_of(store: &Store, op: &str, n: usize) -> Vec<RunSummary> {
    let deadline = Instant::now() + WAIT;
    loop {
        let runs = retry::load(store.reader(), Some(op), 0, 1000)
            .await
            .unwrap();
        if runs.len() >= n {
            return runs;
        }
        if Instant::now() >= deadline {
            panic!("{} run(s) of {op} recorded, not {n}: {runs:#?}", runs.len());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_delivery_that_failed_twice_is_recorded_as_one_run_of_three_attempts() {
    let sink = HttpSink::start().await;
    sink.push(Reply::new(503, "down for maintenance"));
    sink.push(Reply::new(503, "down for maintenance"));
    let rig = Rig::start(vec![webhook("hook", &sink)]).await;
    rig.alerts.raise(critical("down"));
    rig.rows_until("sent", |r| r.len() == 1 && r[0].state == "sent")
        .await;
    // The delivery itself is as before: three attempts, the last accepted.
    let rows = rig.rows().await;
    assert_eq!(rows[0].attempts, 3);
    assert_eq!(sink.requests().len(), 3);

    let runs = runs_of(&rig.store, "alert:hook", 1).await;
    tokio::time::sleep(QUIET).await;
    let runs_now = runs_of(&rig.store, "alert:hook", 1).await;
    assert_eq!(runs_now, runs, "one run, recorded once");
    let run = &runs[0];
    assert_eq!(run.op, "alert:hook");
    assert_eq!(run.attempts, 3);
    assert_eq!(run.outcome, Outcome::Success);
    assert_eq!(
        run.errors,
        vec![
            ("http_503".to_string(), ErrorKind::Transient),
            ("http_503".to_string(), ErrorKind::Transient)
        ]
    );
    let recovered = run.recovered_after.expect("a recovery time");
    assert!(
        recovered > Duration::ZERO && recovered <= run.took,
        "{recovered:?} of {:?}",
        run.took
    );
    assert!(run.started_ms <= rows[0].done_ms.unwrap(), "{run:?}");

    // A batch refused for good is a run of its own, permanent, with the status's label.
    sink.set_default(Reply::new(400, "bad payload"));
    rig.alerts.raise(critical("refused"));
    let runs = runs_of(&rig.store, "alert:hook", 2).await;
    let run = &runs[1];
    assert_eq!((run.attempts, run.outcome), (1, Outcome::Permanent));
    assert_eq!(
        run.errors,
        vec![("http_400".to_string(), ErrorKind::Permanent)]
    );
    assert_eq!(run.recovered_after, None);

    // Each run is a `retry_run` sample of the channel's operation (ok: it succeeded).
    rig.store.flush(Some(WAIT)).await.unwrap();
    let samples: Vec<(Option<bool>,)> = sqlx::query_as(
        "SELECT ok FROM samples WHERE name = 'retry_run' AND subject = 'alert:hook' ORDER BY id",
    )
    .fetch_all(rig.store.reader())
    .await
    .unwrap();
    assert_eq!(samples, vec![(Some(true),), (Some(false),)]);
    // Not adaptive: the first retry delay stays as configured.
    assert_eq!(rig.status().await.channels[0].retry_initial_ms, 50);
    rig.stop().await;
}

#[tokio::test]
async fn an_adaptive_channel_starts_its_retries_at_its_median_recovery() {
    let sink = HttpSink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir).await;
    // A week of runs of the channel: six recovered after 2 s (median), one never failed.
    let now = unix_ms(SystemTime::now());
    for i in 0..7 {
        let recovered = i < 6;
        let summary = RunSummary {
            op: "alert:hook".into(),
            started_ms: now - 3_600_000 + i,
            attempts: if recovered { 2 } else { 1 },
            outcome: Outcome::Success,
            errors: if recovered {
                vec![("http_503".into(), ErrorKind::Transient)]
            } else {
                vec![]
            },
            recovered_after: recovered.then(|| Duration::from_secs(2)),
            took: Duration::from_secs(2),
            rejected: None,
        };
        retry::record(&store, &summary).await.unwrap().unwrap();
    }
    let alerts = Alerts::new(store.clone());
    let mut a = args(&store, &alerts, vec![webhook("hook", &sink)]);
    a.retry_adaptive = true;
    a.retry_max = Duration::from_secs(60);
    let (actor, join) = spawn(a).await;
    let status: AlertsStatus = ractor::call!(actor, AlertsMessage::Status).unwrap();
    assert_eq!(status.channels[0].retry_initial_ms, 2000);
    actor.stop(None);
    bounded(join).await.unwrap();

    // Within bounds: never above the channel's `max`.
    let mut a = args(&store, &alerts, vec![webhook("hook", &sink)]);
    a.retry_adaptive = true;
    a.retry_max = Duration::from_millis(500);
    let (actor, join) = spawn(a).await;
    let status: AlertsStatus = ractor::call!(actor, AlertsMessage::Status).unwrap();
    assert_eq!(status.channels[0].retry_initial_ms, 500);
    actor.stop(None);
    bounded(join).await.unwrap();
    drop(dir);
}

/// Alert state is derived from what is true, not remembered by the actor alone: a clear
/// while no alerts actor runs is not lost (the next incarnation resolves), and a condition
/// raised meanwhile fires when it starts.
#[tokio::test]
async fn what_changed_while_the_alerts_actor_was_down_reaches_the_receiver_when_it_starts() {
    let sink = HttpSink::start().await;
    let rig = Rig::start(vec![webhook("hook", &sink)]).await;
    rig.alerts.raise(critical("was failing"));
    exactly(&sink, 1).await;
    rig.rows_until("sent", |r| r.len() == 1 && r[0].state == "sent")
        .await;
    let alerts = rig.alerts.clone();
    let (dir, store) = rig.stop().await;
    // No actor runs: the condition ends, another begins.
    alerts.clear(key(Severity::Critical, "was failing"));
    alerts.raise(critical("began meanwhile"));
    let (actor, join) = spawn(args(&store, &alerts, vec![webhook("hook", &sink)])).await;
    let got = exactly(&sink, 3).await;
    let seen = alerts_in(&got[1..]);
    assert!(
        seen.contains(&(
            fingerprint(&key(Severity::Critical, "was failing")),
            "resolved".into()
        )),
        "{seen:?}"
    );
    assert!(
        seen.contains(&(
            fingerprint(&key(Severity::Critical, "began meanwhile")),
            "firing".into()
        )),
        "{seen:?}"
    );
    actor.stop(None);
    bounded(join).await.unwrap();
    drop(dir);
}

/// A daemon restart: a new handle (nothing true is known yet) on the same store. What the
/// receivers were told stands until the source of each alert has looked; then a firing alert
/// that is no longer true is resolved at once, and one whose source is gone is resolved
/// when the tree has started.
#[tokio::test]
async fn after_a_restart_firing_alerts_are_held_to_what_their_sources_say() {
    let sink = HttpSink::start().await;
    let rig = Rig::start(vec![webhook("hook", &sink)]).await;
    for t in ["probe:root/p:fail", "gave_up:root/gone"] {
        let mut a = critical(t);
        a.key = Some(t.to_string());
        rig.alerts.raise(a);
    }
    exactly(&sink, 1).await;
    rig.rows_until("sent", |r| {
        r.len() == 2 && r.iter().all(|r| r.state == "sent")
    })
    .await;
    let (dir, store) = rig.stop().await;

    // The restarted daemon: a fresh handle; the probe owns its scope and has not looked.
    let alerts = Alerts::new(store.clone());
    alerts.own("probe:root/p");
    let (actor, join) = spawn(args(&store, &alerts, vec![webhook("hook", &sink)])).await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        sink.requests().len(),
        1,
        "nothing is known yet: nothing sent"
    );
    alerts.started();
    let got = exactly(&sink, 2).await;
    assert_eq!(
        alerts_in(&got[1..]),
        vec![(fingerprint("gave_up:root/gone"), "resolved".into())]
    );
    // The probe's first check passes: it clears nothing (nothing raised) and tells.
    alerts.told("probe:root/p");
    let got = exactly(&sink, 3).await;
    assert_eq!(
        alerts_in(&got[2..]),
        vec![(fingerprint("probe:root/p:fail"), "resolved".into())]
    );
    actor.stop(None);
    bounded(join).await.unwrap();
    drop(dir);
}

/// A condition still failing when its silence ends is notified then, with no further
/// occurrence (a probe raises only when its status changes).
#[tokio::test]
async fn a_silence_that_ends_while_its_alert_still_fires_notifies_it() {
    let sink = HttpSink::start().await;
    let rig = Rig::start(vec![webhook("hook", &sink)]).await;
    let now = metasystem_actors::store::unix_ms(std::time::SystemTime::now());
    rig.silence("*disk*", Some(now + 1500)).await;
    rig.alerts.raise(warning("disk low"));
    tokio::time::sleep(GROUP_WAIT + QUIET).await;
    assert!(sink.requests().is_empty(), "silenced");
    let got = exactly(&sink, 1).await;
    assert_eq!(
        alerts_in(&got),
        vec![(
            fingerprint(&key(Severity::Warning, "disk low")),
            "firing".into()
        )]
    );
    // Lifting a silence by hand lets what it held through at once too.
    rig.silence("*battery*", Some(now + 3_600_000)).await;
    rig.alerts.raise(warning("battery low"));
    tokio::time::sleep(GROUP_WAIT + QUIET).await;
    assert_eq!(sink.requests().len(), 1);
    rig.silence("*battery*", None).await;
    let got = exactly(&sink, 2).await;
    assert_eq!(
        alerts_in(&got[1..]),
        vec![(
            fingerprint(&key(Severity::Warning, "battery low")),
            "firing".into()
        )]
    );
    rig.stop().await;
}

/// After an outage, a message carries each alert once at its latest state, and its top-level
/// status is resolved only when every alert in it is (Alertmanager's v4 webhook).
#[tokio::test]
async fn after_an_outage_a_message_carries_each_alerts_latest_state_once() {
    let sink = HttpSink::start().await;
    sink.set_default(Reply::new(503, "down"));
    let rig = Rig::start(vec![webhook("hook", &sink)]).await;
    let flap = key(Severity::Warning, "flapping");
    for _ in 0..3 {
        rig.alerts.raise(warning("flapping"));
        rig.alerts.clear(flap.clone());
    }
    rig.alerts.raise(warning("still down"));
    bounded(sink.wait_requests(2, WAIT)).await;
    let before = sink.requests().len();
    sink.set_default(Reply::new(200, "ok"));
    let rows = rig
        .rows_until("all settled", |r| {
            r.len() == 7 && r.iter().all(|r| r.state != "pending")
        })
        .await;
    // The requests the receiver accepted (after it came back).
    let got = sink.requests();
    assert!(got.len() > before);
    let mut last: HashMap<String, String> = HashMap::new();
    for r in &got[before..] {
        let v = r.json();
        let alerts = v["alerts"].as_array().unwrap();
        let mut fps: Vec<&str> = alerts
            .iter()
            .map(|a| a["fingerprint"].as_str().unwrap())
            .collect();
        let n = fps.len();
        fps.sort_unstable();
        fps.dedup();
        assert_eq!(fps.len(), n, "each alert once in a message: {v:#}");
        let any_firing = alerts.iter().any(|a| a["status"] == "firing");
        assert_eq!(
            v["status"],
            if any_firing { "firing" } else { "resolved" },
            "{v:#}"
        );
        for a in alerts {
            last.insert(
                a["fingerprint"].as_str().unwrap().to_string(),
                a["status"].as_str().unwrap().to_string(),
            );
        }
    }
    // Fired and resolved while the receiver was down, the last episode never sent: never
    // told as firing (at most the end of one it heard of).
    assert_ne!(
        last.get(&fingerprint(&flap)).map(String::as_str),
        Some("firing")
    );
    assert_eq!(
        last.get(&fingerprint(&key(Severity::Warning, "still down")))
            .map(String::as_str),
        Some("firing")
    );
    let superseded = rows.iter().filter(|r| r.state == "skipped").count();
    assert!(superseded >= 1, "{rows:#?}");
    rig.stop().await;
}

/// Regression (the attack): a condition that stays true with nothing raising it again (a
/// probe raises when its status changes) is reminded at its interval, same episode; once
/// resolved, the reminders stop.
#[tokio::test]
async fn a_long_firing_alert_is_reminded_without_new_occurrences() {
    let sink = HttpSink::start().await;
    let rig = Rig::start_with(vec![webhook("hook", &sink)], |a| {
        a.policy.dedup_window = Duration::from_millis(400);
    })
    .await;
    let k = key(Severity::Warning, "stays down");
    rig.alerts.raise(warning("stays down"));
    let got = bounded(sink.wait_requests(3, WAIT)).await;
    let words: Vec<(String, String)> = got
        .iter()
        .map(|r| {
            let v = r.json();
            (
                v["alerts"][0]["status"].as_str().unwrap().to_string(),
                v["alerts"][0]["episode"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(words.iter().all(|w| *w == words[0]), "{words:?}");
    assert_eq!(words[0].0, "firing");
    rig.alerts.clear(k.clone());
    let rows = rig
        .rows_until("resolved and sent", |r| {
            r.last()
                .is_some_and(|r| r.notification.status == Status::Resolved && r.state == "sent")
        })
        .await;
    let n = rows.len();
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(
        rig.rows().await.len(),
        n,
        "no reminder after the resolution"
    );
    rig.stop().await;
}

/// Regression (the attack): routes changed by a reload (the actor restarts with new args).
/// A channel taken off the route of a firing alert still gets its end; a channel added to
/// the route (or to the config) while it fires is told it fires.
#[tokio::test]
async fn after_a_route_change_every_channel_ends_with_the_truth() {
    let (a, b, c) = (
        HttpSink::start().await,
        HttpSink::start().await,
        HttpSink::start().await,
    );
    let rig = Rig::start(vec![webhook("a", &a), webhook("b", &b)]).await;
    let k = key(Severity::Warning, "disk");
    let fp = fingerprint(&k);
    rig.alerts.raise(warning("disk"));
    bounded(a.wait_requests(1, WAIT)).await;
    bounded(b.wait_requests(1, WAIT)).await;
    rig.rows_until("sent", |r| {
        r.len() == 2 && r.iter().all(|r| r.state == "sent")
    })
    .await;
    let alerts = rig.alerts.clone();
    let (dir, store) = rig.stop().await;
    // The reload: `a` off the route, `c` added; the condition still holds.
    let mut next = args(
        &store,
        &alerts,
        vec![webhook("a", &a), webhook("b", &b), webhook("c", &c)],
    );
    next.routes = everywhere(&["b", "c"]);
    let (actor, join) = spawn(next).await;
    let told_c = bounded(c.wait_requests(1, WAIT)).await;
    assert_eq!(last_word(&told_c)[&fp].0, "firing");
    assert_eq!(
        last_word(&told_c)[&fp].1,
        last_word(&b.requests())[&fp].1,
        "the same episode"
    );
    // It ends: every channel told it fires hears so, `a` too.
    alerts.clear(k.clone());
    for sink in [&a, &b, &c] {
        let got = bounded(sink.wait_requests(2, WAIT)).await;
        assert_eq!(last_word(&got)[&fp].0, "resolved");
    }
    actor.stop(None);
    bounded(join).await.unwrap();
    drop(dir);
}

/// The last (status, episode) each fingerprint was given in `requests`, in order.
fn last_word(requests: &[Request]) -> HashMap<String, (String, String)> {
    let mut last = HashMap::new();
    for r in requests {
        let v = r.json();
        for a in v["alerts"].as_array().into_iter().flatten() {
            last.insert(
                a["fingerprint"].as_str().unwrap_or_default().to_string(),
                (
                    a["status"].as_str().unwrap_or_default().to_string(),
                    a["episode"].as_str().unwrap_or_default().to_string(),
                ),
            );
        }
    }
    last
}

/// Regression (the attack): a receiver told an alert fires, then down while it resolved,
/// fired and resolved again. The later episode (never heard of) is not sent, and the end of
/// the one it heard of is: its last word is "resolved", for that episode.
#[tokio::test]
async fn a_flap_while_the_receiver_is_down_still_ends_what_it_was_told() {
    let sink = HttpSink::start().await;
    let rig = Rig::start(vec![webhook("hook", &sink)]).await;
    let flap = key(Severity::Warning, "flapping");
    rig.alerts.raise(warning("flapping"));
    let told = bounded(sink.wait_requests(1, WAIT)).await;
    let (status, episode) = last_word(&told)[&fingerprint(&flap)].clone();
    assert_eq!(status, "firing");
    rig.rows_until("sent", |r| r.len() == 1 && r[0].state == "sent")
        .await;
    sink.set_default(Reply::new(503, "down"));
    rig.alerts.clear(flap.clone());
    bounded(sink.wait_requests(2, WAIT)).await;
    // A later millisecond: another episode.
    tokio::time::sleep(Duration::from_millis(5)).await;
    rig.alerts.raise(warning("flapping"));
    rig.alerts.clear(flap.clone());
    sink.set_default(Reply::new(200, "ok"));
    let rows = rig
        .rows_until("all settled", |r| {
            r.len() == 4 && r.iter().all(|r| r.state != "pending")
        })
        .await;
    let last = last_word(&sink.requests())[&fingerprint(&flap)].clone();
    assert_eq!(last, ("resolved".to_string(), episode), "{rows:#?}");
    rig.stop().await;
}

/// A resolution is not sent to a receiver that refused the firing for good: it never heard
/// of the episode.
#[tokio::test]
async fn a_receiver_that_refused_the_firing_is_not_sent_its_end() {
    let sink = HttpSink::start().await;
    sink.set_default(Reply::new(400, "bad payload"));
    let rig = Rig::start(vec![webhook("hook", &sink)]).await;
    let k = key(Severity::Warning, "refused");
    rig.alerts.raise(warning("refused"));
    rig.rows_until("failed", |r| r.len() == 1 && r[0].state == "failed")
        .await;
    sink.set_default(Reply::new(200, "ok"));
    rig.alerts.clear(k);
    let rows = rig
        .rows_until("the resolution settled", |r| {
            r.len() == 2 && r[1].state != "pending"
        })
        .await;
    assert_eq!(rows[1].state, "skipped", "{rows:#?}");
    assert_eq!(sink.requests().len(), 1);
    rig.stop().await;
}

/// A firing whose delivery timed out may have reached the receiver: its resolution is sent.
#[tokio::test]
async fn a_firing_that_timed_out_is_still_ended() {
    let sink = HttpSink::start().await;
    sink.set_default(Reply::new(200, "ok").delay(Duration::from_millis(600)));
    let rig = Rig::start_with(vec![webhook("hook", &sink)], |a| {
        a.timeout = Duration::from_millis(300);
    })
    .await;
    let k = key(Severity::Warning, "slow");
    rig.alerts.raise(warning("slow"));
    rig.rows_until("a timed-out attempt", |r| {
        r.len() == 1 && r[0].attempts >= 1
    })
    .await;
    rig.alerts.clear(k.clone());
    sink.set_default(Reply::new(200, "ok"));
    rig.rows_until("all settled", |r| {
        r.len() == 2 && r.iter().all(|r| r.state != "pending")
    })
    .await;
    let last = last_word(&sink.requests())[&fingerprint(&k)].clone();
    assert_eq!(last.0, "resolved");
    rig.stop().await;
}

/// One refused recipient (550) does not fail the message for the others: each recipient
/// gets its own envelope; the notification is partially delivered (not failed), each
/// recipient's answer recorded in the store. Every envelope of one message has the same
/// Message-ID.
#[tokio::test]
async fn a_refused_recipient_does_not_block_the_others() {
    let smtp = SmtpSink::start().await;
    smtp.script(|s| s.refuse_rcpt = vec!["gone@example.org".into()]);
    let mut spec = email("mail", &smtp);
    if let ChannelKind::Email(e) = &mut spec.kind {
        e.to = vec![
            "ops@example.org".into(),
            "gone@example.org".into(),
            "oncall@example.org".into(),
        ];
    }
    let rig = Rig::start(vec![spec]).await;
    rig.alerts.raise(critical("disk full"));
    let mails = bounded(smtp.wait_mails(2, WAIT)).await;
    let mut to: Vec<String> = mails.iter().flat_map(|m| m.to.clone()).collect();
    to.sort();
    assert_eq!(to, vec!["oncall@example.org", "ops@example.org"]);
    assert_eq!(mails[0].header("Message-ID"), mails[1].header("Message-ID"));
    let rows = rig
        .rows_until("partial", |r| r.len() == 1 && r[0].state == "partial")
        .await;
    let id = rows[0].notification.id;
    let attempts = outbox::attempts(rig.store.reader(), &[id]).await.unwrap();
    let last = attempts.last().unwrap();
    assert_eq!(last.outcome, "partial");
    assert!(
        last.detail.starts_with("partially delivered") && last.detail.contains("gone@example.org"),
        "{last:?}"
    );
    let per: Vec<(String, String)> = outbox::recipients(rig.store.reader(), &[id])
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.recipient, r.state))
        .collect();
    assert_eq!(
        per,
        vec![
            ("gone@example.org".to_string(), "failed".to_string()),
            ("oncall@example.org".to_string(), "sent".to_string()),
            ("ops@example.org".to_string(), "sent".to_string()),
        ]
    );
    rig.stop().await;
}

/// A recipient that fails for a while (450) is retried alone: the recipients that took the
/// message are not sent it again, and once the last one takes it the notification is sent.
#[tokio::test]
async fn a_deferred_recipient_is_retried_alone() {
    let smtp = SmtpSink::start().await;
    smtp.script(|s| s.defer_rcpt = vec!["busy@example.org".into()]);
    let mut spec = email("mail", &smtp);
    if let ChannelKind::Email(e) = &mut spec.kind {
        e.to = vec!["ops@example.org".into(), "busy@example.org".into()];
    }
    let rig = Rig::start_with(vec![spec], |a| {
        a.retry_initial = Duration::from_millis(50);
        a.retry_max = Duration::from_millis(200);
    })
    .await;
    rig.alerts.raise(critical("disk full"));
    let first = bounded(smtp.wait_mails(1, WAIT)).await;
    assert_eq!(first[0].to, vec!["ops@example.org"]);
    let rows = rig
        .rows_until("a failed attempt", |r| r.len() == 1 && r[0].attempts >= 2)
        .await;
    assert_eq!(rows[0].state, "pending", "{rows:#?}");
    smtp.script(|s| s.defer_rcpt.clear());
    let rows = rig
        .rows_until("sent", |r| r.len() == 1 && r[0].state == "sent")
        .await;
    let mails = smtp.mails();
    let mut to: Vec<String> = mails.iter().flat_map(|m| m.to.clone()).collect();
    to.sort();
    assert_eq!(
        to,
        vec!["busy@example.org", "ops@example.org"],
        "{mails:#?}"
    );
    let per = outbox::recipients(rig.store.reader(), &[rows[0].notification.id])
        .await
        .unwrap();
    assert!(per.iter().all(|r| r.state == "sent"), "{per:#?}");
    rig.stop().await;
}

/// Regression (the attack): the end of an episode goes only to the recipients that took its
/// firing: not to one that refused it (550), nor to one that deferred it (450) until it
/// ended.
#[tokio::test]
async fn an_end_goes_only_to_the_recipients_that_took_the_firing() {
    let smtp = SmtpSink::start().await;
    smtp.script(|s| {
        s.refuse_rcpt = vec!["gone@example.org".into()];
        s.defer_rcpt = vec!["busy@example.org".into()];
    });
    let mut spec = email("mail", &smtp);
    if let ChannelKind::Email(e) = &mut spec.kind {
        e.to = vec![
            "ops@example.org".into(),
            "gone@example.org".into(),
            "busy@example.org".into(),
        ];
    }
    let rig = Rig::start_with(vec![spec], |a| {
        a.retry_initial = Duration::from_millis(50);
        a.retry_max = Duration::from_millis(200);
    })
    .await;
    rig.alerts.raise(critical("disk full"));
    bounded(smtp.wait_mails(1, WAIT)).await;
    rig.rows_until("a failed attempt for busy", |r| {
        r.len() == 1 && r[0].attempts >= 2
    })
    .await;
    // It ends while busy still defers: neither busy nor gone ever took the firing. Then both
    // would take mail again: nothing more is sent to them.
    rig.alerts.clear(key(Severity::Critical, "disk full"));
    rig.rows_until("all settled", |r| {
        r.len() == 2 && r.iter().all(|r| r.state != "pending")
    })
    .await;
    smtp.script(|s| {
        s.refuse_rcpt.clear();
        s.defer_rcpt.clear();
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mails = smtp.mails();
    let to: Vec<(String, String)> = mails
        .iter()
        .flat_map(|m| {
            let subject = m.header("Subject").unwrap_or_default().to_string();
            m.to.iter().map(move |t| (t.clone(), subject.clone()))
        })
        .collect();
    assert!(
        to.iter().all(|(t, _)| t == "ops@example.org"),
        "only ops took the firing: {to:#?}"
    );
    assert_eq!(to.len(), 2, "its firing and its end: {to:#?}");
    assert!(to[1].1.contains("RESOLVED"), "{to:#?}");
    rig.stop().await;
}

/// A receiver slower than the timeout: every attempt of one message carries the same
/// `Idempotency-Key` (and each alert its episode), and the retries back off from the time
/// the attempt took rather than follow at the timeout's pace.
#[tokio::test]
async fn a_slow_receiver_gets_repeats_it_can_drop() {
    let sink = HttpSink::start().await;
    sink.set_default(Reply::new(200, "ok").delay(Duration::from_millis(700)));
    let rig = Rig::start_with(vec![webhook("hook", &sink)], |a| {
        a.timeout = Duration::from_millis(300);
        a.retry_initial = Duration::from_millis(10);
        a.retry_max = Duration::from_secs(5);
    })
    .await;
    rig.alerts.raise(critical("slow"));
    let got = bounded(sink.wait_requests(3, WAIT)).await;
    let keys: Vec<Option<String>> = got
        .iter()
        .map(|r| r.header("idempotency-key").map(str::to_string))
        .collect();
    assert!(keys[0].is_some(), "{keys:?}");
    assert!(keys.iter().all(|k| *k == keys[0]), "{keys:?}");
    for r in &got {
        let v = r.json();
        assert_eq!(v["idempotencyKey"].as_str(), keys[0].as_deref());
        let a = &v["alerts"][0];
        assert_eq!(
            a["episode"].as_str().unwrap(),
            format!(
                "{}:{}",
                fingerprint(&key(Severity::Critical, "slow")),
                rig.rows().await[0].notification.starts_at_ms
            )
        );
    }
    // Backed off from the attempt's 300 ms: at least that between attempts, then twice it.
    let at: Vec<std::time::Instant> = got.iter().map(|r| r.at).collect();
    assert!(at[1] - at[0] >= Duration::from_millis(550), "{at:?}");
    assert!(at[2] - at[1] >= Duration::from_millis(850), "{at:?}");
    rig.stop().await;
}
