//! Metrics on real SQLite files: samples and their hourly rollups, summaries over a window on
//! known data, retention (rollups outlive samples), and the metrics actor watching a series
//! for anomalies (events and alerts).

use std::time::{Duration, SystemTime};

use metasystem_actors::alerts::Alerts;
use metasystem_actors::metrics::anomaly::DetectorConfig;
use metasystem_actors::metrics::{Metric, Metrics, MetricsActor, MetricsArgs, Sample};
use metasystem_actors::store::{events, samples, unix_ms, EventQuery, Store};
use ractor::Actor;

const HOUR: i64 = samples::HOUR_MS;

async fn open(dir: &tempfile::TempDir) -> Store {
    match Store::open(
        &dir.path().join("m.db"),
        Duration::from_secs(30 * 24 * 3600),
    )
    .await
    {
        Ok((store, _)) => store,
        Err(e) => panic!("store did not open: {e}"),
    }
}

fn sample(at_ms: i64, metric: Metric, subject: &str, value: f64, ok: Option<bool>) -> Sample {
    Sample {
        at_ms,
        metric,
        subject: subject.into(),
        value,
        ok,
    }
}

fn exact_quantile(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    values[((values.len() - 1) as f64 * q).floor() as usize]
}

#[tokio::test]
async fn summaries_over_a_window_are_exact_where_they_can_be_and_within_1_percent_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let now = unix_ms(SystemTime::now());
    // Three hours of deliveries to two channels, and one older than the window.
    let mut values = Vec::new();
    let mut batch = Vec::new();
    for i in 0..30_000i64 {
        let at = now - 3 * HOUR + i * (3 * HOUR / 30_000);
        let value = 0.001 * (1 + i % 1000) as f64; // 1 ms .. 1 s
        let ok = i % 10 != 0;
        let subject = if i % 2 == 0 { "email" } else { "slack" };
        values.push(value);
        batch.push(sample(
            at,
            Metric::AlertDeliveries,
            subject,
            value,
            Some(ok),
        ));
    }
    batch.push(sample(
        now - 48 * HOUR,
        Metric::AlertDeliveries,
        "email",
        99.0,
        Some(false),
    ));
    for chunk in batch.chunks(7_000) {
        store.record_samples(chunk.to_vec());
    }
    store.flush(Some(Duration::from_secs(30))).await.unwrap();

    let found = samples::summaries(store.reader(), now - 4 * HOUR, None)
        .await
        .unwrap();
    assert_eq!(found.len(), 2, "{found:?}");
    let total: u64 = found.iter().map(|s| s.summary.count).sum();
    assert_eq!(total, 30_000);
    let mut all = metasystem_actors::metrics::stats::Summary::default();
    for s in &found {
        assert_eq!(s.name, "alert_delivery");
        all.merge(&s.summary);
    }
    assert_eq!(all.failed, 3_000);
    assert_eq!(all.success_rate(), Some(0.9));
    assert_eq!(all.min(), Some(0.001));
    assert_eq!(all.max(), Some(1.0));
    let mean = all.mean().unwrap();
    assert!((mean - 0.5005).abs() < 1e-9, "{mean}");
    for q in [0.5, 0.95, 0.99] {
        let exact = exact_quantile(&mut values, q);
        let got = all.quantile(q).unwrap();
        assert!(
            (got - exact).abs() <= exact * 0.011,
            "p{q}: {got} vs {exact}"
        );
    }
    // The window decides: the sample two days ago is only in a longer one.
    let long = samples::summaries(store.reader(), now - 72 * HOUR, Some("alert_delivery"))
        .await
        .unwrap();
    assert_eq!(long.iter().map(|s| s.summary.count).sum::<u64>(), 30_001);
    let none = samples::summaries(store.reader(), now, Some("actor_restarts"))
        .await
        .unwrap();
    assert!(none.is_empty());
    store.close().await;
}

