//! Metrics and alerts benchmarks (issue 7), on real SQLite files and a real loopback webhook.
//!
//! 1. ingestion: samples through the metrics actor (anomaly watch) into the file, with the
//!    hourly rollups; the peer, measured in the same run: the raw multi-row INSERT of the same
//!    rows into a bare table (no rollups, no actor);
//! 2. summaries over 1,000,000 stored samples (30 days, 20 series): a 24 h and a 30 d window;
//! 3. alerts through dedup to a loopback webhook: distinct alerts raised three times each,
//!    timed until every one has arrived (none lost, none twice).
//!
//! Run: `cargo bench -p metasystem-actors --bench metrics` (RUNS=5 by default).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the report

use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime};

use metasystem_actors::alerts::actor::{AlertsActor, AlertsArgs};
use metasystem_actors::alerts::channel::{ChannelKind, ChannelSpec};
use metasystem_actors::alerts::{Alert, Alerts, PerSeverity, Policy, Severity};
use metasystem_actors::metrics::anomaly::DetectorConfig;
use metasystem_actors::metrics::{Metric, Metrics, MetricsActor, MetricsArgs, Sample};
use metasystem_actors::sinks::HttpSink;
use metasystem_actors::store::{samples, unix_ms, Store};
use ractor::Actor;
use sqlx::{Connection, QueryBuilder};

const DAY: Duration = Duration::from_secs(24 * 3600);

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn open(path: &std::path::Path) -> Store {
    match Store::open(path, 30 * DAY).await {
        Ok((s, _)) => s,
        Err(e) => panic!("{e}"),
    }
}

fn batch(start: usize, n: usize, now: i64) -> Vec<Sample> {
    (start..start + n)
        .map(|i| Sample {
            at_ms: now + (i / 1000) as i64,
            metric: Metric::AlertDeliveries,
            subject: format!("channel-{}", i % 10),
            value: 0.05 + (i % 97) as f64 * 0.001,
            ok: Some(i % 50 != 0),
        })
        .collect()
}

/// Samples per second through the metrics actor into the file, none dropped.
async fn ingestion(total: usize) -> (f64, u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir.path().join("m.db")).await;
    let metrics = Metrics::new(store.clone());
    let args = MetricsArgs {
        path: "root/metrics".into(),
        metrics: metrics.clone(),
        alerts: Alerts::new(store.clone()),
        detector: DetectorConfig::default(),
        // Every series watched: the detector's cost is part of what is measured.
        watch: metasystem_actors::metrics::Metric::ALL
            .iter()
            .map(|m| (*m, "*".to_string()))
            .collect(),
        retention: 30 * DAY,
        rollup_retention: 366 * DAY,
    };
    let (actor, _) = Actor::spawn(None, MetricsActor, args).await.expect("spawn");
    let now = unix_ms(SystemTime::now());
    let started = Instant::now();
    let mut sent = 0;
    while sent < total {
        // Paced on what is not yet written (the store's intake holds 100,000; past that the
        // oldest would be dropped).
        while metrics.backlog() > 60_000 {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        metrics.report_many(batch(sent, 1000, now));
        sent += 1000;
    }
    // Everything the actor forwarded, written.
    let _ = ractor::call!(actor, metasystem_actors::metrics::MetricsMessage::Status);
    store.flush(None).await.expect("flush");
    let rate = total as f64 / started.elapsed().as_secs_f64();
    let dropped = store.stats().dropped;
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM samples")
        .fetch_one(store.reader())
        .await
        .expect("count");
    assert_eq!(stored as usize, total, "every sample is in the file");
    actor.stop(None);
    store.close().await;
    (rate, dropped)
}

/// The peer: the same rows, 1,000 per INSERT, 8 statements per transaction, one connection.
async fn raw_insert(total: usize) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("raw.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url)
        .await
        .expect("connect");
    sqlx::raw_sql(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; CREATE TABLE samples (id INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL, name TEXT NOT NULL, subject TEXT NOT NULL, value REAL NOT NULL, ok INTEGER)",
    )
    .execute(&mut conn)
    .await
    .expect("schema");
    let now = unix_ms(SystemTime::now());
    let started = Instant::now();
    let mut sent = 0;
    while sent < total {
        sqlx::raw_sql("BEGIN")
            .execute(&mut conn)
            .await
            .expect("begin");
        for _ in 0..8 {
            let rows = batch(sent, 1000, now);
            let mut sql =
                QueryBuilder::new("INSERT INTO samples (at_ms, name, subject, value, ok) ");
            sql.push_values(&rows, |mut r, s| {
                r.push_bind(s.at_ms)
                    .push_bind(s.metric.name())
                    .push_bind(s.subject.as_str())
                    .push_bind(s.value)
                    .push_bind(s.ok);
            });
            sql.build().execute(&mut conn).await.expect("insert");
            sent += 1000;
        }
        sqlx::raw_sql("COMMIT")
            .execute(&mut conn)
            .await
            .expect("commit");
    }
    total as f64 / started.elapsed().as_secs_f64()
}

