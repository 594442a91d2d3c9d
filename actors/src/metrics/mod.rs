//! `kind = "metrics"`: typed samples from every actor, stored on the store's telemetry lane with
//! hourly rollups, summaries over a window, and anomaly detection (z-score and EWMA).
//!
//! - [`sample`]: the typed sample and the one list of what is measured ([`Metric`]).
//! - [`hub`]: [`Metrics`], the handle actors report through (to the actor when it runs, to the
//!   store when it does not), with running totals for the exports.
//! - [`actor`]: `MetricsActor` (anomaly watch, retention, dropped-telemetry watch).
//! - [`stats`]: the quantile sketch and exact aggregates; [`anomaly`]: the detectors (pure).

pub mod actor;
pub mod anomaly;
pub mod hub;
pub mod sample;
pub mod stats;

pub use actor::{MetricsActor, MetricsArgs, MetricsMessage, MetricsStatus};
pub use hub::{Metrics, SeriesTotal};
pub use sample::{Metric, Sample, Unit};
