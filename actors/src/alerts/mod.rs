//! `kind = "alerts"`: severities, routing to channels, dedup, thresholds, cooldowns, grouping,
//! silences, and a durable outbox delivered with retry.
//!
//! - [`alert`]: what an alert and a notification are.

pub mod alert;

pub use alert::{fingerprint, Alert, Notification, PerSeverity, Severity, Status};
