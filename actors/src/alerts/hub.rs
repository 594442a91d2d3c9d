//! [`Alerts`]: the handle every actor raises and clears alerts through.
//!
//! Alerts go to the alerts actor (dedup, thresholds, routing, the durable outbox). When none
//! runs (not configured, or restarting) an alert is written to the log at its severity and
//! recorded as an `alert` event: it is seen, but not sent to any channel.
//!
//! The handle also keeps what is true now ([`Truth`]: every raise and clear, which sources
//! have told their state), for the daemon's lifetime: a clear while the actor is down is not
//! lost, and the actor compares it with what the receivers were told whenever it starts.

use std::sync::{Arc, Mutex, MutexGuard};

use super::actor::AlertsMessage;
use super::alert::{Alert, Severity};
use super::truth::Truth;
use crate::slot::Slot;
use crate::store::{Store, StoredEvent};

#[derive(Clone)]
pub struct Alerts {
    store: Store,
    actor: Slot<AlertsMessage>,
    /// What the sources say is true now: outlives every incarnation of the actor.
    truth: Arc<Mutex<Truth>>,
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
            truth: Arc::new(Mutex::new(Truth::default())),
        }
    }

    /// What is true now (see [`Truth`]).
    pub fn truth(&self) -> MutexGuard<'_, Truth> {
        // Every change to it is one call that cannot be left half-done: a poisoned lock
        // still holds a whole state.
        self.truth.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An occurrence of a condition; never blocks.
    pub fn raise(&self, alert: Alert) {
        let actor = self.actor.get();
        let nth = self
            .truth()
            .raise(&alert, actor.as_ref().map(|a| a.get_id()));
        let alert = match actor {
            Some(actor) => match actor.cast(AlertsMessage::Raise(alert, nth)) {
                Ok(()) => return,
                Err(ractor::MessagingErr::SendErr(AlertsMessage::Raise(back, _))) => back,
                Err(_) => return,
            },
            None => alert,
        };
        unrouted(&self.store, &alert);
    }

    /// The condition `key` has cleared (a resolved message goes out if it was notified).
    pub fn clear(&self, key: impl Into<String>) {
        let key = key.into();
        self.truth().clear(&key);
        if let Some(actor) = self.actor.get() {
            let _ = actor.cast(AlertsMessage::Clear(key));
        }
    }

    /// A source whose first look takes time owns `scope` (a key, or the prefix of keys
    /// `SCOPE:...`) from its start: until it [`told`](Self::told), what the receivers were
    /// told of those keys stands.
    pub fn own(&self, scope: &str) {
        self.truth().own(scope);
    }

    /// The source of `scope` has raised or cleared every condition it owns: a firing one it
    /// no longer raises is resolved now.
    pub fn told(&self, scope: &str) {
        self.truth().told(scope);
        self.reconcile();
    }

    /// The source of `scope` stopped for good: its conditions end with it (resolved at the
    /// actor's next look, unless a new source owns the scope by then).
    pub fn disown(&self, scope: &str) {
        self.truth().disown(scope);
    }

    /// The tree has started: the sources known from the start (supervision, breakers,
    /// anomalies) have said what they know.
    pub fn started(&self) {
        self.truth().start();
        self.reconcile();
    }

    fn reconcile(&self) {
        if let Some(actor) = self.actor.get() {
            let _ = actor.cast(AlertsMessage::Reconcile);
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
    let mut event = StoredEvent::new(
        &alert.source,
        crate::store::events::Kind::Alert,
        &alert.title,
    );
    event.data = serde_json::json!({
        "severity": alert.severity,
        "key": key,
        "body": alert.body,
        "routed": false,
    });
    store.record(event);
}
