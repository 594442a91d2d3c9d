//! `kind = "metrics"`: typed samples from every actor, stored on the store's telemetry lane with
//! hourly rollups, summaries over a window, and anomaly detection (z-score and EWMA).
//!
//! - [`sample`]: the typed sample and the one list of what is measured ([`Metric`]).
//! - [`stats`]: the quantile sketch and exact aggregates; [`anomaly`]: the detectors (pure).

pub mod anomaly;
pub mod sample;
pub mod stats;

pub use sample::{Metric, Sample, Unit};