#[tokio::test]
async fn rollups_merge_batches_and_survive_the_samples_retention() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let now = unix_ms(SystemTime::now());
    // Ten batches into the same hour: the rollup is the merge of all of them.
    for b in 0..10 {
        let batch: Vec<Sample> = (0..100)
            .map(|_| sample(now - 50 * HOUR, Metric::ActorRestarts, "root/x", 1.0, None))
            .chain(std::iter::once(sample(
                now - 50 * HOUR,
                Metric::ActorRestartDelay,
                "root/x",
                f64::from(b),
                None,
            )))
            .collect();
        store.record_samples(batch);
        store.flush(Some(Duration::from_secs(10))).await.unwrap();
    }
    // Raw samples are kept a day; rollups a year.
    store.set_sample_retention(
        Duration::from_secs(24 * 3600),
        Duration::from_secs(366 * 24 * 3600),
    );
    store.record_samples(vec![sample(
        now,
        Metric::ActorRestarts,
        "root/y",
        1.0,
        None,
    )]);
    store.prune();
    store.flush(Some(Duration::from_secs(10))).await.unwrap();
    let raw = samples::raw(store.reader(), "actor_restarts", None, 0, 10_000)
        .await
        .unwrap();
    assert_eq!(raw.len(), 1, "the old samples are pruned, the new one kept");
    let found = samples::summaries(store.reader(), now - 60 * HOUR, None)
        .await
        .unwrap();
    let restarts = found
        .iter()
        .find(|s| s.subject == "root/x" && s.name == "actor_restarts");
    assert_eq!(restarts.map(|s| s.summary.count), Some(1_000));
    let delay = found
        .iter()
        .find(|s| s.name == "actor_restart_delay")
        .map(|s| s.summary.clone())
        .unwrap();
    assert_eq!(
        (delay.count, delay.min(), delay.max()),
        (10, Some(0.0), Some(9.0))
    );
    // And rollups go at theirs.
    store.set_sample_retention(Duration::from_secs(3600), Duration::from_secs(3600));
    store.prune();
    store.flush(Some(Duration::from_secs(10))).await.unwrap();
    let found = samples::summaries(store.reader(), now - 60 * HOUR, None)
        .await
        .unwrap();
    assert!(found.iter().all(|s| s.subject == "root/y"), "{found:?}");
    store.close().await;
}

#[tokio::test]
async fn samples_persist_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let now = unix_ms(SystemTime::now());
    {
        let store = open(&dir).await;
        store.record_samples(vec![sample(
            now,
            Metric::ActorStarts,
            "root/a",
            1.0,
            Some(true),
        )]);
        store.close().await;
    }
    let store = open(&dir).await;
    // A new writer merges into the rollup row the old one wrote (read back, not cached).
    store.record_samples(vec![sample(
        now,
        Metric::ActorStarts,
        "root/a",
        1.0,
        Some(false),
    )]);
    store.flush(Some(Duration::from_secs(10))).await.unwrap();
    let found = samples::summaries(store.reader(), now - HOUR, None)
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!((found[0].summary.ok, found[0].summary.failed), (1, 1));
    store.close().await;
}

