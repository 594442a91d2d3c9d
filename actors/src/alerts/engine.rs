//! The decision of the `alerts` kind: given an occurrence of a condition, send a notification
//! now, or hold it back (pending, deduplicated, cooling down, silenced).
//!
//! Pure logic: plain types, time passed in as Unix milliseconds (no clock is read here), no I/O,
//! so the actor is a thin shell around it and every rule below is unit-tested with explicit
//! clocks.
//!
//! # The contract
//!
//! 1. **Keys.** Each key ([`Alert::key`]: the explicit one, or `severity:title`) counts its
//!    consecutive occurrences. [`Engine::clear`] resets the count to 0. Severity is part of the
//!    default key, so the same title at two severities is two independent keys.
//! 2. **Threshold.** A key starts firing when its consecutive count reaches `after`: the
//!    alert's own [`Alert::after`] if set, else [`Policy::after`] for its severity (0 counts
//!    as 1). Before that, a raise is [`Decision::Pending`].
//! 3. **Episodes**, as Alertmanager has them. A key that reaches `after` while not firing
//!    starts an *episode*: it is notified at once, with `occurrences` = the consecutive count
//!    and `starts_at_ms` = the first occurrence of the run, however soon after the previous
//!    episode resolved (a receiver whose last message said "resolved" must hear that it fails
//!    again). Within an episode, at most one firing notification per interval, the interval
//!    being `max(repeat_interval, dedup_window, cooldown[severity])`: repeats within it are
//!    [`Decision::Deduplicated`] and counted; the first occurrence at or after it sends a
//!    reminder (status firing, same fingerprint and `starts_at_ms`) whose `occurrences` = the
//!    occurrences folded since the previous notification plus this one. A condition that
//!    holds with nothing raising it again gets its reminder from [`Engine::remind`], which
//!    the caller runs when [`Engine::reminder_due`] says.
//! 4. **Resolution.** [`Engine::clear`] of a key whose firing notification was sent and not yet
//!    resolved returns a resolved notification at once (same fingerprint, same `starts_at_ms`,
//!    `ends_at_ms` = now, `occurrences` = how many times it happened in the episode: what a
//!    receiver reads as "it fired N times"), whether or not a silence matches: a receiver that saw "firing" must see
//!    "resolved". A clear of a key that was pending, or muted (cooldown or silence) without a
//!    notification sent, returns `None` and ends its state (the count restarts at 0).
//! 5. **Silences.** A raise whose key matches an active silence (an exact key, or a glob where
//!    `*` matches any run of characters) returns [`Decision::Silenced`] with the latest
//!    `until_ms` of the silences that match. The occurrence is still counted (and, for a key
//!    already notified, folded into its next reminder). When the silence ends and the
//!    condition still holds, [`Engine::assess`] (the caller's look at what is true, when a
//!    silence ends) notifies it then, without waiting for another occurrence. A silence is
//!    active while `now_ms < until_ms`.
//! 6. **Notification fields.** `id` 0 (the caller stores it in the outbox), `fingerprint` =
//!    [`fingerprint`]`(key)`, `key`, `status`, `severity`, `title`/`body`/`source`/`labels`
//!    from the latest occurrence, `starts_at_ms` = the time of the first occurrence of the
//!    current consecutive run, `ends_at_ms` only when resolved.
//! 7. **Restart.** [`Engine::restore_firing`] re-creates, from the outbox, the state of a key
//!    whose firing notification was sent before a restart, so a later clear resolves it with
//!    the same fingerprint and `starts_at_ms`, and repeats stay deduplicated.
//!    [`Engine::assess`] takes a condition that holds now (`n` occurrences in a row, as the
//!    caller's level state kept them) into account without counting an occurrence: notified
//!    if past its threshold, not silenced and not firing already.
//! 8. **Memory.** [`Engine::prune`] forgets keys that are not firing and were last seen longer
//!    than `max(dedup_window, every cooldown)` ago, and drops expired silences. At most
//!    [`MAX_KEYS`] keys are tracked: beyond that the least recently seen non-firing keys are
//!    evicted (a tenth of the cap at a time, so a flood of new keys costs amortized O(1) per
//!    key). Firing keys are never evicted: forgetting one would lose its resolution.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::alert::{fingerprint, Alert, Notification, PerSeverity, Severity, Status};

/// The most keys an [`Engine`] tracks before evicting (see the module doc, rule 8).
pub const MAX_KEYS: usize = 100_000;

/// The tunables of the decision (`[alerts]` in the configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The shortest time between two firing notifications of a key, whatever its severity.
    pub dedup_window: Duration,
    /// Consecutive occurrences needed before a key fires (0 counts as 1).
    pub after: PerSeverity<u32>,
    /// The shortest time between two firing notifications of a key of this severity within
    /// one episode.
    pub cooldown: PerSeverity<Duration>,
    /// How often a long-firing key is notified again (a reminder), at the least.
    pub repeat_interval: Duration,
}

impl Default for Policy {
    /// Critical fires soonest and may remind hourly; info needs a sustained condition and
    /// reminds daily.
    fn default() -> Self {
        Policy {
            dedup_window: Duration::from_secs(3600),
            after: PerSeverity {
                info: 10,
                warning: 5,
                critical: 3,
            },
            cooldown: PerSeverity {
                info: Duration::from_secs(24 * 3600),
                warning: Duration::from_secs(2 * 3600),
                critical: Duration::from_secs(3600),
            },
            repeat_interval: Duration::from_secs(4 * 3600),
        }
    }
}

impl Policy {
    /// The consecutive occurrences `alert` needs before it fires: its own `after`, else the
    /// policy's for its severity; at least 1 (a threshold of 0 would mean "fire before it
    /// happens").
    pub fn after_for(&self, alert: &Alert) -> u32 {
        alert
            .after
            .unwrap_or(*self.after.get(alert.severity))
            .max(1)
    }

    /// The time between two firing notifications of one episode of a key of this severity:
    /// `repeat_interval`, or longer if the dedup window or the severity's cooldown is.
    pub fn interval(&self, severity: Severity) -> Duration {
        self.repeat_interval
            .max(self.dedup_window)
            .max(*self.cooldown.get(severity))
    }

    /// How long a quiet key can still matter: past this, forgetting it changes no decision.
    pub fn horizon(&self) -> Duration {
        Severity::ALL
            .into_iter()
            .map(|s| self.interval(s))
            .fold(self.dedup_window, Duration::max)
    }
}