/// Median ms of a 24 h and a 30 d summary over 1,000,000 samples spread over 30 days.
async fn summaries(runs: usize) -> (f64, f64, usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir.path().join("s.db")).await;
    let now = unix_ms(SystemTime::now());
    let span = 30 * 24 * samples::HOUR_MS;
    let total = 1_000_000usize;
    let mut sent = 0;
    while sent < total {
        while store.stats().samples_queued > 60_000 {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        let rows: Vec<Sample> = (sent..sent + 1000)
            .map(|i| Sample {
                at_ms: now - span + (i as i64 * span / total as i64),
                metric: if i % 2 == 0 {
                    Metric::AlertDeliveries
                } else {
                    Metric::ActorRestartDelay
                },
                subject: format!("subject-{}", (i / 2) % 10),
                value: 0.01 + (i % 1000) as f64 * 0.001,
                ok: (i % 2 == 0).then_some(i % 100 != 0),
            })
            .collect();
        store.record_samples(rows);
        sent += 1000;
    }
    store.flush(None).await.expect("flush");
    let rollups: i64 = sqlx::query_scalar("SELECT count(*) FROM sample_rollups")
        .fetch_one(store.reader())
        .await
        .expect("count");
    let mut day = Vec::new();
    let mut month = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let s = samples::summaries(store.reader(), now - 24 * samples::HOUR_MS, None)
            .await
            .expect("summary");
        day.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(s.len(), 20);
        let t = Instant::now();
        let s = samples::summaries(store.reader(), now - span, None)
            .await
            .expect("summary");
        month.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(s.iter().map(|x| x.summary.count).sum::<u64>(), total as u64);
    }
    store.close().await;
    (median(day), median(month), rollups as usize)
}

/// Alerts per second raised (each distinct one three times) until all distinct ones arrived
/// at a loopback webhook; and how many arrived.
async fn alerts(distinct: usize) -> (f64, usize, usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir.path().join("a.db")).await;
    let sink = HttpSink::start().await;
    let hub = Alerts::new(store.clone());
    let policy = Policy {
        after: PerSeverity {
            info: 1,
            warning: 1,
            critical: 1,
        },
        ..Policy::default()
    };
    let args = AlertsArgs {
        path: "root/alerts".into(),
        store: store.clone(),
        alerts: hub.clone(),
        metrics: Metrics::new(store.clone()),
        policy,
        group_wait: Duration::from_millis(100),
        channels: vec![ChannelSpec {
            name: "hook".into(),
            kind: ChannelKind::Webhook {
                url: Some(sink.url("/hook")),
            },
        }],
        routes: PerSeverity {
            info: vec!["hook".into()],
            warning: vec!["hook".into()],
            critical: vec!["hook".into()],
        },
        retry_initial: Duration::from_millis(50),
        retry_max: Duration::from_secs(1),
        retry_adaptive: false,
        timeout: Duration::from_secs(10),
        hostname: "bench".into(),
    };
    let (actor, _) = Actor::spawn(None, AlertsActor, args).await.expect("spawn");
    let started = Instant::now();
    for round in 0..3 {
        for i in 0..distinct {
            hub.raise(
                Alert::new(Severity::Warning, format!("condition {i}"), "bench")
                    .body(format!("occurrence {round}")),
            );
        }
    }
    let raised = 3 * distinct;
    let mut seen = HashSet::new();
    let mut total = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while seen.len() < distinct && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
        seen.clear();
        total = 0;
        for r in sink.requests() {
            for a in r.json()["alerts"].as_array().cloned().unwrap_or_default() {
                total += 1;
                seen.insert(a["fingerprint"].as_str().unwrap_or("").to_string());
            }
        }
    }
    let rate = raised as f64 / started.elapsed().as_secs_f64();
    actor.stop(None);
    store.close().await;
    (rate, seen.len(), total)
}

fn main() {
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let total = 2_000_000;
        let (mut ours, mut peer) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let (rate, dropped) = tokio::spawn(ingestion(total)).await.expect("run");
            assert_eq!(dropped, 0, "nothing dropped");
            ours.push(rate);
            peer.push(tokio::spawn(raw_insert(total)).await.expect("run"));
        }
        println!(
            "ingestion, {total} samples through the metrics actor into the file (with rollups): median {:.0} samples/s (runs: {:?})",
            median(ours.clone()),
            ours.iter().map(|r| *r as u64).collect::<Vec<_>>()
        );
        println!(
            "peer: raw multi-row INSERT, same rows, no rollups: median {:.0} rows/s; ratio {:.2}",
            median(peer.clone()),
            median(ours) / median(peer)
        );
        let (day, month, rollups) = tokio::spawn(summaries(21)).await.expect("run");
        println!(
            "summaries over 1,000,000 samples (30 days, 20 series, {rollups} rollup rows): 24 h median {day:.2} ms, 30 d median {month:.2} ms"
        );
        let mut rates = Vec::new();
        for _ in 0..runs {
            let (rate, arrived, total) = tokio::spawn(alerts(10_000)).await.expect("run");
            assert_eq!(arrived, 10_000, "every distinct alert arrived");
            assert_eq!(total, 10_000, "none twice");
            rates.push(rate);
        }
        println!(
            "alerts: 30,000 raised (10,000 distinct, each 3 times) through dedup to a loopback webhook, all 10,000 arrived once: median {:.0} alerts/s (runs: {:?})",
            median(rates.clone()),
            rates.iter().map(|r| *r as u64).collect::<Vec<_>>()
        );
    });
}
