//! [`Alerts`]: the handle every actor raises and clears alerts through.
//!
//! Alerts go to the alerts actor (dedup, thresholds, routing, the durable outbox). When none
//! runs (not configured, or restarting) an alert is written to the log at its severity and
//! recorded as an `alert` event: it is seen, but not sent to any channel.

use super::actor::AlertsMessage;
use super::alert::{Alert, Severity};
use crate::slot::Slot;
use crate::store::{Store, StoredEvent};

#[derive(Clone)]
pub struct Alerts {
    store: Store,
    actor: Slot<AlertsMessage>,
}

impl std::fmt::Debug for Alerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerts").finish_non_exhaustive()
    }
}

impl Alerts {
    pub fn new(store: Store) -> Self {
        Alerts {
            store,
            actor: Slot::default(),
        }
    }

    /// An occurrence of a condition; never blocks.
    pub fn raise(&self, alert: Alert) {
        let alert = match self.actor.get() {
            Some(actor) => match actor.cast(AlertsMessage::Raise(alert)) {
                Ok(()) => return,
                Err(ractor::MessagingErr::SendErr(AlertsMessage::Raise(back))) => back,
                Err(_) => return,
            },
            None => alert,
        };
        unrouted(&self.store, &alert);
    }

    /// The condition `key` has cleared (a resolved message goes out if it was notified).
    pub fn clear(&self, key: impl Into<String>) {
        if let Some(actor) = self.actor.get() {
            let _ = actor.cast(AlertsMessage::Clear(key.into()));
        }
    }

    #[allow(dead_code)] // the alerts actor attaches itself here (next commit)
    pub(crate) fn slot(&self) -> &Slot<AlertsMessage> {
        &self.actor
    }

    /// The running alerts actor, if any (for `alerts test` and `alerts silence`).
    pub fn actor(&self) -> Option<ractor::ActorRef<AlertsMessage>> {
        self.actor.get()
    }
}

/// An alert no alerts actor took: logged at its severity and recorded as an event.
pub(crate) fn unrouted(store: &Store, alert: &Alert) {
    let key = alert.key();
    match alert.severity {
        Severity::Critical => tracing::error!(
            alert = %alert.title, source = %alert.source, %key, body = %alert.body,
            "alert (no alerts actor running)"
        ),
        Severity::Warning => tracing::warn!(
            alert = %alert.title, source = %alert.source, %key, body = %alert.body,
            "alert (no alerts actor running)"
        ),
        Severity::Info => tracing::info!(
            alert = %alert.title, source = %alert.source, %key, body = %alert.body,
            "alert (no alerts actor running)"
        ),
    }
    let mut event = StoredEvent::new(&alert.source, "alert", &alert.title);
    event.data = serde_json::json!({
        "severity": alert.severity,
        "key": key,
        "body": alert.body,
        "routed": false,
    });
    store.record(event);
}
