//! The metrics actor: watches samples for anomalies and writes them to the store; sets the
//! store's sample retention; watches the store for dropped telemetry.

use std::collections::HashMap;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use super::anomaly::{Detector, DetectorConfig, Report};
use super::hub::{Metrics, MAX_SERIES};
use super::sample::{Metric, Sample};
use crate::alerts::{Alert, Alerts, Severity};
use crate::store::{unix_ms, StoredEvent};

/// How often the store is checked for dropped telemetry and quiet anomalies are cleared.
pub const TICK: Duration = Duration::from_secs(10);
/// An anomaly alert clears once its series has had no anomaly for this long.
const ANOMALY_CLEARS_AFTER_MS: i64 = 5 * 60 * 1000;

pub struct MetricsActor;

#[derive(Clone)]
pub struct MetricsArgs {
    /// Its own tree path, for events and alerts.
    pub path: String,
    /// The handle it serves (it attaches itself to it).
    pub metrics: Metrics,
    pub alerts: Alerts,
    pub detector: DetectorConfig,
    /// The series watched for anomalies: a metric and a glob of subjects (`*`: all). None by
    /// default: the daemon's own timings are not watched unless asked.
    pub watch: Vec<(Metric, String)>,
    /// How long samples are kept.
    pub retention: Duration,
    /// How long hourly rollups are kept.
    pub rollup_retention: Duration,
}

pub enum MetricsMessage {
    Samples(Vec<Sample>),
    /// `call PATH status`.
    Status(RpcReplyPort<MetricsStatus>),
    /// Internal: the periodic check.
    Tick,
}

/// What `status` answers.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MetricsStatus {
    /// Samples this incarnation has seen.
    pub samples: u64,
    /// Series watched for anomalies.
    pub series_watched: usize,
    /// Anomalies detected by this incarnation (reported and rate-limited ones).
    pub anomalies: u64,
    pub retention_s: u64,
    pub rollup_retention_s: u64,
    pub zscore_threshold: f64,
    pub ewma_threshold: f64,
}

pub struct MetricsState {
    args: MetricsArgs,
    /// One detector per watched series.
    detectors: HashMap<(Metric, String), Detector>,
    /// Series with an anomaly alert raised, and the time of their last anomaly.
    flagged: HashMap<(Metric, String), i64>,
    samples: u64,
    anomalies: u64,
    /// The store's dropped-rows counter at the last tick, and whether it was growing.
    last_dropped: u64,
    dropping: bool,
}

fn anomaly_key(metric: Metric, subject: &str) -> String {
    format!("anomaly:{metric}:{subject}")
}

const DROP_KEY: &str = "store:dropping";

impl MetricsState {
    fn watch(&mut self, samples: &[Sample]) {
        self.samples += samples.len() as u64;
        for s in samples {
            if !s.metric.detects_anomalies()
                || !self.args.watch.iter().any(|(m, subject)| {
                    *m == s.metric && crate::alerts::engine::glob_match(subject, &s.subject)
                })
            {
                continue;
            }
            let key = (s.metric, s.subject.clone());
            let full = self.detectors.len() >= MAX_SERIES;
            let detector = match self.detectors.get_mut(&key) {
                Some(d) => d,
                None if full => continue,
                None => self
                    .detectors
                    .entry(key.clone())
                    .or_insert_with(|| Detector::new(&self.args.detector)),
            };
            if let Some(report) = detector.observe(s.value, s.at_ms) {
                self.anomalies += 1 + report.suppressed_before;
                self.report(s, &report);
                self.flagged.insert(key, s.at_ms);
            }
        }
    }

