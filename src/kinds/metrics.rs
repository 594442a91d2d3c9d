//! `kind = "metrics"`: watches every sample for anomalies (z-score and EWMA), keeps samples for
//! `retention` and hourly rollups for `rollup_retention` (see `metasystem_actors::metrics`).
//!
//! Config: `retention` (default 30d), `rollup_retention` (default 366d), `zscore_threshold`
//! (default 2.0), `window` (values the z-score looks back on, default 100), `min_samples`
//! (default 10), `ewma_alpha` (default 0.1), `ewma_threshold` (default 3.0), `anomaly_gap`
//! (at most one anomaly reported per series per gap, default 1m), `anomalies` (the series
//! watched for anomalies: `"METRIC"` or `"METRIC:SUBJECT"`, the subject a glob with `*`; a
//! metric of durations or sizes, not of occurrences; default none: the daemon's own timings
//! vary for reasons of their own, and an alert nobody asked for teaches people to ignore
//! alerts).
//! Operations: `status`.

use std::time::Duration;

use metasystem_actors::metrics::anomaly::DetectorConfig;
use metasystem_actors::metrics::{Metric, MetricsActor, MetricsArgs, MetricsMessage};
use metasystem_actors::ChildSpec;
use serde_json::Value;

use super::{ActorKind, CallCx, CallError, NoArgs, Op, ParseCx, Services};
use crate::config::bounded;
use crate::config::reader::Table;
use crate::config::schema::{key, Obj, Ty};

const DAY: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Clone, PartialEq)]
pub struct MetricsConfig {
    pub retention: Duration,
    pub rollup_retention: Duration,
    pub detector: DetectorConfig,
    /// The series watched for anomalies (`anomalies`).
    pub watch: Vec<(Metric, String)>,
}

/// The metrics `anomalies` may name.
fn watchable() -> Vec<&'static str> {
    Metric::ALL
        .iter()
        .filter(|m| m.detects_anomalies())
        .map(|m| m.name())
        .collect()
}

/// A number within `[min, max]`.
fn number_in(
    cx: &mut ParseCx<'_>,
    t: &mut Table<'_, '_>,
    key: &'static str,
    min: f64,
    max: f64,
    default: f64,
) -> f64 {
    let Some(v) = t.number(cx.d, key) else {
        return default;
    };
    let value = *v.get_ref();
    if value < min || value > max || (min == 0.0 && value == 0.0) {
        let low = if min == 0.0 {
            "more than 0".to_string()
        } else {
            format!("at least {min}")
        };
        cx.d.error(
            v.span(),
            format!("`{key}` in {} must be {low} and at most {max}", t.context),
        );
        return default;
    }
    value
}

fn count_in(
    cx: &mut ParseCx<'_>,
    t: &mut Table<'_, '_>,
    key: &'static str,
    min: i64,
    max: i64,
    default: usize,
) -> usize {
    let Some(v) = t.integer(cx.d, key) else {
        return default;
    };
    let value = *v.get_ref();
    if !(min..=max).contains(&value) {
        cx.d.error(
            v.span(),
            format!("`{key}` in {} must be between {min} and {max}", t.context),
        );
        return default;
    }
    value as usize
}

