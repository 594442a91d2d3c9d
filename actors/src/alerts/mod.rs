//! `kind = "alerts"`: severities, routing to channels, dedup, thresholds, cooldowns, grouping,
//! silences, and a durable outbox delivered with retry.
//!
//! - [`alert`]: what an alert and a notification are.
//! - [`engine`]: the decision (thresholds, dedup, cooldowns, silences, resolution), pure.
//! - [`group`]: grouping per channel and retry delays, pure.
//! - [`channel`]: where notifications go (email, webhook, Slack, Discord, the log) and how.
//! - [`message`]: what one message carries (each episode once, at its latest; no end of an
//!   episode its receiver never heard of).
//! - [`flush`]: the daemon's last words (the root gave up): the outbox sent without the actor.
//! - [`hub`]: [`Alerts`], the handle every actor raises and clears alerts through.
//! - [`truth`]: what the sources say is true now, kept by the handle across restarts of the
//!   actor; compared with what the receivers were told whenever the actor starts.
//! - `actor`: `AlertsActor`.

pub mod actor;
pub mod alert;
pub mod channel;
pub mod engine;
pub mod flush;
pub mod group;
pub mod hub;
pub mod message;
pub mod truth;

pub use actor::AlertsMessage;
pub use alert::{fingerprint, Alert, Notification, PerSeverity, Severity, Status};
pub use engine::{Decision, Engine, Policy};
pub use group::{full_jitter, next_attempt_delay, Groups};
pub use hub::Alerts;
