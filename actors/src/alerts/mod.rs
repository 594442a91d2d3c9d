//! `kind = "alerts"`: severities, routing to channels, dedup, thresholds, cooldowns, grouping,
//! silences, and a durable outbox delivered with retry.
//!
//! - [`alert`]: what an alert and a notification are.
//! - [`hub`]: [`Alerts`], the handle every actor raises and clears alerts through.
//! - `actor`: `AlertsActor`.

pub mod actor;
pub mod alert;
pub mod hub;

pub use actor::AlertsMessage;
pub use alert::{fingerprint, Alert, Notification, PerSeverity, Severity, Status};
pub use hub::Alerts;