/// What to do with one occurrence.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Send this (id 0; the caller stores it in the outbox).
    Notify(Notification),
    /// Not yet `after` consecutive occurrences.
    Pending { seen: u32, after: u32 },
    /// Already notified within the interval: counted, folded into the next notification
    /// (`occurrences` folded so far, this one included).
    Deduplicated { occurrences: u64 },
    /// A silence matches the key until then.
    Silenced { until_ms: i64 },
}

/// A firing notification sent and not yet resolved: what the resolved one and reminders need.
#[derive(Debug, Clone)]
struct Sent {
    fingerprint: String,
    starts_at_ms: i64,
    title: String,
    body: String,
    source: String,
    labels: BTreeMap<String, String>,
    /// Occurrences since the last notification of this key.
    folded: u64,
    /// Occurrences in the episode (what its resolution reports).
    total: u64,
}

impl Sent {
    fn update(&mut self, alert: &Alert) {
        self.title.clone_from(&alert.title);
        self.body.clone_from(&alert.body);
        self.source.clone_from(&alert.source);
        self.labels.clone_from(&alert.labels);
    }
}

/// What the engine remembers of one key.
#[derive(Debug, Clone)]
struct KeyState {
    /// Of the latest occurrence (an explicit key may be raised at several severities).
    severity: Severity,
    /// Consecutive occurrences since the last clear.
    consecutive: u64,
    /// The first occurrence of the current consecutive run.
    run_started_ms: i64,
    last_seen_ms: i64,
    /// The last firing notification (first or reminder) of the current episode.
    last_notified_ms: Option<i64>,
    /// Only while firing: keeps the (possibly long) body of quiet keys out of memory.
    sent: Option<Sent>,
}

/// The per-key state machine of the `alerts` kind (see the module doc for the contract).
#[derive(Debug, Clone)]
pub struct Engine {
    policy: Policy,
    keys: HashMap<String, KeyState>,
    /// Pattern → until (Unix ms).
    silences: BTreeMap<String, i64>,
    max_keys: usize,
}

impl Engine {
    pub fn new(policy: Policy) -> Engine {
        Engine::with_max_keys(policy, MAX_KEYS)
    }