#[tokio::test]
async fn the_metrics_actor_flags_a_spike_records_it_and_raises_an_alert() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let metrics = Metrics::new(store.clone());
    let alerts = Alerts::new(store.clone());
    let args = MetricsArgs {
        path: "root/metrics".into(),
        metrics: metrics.clone(),
        alerts,
        detector: DetectorConfig::default(),
        // Named, as a user would: nothing is watched by default.
        watch: vec![(Metric::AlertDeliveries, "web*".into())],
        retention: Duration::from_secs(30 * 24 * 3600),
        rollup_retention: Duration::from_secs(366 * 24 * 3600),
    };
    let (actor, join) = Actor::spawn(None, MetricsActor, args).await.unwrap();
    assert!(metrics.watched());
    let now = unix_ms(SystemTime::now());
    // A steady series (deliveries take 100 ms, give or take 1 ms), then one of 5 s.
    let steady: Vec<Sample> = (0..200)
        .map(|i| {
            let jitter = [0.0, 0.001, -0.001, 0.0005][i % 4];
            sample(
                now + i as i64,
                Metric::AlertDeliveries,
                "webhook",
                0.1 + jitter,
                Some(true),
            )
        })
        .collect();
    metrics.report_many(steady);
    metrics.report(sample(
        now + 500,
        Metric::AlertDeliveries,
        "webhook",
        5.0,
        Some(true),
    ));
    // Occurrence counts are not watched, however odd.
    metrics.report(sample(
        now + 501,
        Metric::ActorRestarts,
        "root/x",
        1e9,
        None,
    ));
    // The actor handles messages in order: a status call returns after the samples.
    let status = ractor::call!(actor, metasystem_actors::metrics::MetricsMessage::Status).unwrap();
    assert_eq!(status.samples, 202);
    assert_eq!(status.series_watched, 1);
    assert!(status.anomalies >= 1, "{status:?}");
    store.flush(Some(Duration::from_secs(10))).await.unwrap();
    let query = EventQuery {
        kind: Some("anomaly".into()),
        ..Default::default()
    };
    let found = events::page(store.reader(), &query, None, 100)
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "one anomaly, the spike: {found:?}");
    assert_eq!(found[0].data["subject"], "webhook");
    assert_eq!(found[0].data["value"], 5.0);
    // No alerts actor runs: the alert went to the log and the events.
    let query = EventQuery {
        kind: Some("alert".into()),
        ..Default::default()
    };
    let alerts = events::page(store.reader(), &query, None, 100)
        .await
        .unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(
        alerts[0].message.contains("anomaly"),
        "{}",
        alerts[0].message
    );
    // The samples were stored through the actor.
    let raw = samples::raw(store.reader(), "alert_delivery", None, 0, 1000)
        .await
        .unwrap();
    assert_eq!(raw.len(), 201);
    actor.stop(None);
    let _ = join.await;
    assert!(
        !metrics.watched(),
        "the slot is emptied when the actor stops"
    );
    // Without the actor, samples still reach the store.
    metrics.report(sample(
        now + 600,
        Metric::AlertDeliveries,
        "webhook",
        0.1,
        Some(true),
    ));
    store.flush(Some(Duration::from_secs(10))).await.unwrap();
    let raw = samples::raw(store.reader(), "alert_delivery", None, 0, 1000)
        .await
        .unwrap();
    assert_eq!(raw.len(), 202);
    store.close().await;
}

