//! Keeping what runs did: one `retry_runs` row per [`RunSummary`] (the durable lane), one
//! `retry_run` sample (value: the run's duration in seconds; ok: it succeeded; subject: the
//! operation), and reading the rows back as summaries.
//!
//! The only part of the retry library that knows the store. Recording never holds the caller
//! up for long: the row is written by a task of its own, which waits at most [`RECORD_WAIT`]
//! for the COMMIT (after that the store still writes it: a durable write is never dropped)
//! and logs a failure; the caller may await the returned handle or drop it.

use std::time::Duration;

use sqlx::SqlitePool;
use tokio::task::JoinHandle;

use super::run::RunSummary;
use crate::metrics::{Metric, Metrics, Sample};
use crate::store::health::{self, RetryRunRow};
use crate::store::{DurableOp, Store};

/// How long the recording task waits for the row's COMMIT.
pub const RECORD_WAIT: Duration = Duration::from_secs(5);

/// Records `summary`: its row (by a spawned task, see the module documentation) and its
/// sample, straight to the store's telemetry lane. The handle answers whether the row was
/// committed within [`RECORD_WAIT`].
pub fn record(store: &Store, summary: &RunSummary) -> JoinHandle<Result<(), String>> {
    store.record_samples(vec![sample(summary)]);
    write(store, summary)
}

/// [`record`] with the sample reported through the metrics hub (watched by the metrics actor,
/// counted in the exports' totals); the row goes to the hub's store.
pub fn record_to(metrics: &Metrics, summary: &RunSummary) -> JoinHandle<Result<(), String>> {
    metrics.report(sample(summary));
    write(metrics.store(), summary)
}

/// The stored row of a run.
pub fn row(summary: &RunSummary) -> RetryRunRow {
    RetryRunRow {
        op: summary.op.clone(),
        started_ms: summary.started_ms,
        attempts: summary.attempts,
        outcome: summary.outcome.as_str().to_string(),
        summary: serde_json::to_value(summary).unwrap_or(serde_json::Value::Null),
    }
}

/// The sample of a run: its duration, whether it succeeded, of which operation.
pub fn sample(summary: &RunSummary) -> Sample {
    Sample::now(
        Metric::RetryRuns,
        summary.op.clone(),
        summary.took.as_secs_f64(),
    )
    .outcome(summary.outcome == super::Outcome::Success)
}

fn write(store: &Store, summary: &RunSummary) -> JoinHandle<Result<(), String>> {
    let store = store.clone();
    let op = DurableOp::RetryRuns(vec![row(summary)]);
    let name = summary.op.clone();
    tokio::spawn(async move {
        let written = store.durable(op, Some(RECORD_WAIT)).await.map(drop);
        if let Err(e) = &written {
            tracing::warn!(op = %name, error = %e, "cannot record a retried operation's run yet");
        }
        written
    })
}

/// The stored runs since `since_ms` (of `op` when given), oldest first, at most the latest
/// `limit`. Rows whose summary does not read as one are skipped.
pub async fn load(
    pool: &SqlitePool,
    op: Option<&str>,
    since_ms: i64,
    limit: u32,
) -> Result<Vec<RunSummary>, crate::store::StoreError> {
    let rows = health::retry_runs(pool, op, since_ms, limit).await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| serde_json::from_value(r.summary).ok())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retry::{ErrorKind, Outcome};

    fn summary(op: &str, outcome: Outcome) -> RunSummary {
        RunSummary {
            op: op.to_string(),
            started_ms: 1_700_000_000_000,
            attempts: 3,
            outcome,
            errors: vec![("http_503".into(), ErrorKind::Transient); 2],
            recovered_after: (outcome == Outcome::Success).then(|| Duration::from_millis(1500)),
            took: Duration::from_millis(1750),
            rejected: None,
        }
    }

    #[test]
    fn the_row_and_the_sample_of_a_run() {
        let s = summary("alert:hook", Outcome::Success);
        let r = row(&s);
        assert_eq!(r.op, "alert:hook");
        assert_eq!((r.started_ms, r.attempts), (1_700_000_000_000, 3));
        assert_eq!(r.outcome, "success");
        assert_eq!(r.summary["recovered_after_ms"], 1500);
        assert_eq!(serde_json::from_value::<RunSummary>(r.summary).unwrap(), s);

        let x = sample(&s);
        assert_eq!(x.metric, Metric::RetryRuns);
        assert_eq!(x.subject, "alert:hook");
        assert_eq!((x.value, x.ok), (1.75, Some(true)));
        let failed = sample(&summary("alert:hook", Outcome::Exhausted));
        assert_eq!(failed.ok, Some(false));
    }

    #[tokio::test]
    async fn runs_are_stored_and_read_back_and_sampled() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(&dir.path().join("r.db"), Duration::from_secs(86_400))
            .await
            .unwrap();
        let metrics = Metrics::new(store.clone());
        let a = summary("heal:root/x:command", Outcome::Permanent);
        let b = summary("alert:hook", Outcome::Success);
        record(&store, &a).await.unwrap().unwrap();
        record_to(&metrics, &b).await.unwrap().unwrap();

        let all = load(store.reader(), None, 0, 100).await.unwrap();
        assert_eq!(all, vec![a.clone(), b.clone()]);
        let heal = load(store.reader(), Some("heal:root/x:command"), 0, 100)
            .await
            .unwrap();
        assert_eq!(heal, vec![a.clone()]);
        let later = load(store.reader(), None, a.started_ms + 1, 100)
            .await
            .unwrap();
        assert!(later.is_empty());

        // The hub counted its sample; both samples reach the store.
        let totals = metrics.totals();
        let hub = totals
            .iter()
            .find(|((m, subject), _)| *m == Metric::RetryRuns && subject == "alert:hook")
            .map(|(_, t)| t.clone())
            .unwrap();
        assert_eq!((hub.count, hub.ok), (1, 1));
        store.flush(Some(Duration::from_secs(5))).await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM samples WHERE name = 'retry_run'")
            .fetch_one(store.reader())
            .await
            .unwrap();
        assert_eq!(n, 2);
        store.close().await;
    }
}
