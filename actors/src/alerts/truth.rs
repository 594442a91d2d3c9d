//! What the sources say is true now: the level state behind the alerts, kept by the [`Alerts`]
//! handle for the daemon's lifetime (it outlives any incarnation of the alerts actor).
//!
//! The alerts actor remembers what the receivers were told (its engine, rebuilt from the
//! outbox at each start); this remembers what is so. Comparing the two after any restart of
//! the actor or the daemon is how a receiver told "firing" about something no longer true gets
//! its resolution, and something true that it was never told about gets a firing
//! ([`Truth::verdict`]).
//!
//! - A condition is *active* from a raise of its key until a clear of it.
//! - A source whose first look takes time (a probe's first check, a sync target's first run)
//!   *owns* a scope (a key, or a key prefix followed by `:`) from its start, and *tells* once
//!   it has raised or cleared every condition it owns: until then its keys are unknown, and
//!   what the receivers were told stands.
//! - Every other key (supervision, breakers, anomalies: known from the start) is false unless
//!   active, once the tree has started.
//! - A source that stops for good gives its scope up: its conditions end with it.
//!
//! Pure: no clock, no I/O; the handle wraps it in a mutex.
//!
//! [`Alerts`]: super::Alerts

use std::collections::{BTreeMap, HashMap};

use ractor::ActorId;

use super::alert::Alert;

/// What is known of one key now.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Raised and not cleared: its latest occurrence and how many in a row.
    Active(Alert, u64),
    /// Not happening (cleared, or nothing raised it since its source told its state, or no
    /// source of it runs).
    False,
    /// Its source has not told its state yet.
    Unknown,
}

/// The level state (see the module documentation).
#[derive(Debug, Default)]
pub struct Truth {
    /// Conditions raised and not cleared.
    active: HashMap<String, Active>,
    /// Scopes owned by a running source → whether it has told its state.
    scopes: BTreeMap<String, bool>,
    /// The tree has started: every source that is known from the start has said what it knows.
    started: bool,
}

/// A condition raised and not cleared.
#[derive(Debug, Clone, PartialEq)]
pub struct Active {
    /// Its latest occurrence.
    pub alert: Alert,
    /// Occurrences in a row.
    pub nth: u64,
    /// The incarnation of the alerts actor its latest occurrence was sent to (`None`: none
    /// ran): an incarnation finds in its mailbox what was sent to it, and nothing else.
    pub sent_to: Option<ActorId>,
}

/// Whether `key` is in `scope`: the key itself, or under it (`SCOPE:...`).
pub fn in_scope(scope: &str, key: &str) -> bool {
    key.strip_prefix(scope)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(':'))
}

impl Truth {
    /// An occurrence of `alert` (its key active, one more in a row), sent to the alerts
    /// actor `sent_to`: how many in a row now.
    pub fn raise(&mut self, alert: &Alert, sent_to: Option<ActorId>) -> u64 {
        let key = alert.key();
        let entry = self.active.entry(key).or_insert_with(|| Active {
            alert: alert.clone(),
            nth: 0,
            sent_to,
        });
        entry.alert = alert.clone();
        entry.nth = entry.nth.saturating_add(1);
        entry.sent_to = sent_to;
        entry.nth
    }

    /// The condition `key` ended.
    pub fn clear(&mut self, key: &str) {
        self.active.remove(key);
    }

    /// A source that takes time to know owns `scope` from now: its keys are unknown until it
    /// tells. Owned again (a restarted source): unknown again, its active keys kept (they are
    /// what it said last; its first look raises or clears them).
    pub fn own(&mut self, scope: &str) {
        self.scopes.insert(scope.to_string(), false);
    }

    /// The source of `scope` has raised or cleared every condition it owns.
    pub fn told(&mut self, scope: &str) {
        self.scopes.insert(scope.to_string(), true);
    }

    /// The source of `scope` stopped for good: its conditions end with it.
    pub fn disown(&mut self, scope: &str) {
        self.scopes.remove(scope);
        self.active.retain(|key, _| !in_scope(scope, key));
    }

    /// The tree has started.
    pub fn start(&mut self) {
        self.started = true;
    }

    /// What is known of `key` now.
    pub fn verdict(&self, key: &str) -> Verdict {
        if let Some(a) = self.active.get(key) {
            return Verdict::Active(a.alert.clone(), a.nth);
        }
        // The most specific scope holding the key decides.
        let owner = self
            .scopes
            .iter()
            .filter(|(scope, _)| in_scope(scope, key))
            .max_by_key(|(scope, _)| scope.len());
        match owner {
            Some((_, true)) => Verdict::False,
            Some((_, false)) => Verdict::Unknown,
            None if self.started => Verdict::False,
            None => Verdict::Unknown,
        }
    }

    /// Every active condition, by key.
    pub fn active(&self) -> Vec<Active> {
        let mut out: Vec<Active> = self.active.values().cloned().collect();
        out.sort_by_key(|a| a.alert.key());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::Severity;

    fn alert(key: &str) -> Alert {
        let mut a = Alert::new(Severity::Warning, key, "root/x");
        a.key = Some(key.to_string());
        a
    }

    #[test]
    fn scopes_hold_a_key_or_what_is_under_it() {
        assert!(in_scope("probe:root/a", "probe:root/a:fail"));
        assert!(in_scope("breaker:b", "breaker:b"));
        assert!(!in_scope("probe:root/a", "probe:root/ab:fail"));
        assert!(!in_scope("probe:root/a:fail", "probe:root/a"));
    }

    #[test]
    fn a_key_is_unknown_until_its_source_tells_then_true_or_false() {
        let mut t = Truth::default();
        assert_eq!(t.verdict("restart:root/x"), Verdict::Unknown, "not started");
        t.own("probe:root/p");
        t.start();
        assert_eq!(t.verdict("restart:root/x"), Verdict::False);
        assert_eq!(t.verdict("probe:root/p:fail"), Verdict::Unknown);
        t.raise(&alert("probe:root/p:warn"), None);
        assert_eq!(t.raise(&alert("probe:root/p:warn"), None), 2);
        t.told("probe:root/p");
        assert_eq!(t.verdict("probe:root/p:fail"), Verdict::False);
        assert!(matches!(
            t.verdict("probe:root/p:warn"),
            Verdict::Active(_, 2)
        ));
        t.clear("probe:root/p:warn");
        assert_eq!(t.verdict("probe:root/p:warn"), Verdict::False);
        // Restarted: unknown again until it looks.
        t.raise(&alert("probe:root/p:fail"), None);
        t.own("probe:root/p");
        assert!(matches!(
            t.verdict("probe:root/p:fail"),
            Verdict::Active(_, 1)
        ));
        assert_eq!(t.verdict("probe:root/p:warn"), Verdict::Unknown);
        // Removed: its conditions end.
        t.disown("probe:root/p");
        assert_eq!(t.verdict("probe:root/p:fail"), Verdict::False);
        assert!(t.active().is_empty());
    }

    #[test]
    fn the_most_specific_scope_decides() {
        let mut t = Truth::default();
        t.own("sync:t");
        t.own("sync:t:conflict");
        t.told("sync:t");
        assert_eq!(t.verdict("sync:t:error"), Verdict::False);
        assert_eq!(t.verdict("sync:t:conflict"), Verdict::Unknown);
    }
}
