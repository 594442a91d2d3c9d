//! Answering the read-only queries over stored telemetry: `metrics` and `anomalies`. Through
//! the store's read pool: they never wait behind writes.

use super::handle::Answer;
use crate::control::protocol::Failure;
use std::time::{Duration, SystemTime};

use metasystem_actors::metrics::stats::Summary;
use metasystem_actors::metrics::Metric;
use metasystem_actors::store::{self, format_ms, samples, unix_ms, EventQuery};

use super::Daemon;
use crate::control::protocol::{
    code, AlertRow, AlertsResult, AnomaliesResult, AnomalyRow, AttemptInfo, MetricsResult,
    RecipientInfo, SeriesRow, Silence, SystemSummary,
};

/// The window when `--since` is not given.
const DEFAULT_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// `alerts` shows this many notifications unless asked for another number (at most
/// `MAX_ALERTS`).
const DEFAULT_ALERTS: usize = 50;
const MAX_ALERTS: usize = 10_000;
/// `anomalies` answers at most this many (the most recent).
const MAX_ANOMALIES: usize = 1000;
/// Before reading, the store is given this long to write what waits.
const FLUSH: Duration = Duration::from_millis(500);

/// The start of the window a request's `since_s` asks for: that many seconds back from now
/// (`default` when it gives none), the epoch for a window reaching back past it. The one
/// conversion of `since_s` (events, metrics, anomalies, heal, retries).
pub(super) fn window_start(since_s: Option<u64>, default: Duration) -> SystemTime {
    let window = since_s.map_or(default, Duration::from_secs);
    SystemTime::now()
        .checked_sub(window)
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// [`window_start`] in Unix ms.
pub(super) fn window_start_ms(since_s: Option<u64>, default: Duration) -> i64 {
    unix_ms(window_start(since_s, default))
}

fn since_ms(since_s: Option<u64>) -> i64 {
    window_start_ms(since_s, DEFAULT_WINDOW)
}

fn row(name: &str, subject: &str, s: &Summary) -> SeriesRow {
    let unit = Metric::parse(name).map_or("", |m| m.unit().as_str());
    SeriesRow {
        name: name.to_string(),
        subject: subject.to_string(),
        unit: unit.to_string(),
        count: s.count,
        ok: s.ok,
        failed: s.failed,
        success_rate: s.success_rate(),
        min: s.min(),
        avg: s.mean(),
        max: s.max(),
        p50: s.quantile(0.5),
        p95: s.quantile(0.95),
        p99: s.quantile(0.99),
    }
}

/// Checks a metric name: an unknown one is a typo, not an empty answer.
pub(super) fn check_metric(name: &str) -> Result<(), String> {
    if Metric::parse(name).is_some() {
        return Ok(());
    }
    let names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
    let hint = match crate::config::reader::suggest(name, &names) {
        Some(close) => format!("; did you mean `{close}`?"),
        None => String::new(),
    };
    Err(format!(
        "unknown metric `{name}`: it must be {}{hint}",
        crate::config::reader::one_of(&names)
    ))
}

impl Daemon {
    pub(super) async fn metrics(
        &self,
        name: Option<String>,
        since_s: Option<u64>,
    ) -> Answer<MetricsResult> {
        if let Some(name) = &name {
            if let Err(message) = check_metric(name) {
                return Err(Failure::new(code::BAD_REQUEST, message));
            }
        }
        let since = since_ms(since_s);
        let _ = self.store.flush(Some(FLUSH)).await;
        let found = match samples::summaries(self.store.reader(), since, name.as_deref()).await {
            Ok(found) => found,
            Err(e) => return Err(e.into()),
        };
        let mut per_metric: std::collections::BTreeMap<&str, Summary> = Default::default();
        let mut system = SystemSummary {
            samples: 0,
            operations: 0,
            failed: 0,
            success_rate: None,
            series: found.len(),
        };
        for s in &found {
            per_metric
                .entry(s.name.as_str())
                .or_default()
                .merge(&s.summary);
            system.samples += s.summary.count;
            system.operations += s.summary.ok + s.summary.failed;
            system.failed += s.summary.failed;
        }
        if system.operations > 0 {
            system.success_rate =
                Some((system.operations - system.failed) as f64 / system.operations as f64);
        }
        let result = MetricsResult {
            from: format_ms(samples::hour_of(since)),
            to: format_ms(unix_ms(SystemTime::now())),
            series: found
                .iter()
                .map(|s| row(&s.name, &s.subject, &s.summary))
                .collect(),
            metrics: per_metric
                .iter()
                .map(|(name, s)| row(name, "*", s))
                .collect(),
            system,
        };
        Ok(result)
    }

    pub(super) async fn anomalies(&self, since_s: Option<u64>) -> Answer<AnomaliesResult> {
        let query = EventQuery {
            since: Some(
                SystemTime::UNIX_EPOCH + Duration::from_millis(since_ms(since_s).max(0) as u64),
            ),
            path: None,
            kind: Some("anomaly".into()),
        };
        let _ = self.store.flush(Some(FLUSH)).await;
        let reader = self.store.reader();
        let rows = async {
            let cursor = store::events::last_n_cursor(reader, &query, MAX_ANOMALIES).await?;
            let rows = store::events::page(reader, &query, cursor, MAX_ANOMALIES).await?;
            Ok::<_, metasystem_actors::store::StoreError>((cursor.is_some(), rows))
        }
        .await;
        let (truncated, rows) = match rows {
            Ok(found) => found,
            Err(e) => return Err(e.into()),
        };
        let anomalies = rows
            .iter()
            .map(|r| {
                let d = &r.data;
                let best = d["scores"]
                    .as_array()
                    .and_then(|s| {
                        s.iter().max_by(|a, b| {
                            let f =
                                |v: &serde_json::Value| v["score"].as_f64().unwrap_or(0.0).abs();
                            f(a).total_cmp(&f(b))
                        })
                    })
                    .cloned()
                    .unwrap_or_default();
                AnomalyRow {
                    at: format_ms(r.at_ms),
                    metric: d["metric"].as_str().unwrap_or("").to_string(),
                    subject: d["subject"].as_str().unwrap_or("").to_string(),
                    value: d["value"].as_f64().unwrap_or(f64::NAN),
                    score: best["score"].as_f64().unwrap_or(0.0),
                    method: best["method"].as_str().unwrap_or("").to_string(),
                    expected: best["expected"].as_f64().unwrap_or(f64::NAN),
                    message: r.message.clone(),
                }
            })
            .collect();
        Ok(AnomaliesResult {
            anomalies,
            truncated,
        })
    }
}

impl Daemon {
    pub(super) async fn alerts(&self, limit: Option<usize>) -> Answer<AlertsResult> {
        let limit = match limit {
            None => DEFAULT_ALERTS,
            Some(n) if (1..=MAX_ALERTS).contains(&n) => n,
            Some(n) => {
                return Err(Failure::new(
                    code::BAD_REQUEST,
                    format!("`limit` is {n}: it must be between 1 and {MAX_ALERTS}"),
                ))
            }
        };
        let reader = self.store.reader();
        let found = async {
            let rows = store::outbox::recent(reader, limit).await?;
            let ids: Vec<i64> = rows.iter().map(|r| r.notification.id).collect();
            let attempts = store::outbox::attempts(reader, &ids).await?;
            let recipients = store::outbox::recipients(reader, &ids).await?;
            let undelivered = store::outbox::undelivered(reader).await?;
            let silences = store::outbox::silences(reader, unix_ms(SystemTime::now())).await?;
            Ok::<_, metasystem_actors::store::StoreError>((
                rows,
                attempts,
                recipients,
                undelivered,
                silences,
            ))
        }
        .await;
        let (rows, attempts, recipients, undelivered, silences) = match found {
            Ok(found) => found,
            Err(e) => return Err(e.into()),
        };
        let now_ms = unix_ms(SystemTime::now());
        let alerts = rows
            .into_iter()
            .map(|r| {
                let n = r.notification;
                AlertRow {
                    id: n.id,
                    created: format_ms(r.created_ms),
                    channel: r.channel,
                    severity: n.severity.to_string(),
                    status: n.status.as_str().to_string(),
                    title: n.title,
                    key: n.key,
                    fingerprint: n.fingerprint,
                    occurrences: n.occurrences,
                    state: r.state.clone(),
                    attempts: r.attempts,
                    last_error: r.last_error,
                    // A time already past is no "next": the retry is due or in flight
                    // (shown as a stale time, it read as a retry that never came).
                    next_attempt: r
                        .next_attempt_ms
                        .filter(|&at| r.state == "pending" && at > now_ms)
                        .map(format_ms),
                    history: attempts
                        .iter()
                        .filter(|a| a.outbox_id == n.id)
                        .map(|a| AttemptInfo {
                            at: format_ms(a.at_ms),
                            outcome: a.outcome.clone(),
                            code: a.code,
                            duration_ms: a.duration_ms,
                            detail: a.detail.clone(),
                        })
                        .collect(),
                    recipients: recipients
                        .iter()
                        .filter(|r| r.outbox_id == n.id)
                        .map(|r| RecipientInfo {
                            recipient: r.recipient.clone(),
                            state: r.state.clone(),
                            code: r.code,
                            detail: r.detail.clone(),
                            at: format_ms(r.at_ms),
                        })
                        .collect(),
                }
            })
            .collect();
        let silences = silences
            .into_iter()
            .map(|(pattern, until)| Silence {
                pattern,
                until: format_ms(until),
            })
            .collect();
        Ok(AlertsResult {
            alerts,
            undelivered,
            silences,
        })
    }

    fn alerts_actor(&self) -> Answer<ractor::ActorRef<metasystem_actors::alerts::AlertsMessage>> {
        self.services.alerts.actor().ok_or_else(|| {
            Failure::new(
                code::NOT_RUNNING,
                "no alerts actor is running: add a `kind = \"alerts\"` child to the config (or start it)",
            )
        })
    }

    /// `alerts test CHANNEL`: as `call PATH test channel=NAME` on the alerts actor.
    pub(super) async fn alert_test(
        &self,
        channel: String,
    ) -> Answer<metasystem_actors::alerts::actor::TestReport> {
        crate::kinds::alerts::test(&self.alerts_actor()?, channel).await
    }

    pub(super) async fn alert_silence(
        &self,
        pattern: String,
        for_s: u64,
    ) -> Answer<crate::control::request::Silences> {
        use metasystem_actors::alerts::AlertsMessage;
        if pattern.is_empty() || pattern.len() > 1024 || pattern.contains('\n') {
            return Err(Failure::new(code::BAD_REQUEST,
                "a silence pattern is 1 to 1024 characters on one line: a key (`warning:disk low`) or a glob (`*root/sync*`)",
            ));
        }
        if for_s > 366 * 24 * 3600 {
            return Err(Failure::new(
                code::BAD_REQUEST,
                "a silence lasts at most 366 days",
            ));
        }
        let actor = self.alerts_actor()?;
        let until_ms = (for_s > 0).then(|| {
            unix_ms(SystemTime::now()).saturating_add((for_s as i64).saturating_mul(1000))
        });
        match actor
            .call(
                |reply| AlertsMessage::Silence {
                    pattern,
                    until_ms,
                    reply,
                },
                Some(Duration::from_secs(15)),
            )
            .await
        {
            Ok(ractor::rpc::CallResult::Success(Ok(active))) => {
                let silences: Vec<Silence> = active
                    .into_iter()
                    .map(|(pattern, until)| Silence {
                        pattern,
                        until: format_ms(until),
                    })
                    .collect();
                Ok(crate::control::request::Silences { silences })
            }
            Ok(ractor::rpc::CallResult::Success(Err(e))) => Err(Failure::new(code::UNAVAILABLE, e)),
            Ok(ractor::rpc::CallResult::Timeout) => Err(Failure::new(
                code::TIMEOUT,
                "the alerts actor did not answer in time",
            )),
            _ => Err(Failure::new(code::NOT_RUNNING, "the alerts actor stopped")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_starts_since_s_back_or_at_the_default_or_the_epoch() {
        let day = Duration::from_secs(24 * 3600);
        let near = |t: SystemTime, back: Duration| {
            let want = SystemTime::now() - back;
            let off = want.duration_since(t).unwrap_or_else(|e| e.duration());
            off < Duration::from_secs(5)
        };
        assert!(near(window_start(None, day), day));
        assert!(near(window_start(Some(60), day), Duration::from_secs(60)));
        assert!(near(window_start(Some(0), day), Duration::ZERO));
        assert_eq!(window_start(Some(u64::MAX), day), SystemTime::UNIX_EPOCH);
        assert_eq!(window_start_ms(Some(u64::MAX), day), 0);
    }
}