impl ActorKind for MetricsConfig {
    type Cli = MetricsCommands;
    const NAME: &'static str = "metrics";
    const SINGLETON: bool = true;
    const OPS: &'static [Op] = &[Op {
        name: "status",
        args: "",
        summary: "samples seen, series watched, anomalies, retention, thresholds",
    }];

    fn schema() -> Obj {
        Obj::new(vec![
            key("retention", Ty::Duration, "How long raw samples are kept (at least 1h).")
                .default("30d"),
            key(
                "rollup_retention",
                Ty::Duration,
                "How long hourly and daily rollups are kept (at least 1 day, and at least `retention`).",
            )
            .default("366d"),
            key(
                "zscore_threshold",
                Ty::Num,
                "A value this many standard deviations from the window's mean is an anomaly.",
            )
            .default(2.0),
            key("window", Ty::Int, "How many values the z-score looks back on (2 to 100000).")
                .default(100),
            key(
                "min_samples",
                Ty::Int,
                "Values a series needs before it is judged (2 to 100000, at most `window`).",
            )
            .default(10),
            key("ewma_alpha", Ty::Num, "The EWMA's smoothing factor (more than 0, at most 1).")
                .default(0.1),
            key(
                "ewma_threshold",
                Ty::Num,
                "How far from the EWMA (in deviations) a value is an anomaly.",
            )
            .default(3.0),
            key(
                "anomaly_gap",
                Ty::Duration,
                "At most one anomaly reported per series per gap (up to 1 day).",
            )
            .default("1m"),
            key(
                "anomalies",
                Ty::Strings,
                "The series watched for anomalies: \"METRIC\" or \"METRIC:SUBJECT\" (the subject a glob with *); metrics of durations or sizes only. Default: none.",
            )
            .example(serde_json::json!(["sync_run"])),
        ])
    }

    fn parse(cx: &mut ParseCx<'_>, t: &mut Table<'_, '_>) -> Option<Self> {
        let max = crate::config::MAX_DURATION;
        let retention =
            bounded(cx.d, t, "retention", Duration::from_secs(3600), max).unwrap_or(30 * DAY);
        let rollup_retention = bounded(cx.d, t, "rollup_retention", DAY, max).unwrap_or(max);
        let defaults = DetectorConfig::default();
        let window = count_in(cx, t, "window", 2, 100_000, defaults.window);
        let min_samples = count_in(cx, t, "min_samples", 2, 100_000, defaults.min_samples);
        if min_samples > window {
            cx.d.error(
                t.span.clone(),
                format!(
                    "`min_samples` ({min_samples}) in {} cannot be more than `window` ({window})",
                    t.context
                ),
            );
        }
        let detector = DetectorConfig {
            window,
            min_samples: min_samples.min(window),
            zscore_threshold: number_in(
                cx,
                t,
                "zscore_threshold",
                0.0,
                1000.0,
                defaults.zscore_threshold,
            ),
            ewma_alpha: number_in(cx, t, "ewma_alpha", 0.0, 1.0, defaults.ewma_alpha),
            ewma_threshold: number_in(
                cx,
                t,
                "ewma_threshold",
                0.0,
                1000.0,
                defaults.ewma_threshold,
            ),
            min_gap_ms: bounded(cx.d, t, "anomaly_gap", Duration::ZERO, DAY)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(defaults.min_gap_ms),
        };
        if rollup_retention < retention {
            cx.d.error(
                t.span.clone(),
                format!(
                    "`rollup_retention` in {} must be at least `retention` (rollups summarise the samples)",
                    t.context
                ),
            );
        }
        let mut watch = Vec::new();
        for p in t.strings(cx.d, "anomalies").unwrap_or_default() {
            let (name, subject) = match p.get_ref().split_once(':') {
                Some((m, s)) => (m, s.to_string()),
                None => (p.get_ref().as_str(), "*".to_string()),
            };
            match Metric::parse(name) {
                Some(m) if m.detects_anomalies() => watch.push((m, subject)),
                Some(_) => cx.d.error(
                    p.span(),
                    format!(
                        "`{name}` in `anomalies` of {} counts occurrences: only durations and \
                         sizes are watched for anomalies ({})",
                        t.context,
                        watchable().join(", ")
                    ),
                ),
                None => cx.d.error(
                    p.span(),
                    format!(
                        "no metric named `{name}` (in `anomalies` of {}); one of: {}",
                        t.context,
                        watchable().join(", ")
                    ),
                ),
            }
        }
        Some(MetricsConfig {
            retention,
            rollup_retention,
            detector,
            watch,
        })
    }

    fn child_spec(&self, name: &str, services: &Services) -> ChildSpec {
        let (config, services) = (self.clone(), services.clone());
        ChildSpec::worker(name, Self::NAME, move |ctx| {
            (
                MetricsActor,
                MetricsArgs {
                    path: ctx.path.clone(),
                    metrics: services.metrics.clone(),
                    alerts: services.alerts.clone(),
                    detector: config.detector.clone(),
                    watch: config.watch.clone(),
                    retention: config.retention,
                    rollup_retention: config.rollup_retention,
                },
            )
        })
    }

    async fn call(cx: CallCx<'_>, op: &str, args: Value) -> Result<Value, CallError> {
        super::check_op(Self::NAME, Self::OPS, op)?;
        super::args::<NoArgs>(op, args)?;
        super::reply(&super::ask(&cx, MetricsMessage::Status).await?)
    }
}

/// The metrics kind's commands.
#[derive(clap::Subcommand, Debug)]
pub enum MetricsCommands {
    /// Metric summaries over a window: count, success rate, min/avg/max, p50/p95/p99, per
    /// series, per metric, and for the whole system.
    Metrics {
        /// Only this metric (actor_restarts, alert_delivery, ...).
        name: Option<String>,
        /// The window (e.g. 1h, 24h, 30d); summaries start at the hour it falls in.
        #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION", default_value = "24h")]
        since: Duration,
    },
    /// Anomalies the metrics actor detected (z-score and EWMA).
    Anomalies {
        /// The window (e.g. 1h, 24h, 30d).
        #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION", default_value = "24h")]
        since: Duration,
    },
}

impl super::KindCli for MetricsCommands {
    fn request(&self) -> Result<crate::control::request::Command, String> {
        use crate::control::request as R;
        Ok(match self {
            MetricsCommands::Metrics { name, since } => R::Metrics {
                name: name.clone(),
                since_s: Some(since.as_secs().max(1)),
            }
            .into(),
            MetricsCommands::Anomalies { since } => R::Anomalies {
                since_s: Some(since.as_secs().max(1)),
            }
            .into(),
        })
    }
}