/// A window reads the hours of its first, partial day and then one row per day: from any
/// starting hour, the counts, outcomes, sums and extremes equal the samples in the window
/// (from the hour the start falls in); also for days written before the daily table existed,
/// which are read by the hour.
#[tokio::test]
async fn windows_over_days_count_every_sample_once_from_hourly_and_daily_rollups() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let now = unix_ms(SystemTime::now());
    let start = samples::hour_of(now) - 10 * 24 * HOUR;
    // One sample per hour and series for ten days, value = its hour index.
    let mut batch = Vec::new();
    for h in 0..240i64 {
        for subject in ["a", "b"] {
            batch.push(sample(
                start + h * HOUR + 1,
                Metric::AlertDeliveries,
                subject,
                h as f64,
                Some(h % 3 != 0),
            ));
        }
    }
    store.record_samples(batch.clone());
    store.flush(Some(Duration::from_secs(30))).await.unwrap();

    let check = |found: &[samples::SeriesSummary], since: i64, what: &str| {
        let first = samples::hour_of(since);
        let expected: Vec<&Sample> = batch
            .iter()
            .filter(|s| s.at_ms >= first && s.subject == "a")
            .collect();
        let a = found.iter().find(|s| s.subject == "a");
        let count = a.map_or(0, |s| s.summary.count);
        assert_eq!(count, expected.len() as u64, "{what}: since {since}");
        if let Some(a) = a {
            let failed = expected.iter().filter(|s| s.ok == Some(false)).count() as u64;
            assert_eq!(a.summary.failed, failed, "{what}");
            let sum: f64 = expected.iter().map(|s| s.value).sum();
            assert_eq!(a.summary.sum, sum, "{what}");
            assert_eq!(a.summary.min(), expected.first().map(|s| s.value), "{what}");
            assert_eq!(a.summary.max(), expected.last().map(|s| s.value), "{what}");
        }
    };
    for offset in (0..240).step_by(7).chain([1, 23, 24, 25, 239]) {
        let since = start + offset * HOUR + HOUR / 2;
        let found = samples::summaries(store.reader(), since, Some("alert_delivery"))
            .await
            .unwrap();
        check(&found, since, "daily rows");
    }

    // As after the upgrade: days before `daily_from_ms` have no daily rows.
    let pool = store.reader();
    let midpoint = samples::day_of(start) + 6 * samples::DAY_MS;
    let writer =
        sqlx::SqlitePool::connect(&format!("sqlite://{}", dir.path().join("m.db").display()))
            .await
            .unwrap();
    sqlx::query("DELETE FROM sample_daily WHERE day_ms < ?")
        .bind(midpoint)
        .execute(&writer)
        .await
        .unwrap();
    sqlx::query("UPDATE sample_meta SET value = ? WHERE key = 'daily_from_ms'")
        .bind(midpoint)
        .execute(&writer)
        .await
        .unwrap();
    writer.close().await;
    for offset in (0..240).step_by(11).chain([1, 239]) {
        let since = start + offset * HOUR;
        let found = samples::summaries(pool, since, Some("alert_delivery"))
            .await
            .unwrap();
        check(&found, since, "hourly rows before daily_from");
    }
    store.close().await;
}

/// Quiet by default: a spike in a series nobody named in `anomalies` (the daemon's own probe
/// timings, on a fresh install) is no anomaly and no alert.
#[tokio::test]
async fn series_not_named_in_anomalies_are_not_watched() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let metrics = Metrics::new(store.clone());
    let args = MetricsArgs {
        path: "root/metrics".into(),
        metrics: metrics.clone(),
        alerts: Alerts::new(store.clone()),
        detector: DetectorConfig::default(),
        watch: Vec::new(),
        retention: Duration::from_secs(30 * 24 * 3600),
        rollup_retention: Duration::from_secs(366 * 24 * 3600),
    };
    let (actor, join) = Actor::spawn(None, MetricsActor, args).await.unwrap();
    let now = unix_ms(SystemTime::now());
    let mut series: Vec<Sample> = (0..200)
        .map(|i| {
            sample(
                now + i as i64,
                Metric::ProbeChecks,
                "root/open_breakers",
                0.001 + [0.0, 0.0001][i % 2],
                Some(true),
            )
        })
        .collect();
    series.push(sample(
        now + 500,
        Metric::ProbeChecks,
        "root/open_breakers",
        2.0,
        Some(true),
    ));
    metrics.report_many(series);
    let status = ractor::call!(actor, metasystem_actors::metrics::MetricsMessage::Status).unwrap();
    assert_eq!(status.samples, 201);
    assert_eq!(
        (status.series_watched, status.anomalies),
        (0, 0),
        "{status:?}"
    );
    store.flush(Some(Duration::from_secs(10))).await.unwrap();
    for kind in ["anomaly", "alert"] {
        let query = EventQuery {
            kind: Some(kind.into()),
            ..Default::default()
        };
        let found = events::page(store.reader(), &query, None, 100)
            .await
            .unwrap();
        assert!(found.is_empty(), "{kind}: {found:?}");
    }
    actor.stop(None);
    let _ = join.await;
}