    /// An engine tracking at most `max_keys` keys (at least 1) before evicting; for tests and
    /// small deployments.
    pub fn with_max_keys(policy: Policy, max_keys: usize) -> Engine {
        Engine {
            policy,
            keys: HashMap::new(),
            silences: BTreeMap::new(),
            max_keys: max_keys.max(1),
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// For a configuration reload: the counts, firing states and silences are kept, the new
    /// thresholds and intervals apply from the next raise.
    pub fn set_policy(&mut self, policy: Policy) {
        self.policy = policy;
    }

    /// Decides what to do with one occurrence of `alert` at `now_ms`.
    pub fn raise(&mut self, alert: &Alert, now_ms: i64) -> Decision {
        self.raise_nth(alert, None, now_ms)
    }

    /// [`Engine::raise`] of an occurrence the caller counted: the `nth` in a row (`None`: one
    /// more than the engine counted). The count is the larger of the two, so an occurrence
    /// that [`Engine::assess`] took into account already is not counted again.
    pub fn raise_nth(&mut self, alert: &Alert, nth: Option<u64>, now_ms: i64) -> Decision {
        let key = alert.key();
        let silenced_until = self.silenced_until(&key, now_ms);
        let after = self.policy.after_for(alert);
        let interval = millis(self.policy.interval(alert.severity));
        let state = self.state_for(&key, alert, now_ms);
        state.consecutive = match nth {
            Some(n) => state.consecutive.max(n),
            None => state.consecutive.saturating_add(1),
        };
        state.last_seen_ms = now_ms;
        state.severity = alert.severity;
        let muted_until = state
            .last_notified_ms
            .map(|last| last.saturating_add(interval))
            .filter(|until| now_ms < *until);

        // Already notified: it stays firing until cleared, whatever the threshold says now.
        if let Some(sent) = &mut state.sent {
            sent.update(alert);
            sent.folded = sent.folded.saturating_add(1);
            sent.total = sent.total.saturating_add(1);
            if let Some(until_ms) = silenced_until {
                return Decision::Silenced { until_ms };
            }
            if muted_until.is_some() {
                return Decision::Deduplicated {
                    occurrences: sent.folded,
                };
            }
            let occurrences = std::mem::take(&mut sent.folded);
            let notification = firing(
                &key,
                alert,
                sent.fingerprint.clone(),
                sent.starts_at_ms,
                occurrences,
            );
            state.last_notified_ms = Some(now_ms);
            return Decision::Notify(notification);
        }

        not_firing(state, &key, alert, silenced_until, after, now_ms)
    }

    /// A condition that holds now, `n` occurrences in a row as the caller's level state counts
    /// them (after a restart of the actor, when a silence ends): decided without counting an
    /// occurrence. `None` for a key firing already (its reminders follow its occurrences);
    /// else notified if it is past its threshold and no silence holds it.
    pub fn assess(&mut self, alert: &Alert, n: u64, now_ms: i64) -> Option<Decision> {
        let key = alert.key();
        if self.keys.get(&key).is_some_and(|s| s.sent.is_some()) {
            return None;
        }
        let silenced_until = self.silenced_until(&key, now_ms);
        let after = self.policy.after_for(alert);
        let state = self.state_for(&key, alert, now_ms);
        state.consecutive = state.consecutive.max(n);
        state.last_seen_ms = state.last_seen_ms.max(now_ms);
        state.severity = alert.severity;
        Some(not_firing(
            state,
            &key,
            alert,
            silenced_until,
            after,
            now_ms,
        ))
    }

    /// A reminder of a key that fires and still holds (the caller's level state says so) with
    /// nothing raising it again (a probe raises when its status changes, not at every check):
    /// a firing notification once its interval has passed since the last one (Alertmanager's
    /// `repeat_interval`), its `occurrences` those folded since. `None` for a key not firing,
    /// within its interval, or silenced (the silence's end notifies it).
    pub fn remind(&mut self, alert: &Alert, now_ms: i64) -> Option<Notification> {
        let key = alert.key();
        let interval = millis(self.policy.interval(alert.severity));
        if interval <= 0 || self.silenced_until(&key, now_ms).is_some() {
            return None;
        }
        let state = self.keys.get_mut(&key)?;
        let last = state.last_notified_ms?;
        let sent = state.sent.as_mut()?;
        if now_ms < last.saturating_add(interval) {
            return None;
        }
        sent.update(alert);
        let occurrences = std::mem::take(&mut sent.folded);
        state.last_notified_ms = Some(now_ms);
        Some(firing(
            &key,
            alert,
            sent.fingerprint.clone(),
            sent.starts_at_ms,
            occurrences,
        ))
    }

    /// The firing notification of `key`'s current episode (its occurrences so far), for a
    /// channel that was not told it fires; `None` for a key not firing.
    pub fn episode_firing(&self, key: &str) -> Option<Notification> {
        let state = self.keys.get(key)?;
        let sent = state.sent.as_ref()?;
        Some(Notification {
            id: 0,
            fingerprint: sent.fingerprint.clone(),
            key: key.to_string(),
            status: Status::Firing,
            severity: state.severity,
            title: sent.title.clone(),
            body: sent.body.clone(),
            source: sent.source.clone(),
            labels: sent.labels.clone(),
            starts_at_ms: sent.starts_at_ms,
            ends_at_ms: None,
            occurrences: sent.total,
        })
    }

    /// When a firing `key` is next due a reminder (its last notification plus its interval);
    /// `None` for a key not firing, or without an interval.
    pub fn reminder_due(&self, key: &str) -> Option<i64> {
        let state = self.keys.get(key)?;
        state.sent.as_ref()?;
        let interval = millis(self.policy.interval(state.severity));
        (interval > 0).then(|| state.last_notified_ms.unwrap_or(0).saturating_add(interval))
    }

    /// The state of `key` (made, room made first, for a new one); a run that starts now (no
    /// occurrence in a row yet) starts at `now_ms`.
    fn state_for(&mut self, key: &str, alert: &Alert, now_ms: i64) -> &mut KeyState {
        if !self.keys.contains_key(key) {
            self.make_room();
        }
        let state = self.keys.entry(key.to_string()).or_insert(KeyState {
            severity: alert.severity,
            consecutive: 0,
            run_started_ms: now_ms,
            last_seen_ms: now_ms,
            last_notified_ms: None,
            sent: None,
        });
        if state.consecutive == 0 {
            state.run_started_ms = now_ms;
        }
        state
    }

    /// The condition behind `key` ended: its count restarts at 0. Returns the resolved
    /// notification if a firing one was sent (even under a silence: whoever saw it fire must
    /// see it end); `None` for a pending or muted key, or an unknown one.
    pub fn clear(&mut self, key: &str, now_ms: i64) -> Option<Notification> {
        let state = self.keys.get_mut(key)?;
        state.consecutive = 0;
        let sent = state.sent.take()?;
        Some(Notification {
            id: 0,
            fingerprint: sent.fingerprint,
            key: key.to_string(),
            status: Status::Resolved,
            severity: state.severity,
            title: sent.title,
            body: sent.body,
            source: sent.source,
            labels: sent.labels,
            starts_at_ms: sent.starts_at_ms,
            ends_at_ms: Some(now_ms),
            occurrences: sent.total,
        })
    }

    /// Mutes the keys matching `pattern` (an exact key, or a glob where `*` matches any run of
    /// characters) until `until_ms`; silencing the same pattern again replaces its end.
    pub fn silence(&mut self, pattern: &str, until_ms: i64) {
        self.silences.insert(pattern.to_string(), until_ms);
    }

    /// Removes the silence with exactly this pattern; whether there was one.
    pub fn unsilence(&mut self, pattern: &str) -> bool {
        self.silences.remove(pattern).is_some()
    }

    /// The silences active at `now_ms` (pattern, until), by pattern.
    pub fn silences(&self, now_ms: i64) -> Vec<(String, i64)> {
        self.silences
            .iter()
            .filter(|(_, until)| now_ms < **until)
            .map(|(pattern, until)| (pattern.clone(), *until))
            .collect()
    }

    /// After a daemon restart: the outbox says a firing notification `n` was sent at
    /// `notified_ms`, and no resolution since. The key is firing again as if the engine had
    /// sent it: a clear resolves it with `n`'s fingerprint and `starts_at_ms`, repeats within
    /// the interval are deduplicated. A resolved `n` ends the key's firing state instead (so
    /// the caller may replay the outbox in order).
    pub fn restore_firing(&mut self, n: &Notification, notified_ms: i64) {
        if n.status == Status::Resolved {
            if let Some(state) = self.keys.get_mut(&n.key) {
                state.consecutive = 0;
                state.sent = None;
            }
            return;
        }
        if !self.keys.contains_key(&n.key) {
            self.make_room();
        }
        let state = self.keys.entry(n.key.clone()).or_insert(KeyState {
            severity: n.severity,
            consecutive: 0,
            run_started_ms: n.starts_at_ms,
            last_seen_ms: notified_ms,
            last_notified_ms: None,
            sent: None,
        });
        state.severity = n.severity;
        state.consecutive = state.consecutive.max(n.occurrences).max(1);
        state.run_started_ms = n.starts_at_ms;
        state.last_seen_ms = state.last_seen_ms.max(notified_ms);
        state.last_notified_ms = Some(
            state
                .last_notified_ms
                .map_or(notified_ms, |t| t.max(notified_ms)),
        );
        state.sent = Some(Sent {
            fingerprint: n.fingerprint.clone(),
            starts_at_ms: n.starts_at_ms,
            title: n.title.clone(),
            body: n.body.clone(),
            source: n.source.clone(),
            labels: n.labels.clone(),
            folded: 0,
            // At least what the last notification said (a reminder's count is partial).
            total: n.occurrences.max(1),
        });
    }

    /// Whether `key`'s firing notification was sent and not resolved.
    pub fn is_firing(&self, key: &str) -> bool {
        self.keys.get(key).is_some_and(|s| s.sent.is_some())
    }

    /// Keys whose firing notification was sent and not resolved, sorted.
    pub fn firing(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = self
            .keys
            .iter()
            .filter(|(_, state)| state.sent.is_some())
            .map(|(key, _)| key.as_str())
            .collect();
        keys.sort_unstable();
        keys
    }

    /// Forgets keys that are not firing and were last seen longer than
    /// [`Policy::horizon`] ago (no decision depends on them any more), and expired silences.
    pub fn prune(&mut self, now_ms: i64) {
        let horizon = millis(self.policy.horizon());
        self.keys.retain(|_, state| {
            state.sent.is_some() || now_ms.saturating_sub(state.last_seen_ms) <= horizon
        });
        self.silences.retain(|_, until| now_ms < *until);
    }

    /// Keys tracked.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The latest end of the active silences matching `key`.
    fn silenced_until(&self, key: &str, now_ms: i64) -> Option<i64> {
        self.silences
            .iter()
            .filter(|(pattern, until)| now_ms < **until && glob_match(pattern, key))
            .map(|(_, until)| *until)
            .max()
    }

    /// Before adding a key: at the cap, evicts the least recently seen non-firing keys, a tenth
    /// of the cap at once so that a flood of new keys does not scan the map for each one.
    fn make_room(&mut self) {
        if self.keys.len() < self.max_keys {
            return;
        }
        let need = self.keys.len() + 1 - self.max_keys;
        let evicted: Vec<String> = {
            let mut candidates: Vec<(i64, &String)> = self
                .keys
                .iter()
                .filter(|(_, state)| state.sent.is_none())
                .map(|(key, state)| (state.last_seen_ms, key))
                .collect();
            let count = need.max(self.max_keys / 10).min(candidates.len());
            if count == 0 {
                return;
            }
            if count < candidates.len() {
                candidates.select_nth_unstable(count - 1);
            }
            candidates
                .iter()
                .take(count)
                .map(|(_, key)| (*key).clone())
                .collect()
        };
        for key in evicted {
            self.keys.remove(&key);
        }
    }
}

/// The decision for a key not firing, its count updated: silenced, pending below its
/// threshold, or a new episode.
fn not_firing(
    state: &mut KeyState,
    key: &str,
    alert: &Alert,
    silenced_until: Option<i64>,
    after: u32,
    now_ms: i64,
) -> Decision {
    if let Some(until_ms) = silenced_until {
        return Decision::Silenced { until_ms };
    }
    if state.consecutive < u64::from(after) {
        return Decision::Pending {
            seen: u32::try_from(state.consecutive).unwrap_or(u32::MAX),
            after,
        };
    }
    Decision::Notify(begin_episode(state, key, alert, now_ms))
}

/// A new episode of `key`: its first firing notification, remembered as sent.
fn begin_episode(state: &mut KeyState, key: &str, alert: &Alert, now_ms: i64) -> Notification {
    let notification = firing(
        key,
        alert,
        fingerprint(key),
        state.run_started_ms,
        state.consecutive,
    );
    state.sent = Some(Sent {
        fingerprint: notification.fingerprint.clone(),
        starts_at_ms: notification.starts_at_ms,
        title: alert.title.clone(),
        body: alert.body.clone(),
        source: alert.source.clone(),
        labels: alert.labels.clone(),
        folded: 0,
        total: state.consecutive.max(1),
    });
    state.last_notified_ms = Some(now_ms);
    notification
}

/// A firing notification of one occurrence of `alert`, decided without an engine (the
/// daemon's last words, when the alerts actor is gone).
pub fn notification_of(alert: &Alert, now_ms: i64) -> Notification {
    let key = alert.key();
    firing(&key, alert, fingerprint(&key), now_ms, 1)
}

/// A firing notification of `key` from its latest occurrence `alert`.
fn firing(
    key: &str,
    alert: &Alert,
    fingerprint: String,
    starts_at_ms: i64,
    occurrences: u64,
) -> Notification {
    Notification {
        id: 0,
        fingerprint,
        key: key.to_string(),
        status: Status::Firing,
        severity: alert.severity,
        title: alert.title.clone(),
        body: alert.body.clone(),
        source: alert.source.clone(),
        labels: alert.labels.clone(),
        starts_at_ms,
        ends_at_ms: None,
        occurrences,
    }
}

/// A duration in milliseconds, saturating (a configured "forever" must not wrap to negative).
fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Whether `text` matches `pattern`, where `*` matches any run of characters (possibly empty)
/// and every other character itself; a pattern without `*` is an exact key.
///
/// Iterative with one backtrack point (the last `*`): O(len(pattern) × len(text)) at worst,
/// no recursion, so a hostile pattern cannot blow the stack. Works on bytes: `*` is ASCII, and
/// equal UTF-8 byte runs are equal characters.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    // The position after the last `*` seen, and the text position it is matched up to.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi + 1, ti));
                pi += 1;
            }
            Some(c) if *c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                // Let the last `*` swallow one more byte and retry from there.
                Some((after_star, matched)) => {
                    pi = after_star;
                    ti = matched + 1;
                    star = Some((after_star, matched + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000_000;
    const MIN: i64 = 60_000;
    const HOUR: i64 = 60 * MIN;

    fn crit(title: &str) -> Alert {
        Alert::new(Severity::Critical, title, "root/sync/icloud")
    }

    fn warn(title: &str) -> Alert {
        Alert::new(Severity::Warning, title, "root/disk")
    }

    fn info(title: &str) -> Alert {
        Alert::new(Severity::Info, title, "daemon")
    }

    /// A policy where every key fires at its first occurrence, with the given intervals.
    fn policy(dedup_min: u64, cooldown_min: u64) -> Policy {
        let cooldown = Duration::from_secs(cooldown_min * 60);
        Policy {
            dedup_window: Duration::from_secs(dedup_min * 60),
            after: PerSeverity {
                info: 1,
                warning: 1,
                critical: 1,
            },
            cooldown: PerSeverity {
                info: cooldown,
                warning: cooldown,
                critical: cooldown,
            },
            repeat_interval: Duration::ZERO,
        }
    }

    fn notified(decision: Decision) -> Notification {
        match decision {
            Decision::Notify(n) => n,
            other => panic!("expected a notification, got {other:?}"),
        }
    }

    /// Raises `alert` `times` times, one minute apart from `start`; the last decision.
    fn raise_n(engine: &mut Engine, alert: &Alert, start: i64, times: u32) -> Decision {
        let mut last = Decision::Pending { seen: 0, after: 0 };
        for i in 0..times {
            last = engine.raise(alert, start + i64::from(i) * MIN);
        }
        last
    }

    #[test]
    fn default_policy() {
        let p = Policy::default();
        assert_eq!(p.dedup_window, Duration::from_secs(3600));
        assert_eq!(
            (p.after.critical, p.after.warning, p.after.info),
            (3, 5, 10)
        );
        assert_eq!(p.cooldown.critical, Duration::from_secs(3600));
        assert_eq!(p.cooldown.warning, Duration::from_secs(7200));
        assert_eq!(p.cooldown.info, Duration::from_secs(86_400));
        assert_eq!(p.repeat_interval, Duration::from_secs(4 * 3600));
        assert_eq!(p.interval(Severity::Warning), Duration::from_secs(4 * 3600));
        assert_eq!(p.interval(Severity::Info), Duration::from_secs(86_400));
        assert_eq!(p.horizon(), Duration::from_secs(86_400));
    }

    // Rule 2 (and 6): pending until `after`, then one notification with every field.
    #[test]
    fn pending_until_after_then_notify() {
        let mut e = Engine::new(Policy::default());
        let a = crit("sync failing").body("first").label("remote", "icloud");
        assert_eq!(e.raise(&a, T0), Decision::Pending { seen: 1, after: 3 });
        assert_eq!(
            e.raise(&a, T0 + MIN),
            Decision::Pending { seen: 2, after: 3 }
        );
        assert!(e.firing().is_empty());
        let latest = a.clone().body("third");
        let n = notified(e.raise(&latest, T0 + 2 * MIN));
        assert_eq!(n.id, 0);
        assert_eq!(n.key, "critical:sync failing");
        assert_eq!(n.fingerprint, fingerprint("critical:sync failing"));
        assert_eq!(n.status, Status::Firing);
        assert_eq!(n.severity, Severity::Critical);
        assert_eq!(n.title, "sync failing");
        assert_eq!(n.body, "third");
        assert_eq!(n.source, "root/sync/icloud");
        assert_eq!(n.labels.get("remote").map(String::as_str), Some("icloud"));
        assert_eq!(n.starts_at_ms, T0);
        assert_eq!(n.ends_at_ms, None);
        assert_eq!(n.occurrences, 3);
        assert_eq!(e.firing(), vec!["critical:sync failing"]);
    }

    #[test]
    fn default_thresholds_per_severity() {
        let mut e = Engine::new(Policy::default());
        assert_eq!(
            raise_n(&mut e, &warn("disk low"), T0, 4),
            Decision::Pending { seen: 4, after: 5 }
        );
        assert_eq!(
            notified(e.raise(&warn("disk low"), T0 + 4 * MIN)).occurrences,
            5
        );
        assert_eq!(
            raise_n(&mut e, &info("slow"), T0, 9),
            Decision::Pending { seen: 9, after: 10 }
        );
        assert_eq!(
            notified(e.raise(&info("slow"), T0 + 9 * MIN)).occurrences,
            10
        );
    }

    // Rule 1: a clear resets the consecutive count, and the next run starts afresh.
    #[test]
    fn clear_resets_the_count() {
        let mut e = Engine::new(Policy::default());
        let a = crit("flaky");
        raise_n(&mut e, &a, T0, 2);
        assert_eq!(e.clear(&a.key(), T0 + 2 * MIN), None);
        assert_eq!(
            e.raise(&a, T0 + 3 * MIN),
            Decision::Pending { seen: 1, after: 3 }
        );
        e.raise(&a, T0 + 4 * MIN);
        let n = notified(e.raise(&a, T0 + 5 * MIN));
        assert_eq!(
            n.starts_at_ms,
            T0 + 3 * MIN,
            "the run started after the clear"
        );
        assert_eq!(n.occurrences, 3);
        assert_eq!(e.clear("never raised", T0), None);
    }

    #[test]
    fn after_override_and_zero() {
        let mut e = Engine::new(Policy::default());
        let once = crit("gave up").at_once();
        let n = notified(e.raise(&once, T0));
        assert_eq!(n.occurrences, 1);

        let mut two = warn("twice");
        two.after = Some(2);
        assert_eq!(e.raise(&two, T0), Decision::Pending { seen: 1, after: 2 });
        notified(e.raise(&two, T0 + MIN));

        let mut zero = info("zero");
        zero.after = Some(0);
        notified(e.raise(&zero, T0));

        let mut p = Policy::default();
        p.after.critical = 0;
        let mut e = Engine::new(p);
        notified(e.raise(&crit("policy zero"), T0));
    }

    // Rule 3: repeats within the interval are folded, the reminder carries them.
    #[test]
    fn dedup_folds_then_reminder() {
        let mut e = Engine::new(policy(10, 0));
        let a = crit("down");
        assert_eq!(notified(e.raise(&a, T0)).occurrences, 1);
        assert_eq!(
            e.raise(&a, T0 + MIN),
            Decision::Deduplicated { occurrences: 1 }
        );
        assert_eq!(
            e.raise(&a.clone().body("latest"), T0 + 2 * MIN),
            Decision::Deduplicated { occurrences: 2 }
        );
        assert_eq!(
            e.raise(&a, T0 + 10 * MIN - 1),
            Decision::Deduplicated { occurrences: 3 }
        );
        let reminder = notified(e.raise(&a.clone().body("reminder"), T0 + 10 * MIN));
        assert_eq!(reminder.occurrences, 4, "three folded plus this one");
        assert_eq!(reminder.status, Status::Firing);
        assert_eq!(reminder.starts_at_ms, T0);
        assert_eq!(reminder.fingerprint, fingerprint(&a.key()));
        assert_eq!(reminder.body, "reminder");
        // The interval restarts at the reminder.
        assert_eq!(
            e.raise(&a, T0 + 19 * MIN),
            Decision::Deduplicated { occurrences: 1 }
        );
        assert_eq!(notified(e.raise(&a, T0 + 20 * MIN)).occurrences, 2);
        // Quiet for a long time, then one occurrence: a reminder carrying just it.
        assert_eq!(notified(e.raise(&a, T0 + 5 * HOUR)).occurrences, 1);
    }

    #[test]
    fn interval_is_the_longest_of_repeat_dedup_and_cooldown() {
        // Default: repeat 4 h, dedup 1 h, warning cooldown 2 h: no warning reminder before 4 h.
        let mut e = Engine::new(Policy::default());
        let mut a = warn("disk low");
        a.after = Some(1);
        notified(e.raise(&a, T0));
        assert_eq!(
            e.raise(&a, T0 + 2 * HOUR),
            Decision::Deduplicated { occurrences: 1 }
        );
        assert_eq!(notified(e.raise(&a, T0 + 4 * HOUR)).occurrences, 2);
        // A dedup window longer than the cooldown wins.
        let mut e = Engine::new(policy(30, 5));
        let a = crit("x");
        notified(e.raise(&a, T0));
        assert_eq!(
            e.raise(&a, T0 + 29 * MIN),
            Decision::Deduplicated { occurrences: 1 }
        );
        notified(e.raise(&a, T0 + 30 * MIN));
    }

    // Rule 3: a new episode (fired again after a resolved) is notified at once, however soon.
    #[test]
    fn a_new_episode_is_notified_at_once_however_soon() {
        let mut e = Engine::new(Policy::default());
        let a = crit("sync failing");
        let first = notified(raise_n(&mut e, &a, T0, 3)); // notified at T0 + 2 min
        assert!(e.clear(&a.key(), T0 + 5 * MIN).is_some());
        assert!(matches!(
            raise_n(&mut e, &a, T0 + 10 * MIN, 2),
            Decision::Pending { seen: 2, .. }
        ));
        let n = notified(e.raise(&a, T0 + 12 * MIN));
        assert_eq!(n.status, Status::Firing);
        assert_eq!(n.starts_at_ms, T0 + 10 * MIN, "the new run");
        assert_ne!(n.starts_at_ms, first.starts_at_ms, "another episode");
        assert_eq!(n.occurrences, 3, "the consecutive count of the new run");
        assert_eq!(e.firing(), vec![a.key().as_str()]);
        // Within the episode, repeats are folded until the interval.
        assert!(matches!(
            e.raise(&a, T0 + 13 * MIN),
            Decision::Deduplicated { occurrences: 1 }
        ));
    }

    // Rule 3, with nothing raising it again: the caller's timer asks for due reminders.
    #[test]
    fn a_firing_key_is_reminded_when_due_without_new_occurrences() {
        let mut e = Engine::new(Policy::default());
        let a = warn("w").at_once();
        assert_eq!(e.remind(&a, T0), None, "not firing");
        let first = notified(e.raise(&a, T0));
        assert_eq!(e.reminder_due(&a.key()), Some(T0 + 4 * HOUR));
        assert_eq!(e.remind(&a, T0 + 4 * HOUR - 1), None, "within the interval");
        let r = e.remind(&a, T0 + 4 * HOUR).unwrap();
        assert_eq!(
            (
                r.status,
                r.fingerprint.clone(),
                r.starts_at_ms,
                r.occurrences
            ),
            (
                Status::Firing,
                first.fingerprint.clone(),
                first.starts_at_ms,
                0
            )
        );
        assert_eq!(e.reminder_due(&a.key()), Some(T0 + 8 * HOUR));
        // Silenced: not reminded (the silence's end notifies it).
        e.silence(&a.key(), T0 + 9 * HOUR);
        assert_eq!(e.remind(&a, T0 + 8 * HOUR), None);
        // Resolved: no reminder is due.
        e.clear(&a.key(), T0 + 10 * HOUR).unwrap();
        assert_eq!(e.reminder_due(&a.key()), None);
        assert_eq!(e.remind(&a, T0 + 20 * HOUR), None);
    }

    // Rule 3: within an episode, reminders follow the longest of repeat_interval, the dedup
    // window and the severity's cooldown.
    #[test]
    fn reminders_follow_the_repeat_interval_or_a_longer_cooldown() {
        for (alert, every) in [
            (crit("c"), 4 * HOUR),
            (warn("w"), 4 * HOUR),
            (info("i"), 24 * HOUR),
        ] {
            let mut e = Engine::new(Policy::default());
            let a = alert.at_once();
            notified(e.raise(&a, T0));
            assert!(
                matches!(e.raise(&a, T0 + every - 1), Decision::Deduplicated { .. }),
                "{}",
                a.severity
            );
            assert_eq!(notified(e.raise(&a, T0 + every)).occurrences, 2);
        }
        let mut p = policy(1, 0);
        p.repeat_interval = Duration::from_secs(600);
        p.cooldown.info = Duration::from_secs(3600);
        let mut e = Engine::new(p);
        let (c, i) = (crit("c"), info("i"));
        notified(e.raise(&c, T0));
        notified(e.raise(&i, T0));
        notified(e.raise(&c, T0 + 10 * MIN));
        assert!(matches!(
            e.raise(&i, T0 + 10 * MIN),
            Decision::Deduplicated { .. }
        ));
        notified(e.raise(&i, T0 + HOUR));
    }

    // Rule 5 and 7: a condition that holds is notified when its silence ends, without
    // another occurrence; one that fires already is left to its reminders.
    #[test]
    fn assess_notifies_what_holds_once_nothing_holds_it_back() {
        let mut e = Engine::new(policy(60, 0));
        let a = warn("disk low").at_once();
        e.silence("*disk*", T0 + 10 * MIN);
        assert!(matches!(e.raise(&a, T0), Decision::Silenced { .. }));
        assert!(matches!(
            e.assess(&a, 1, T0 + 5 * MIN),
            Some(Decision::Silenced { .. })
        ));
        let n = notified(e.assess(&a, 1, T0 + 10 * MIN).unwrap());
        assert_eq!(n.status, Status::Firing);
        assert_eq!(e.assess(&a, 1, T0 + 11 * MIN), None, "firing already");
        // Below its threshold: pending, the count taken from the caller, not added to.
        let mut e = Engine::new(Policy::default());
        let b = crit("b");
        for _ in 0..2 {
            assert_eq!(
                e.assess(&b, 2, T0),
                Some(Decision::Pending { seen: 2, after: 3 })
            );
        }
        assert_eq!(notified(e.assess(&b, 3, T0 + MIN).unwrap()).occurrences, 3);
    }

    // Rule 4: resolved at once, with the firing notification's identity.
    #[test]
    fn clear_of_a_firing_key_resolves_at_once() {
        let mut e = Engine::new(policy(60, 0));
        let a = crit("down").label("k", "v");
        notified(e.raise(&a, T0));
        e.raise(&a.clone().body("last"), T0 + MIN);
        e.raise(&a.clone().body("last"), T0 + 2 * MIN);
        let r = e.clear(&a.key(), T0 + 3 * MIN).expect("resolved");
        assert_eq!(r.status, Status::Resolved);
        assert_eq!(r.id, 0);
        assert_eq!(r.key, a.key());
        assert_eq!(r.fingerprint, fingerprint(&a.key()));
        assert_eq!(r.starts_at_ms, T0);
        assert_eq!(r.ends_at_ms, Some(T0 + 3 * MIN));
        assert_eq!(r.severity, Severity::Critical);
        assert_eq!(r.body, "last");
        assert_eq!(r.labels.get("k").map(String::as_str), Some("v"));
        assert_eq!(r.occurrences, 3, "every occurrence of the episode");
        assert!(e.firing().is_empty());
        assert_eq!(e.clear(&a.key(), T0 + 4 * MIN), None, "resolved once");
    }

    #[test]
    fn clear_resolves_even_under_a_silence() {
        let mut e = Engine::new(policy(60, 0));
        let a = crit("down");
        notified(e.raise(&a, T0));
        e.silence("critical:*", T0 + HOUR);
        assert_eq!(
            e.raise(&a, T0 + MIN),
            Decision::Silenced {
                until_ms: T0 + HOUR
            }
        );
        let r = e.clear(&a.key(), T0 + 2 * MIN).expect("resolved");
        assert_eq!(r.occurrences, 2, "the first and the silenced one");
    }

    #[test]
    fn clear_of_a_pending_or_muted_key_gives_none() {
        let mut e = Engine::new(Policy::default());
        // Pending.
        let p = crit("pending");
        e.raise(&p, T0);
        assert_eq!(e.clear(&p.key(), T0 + MIN), None);
        // Resolved already: the clear ends nothing more, the count restarts.
        let c = crit("cleared").at_once();
        notified(e.raise(&c, T0));
        assert!(e.clear(&c.key(), T0 + MIN).is_some());
        assert_eq!(e.clear(&c.key(), T0 + 3 * MIN), None);
        let mut twice = c.clone();
        twice.after = Some(2);
        assert_eq!(
            e.raise(&twice, T0 + 4 * MIN),
            Decision::Pending { seen: 1, after: 2 },
            "the count restarted"
        );
        // Muted by a silence before it was ever notified.
        let s = crit("silenced").at_once();
        e.silence(&s.key(), T0 + HOUR);
        assert!(matches!(e.raise(&s, T0), Decision::Silenced { .. }));
        assert_eq!(e.clear(&s.key(), T0 + MIN), None);
        assert!(e.firing().is_empty());
    }

    // Rule 5: silences, exact and glob; occurrences are counted during the silence.
    #[test]
    fn silence_exact_key_counts_and_expires() {
        let mut e = Engine::new(Policy::default());
        let a = crit("sync failing");
        let other = crit("other").at_once();
        e.silence(&a.key(), T0 + 10 * MIN);
        for i in 0..5 {
            assert_eq!(
                e.raise(&a, T0 + i * MIN),
                Decision::Silenced {
                    until_ms: T0 + 10 * MIN
                }
            );
        }
        notified(e.raise(&other, T0));
        // Expires at until_ms exactly: notified at the next occurrence with the whole count.
        let n = notified(e.raise(&a, T0 + 10 * MIN));
        assert_eq!(n.occurrences, 6);
        assert_eq!(n.starts_at_ms, T0);
    }

    #[test]
    fn silence_globs() {
        let mut e = Engine::new(Policy::default());
        e.silence("warning:*", T0 + HOUR);
        e.silence("*root/sync*", T0 + 2 * HOUR);
        let w = warn("disk low").at_once();
        assert_eq!(
            e.raise(&w, T0),
            Decision::Silenced {
                until_ms: T0 + HOUR
            }
        );
        let mut sync = crit("stuck").at_once();
        sync.key = Some("restart:root/sync/icloud".to_string());
        assert_eq!(
            e.raise(&sync, T0),
            Decision::Silenced {
                until_ms: T0 + 2 * HOUR
            }
        );
        // Both match: the later end.
        let mut both = warn("x").at_once();
        both.key = Some("warning:root/sync/x".to_string());
        assert_eq!(
            e.raise(&both, T0),
            Decision::Silenced {
                until_ms: T0 + 2 * HOUR
            }
        );
        notified(e.raise(&crit("disk low").at_once(), T0));
    }

    #[test]
    fn glob_matching() {
        assert!(glob_match("abc", "abc"));
        assert!(!glob_match("abc", "abcd"));
        assert!(!glob_match("abc", "ab"));
        assert!(glob_match("", ""));
        assert!(!glob_match("", "a"));
        assert!(glob_match("*", ""));
        assert!(glob_match("*", "anything"));
        assert!(glob_match("warning:*", "warning:"));
        assert!(glob_match("warning:*", "warning:disk low"));
        assert!(!glob_match("warning:*", "critical:disk low"));
        assert!(glob_match("*root/sync*", "root/sync"));
        assert!(glob_match("*root/sync*", "x:root/sync/icloud"));
        assert!(!glob_match("*root/sync*", "root/syn"));
        assert!(glob_match("a*b*c", "aXbYc"));
        assert!(glob_match("a*b*c", "abbbc"));
        assert!(!glob_match("a*b*c", "aXbYcZ"));
        assert!(glob_match("a**c", "ac"));
        assert!(glob_match("*é*", "caféine"));
        assert!(!glob_match("a.c", "abc"), "only * is special");
        // A pathological pattern stays fast (no exponential backtracking).
        let text = "a".repeat(10_000);
        assert!(!glob_match("*a*a*a*a*a*b", &text));
    }

    #[test]
    fn silences_list_replace_unsilence_and_prune() {
        let mut e = Engine::new(Policy::default());
        e.silence("b", T0 + HOUR);
        e.silence("a", T0 + MIN);
        e.silence("b", T0 + 2 * HOUR);
        assert_eq!(
            e.silences(T0),
            vec![
                ("a".to_string(), T0 + MIN),
                ("b".to_string(), T0 + 2 * HOUR)
            ]
        );
        assert_eq!(e.silences(T0 + MIN), vec![("b".to_string(), T0 + 2 * HOUR)]);
        assert!(e.unsilence("b"));
        assert!(!e.unsilence("b"));
        assert_eq!(e.silences(T0).len(), 1);
        e.prune(T0 + MIN);
        assert!(!e.unsilence("a"), "an expired silence is dropped by prune");
    }

    #[test]
    fn silence_while_firing_folds_into_the_reminder() {
        let mut e = Engine::new(policy(10, 0));
        let a = crit("down");
        notified(e.raise(&a, T0));
        e.silence(&a.key(), T0 + 30 * MIN);
        for i in 1..=3 {
            assert!(matches!(
                e.raise(&a, T0 + i * 10 * MIN - 1),
                Decision::Silenced { .. }
            ));
        }
        assert_eq!(e.firing(), vec!["critical:down"], "still firing");
        assert_eq!(notified(e.raise(&a, T0 + 30 * MIN)).occurrences, 4);
    }

    // Rule 7: after a restart.
    #[test]
    fn restore_firing_then_clear() {
        let mut e = Engine::new(Policy::default());
        let a = crit("down");
        let mut before = Engine::new(Policy::default());
        let sent = notified(raise_n(&mut before, &a, T0, 3));
        let mut stored = sent.clone();
        stored.id = 42;
        e.restore_firing(&stored, T0 + 2 * MIN);
        assert_eq!(e.firing(), vec!["critical:down"]);
        assert_eq!(
            e.raise(&a, T0 + 10 * MIN),
            Decision::Deduplicated { occurrences: 1 },
            "no pending phase, no second page"
        );
        let r = e.clear(&a.key(), T0 + 20 * MIN).expect("resolved");
        assert_eq!(r.fingerprint, sent.fingerprint);
        assert_eq!(r.starts_at_ms, T0);
        assert_eq!(r.ends_at_ms, Some(T0 + 20 * MIN));
        assert_eq!(r.id, 0);
        // Fired again after it resolved: a new episode, at its threshold.
        let again = notified(raise_n(&mut e, &a, T0 + 21 * MIN, 3));
        assert_eq!(again.starts_at_ms, T0 + 21 * MIN);
    }

    #[test]
    fn restore_firing_reminds_after_the_interval_and_replays_resolutions() {
        let mut e = Engine::new(Policy::default());
        let a = crit("down");
        let mut n = notified(Engine::new(policy(0, 0)).raise(&a, T0));
        n.fingerprint = "restored-fp".to_string();
        e.restore_firing(&n, T0);
        let reminder = notified(e.raise(&a, T0 + 4 * HOUR));
        assert_eq!(reminder.fingerprint, "restored-fp");
        assert_eq!(reminder.occurrences, 1);
        let mut resolved = n.clone();
        resolved.status = Status::Resolved;
        e.restore_firing(&resolved, T0 + 4 * HOUR);
        assert!(e.firing().is_empty());
        assert_eq!(e.clear(&a.key(), T0 + 5 * HOUR), None);
        // A resolved notification for an unknown key is a no-op.
        let mut unknown = resolved;
        unknown.key = "nobody".to_string();
        e.restore_firing(&unknown, T0);
        assert_eq!(e.len(), 1);
    }

    // Rule 8: memory.
    #[test]
    fn prune_forgets_quiet_non_firing_keys() {
        let mut e = Engine::new(Policy::default()); // horizon 24 h
        let pending = crit("pending");
        let firing = crit("firing").at_once();
        let recent = warn("recent");
        e.raise(&pending, T0);
        notified(e.raise(&firing, T0));
        e.raise(&recent, T0 + 20 * HOUR);
        e.prune(T0 + 24 * HOUR);
        assert_eq!(e.len(), 3, "exactly the horizon: kept");
        e.prune(T0 + 24 * HOUR + 1);
        assert_eq!(e.len(), 2);
        assert_eq!(
            e.raise(&pending, T0 + 25 * HOUR),
            Decision::Pending { seen: 1, after: 3 },
            "forgotten"
        );
        e.prune(T0 + 100 * HOUR);
        assert_eq!(e.firing(), vec!["critical:firing"]);
        assert_eq!(e.len(), 1, "a firing key is never pruned");
        assert!(e.clear(&firing.key(), T0 + 100 * HOUR).is_some());
    }

    #[test]
    fn key_cap_evicts_the_least_recently_seen_non_firing() {
        let mut e = Engine::with_max_keys(Policy::default(), 3);
        let firing = crit("firing").at_once();
        notified(e.raise(&firing, T0));
        e.raise(&crit("old"), T0 + MIN);
        e.raise(&crit("newer"), T0 + 2 * MIN);
        assert_eq!(e.len(), 3);
        e.raise(&crit("newest"), T0 + 3 * MIN);
        assert_eq!(e.len(), 3);
        assert_eq!(
            e.raise(&crit("newer"), T0 + 4 * MIN),
            Decision::Pending { seen: 2, after: 3 },
            "kept"
        );
        assert_eq!(e.firing(), vec!["critical:firing"], "never evicted");
        assert_eq!(e.len(), 3);
        // Every key firing: the cap is exceeded rather than losing a resolution.
        let mut e = Engine::with_max_keys(Policy::default(), 2);
        for t in ["a", "b", "c"] {
            notified(e.raise(&crit(t).at_once(), T0));
        }
        assert_eq!(e.len(), 3);
        assert_eq!(e.firing().len(), 3);
        // The default cap evicts a tenth at once.
        let mut e = Engine::with_max_keys(Policy::default(), 100);
        for i in 0..101 {
            e.raise(&crit(&format!("k{i}")), T0 + i);
        }
        assert_eq!(e.len(), 91);
        assert_eq!(
            e.raise(&crit("k10"), T0 + 200),
            Decision::Pending { seen: 2, after: 3 },
            "k0..k9 went, k10 stayed"
        );
    }

    #[test]
    fn set_policy_keeps_state() {
        let mut e = Engine::new(Policy::default());
        let a = crit("down");
        raise_n(&mut e, &a, T0, 2);
        let f = warn("firing").at_once();
        notified(e.raise(&f, T0));
        e.silence("nothing", T0 + HOUR);
        let mut p = Policy::default();
        p.after.critical = 2;
        p.after.warning = 100;
        e.set_policy(p.clone());
        assert_eq!(e.policy(), &p);
        assert_eq!(notified(e.raise(&a, T0 + 2 * MIN)).occurrences, 3);
        assert_eq!(e.firing().len(), 2);
        assert_eq!(e.silences(T0).len(), 1);
        let mut f100 = f.clone();
        f100.after = None;
        assert_eq!(
            e.raise(&f100, T0 + MIN),
            Decision::Deduplicated { occurrences: 1 },
            "a firing key stays firing under a higher threshold"
        );
    }

    // Rule 7 of the brief: severity is part of the default key.
    #[test]
    fn severity_is_part_of_the_default_key() {
        let mut e = Engine::new(Policy::default());
        let c = crit("disk low");
        let w = warn("disk low");
        raise_n(&mut e, &c, T0, 2);
        assert_eq!(e.raise(&w, T0), Decision::Pending { seen: 1, after: 5 });
        let n = notified(e.raise(&c, T0 + 2 * MIN));
        assert_eq!(n.key, "critical:disk low");
        assert_ne!(n.fingerprint, fingerprint("warning:disk low"));
        assert_eq!(e.len(), 2);
    }

    #[test]
    fn odd_clocks_and_sizes_do_not_panic() {
        let mut p = Policy {
            dedup_window: Duration::MAX,
            ..Policy::default()
        };
        p.cooldown.critical = Duration::MAX;
        let mut e = Engine::new(p);
        let a = crit("x").at_once();
        notified(e.raise(&a, i64::MAX));
        assert!(matches!(
            e.raise(&a, i64::MIN),
            Decision::Deduplicated { .. }
        ));
        assert!(e.clear(&a.key(), i64::MIN).is_some());
        notified(e.raise(&a, 0));
        e.prune(i64::MIN);
        e.prune(i64::MAX);
        // Time going backwards within a normal policy: still deduplicated, no panic.
        let mut e = Engine::new(policy(10, 0));
        notified(e.raise(&a, T0));
        assert!(matches!(
            e.raise(&a, T0 - HOUR),
            Decision::Deduplicated { .. }
        ));
    }
}