    fn report(&self, s: &Sample, report: &Report) {
        let Some(first) = report.scores.first() else {
            return;
        };
        let methods: Vec<&str> = report.scores.iter().map(|x| x.method.as_str()).collect();
        let message = format!(
            "{} {}: {} is {:+.1} sd from the expected {} ({})",
            s.metric,
            if s.subject.is_empty() {
                "-"
            } else {
                &s.subject
            },
            s.value,
            first.score,
            first.expected,
            methods.join(", ")
        );
        let mut event = StoredEvent::new(
            &self.args.path,
            crate::store::events::Kind::Anomaly,
            &message,
        );
        event.at = std::time::UNIX_EPOCH + Duration::from_millis(s.at_ms.max(0) as u64);
        event.data = serde_json::json!({
            "metric": s.metric.name(),
            "subject": s.subject,
            "value": s.value,
            "scores": report.scores.iter().map(|x| serde_json::json!({
                "method": x.method.as_str(),
                "score": x.score,
                "expected": x.expected,
                "spread": x.spread,
            })).collect::<Vec<_>>(),
            "suppressed_before": report.suppressed_before,
        });
        self.args.metrics.store().record(event);
        let mut alert = Alert::new(
            Severity::Warning,
            format!("anomaly in {} {}", s.metric, s.subject),
            &self.args.path,
        )
        .body(message)
        .at_once()
        .label("metric", s.metric.name());
        alert.key = Some(anomaly_key(s.metric, &s.subject));
        self.args.alerts.raise(alert);
    }

    fn tick(&mut self) {
        let now = unix_ms(std::time::SystemTime::now());
        let alerts = &self.args.alerts;
        self.flagged.retain(|(metric, subject), last| {
            let quiet = now.saturating_sub(*last) >= ANOMALY_CLEARS_AFTER_MS;
            if quiet {
                alerts.clear(anomaly_key(*metric, subject));
            }
            !quiet
        });
        let dropped = self.args.metrics.store().stats().dropped;
        let new = dropped.saturating_sub(self.last_dropped);
        self.last_dropped = dropped;
        if new > 0 {
            self.dropping = true;
            self.args
                .metrics
                .report(Sample::now(Metric::StoreDropped, "", new as f64));
            let mut alert = Alert::new(
                Severity::Warning,
                "the store is dropping telemetry",
                &self.args.path,
            )
            .body(format!(
                "{new} events or samples dropped in the last {}s ({dropped} since the daemon started): \
                 the writer cannot keep up or the disk refuses writes",
                TICK.as_secs()
            ))
            .at_once();
            alert.key = Some(DROP_KEY.into());
            self.args.alerts.raise(alert);
        } else if self.dropping {
            self.dropping = false;
            self.args.alerts.clear(DROP_KEY);
        }
    }
}

impl Actor for MetricsActor {
    type Msg = MetricsMessage;
    type State = MetricsState;
    type Arguments = MetricsArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: MetricsArgs,
    ) -> Result<MetricsState, ActorProcessingErr> {
        args.detector.validate()?;
        let store = args.metrics.store();
        store.set_sample_retention(args.retention, args.rollup_retention);
        let last_dropped = store.stats().dropped;
        args.metrics.slot().attach(myself.clone());
        myself.send_interval(TICK, || MetricsMessage::Tick);
        Ok(MetricsState {
            args,
            detectors: HashMap::new(),
            flagged: HashMap::new(),
            samples: 0,
            anomalies: 0,
            last_dropped,
            dropping: false,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: MetricsMessage,
        state: &mut MetricsState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            MetricsMessage::Samples(samples) => {
                state.watch(&samples);
                let n = samples.len();
                state.args.metrics.store().record_samples(samples);
                state.args.metrics.forwarded(n);
            }
            MetricsMessage::Tick => state.tick(),
            MetricsMessage::Status(reply) => {
                let d = &state.args.detector;
                let _ = reply.send(MetricsStatus {
                    samples: state.samples,
                    series_watched: state.detectors.len(),
                    anomalies: state.anomalies,
                    retention_s: state.args.retention.as_secs(),
                    rollup_retention_s: state.args.rollup_retention.as_secs(),
                    zscore_threshold: d.zscore_threshold,
                    ewma_threshold: d.ewma_threshold,
                });
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut MetricsState,
    ) -> Result<(), ActorProcessingErr> {
        state.args.metrics.slot().detach(myself.get_id());
        Ok(())
    }
}
