//! [`Metrics`]: the handle every actor reports samples through.
//!
//! Samples go to the metrics actor (which watches them for anomalies and writes them to the
//! store) when one runs, straight to the store's telemetry lane when none does (not
//! configured, or restarting): a sample is never lost because the metrics actor is down, it is
//! only not watched. The handle also keeps running totals per series since the daemon started,
//! which the Prometheus and OpenTelemetry exports read without a message round trip.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::actor::MetricsMessage;
use super::sample::{Metric, Sample};
use crate::slot::Slot;
use crate::store::Store;

/// Series tracked in the totals; past this, samples of new series are stored but not totalled
/// (subjects are tree paths and channel names: a real tree stays far below).
pub const MAX_SERIES: usize = 10_000;

/// A series' totals since the daemon started.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct SeriesTotal {
    pub count: u64,
    pub ok: u64,
    pub failed: u64,
    pub sum: f64,
    /// The last value and when (Unix ms).
    pub last: f64,
    pub last_ms: i64,
}

#[derive(Clone)]
pub struct Metrics {
    store: Store,
    actor: Slot<MetricsMessage>,
    totals: Arc<Mutex<BTreeMap<(Metric, String), SeriesTotal>>>,
    /// Samples sent to the metrics actor and not yet handed to the store.
    in_actor: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    pub fn new(store: Store) -> Self {
        Metrics {
            store,
            actor: Slot::default(),
            totals: Arc::default(),
            in_actor: Arc::default(),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Reports one sample; never blocks.
    pub fn report(&self, sample: Sample) {
        self.report_many(vec![sample]);
    }

    /// Reports samples; never blocks.
    pub fn report_many(&self, samples: Vec<Sample>) {
        if samples.is_empty() {
            return;
        }
        self.total(&samples);
        let n = samples.len();
        let samples = match self.actor.get() {
            Some(actor) => {
                self.in_actor.fetch_add(n, Ordering::Relaxed);
                match actor.cast(MetricsMessage::Samples(samples)) {
                    Ok(()) => return,
                    Err(ractor::MessagingErr::SendErr(MetricsMessage::Samples(back))) => {
                        self.in_actor.fetch_sub(n, Ordering::Relaxed);
                        back
                    }
                    Err(_) => {
                        self.in_actor.fetch_sub(n, Ordering::Relaxed);
                        return;
                    }
                }
            }
            None => samples,
        };
        self.store.record_samples(samples);
    }

    fn total(&self, samples: &[Sample]) {
        let mut totals = self.totals.lock().unwrap_or_else(|e| e.into_inner());
        for s in samples {
            let key = (s.metric, s.subject.clone());
            let full = totals.len() >= MAX_SERIES;
            let entry = match totals.get_mut(&key) {
                Some(entry) => entry,
                None if full => continue,
                None => totals.entry(key).or_default(),
            };
            entry.count += 1;
            match s.ok {
                Some(true) => entry.ok += 1,
                Some(false) => entry.failed += 1,
                None => {}
            }
            if s.value.is_finite() {
                entry.sum += s.value;
                entry.last = s.value;
            }
            entry.last_ms = s.at_ms;
        }
    }

    /// Samples reported and not yet written: in the metrics actor's mailbox or the store's
    /// intake (a reporter with a lot to say can pace itself on it).
    pub fn backlog(&self) -> usize {
        self.in_actor.load(Ordering::Relaxed) + self.store.stats().samples_queued
    }

    /// The metrics actor handed `n` samples to the store.
    pub(crate) fn forwarded(&self, n: usize) {
        self.in_actor.fetch_sub(n, Ordering::Relaxed);
    }

    /// Every series' totals since the daemon started, sorted by metric and subject.
    pub fn totals(&self) -> Vec<((Metric, String), SeriesTotal)> {
        let totals = self.totals.lock().unwrap_or_else(|e| e.into_inner());
        totals.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// The metrics actor's slot (it attaches itself when it starts).
    pub(crate) fn slot(&self) -> &Slot<MetricsMessage> {
        &self.actor
    }

    /// Whether a metrics actor is running (samples are watched for anomalies).
    pub fn watched(&self) -> bool {
        self.actor.get().is_some()
    }
}
