//! Typed samples: what every actor reports about what it did.
//!
//! [`Metric`] is the one list of what is measured. Its name and unit make the Prometheus name
//! (`metasystem_<name>_<unit>[_total]`) and the OpenTelemetry instrument; later kinds add
//! their variants here (sync runs, breaker transitions, probe results, heal actions).

use std::fmt;

/// What a sample's value measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    /// Each sample is one occurrence (value 1): exported as a counter, `..._total`.
    Events,
    Seconds,
    Bytes,
    /// A plain number (rows, items).
    Count,
    /// 0 to 1.
    Ratio,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Events => "events",
            Unit::Seconds => "seconds",
            Unit::Bytes => "bytes",
            Unit::Count => "count",
            Unit::Ratio => "ratio",
        }
    }
}

macro_rules! metrics {
    ($($variant:ident => $name:literal, $unit:ident, $detect:literal, $help:literal;)+) => {
        /// Everything measured. A sample's `subject` says of what (a tree path, a channel).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Metric {
            $($variant),+
        }

        impl Metric {
            pub const ALL: &'static [Metric] = &[$(Metric::$variant),+];

            /// The stored and exported name (`snake_case`).
            pub fn name(self) -> &'static str {
                match self { $(Metric::$variant => $name),+ }
            }

            pub fn unit(self) -> Unit {
                match self { $(Metric::$variant => Unit::$unit),+ }
            }

            /// Whether values are watched for anomalies (z-score, EWMA). Occurrence counts
            /// (value 1) are not.
            pub fn detects_anomalies(self) -> bool {
                match self { $(Metric::$variant => $detect),+ }
            }

            /// One line for `# HELP` and the CLI.
            pub fn help(self) -> &'static str {
                match self { $(Metric::$variant => $help),+ }
            }
        }
    };
}

metrics! {
    ActorStarts => "actor_starts", Events, false, "actors started (first starts and restarts)";
    ActorStartFailures => "actor_start_failures", Events, false, "actor starts that failed";
    ActorExits => "actor_exits", Events, false, "actor exits (ok: a normal exit or an ordered stop)";
    ActorRestarts => "actor_restarts", Events, false, "restarts scheduled by a supervisor";
    ActorRestartDelay => "actor_restart_delay", Seconds, false, "the backoff delay before a restart";
    ActorGiveUps => "actor_give_ups", Events, false, "supervisors that gave up (restart intensity)";
    AlertsRaised => "alerts_raised", Events, false, "alert occurrences raised";
    AlertDeliveries => "alert_delivery", Seconds, true, "alert deliveries to a channel (ok: accepted)";
    StoreDropped => "store_dropped", Count, false, "telemetry rows the store dropped (intake full)";
    BreakerTransitions => "breaker_transitions", Events, false, "circuit breaker transitions (ok: to closed)";
    ProbeChecks => "probe_check", Seconds, true, "probe checks and how long each took (ok: pass)";
    HealActions => "heal_actions", Seconds, false, "self-heal actions run and how long each took (ok: done)";
    RetryRuns => "retry_run", Seconds, false, "retried operations: one per run of all its attempts (ok: succeeded)";
    SyncRuns => "sync_run", Seconds, true, "sync runs of a target and how long each took (ok: success; skipped runs are not samples)";
    SyncBytes => "sync_bytes", Bytes, false, "bytes a sync run copied";
    ProcessRuns => "process_run", Seconds, false, "runs of managed processes and how long each lasted (ok: a normal exit)";
}

impl Metric {
    pub fn parse(name: &str) -> Option<Metric> {
        Metric::ALL.iter().copied().find(|m| m.name() == name)
    }

    /// The Prometheus name: `metasystem_<name>_total` for occurrences, otherwise
    /// `metasystem_<name>_<unit>`.
    pub fn prometheus_name(self) -> String {
        match self.unit() {
            Unit::Events => format!("metasystem_{}_total", self.name()),
            unit => format!("metasystem_{}_{}", self.name(), unit.as_str()),
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One measurement.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Unix milliseconds.
    pub at_ms: i64,
    pub metric: Metric,
    /// Of what: a tree path, a channel name, ... (`""` for the daemon as a whole).
    pub subject: String,
    pub value: f64,
    /// The outcome, for operations that succeed or fail (`None` for plain measurements).
    pub ok: Option<bool>,
}

impl Sample {
    /// A measurement taken now.
    pub fn now(metric: Metric, subject: impl Into<String>, value: f64) -> Self {
        Sample {
            at_ms: crate::store::unix_ms(std::time::SystemTime::now()),
            metric,
            subject: subject.into(),
            value,
            ok: None,
        }
    }

    /// One occurrence (value 1) now.
    pub fn event(metric: Metric, subject: impl Into<String>) -> Self {
        Sample::now(metric, subject, 1.0)
    }

    pub fn outcome(mut self, ok: bool) -> Self {
        self.ok = Some(ok);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_snake_case_and_parse_back() {
        let mut seen = std::collections::HashSet::new();
        for m in Metric::ALL {
            assert!(seen.insert(m.name()), "{m} listed twice");
            assert!(m
                .name()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_'));
            assert_eq!(Metric::parse(m.name()), Some(*m));
        }
        assert_eq!(
            Metric::ActorRestarts.prometheus_name(),
            "metasystem_actor_restarts_total"
        );
        assert_eq!(
            Metric::AlertDeliveries.prometheus_name(),
            "metasystem_alert_delivery_seconds"
        );
    }
}
