//! The alerts actor: decides (engine), stores (the outbox, before any delivery), groups per
//! channel, delivers (one message in flight per channel, off the actor), records every attempt,
//! and retries with full-jitter backoff until the channel accepts.
//!
//! The outbox is the truth: what is in memory is a cache of its pending rows. A resync every
//! [`RESYNC_EVERY`] picks up rows the actor does not hold (a store write that timed out and
//! committed later, rows left by an earlier run), so nothing stored stays undelivered.
//!
//! **Retry runs.** The deliveries of the batch at the head of a channel, from its first
//! attempt to the one that ends it (accepted, or refused for good), are one run of the
//! operation `alert:CHANNEL` for the retry statistics ([`crate::retry`]): when it ends, its
//! [`RunSummary`] (attempts, the label of each failed attempt, how long the channel took to
//! recover) is recorded. Recording changes nothing in how deliveries go. With `retry_adaptive`,
//! a channel's first retry delay is the one [`adaptive_initial`] derives from the channel's
//! runs of the last [`ADAPT_WINDOW`] (read at start and every [`TUNE_EVERY`]); otherwise it is
//! `retry_initial`.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, SystemTime};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::time::Instant;

use super::alert::{fingerprint, Alert, Notification, PerSeverity, Severity, Status};
use super::channel::{self, Channel, ChannelSpec, Deliverer, Outcome, Sent};
use super::engine::{Decision, Engine, Policy};
use super::group::{next_attempt_delay, Groups};
use super::hub::Alerts;
use crate::metrics::{Metric, Metrics, Sample};
use crate::retry::{self, adaptive_initial, op_stats, ErrorKind, RetryPolicy, RunSummary};
use crate::store::outbox::{self, Attempt, AttemptOutcome, OutboxEntry, OutboxRow, Settled};
use crate::store::{unix_ms, DurableOp, DurableReply, Store, StoredEvent};

/// How often the outbox is read back for pending rows the actor does not hold.
pub const RESYNC_EVERY: Duration = Duration::from_secs(30);
/// How long a durable write may take before the actor goes on (the write still happens; the
/// resync finds its rows).
const STORE_WAIT: Duration = Duration::from_secs(5);
/// Keys and silences are pruned this often.
const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// With `retry_adaptive`, the channels' first retry delays are worked out again this often.
pub const TUNE_EVERY: Duration = Duration::from_secs(600);
/// The runs an adaptive delay is worked out from: those of the last week, at most the latest
/// [`ADAPT_RUNS`] per channel.
pub const ADAPT_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);
pub const ADAPT_RUNS: u32 = 1000;

/// The operation a channel's delivery runs are recorded under: `alert:CHANNEL`.
pub fn retry_op(channel: &str) -> String {
    format!("alert:{channel}")
}

/// The retry policy of the deliveries, as the retry statistics see it: full jitter from
/// `initial`, doubling to `max`, retried until the channel accepts (no attempt limit);
/// adaptive within the library's bounds (100 ms to 10 min, and at most `max`).
pub fn retry_policy(initial: Duration, max: Duration, adaptive: bool) -> RetryPolicy {
    RetryPolicy {
        initial,
        max,
        factor: 2.0,
        max_attempts: u32::MAX,
        adaptive,
        ..RetryPolicy::default()
    }
}

pub struct AlertsActor;

#[derive(Clone)]
pub struct AlertsArgs {
    /// Its own tree path, for events.
    pub path: String,
    pub store: Store,
    /// The handle it serves (it attaches itself to it).
    pub alerts: Alerts,
    /// Where delivery samples go.
    pub metrics: Metrics,
    pub policy: Policy,
    pub group_wait: Duration,
    pub channels: Vec<ChannelSpec>,
    /// Channel names per severity.
    pub routes: PerSeverity<Vec<String>>,
    /// Retry delays: full jitter from `retry_initial` doubling to `retry_max`.
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// Each channel's first delay follows its measured recovery time (see the module
    /// documentation) instead of `retry_initial`.
    pub retry_adaptive: bool,
    /// One delivery's time limit.
    pub timeout: Duration,
    pub hostname: String,
}

pub enum AlertsMessage {
    /// An occurrence of a condition: the how-manieth in a row, as the handle counts them (the
    /// count a replay after a restart of the actor uses too, so nothing is counted twice).
    Raise(Alert, u64),
    /// The condition with this key has cleared.
    Clear(String),
    /// Silences `pattern` until `until_ms` (`None`: lifts it); answers the active silences.
    Silence {
        pattern: String,
        until_ms: Option<i64>,
        reply: RpcReplyPort<Result<Vec<(String, i64)>, String>>,
    },
    /// Sends a test notification to a channel now; answers what the channel said.
    Test {
        channel: String,
        reply: RpcReplyPort<Result<TestReport, TestError>>,
    },
    /// `call PATH status`.
    Status(RpcReplyPort<AlertsStatus>),
    /// Internal: store the notifications decided since the last write.
    Persist,
    /// Internal: groups or retries may be due.
    Wake,
    /// Internal: read pending rows back from the outbox.
    Resync,
    /// Compare what the receivers were told with what is true now (the handle's
    /// [`Truth`](super::truth::Truth)): sent when a source told its state, when the tree has
    /// started, when a silence ends, and at every resync.
    Reconcile,
    /// Internal: forget quiet keys and ended silences.
    Prune,
    /// Internal: a delivery finished.
    Delivered(Delivered),
    /// Internal: work out the channels' adaptive first delays again.
    Tune,
    /// Internal: the channels' adaptive first delays.
    Tuned(Vec<(String, Duration)>),
    /// Internal: send the firing alerts again to this channel (Alertmanager channels, every
    /// resend interval).
    Resend(String),
    /// Internal: a resend to this channel finished.
    Resent(Resent),
}

pub struct Resent {
    channel: String,
    alerts: usize,
    /// What failed (a resend is not retried: the next one carries the same alerts).
    failures: Vec<String>,
}

pub struct Delivered {
    channel: String,
    ids: Vec<i64>,
    /// The outcome, the failure's label for the retry statistics, each recipient's answer.
    sent: Sent,
    at_ms: i64,
    took: Duration,
    /// When the attempt ended.
    ended: Instant,
}

/// Why a test notification was not tried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TestError {
    /// The alerts child has no channel of that name (the message lists those it has).
    #[error("{0}")]
    NoSuchChannel(String),
    /// The channel's config cannot be used here (a password variable unset, a bad URL).
    #[error("{0}")]
    Unusable(String),
}

/// What `alerts test CHANNEL` answers.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TestReport {
    pub channel: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// accepted | transient | permanent
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
    /// The channel's answer, or the error.
    pub detail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_s: Option<f64>,
    pub duration_ms: u64,
    /// Each receiver's answer where the channel has several (each address of an email
    /// channel, each Alertmanager of an HA set): the message's outcome alone hid all but one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<TestRecipient>,
}

/// One receiver's answer to a test.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TestRecipient {
    pub recipient: String,
    /// accepted | transient | permanent
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
    pub detail: String,
}

/// What `status` answers.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AlertsStatus {
    pub raised: u64,
    pub notified: u64,
    pub deduplicated: u64,
    pub pending_threshold: u64,
    pub silenced: u64,
    pub delivered: u64,
    pub delivery_failures: u64,
    /// Keys firing (notified and not resolved).
    pub firing: Vec<String>,
    pub silences: Vec<(String, i64)>,
    pub channels: Vec<ChannelStatus>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ChannelStatus {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// Why it is skipped (its config is incomplete), if it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// Notifications waiting (grouping, in flight, or retrying).
    pub pending: usize,
    pub consecutive_failures: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_in_s: Option<f64>,
    /// The bound of the first retry delay: `retry.initial`, or the adaptive one.
    pub retry_initial_ms: u64,
}

/// A wall clock that never goes back and follows a paused tokio clock in tests: Unix ms from
/// an anchor plus monotonic time since it, moved forward to the system clock when that is
/// ahead (a laptop that slept).
struct Clock {
    wall_ms: i64,
    at: Instant,
}

impl Clock {
    fn new() -> Self {
        Clock {
            wall_ms: unix_ms(SystemTime::now()),
            at: Instant::now(),
        }
    }

    fn now(&mut self) -> i64 {
        let mono = self.wall_ms + self.at.elapsed().as_millis() as i64;
        let wall = unix_ms(SystemTime::now());
        if wall > mono + 1000 {
            self.wall_ms = wall;
            self.at = Instant::now();
            wall
        } else {
            mono
        }
    }
}

/// One channel's delivery state.
struct Lane {
    /// The channel ready to send, or why it is skipped.
    channel: Result<Channel, String>,
    kind: &'static str,
    /// Rows ready to send, in order.
    ready: VecDeque<i64>,
    /// A delivery is running.
    busy: bool,
    /// Failed deliveries in a row (drives the backoff).
    failures: u32,
    /// After a transient failure: nothing is sent before this.
    retry_at: Option<i64>,
    /// The bound of the first retry delay: `retry_initial`, or the adaptive one.
    initial: Duration,
    /// The run of the batch at the head of the lane, from its first attempt.
    run: Option<DeliveryRun>,
    /// A resend of the firing alerts is running: no delivery starts meanwhile (a resend
    /// computed before a resolution must not reach the receiver after it).
    resending: bool,
    /// A resend came due while a delivery ran: it starts when that one ends.
    resend_due: bool,
    /// The last resend did not reach every receiver (logged when this changes).
    resend_failing: bool,
}

/// One run of a channel's deliveries: from the first attempt of a batch to the attempt that
/// ends it (accepted or permanent), across the transient failures in between (their rows go
/// back to the front of the lane, so the next attempt carries them first).
struct DeliveryRun {
    /// Wall clock at the first attempt (Unix ms).
    started_ms: i64,
    started: Instant,
    attempts: u32,
    errors: Vec<(String, ErrorKind)>,
    /// When the first failed attempt ended.
    first_failure: Option<Instant>,
}

impl DeliveryRun {
    fn new(started_ms: i64) -> Self {
        DeliveryRun {
            started_ms,
            started: Instant::now(),
            attempts: 0,
            errors: Vec::new(),
            first_failure: None,
        }
    }

    /// The run's summary, ended by the attempt that ended at `end`.
    fn summary(self, channel: &str, outcome: retry::Outcome, end: Instant) -> RunSummary {
        let recovered_after = match (outcome, self.first_failure) {
            (retry::Outcome::Success, Some(first)) => Some(end.saturating_duration_since(first)),
            _ => None,
        };
        RunSummary {
            op: retry_op(channel),
            started_ms: self.started_ms,
            attempts: self.attempts,
            outcome,
            errors: self.errors,
            recovered_after,
            took: end.saturating_duration_since(self.started),
            rejected: None,
        }
    }
}

pub struct AlertsState {
    args: AlertsArgs,
    engine: Engine,
    /// Per firing key, the channels told it fires and what each was told (the episode's
    /// firing): its end goes to each of them, also to one no longer routed for it, and a
    /// channel routed for it that was not told (added by a reload) is told. Rebuilt from the
    /// outbox at start.
    told: HashMap<String, BTreeMap<String, Notification>>,
    groups: Groups,
    lanes: BTreeMap<String, Lane>,
    /// Pending outbox rows held in memory: id → (channel, notification).
    rows: HashMap<i64, (String, Notification)>,
    /// Rows delivered (or skipped, or refused for good) whose record was not confirmed in
    /// time: the outbox may still call them pending, and the resync must not send them again.
    /// An id leaves when a resync no longer finds it pending.
    settled: HashSet<i64>,
    /// Decided notifications not yet stored: (channels, notification).
    unstored: Vec<(Vec<String>, Notification)>,
    deliverer: Deliverer,
    clock: Clock,
    /// The wake-up timer set for this time (Unix ms), if any.
    wake_at: Option<i64>,
    /// The end of the silence a reconcile is set for (Unix ms), if any.
    silence_end_at: Option<i64>,
    /// When a reconcile is set to look for due reminders (Unix ms): one timer for all.
    reminder_at: Option<i64>,
    /// The silences active at the last reconcile: one gone since (ended or lifted) lets what
    /// it held through.
    silences_seen: Vec<(String, i64)>,
    counts: Counts,
}

#[derive(Default)]
struct Counts {
    raised: u64,
    notified: u64,
    deduplicated: u64,
    pending: u64,
    silenced: u64,
    delivered: u64,
    failures: u64,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

impl AlertsState {
    fn record(&self, kind: crate::store::events::Kind, message: String, data: serde_json::Value) {
        let mut event = StoredEvent::new(&self.args.path, kind, message);
        event.data = data;
        self.args.store.record(event);
    }

    fn raise(&mut self, myself: &ActorRef<AlertsMessage>, alert: Alert, nth: u64) {
        self.counts.raised += 1;
        self.args
            .metrics
            .report(Sample::event(Metric::AlertsRaised, alert.source.clone()));
        let now = self.clock.now();
        let decision = self.engine.raise_nth(&alert, Some(nth), now);
        self.count(myself, decision);
    }

    fn count(&mut self, myself: &ActorRef<AlertsMessage>, decision: Decision) {
        match decision {
            Decision::Notify(n) => {
                self.counts.notified += 1;
                self.decided(myself, n);
            }
            Decision::Deduplicated { .. } => self.counts.deduplicated += 1,
            Decision::Pending { .. } => self.counts.pending += 1,
            Decision::Silenced { .. } => self.counts.silenced += 1,
        }
    }

    /// What the receivers were told against what is true now: a firing key that no longer
    /// holds is resolved (its source told its state, or it has none any more); one that still
    /// holds is reminded once its interval has passed (run every [`RESYNC_EVERY`]); a condition
    /// that holds and is not firing (raised while no actor ran, before a restart of this one,
    /// or under a silence that has ended) is notified if past its threshold. Then a reconcile
    /// is set for the end of the next silence.
    fn reconcile(&mut self, myself: &ActorRef<AlertsMessage>) {
        use super::truth::Verdict;
        let now = self.clock.now();
        let (stale, still, holding) = {
            let truth = self.args.alerts.truth();
            let (mut stale, mut still) = (Vec::new(), Vec::new());
            for key in self.engine.firing() {
                match truth.verdict(key) {
                    Verdict::False => stale.push(key.to_string()),
                    Verdict::Active(alert, _) => still.push(alert),
                    Verdict::Unknown => {}
                }
            }
            (stale, still, truth.active())
        };
        for key in stale {
            if let Some(n) = self.engine.clear(&key, now) {
                tracing::info!(%key, "alert resolved: no longer true");
                self.decided(myself, n);
            }
        }
        // Firing and still true with nothing raising it again: reminded at its interval, and
        // looked at again when the next one is due.
        if self.reminder_at.is_some_and(|at| at <= now) {
            self.reminder_at = None;
        }
        let mut next_reminder: Option<i64> = None;
        for alert in still {
            if let Some(n) = self.engine.remind(&alert, now) {
                self.counts.notified += 1;
                self.decided(myself, n);
            }
            if let Some(due) = self.engine.reminder_due(&alert.key()).filter(|t| *t > now) {
                next_reminder = Some(next_reminder.map_or(due, |n| n.min(due)));
            }
        }
        if let Some(at) = next_reminder {
            self.wake_for_reminder(myself, at);
        }
        self.tell_every_channel(myself, now);
        // What this incarnation was not sent (raised while no actor ran, or to an earlier
        // incarnation), and what a silence gone since held back: looked at without counting
        // an occurrence (the count is the handle's). A condition below its threshold stays
        // pending, one notified already is left to its reminders. Only what is notified is
        // counted in the status.
        let silences = self.engine.silences(now);
        let gone: Vec<String> = self
            .silences_seen
            .iter()
            .filter(|seen| !silences.contains(seen))
            .map(|(pattern, _)| pattern.clone())
            .collect();
        let me = myself.get_id();
        for a in holding {
            let key = a.alert.key();
            if a.sent_to == Some(me) && !gone.iter().any(|p| super::engine::glob_match(p, &key)) {
                continue;
            }
            if let Some(decision @ Decision::Notify(_)) = self.engine.assess(&a.alert, a.nth, now) {
                self.count(myself, decision);
            }
        }
        self.silences_seen = silences;
        // Looked at again when the next silence ends.
        let next_end = self.silences_seen.iter().map(|(_, until)| *until).min();
        if next_end.is_some() && next_end != self.silence_end_at {
            let at = next_end.unwrap_or(now);
            let delay = Duration::from_millis(at.saturating_sub(now).max(0) as u64);
            myself.send_after(delay, || AlertsMessage::Reconcile);
        }
        self.silence_end_at = next_end;
    }

    /// Each channel's picture against what is true: a firing key is told to a channel routed
    /// for it that was not told (added to the routes or to the config by a reload); a key a
    /// channel was told fires but that the engine does not hold firing (the outbox of an
    /// earlier run disagrees between channels) is resolved on that channel once its source
    /// says it no longer holds.
    fn tell_every_channel(&mut self, myself: &ActorRef<AlertsMessage>, now: i64) {
        use super::truth::Verdict;
        let firing: Vec<String> = self
            .engine
            .firing()
            .into_iter()
            .map(str::to_string)
            .collect();
        for key in firing {
            let Some(n) = self.engine.episode_firing(&key) else {
                continue;
            };
            let told = self.told.get(&key);
            let mut missing: Vec<String> = Vec::new();
            let mut earlier: Vec<(String, Notification)> = Vec::new();
            for c in self.args.routes.get(n.severity) {
                match told.and_then(|t| t.get(c)) {
                    Some(was) if was.starts_at_ms == n.starts_at_ms => {}
                    // Told an earlier episode fires: it ends first.
                    Some(was) => {
                        earlier.push((c.clone(), was.clone()));
                        missing.push(c.clone());
                    }
                    None => missing.push(c.clone()),
                }
            }
            for (channel, mut was) in earlier {
                was.id = 0;
                was.status = Status::Resolved;
                was.ends_at_ms = Some(now);
                self.decided_to(myself, vec![channel], was);
            }
            if !missing.is_empty() {
                tracing::info!(%key, channels = ?missing, "alert told to channels that were not told it fires");
                self.decided_to(myself, missing, n);
            }
        }
        let orphans: Vec<String> = self
            .told
            .keys()
            .filter(|key| !self.engine.is_firing(key))
            .cloned()
            .collect();
        if orphans.is_empty() {
            return;
        }
        let truth = self.args.alerts.truth();
        let ended: Vec<String> = orphans
            .into_iter()
            .filter(|key| truth.verdict(key) == Verdict::False)
            .collect();
        drop(truth);
        for key in ended {
            let Some(told) = self.told.remove(&key) else {
                continue;
            };
            for (channel, mut n) in told {
                if !self.lanes.contains_key(&channel) {
                    continue;
                }
                n.id = 0;
                n.status = Status::Resolved;
                n.ends_at_ms = Some(now);
                self.decided_to(myself, vec![channel], n);
            }
        }
    }

    /// Sets a reconcile for `at` (a reminder due), unless one is set for no later.
    fn wake_for_reminder(&mut self, myself: &ActorRef<AlertsMessage>, at: i64) {
        let now = self.clock.now();
        if self.reminder_at.is_some_and(|set| set <= at && set > now) {
            return;
        }
        self.reminder_at = Some(at);
        let delay = Duration::from_millis(at.saturating_sub(now).max(0) as u64);
        myself.send_after(delay, || AlertsMessage::Reconcile);
    }

    /// A notification to send, after it is stored: a firing one to the channels its severity
    /// routes to; a resolved one to those and to every channel told the key fires.
    fn decided(&mut self, myself: &ActorRef<AlertsMessage>, n: Notification) {
        let mut routes = self.args.routes.get(n.severity).clone();
        if n.status == Status::Resolved {
            for channel in self
                .told
                .remove(&n.key)
                .into_iter()
                .flat_map(|t| t.into_keys())
            {
                if !routes.contains(&channel) && self.lanes.contains_key(&channel) {
                    routes.push(channel);
                }
            }
        }
        self.decided_to(myself, routes, n);
    }

    /// A notification to send to `routes`, after it is stored.
    fn decided_to(
        &mut self,
        myself: &ActorRef<AlertsMessage>,
        routes: Vec<String>,
        n: Notification,
    ) {
        if n.status == Status::Firing {
            if let Some(due) = self.engine.reminder_due(&n.key) {
                self.wake_for_reminder(myself, due);
            }
            let told = self.told.entry(n.key.clone()).or_default();
            for channel in &routes {
                told.insert(channel.clone(), n.clone());
            }
        }
        self.record(
            crate::store::events::Kind::Alert,
            format!("{} {}: {}", n.severity, n.status.as_str(), n.title),
            serde_json::json!({
                "severity": n.severity,
                "status": n.status,
                "key": n.key,
                "fingerprint": n.fingerprint,
                "channels": routes,
                "occurrences": n.occurrences,
                "routed": true,
            }),
        );
        if routes.is_empty() {
            tracing::warn!(alert = %n.title, severity = %n.severity, "no channel is routed for this severity");
            return;
        }
        if self.unstored.is_empty() {
            let _ = myself.cast(AlertsMessage::Persist);
        }
        self.unstored.push((routes, n));
    }

    /// Stores what was decided (one transaction), then queues it: firing notifications join
    /// their channel's group, resolved ones go out at once.
    async fn persist(&mut self, myself: &ActorRef<AlertsMessage>, deliver: bool) {
        let decided = std::mem::take(&mut self.unstored);
        if decided.is_empty() {
            return;
        }
        let now = self.clock.now();
        let mut entries = Vec::new();
        for (channels, n) in &decided {
            for channel in channels {
                entries.push(OutboxEntry {
                    channel: channel.clone(),
                    notification: n.clone(),
                    created_ms: now,
                });
            }
        }
        let stored = self
            .args
            .store
            .durable(DurableOp::OutboxAdd(entries.clone()), Some(STORE_WAIT))
            .await;
        let ids = match stored {
            Ok(DurableReply::Ids(ids)) if ids.len() == entries.len() => ids,
            Ok(_) => {
                tracing::error!(
                    "the store answered the outbox write oddly; the resync will find the rows"
                );
                return;
            }
            Err(e) => {
                // The write is queued in the store and happens when the disk takes it: the
                // resync delivers it then. The log has every notification meanwhile.
                tracing::warn!(error = %e, notifications = decided.len(), "the alert outbox write is late; delivering once it is stored");
                for (_, n) in &decided {
                    log_notification(n);
                }
                return;
            }
        };
        for (entry, id) in entries.into_iter().zip(ids) {
            let mut n = entry.notification;
            n.id = id;
            let status = n.status;
            self.rows.insert(id, (entry.channel.clone(), n));
            if status == Status::Resolved {
                // What still waits in the channel's group goes first: a receiver must never
                // see a resolution before the firing notification it ends.
                let held = self.groups.take(&entry.channel);
                let lane = self.lane(&entry.channel);
                lane.ready.extend(held);
                lane.ready.push_back(id);
            } else if let Some(deadline) = self.groups.push(&entry.channel, id, now) {
                self.wake(myself, deadline, now);
            }
        }
        if deliver {
            self.due(myself).await;
        }
    }

    fn lane(&mut self, name: &str) -> &mut Lane {
        self.lanes.entry(name.to_string()).or_insert_with(|| Lane {
            channel: Err(format!("no channel named `{name}` is configured")),
            kind: "unknown",
            ready: VecDeque::new(),
            busy: false,
            failures: 0,
            retry_at: None,
            initial: self.args.retry_initial,
            run: None,
            resending: false,
            resend_due: false,
            resend_failing: false,
        })
    }

    /// Arms the wake-up timer for `at` unless one is set for sooner.
    fn wake(&mut self, myself: &ActorRef<AlertsMessage>, at: i64, now: i64) {
        if self.wake_at.is_some_and(|set| set <= at && set >= now) {
            return;
        }
        self.wake_at = Some(at);
        let delay = Duration::from_millis(at.saturating_sub(now).max(0) as u64);
        myself.send_after(delay, || AlertsMessage::Wake);
    }

    /// Moves due groups to their lanes and starts every delivery that can start.
    async fn due(&mut self, myself: &ActorRef<AlertsMessage>) {
        let now = self.clock.now();
        if self.wake_at.is_some_and(|at| at <= now) {
            self.wake_at = None;
        }
        for (channel, ids) in self.groups.due(now) {
            self.lane(&channel).ready.extend(ids);
        }
        let names: Vec<String> = self.lanes.keys().cloned().collect();
        let mut next: Option<i64> = self.groups.next_deadline();
        for name in names {
            if let Some(at) = self.dispatch(myself, &name, now).await {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        if let Some(at) = next {
            self.wake(myself, at, now);
        }
    }

    /// Starts the lane's next delivery if it can; when it waits for a retry, the time.
    async fn dispatch(
        &mut self,
        myself: &ActorRef<AlertsMessage>,
        name: &str,
        now: i64,
    ) -> Option<i64> {
        let lane = self.lanes.get_mut(name)?;
        if lane.busy || lane.resending || lane.ready.is_empty() {
            return None;
        }
        if let Some(at) = lane.retry_at {
            if at > now {
                return Some(at);
            }
        }
        let channel = match &lane.channel {
            Ok(channel) => channel.clone(),
            Err(why) => {
                let why = why.clone();
                let ids: Vec<i64> = lane.ready.drain(..).collect();
                self.skip(name, ids, &why, now).await;
                return None;
            }
        };
        let max = channel.max_per_message().max(1);
        let mut ids = Vec::new();
        let mut batch = Vec::new();
        while ids.len() < max {
            let Some(id) = lane.ready.pop_front() else {
                break;
            };
            if let Some((_, n)) = self.rows.get(&id) {
                ids.push(id);
                batch.push(n.clone());
            }
        }
        if ids.is_empty() {
            return None;
        }
        lane.busy = true;
        lane.run.get_or_insert_with(|| DeliveryRun::new(now));
        // Each episode of an alert once, at its latest state (a receiver back from an outage
        // is told where each alert is now, not its history); no end of an episode the
        // receiver never heard of.
        let super::message::Compacted {
            ids,
            batch,
            superseded,
            unheard,
        } = super::message::compact(
            self.args.store.reader(),
            name,
            ids,
            batch,
            channel.resend_interval().is_some(),
        )
        .await;
        if !unheard.is_empty() {
            let attempt = Attempt {
                ids: unheard.clone(),
                at_ms: now,
                duration_ms: 0,
                outcome: AttemptOutcome::Skipped,
                code: None,
                detail: "the receiver never heard of this episode (its firing was not \
                         delivered): its end is not sent"
                    .to_string(),
                next_attempt_ms: None,
                recipients: Vec::new(),
            };
            for id in &unheard {
                self.rows.remove(id);
            }
            self.record_attempt(attempt, true).await;
        }
        if !superseded.is_empty() {
            let attempt = Attempt {
                ids: superseded.clone(),
                at_ms: now,
                duration_ms: 0,
                outcome: AttemptOutcome::Skipped,
                code: None,
                detail: "superseded by a later notification of the same alert in the same message"
                    .to_string(),
                next_attempt_ms: None,
                recipients: Vec::new(),
            };
            for id in &superseded {
                self.rows.remove(id);
            }
            self.record_attempt(attempt, true).await;
        }
        // Email and Alertmanager: what each recipient settled in earlier attempts (a retry
        // goes only to the recipients that have not taken or refused these rows). Unreadable:
        // sent to all.
        let settled = super::message::settled_for(self.args.store.reader(), name, &channel, &batch)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cannot read alert recipients: sending to all");
                Settled::new()
            });
        let deliverer = self.deliverer.clone();
        let myself = myself.clone();
        let name = name.to_string();
        tokio::spawn(async move {
            let started = Instant::now();
            let sent = deliverer.deliver(&channel, &batch, &settled).await;
            let ended = Instant::now();
            let _ = myself.cast(AlertsMessage::Delivered(Delivered {
                channel: name,
                ids,
                sent,
                at_ms: now,
                took: ended.saturating_duration_since(started),
                ended,
            }));
        });
        None
    }

    /// Rows for a channel that cannot send: recorded as skipped.
    async fn skip(&mut self, channel: &str, ids: Vec<i64>, why: &str, now: i64) {
        for id in &ids {
            self.rows.remove(id);
        }
        tracing::warn!(
            channel,
            notifications = ids.len(),
            reason = why,
            "alert notifications skipped"
        );
        let attempt = Attempt {
            ids,
            at_ms: now,
            duration_ms: 0,
            outcome: AttemptOutcome::Skipped,
            code: None,
            detail: why.to_string(),
            next_attempt_ms: None,
            recipients: Vec::new(),
        };
        self.record_attempt(attempt, true).await;
    }

    /// Records an attempt; when the record is late and the rows are done with (`settles`),
    /// they are kept out of the resync until the outbox says so.
    async fn record_attempt(&mut self, attempt: Attempt, settles: bool) {
        let ids = settles.then(|| attempt.ids.clone());
        if let Err(e) = self
            .args
            .store
            .durable(DurableOp::OutboxAttempt(attempt), Some(STORE_WAIT))
            .await
        {
            tracing::warn!(error = %e, "cannot record an alert delivery yet (the store keeps trying)");
            self.settled.extend(ids.into_iter().flatten());
        }
    }

    async fn delivered(&mut self, myself: &ActorRef<AlertsMessage>, d: Delivered) {
        let now = self.clock.now();
        let accepted = d.sent.outcome.is_accepted();
        self.args.metrics.report(
            Sample::now(
                Metric::AlertDeliveries,
                d.channel.clone(),
                d.took.as_secs_f64(),
            )
            .outcome(accepted),
        );
        let policy_max = self.args.retry_max;
        let Some(lane) = self.lanes.get_mut(&d.channel) else {
            return;
        };
        lane.busy = false;
        let ended_run = {
            let run = lane.run.get_or_insert_with(|| DeliveryRun::new(d.at_ms));
            run.attempts = run.attempts.saturating_add(1);
            if let Some(error) = channel::failure(&d.sent.outcome, d.sent.label.clone()) {
                run.errors.push(error);
                run.first_failure.get_or_insert(d.ended);
            }
            let ends = match &d.sent.outcome {
                Outcome::Accepted { .. } => Some(retry::Outcome::Success),
                Outcome::Permanent { .. } => Some(retry::Outcome::Permanent),
                Outcome::Transient { .. } => None,
            };
            ends.and_then(|outcome| {
                let run = lane.run.take()?;
                Some(run.summary(&d.channel, outcome, d.ended))
            })
        };
        let (outcome, code, detail, next) = match &d.sent.outcome {
            Outcome::Accepted { .. } => {
                lane.failures = 0;
                lane.retry_at = None;
                let (outcome, code, detail) = d.sent.attempt();
                (outcome, code, detail, None)
            }
            Outcome::Transient {
                code,
                error,
                retry_after,
            } => {
                let mut delay = next_attempt_delay(
                    lane.failures,
                    lane.initial,
                    policy_max,
                    fastrand::f64(),
                    *retry_after,
                );
                if d.sent.label.as_deref() == Some("timeout") {
                    // A receiver slower than the timeout is likely still at work on what it
                    // got: the next attempt waits at least as long as this one did, doubling
                    // (not at the timeout's pace, which a slow receiver gets again and again).
                    let floor = d
                        .took
                        .saturating_mul(1u32 << lane.failures.min(10))
                        .min(policy_max.max(d.took));
                    delay = delay.max(floor);
                }
                lane.failures = lane.failures.saturating_add(1);
                let at = now.saturating_add(delay.as_millis() as i64);
                lane.retry_at = Some(at);
                // Back to the front, in order: they go first when the channel is back.
                for id in d.ids.iter().rev() {
                    lane.ready.push_front(*id);
                }
                (AttemptOutcome::Transient, *code, error.clone(), Some(at))
            }
            Outcome::Permanent { code, error } => {
                lane.failures = 0;
                lane.retry_at = None;
                (AttemptOutcome::Permanent, *code, error.clone(), None)
            }
        };
        if let Some(summary) = ended_run {
            retry::record_to(&self.args.metrics, &summary);
        }
        let failures = self.lanes.get(&d.channel).map_or(0, |l| l.failures);
        if accepted {
            self.counts.delivered += d.ids.len() as u64;
        } else {
            self.counts.failures += 1;
        }
        // A channel down for hours is retried often: logged at the first failure and then at
        // powers of two.
        if !accepted && (failures <= 1 || failures.is_power_of_two()) {
            tracing::warn!(
                channel = %d.channel,
                outcome = outcome.as_str(),
                code,
                error = %detail,
                notifications = d.ids.len(),
                retry_in_ms = next.map(|at| at - now),
                failures_in_a_row = failures,
                "alert delivery failed"
            );
        }
        if outcome != AttemptOutcome::Transient {
            for id in &d.ids {
                self.rows.remove(id);
            }
        }
        let attempt = Attempt {
            ids: d.ids,
            at_ms: d.at_ms,
            duration_ms: d.took.as_millis() as i64,
            outcome,
            code,
            detail,
            next_attempt_ms: next,
            recipients: d.sent.recipients,
        };
        let settles = attempt.outcome != AttemptOutcome::Transient;
        self.record_attempt(attempt, settles).await;
        if self
            .lanes
            .get(&d.channel)
            .is_some_and(|l| l.resend_due && !l.busy)
        {
            self.resend(myself, &d.channel);
        }
        self.due(myself).await;
    }

    /// Sends the alerts firing on `name` again (an Alertmanager forgets an alert whose
    /// `endsAt` passes, and one that restarted forgets them all): each alert the channel was
    /// told fires and that still fires, except those whose firing notification is still in
    /// the outbox (the outbox delivers those, and a resend of an episode whose firing may
    /// then be superseded unheard would leave its end unsent). Not stored nor retried: the
    /// next resend carries the same alerts. While it runs the lane starts no delivery, and it
    /// waits for the one running.
    fn resend(&mut self, myself: &ActorRef<AlertsMessage>, name: &str) {
        let Some(lane) = self.lanes.get_mut(name) else {
            return;
        };
        let Ok(channel) = &lane.channel else {
            return;
        };
        if channel.resend_interval().is_none() || lane.resending {
            return;
        }
        if lane.busy {
            lane.resend_due = true;
            return;
        }
        lane.resend_due = false;
        let channel = channel.clone();
        let queued: HashSet<&str> = self
            .rows
            .values()
            .filter(|(c, n)| c == name && n.status == Status::Firing)
            .map(|(_, n)| n.key.as_str())
            .collect();
        let mut firing: Vec<Notification> = self
            .told
            .iter()
            .filter(|(key, _)| self.engine.is_firing(key) && !queued.contains(key.as_str()))
            .filter_map(|(_, told)| told.get(name).cloned())
            .collect();
        if firing.is_empty() {
            return;
        }
        firing.sort_by(|a, b| a.key.cmp(&b.key));
        lane.resending = true;
        let deliverer = self.deliverer.clone();
        let myself = myself.clone();
        let name = name.to_string();
        tokio::spawn(async move {
            let mut failures = Vec::new();
            for chunk in firing.chunks(channel.max_per_message().max(1)) {
                let sent = deliverer.deliver(&channel, chunk, &Settled::new()).await;
                for r in &sent.recipients {
                    if r.outcome != AttemptOutcome::Accepted {
                        failures.push(format!("{}: {}", r.recipient, r.detail));
                    }
                }
                if !sent.outcome.is_accepted() && sent.recipients.is_empty() {
                    failures.push(sent.attempt().2);
                }
            }
            let _ = myself.cast(AlertsMessage::Resent(Resent {
                channel: name,
                alerts: firing.len(),
                failures,
            }));
        });
    }

    async fn resent(&mut self, myself: &ActorRef<AlertsMessage>, r: Resent) {
        let failing = !r.failures.is_empty();
        let was = self.lanes.get_mut(&r.channel).is_some_and(|lane| {
            lane.resending = false;
            std::mem::replace(&mut lane.resend_failing, failing)
        });
        // Logged when it starts and stops failing (a member down for hours is resent to
        // every interval).
        match (was, failing) {
            (false, true) => {
                tracing::warn!(channel = %r.channel, alerts = r.alerts, failures = ?r.failures, "firing alerts sent again, not to every receiver (each resend tries again)")
            }
            (true, false) => {
                tracing::info!(channel = %r.channel, alerts = r.alerts, "firing alerts sent again to every receiver")
            }
            _ => {
                tracing::debug!(channel = %r.channel, alerts = r.alerts, failures = r.failures.len(), "firing alerts sent again")
            }
        }
        self.due(myself).await;
    }

    /// Pending rows in the outbox that the actor does not hold: queued on their channel.
    async fn resync(&mut self, myself: &ActorRef<AlertsMessage>) {
        let pending = match outbox::pending(self.args.store.reader()).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the alert outbox");
                return;
            }
        };
        let still: HashSet<i64> = pending.iter().map(|r| r.notification.id).collect();
        self.settled.retain(|id| still.contains(id));
        let mut held: HashSet<i64> = self.rows.keys().copied().collect();
        held.extend(self.settled.iter().copied());
        let mut found = 0;
        for OutboxRow {
            channel,
            notification,
            ..
        } in pending
        {
            let id = notification.id;
            if held.contains(&id) {
                continue;
            }
            found += 1;
            self.rows.insert(id, (channel.clone(), notification));
            self.lane(&channel).ready.push_back(id);
        }
        if found > 0 {
            tracing::info!(
                notifications = found,
                "delivering stored alert notifications"
            );
        }
        self.due(myself).await;
    }

    /// Works out the channels' adaptive first delays off the actor (a read of the store); the
    /// answer comes back as [`AlertsMessage::Tuned`].
    fn tune(&self, myself: &ActorRef<AlertsMessage>) {
        let names: Vec<String> = self.lanes.keys().cloned().collect();
        let policy = retry_policy(self.args.retry_initial, self.args.retry_max, true);
        let (reader, myself) = (self.args.store.reader().clone(), myself.clone());
        tokio::spawn(async move {
            let initials = tuned(&reader, names, policy).await;
            let _ = myself.cast(AlertsMessage::Tuned(initials));
        });
    }

    fn tuned(&mut self, initials: Vec<(String, Duration)>) {
        for (name, initial) in initials {
            let Some(lane) = self.lanes.get_mut(&name) else {
                continue;
            };
            if lane.initial != initial {
                tracing::info!(
                    channel = %name,
                    from_ms = lane.initial.as_millis() as u64,
                    to_ms = initial.as_millis() as u64,
                    "adaptive retry: the channel's first retry delay changed"
                );
                lane.initial = initial;
            }
        }
    }

    fn status(&mut self) -> AlertsStatus {
        let now = self.clock.now();
        let mut pending: HashMap<&str, usize> = HashMap::new();
        for (channel, _) in self.rows.values() {
            *pending.entry(channel.as_str()).or_default() += 1;
        }
        AlertsStatus {
            raised: self.counts.raised,
            notified: self.counts.notified,
            deduplicated: self.counts.deduplicated,
            pending_threshold: self.counts.pending,
            silenced: self.counts.silenced,
            delivered: self.counts.delivered,
            delivery_failures: self.counts.failures,
            firing: self.engine.firing().iter().map(|k| k.to_string()).collect(),
            silences: self.engine.silences(now),
            channels: self
                .lanes
                .iter()
                .map(|(name, lane)| ChannelStatus {
                    name: name.clone(),
                    kind: lane.kind.to_string(),
                    skipped: lane.channel.as_ref().err().cloned(),
                    pending: pending.get(name.as_str()).copied().unwrap_or(0),
                    consecutive_failures: lane.failures,
                    retry_in_s: lane
                        .retry_at
                        .filter(|at| *at > now)
                        .map(|at| (at - now) as f64 / 1000.0),
                    retry_initial_ms: lane.initial.as_millis() as u64,
                })
                .collect(),
        }
    }
}

/// Each channel's adaptive first delay under `policy`, from its runs of the last
/// [`ADAPT_WINDOW`]; a channel whose runs cannot be read keeps `policy.initial`.
async fn tuned(
    reader: &sqlx::SqlitePool,
    channels: Vec<String>,
    policy: RetryPolicy,
) -> Vec<(String, Duration)> {
    let since = unix_ms(SystemTime::now()).saturating_sub(ADAPT_WINDOW.as_millis() as i64);
    let mut out = Vec::with_capacity(channels.len());
    for name in channels {
        let op = retry_op(&name);
        let initial = match retry::load(reader, Some(&op), since, ADAPT_RUNS).await {
            Ok(runs) => adaptive_initial(&policy, &op_stats(&op, &runs, &policy)),
            Err(e) => {
                tracing::warn!(channel = %name, error = %e, "cannot read the channel's delivery runs; its retry delay stays as configured");
                policy.initial
            }
        };
        out.push((name, initial));
    }
    out
}

/// Writes a notification to the log (when it cannot be stored yet, it is at least seen).
fn log_notification(n: &Notification) {
    match n.severity {
        Severity::Critical => {
            tracing::error!(alert = %n.title, status = n.status.as_str(), key = %n.key, body = %n.body, "alert")
        }
        Severity::Warning => {
            tracing::warn!(alert = %n.title, status = n.status.as_str(), key = %n.key, body = %n.body, "alert")
        }
        Severity::Info => {
            tracing::info!(alert = %n.title, status = n.status.as_str(), key = %n.key, body = %n.body, "alert")
        }
    }
}

/// The notification `alerts test` sends.
pub fn test_notification(channel: &str, hostname: &str, now_ms: i64) -> Notification {
    let key = format!("test:{channel}");
    Notification {
        id: 0,
        fingerprint: fingerprint(&key),
        key,
        status: Status::Firing,
        severity: Severity::Info,
        title: format!("test alert from metasystem on {hostname}"),
        body: format!(
            "This is a test of the alert channel `{channel}`, sent by `metasystem alerts test`. \
             Nothing is wrong."
        ),
        source: "daemon".into(),
        labels: Default::default(),
        starts_at_ms: now_ms,
        ends_at_ms: None,
        occurrences: 1,
    }
}

/// Runs a test delivery (off the actor) and answers the reply port.
fn test(state: &mut AlertsState, name: String, reply: RpcReplyPort<Result<TestReport, TestError>>) {
    let Some(lane) = state.lanes.get(&name) else {
        let names: Vec<&str> = state.lanes.keys().map(String::as_str).collect();
        let _ = reply.send(Err(TestError::NoSuchChannel(format!(
            "no channel named `{name}`; the channels are: {}",
            names.join(", ")
        ))));
        return;
    };
    let channel = match &lane.channel {
        Ok(c) => c.clone(),
        Err(why) => {
            let _ = reply.send(Err(TestError::Unusable(why.clone())));
            return;
        }
    };
    let kind = lane.kind.to_string();
    let now = state.clock.now();
    let n = test_notification(&name, &state.args.hostname, now);
    let deliverer = state.deliverer.clone();
    let store = state.args.store.clone();
    let path = state.args.path.clone();
    tokio::spawn(async move {
        let started = Instant::now();
        let sent = deliverer
            .deliver(&channel, std::slice::from_ref(&n), &Settled::new())
            .await;
        let took = started.elapsed();
        let recipients = sent
            .recipients
            .iter()
            .map(|r| TestRecipient {
                recipient: r.recipient.clone(),
                outcome: r.outcome.as_str().to_string(),
                code: r.code,
                detail: r.detail.clone(),
            })
            .collect();
        let outcome = sent.outcome;
        let (word, detail, retry_after) = match &outcome {
            Outcome::Accepted { answer, .. } => ("accepted", answer.clone(), None),
            Outcome::Transient {
                error, retry_after, ..
            } => ("transient", error.clone(), *retry_after),
            Outcome::Permanent { error, .. } => ("permanent", error.clone(), None),
        };
        let report = TestReport {
            channel: name.clone(),
            kind,
            outcome: word.to_string(),
            code: outcome.code(),
            detail,
            retry_after_s: retry_after.map(|d| d.as_secs_f64()),
            duration_ms: took.as_millis() as u64,
            recipients,
        };
        let mut event = StoredEvent::new(
            &path,
            crate::store::events::Kind::Alert,
            format!("test of channel {name}: {word}"),
        );
        event.data = serde_json::json!({ "test": true, "channel": name, "outcome": word, "code": report.code });
        store.record(event);
        let _ = reply.send(Ok(report));
    });
}

impl Actor for AlertsActor {
    type Msg = AlertsMessage;
    type State = AlertsState;
    type Arguments = AlertsArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: AlertsArgs,
    ) -> Result<AlertsState, ActorProcessingErr> {
        let deliverer = Deliverer::new(args.timeout, args.hostname.clone())?;
        let mut engine = Engine::new(args.policy.clone());
        let mut clock = Clock::new();
        let now = clock.now();
        match outbox::silences(args.store.reader(), now).await {
            Ok(silences) => {
                for (pattern, until) in silences {
                    engine.silence(&pattern, until);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the alert silences"),
        }
        // Conditions notified as firing and not resolved before the restart: a clear now
        // still sends their resolution, and their repeats are deduplicated.
        // Whatever its age: a receiver told "firing" a week ago still believes it.
        // What each channel was last told of each key: in id order, the engine's state is
        // the last word on each key (to any channel).
        let mut told: HashMap<String, BTreeMap<String, Notification>> = HashMap::new();
        match outbox::latest_per_channel_key(args.store.reader()).await {
            Ok(rows) => {
                for row in rows {
                    engine.restore_firing(&row.notification, row.created_ms);
                    let key = row.notification.key.clone();
                    if row.notification.status == Status::Firing {
                        told.entry(key)
                            .or_default()
                            .insert(row.channel, row.notification);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the alert outbox"),
        }
        let mut lanes = BTreeMap::new();
        for spec in &args.channels {
            let channel = channel::prepare(spec, &env);
            if let Err(why) = &channel {
                // Reported once, here; the other channels work.
                tracing::warn!(channel = %spec.name, reason = %why, "alert channel skipped: its config is incomplete");
                let mut event = StoredEvent::new(
                    &args.path,
                    crate::store::events::Kind::Alert,
                    format!("channel {} skipped: {why}", spec.name),
                );
                event.data = serde_json::json!({ "channel": spec.name, "skipped": why });
                args.store.record(event);
            }
            lanes.insert(
                spec.name.clone(),
                Lane {
                    channel,
                    kind: spec.type_name(),
                    ready: VecDeque::new(),
                    busy: false,
                    failures: 0,
                    retry_at: None,
                    initial: args.retry_initial,
                    run: None,
                    resending: false,
                    resend_due: false,
                    resend_failing: false,
                },
            );
        }
        if args.retry_adaptive {
            let names: Vec<String> = lanes.keys().cloned().collect();
            let policy = retry_policy(args.retry_initial, args.retry_max, true);
            for (name, initial) in tuned(args.store.reader(), names, policy).await {
                if let Some(lane) = lanes.get_mut(&name) {
                    lane.initial = initial;
                }
            }
            myself.send_interval(TUNE_EVERY, || AlertsMessage::Tune);
        }
        args.alerts.slot().attach(myself.clone());
        for (name, lane) in &lanes {
            if let Some(every) = lane
                .channel
                .as_ref()
                .ok()
                .and_then(Channel::resend_interval)
            {
                let name = name.clone();
                myself.send_interval(every, move || AlertsMessage::Resend(name.clone()));
            }
        }
        myself.send_interval(RESYNC_EVERY, || AlertsMessage::Resync);
        myself.send_interval(PRUNE_EVERY, || AlertsMessage::Prune);
        let _ = myself.cast(AlertsMessage::Resync);
        // What is true now against what the receivers were told (before any raise queued
        // meanwhile is counted).
        let _ = myself.cast(AlertsMessage::Reconcile);
        Ok(AlertsState {
            groups: Groups::new(args.group_wait),
            args,
            engine,
            told,
            lanes,
            rows: HashMap::new(),
            settled: HashSet::new(),
            unstored: Vec::new(),
            deliverer,
            clock,
            wake_at: None,
            silence_end_at: None,
            reminder_at: None,
            silences_seen: Vec::new(),
            counts: Counts::default(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: AlertsMessage,
        state: &mut AlertsState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            AlertsMessage::Raise(alert, nth) => state.raise(&myself, alert, nth),
            AlertsMessage::Clear(key) => {
                let now = state.clock.now();
                if let Some(n) = state.engine.clear(&key, now) {
                    state.decided(&myself, n);
                }
            }
            AlertsMessage::Persist => state.persist(&myself, true).await,
            AlertsMessage::Wake => state.due(&myself).await,
            AlertsMessage::Resync => {
                state.reconcile(&myself);
                state.resync(&myself).await;
            }
            AlertsMessage::Reconcile => state.reconcile(&myself),
            AlertsMessage::Delivered(d) => state.delivered(&myself, d).await,
            AlertsMessage::Tune => state.tune(&myself),
            AlertsMessage::Tuned(initials) => state.tuned(initials),
            AlertsMessage::Resend(name) => state.resend(&myself, &name),
            AlertsMessage::Resent(r) => state.resent(&myself, r).await,
            AlertsMessage::Prune => {
                let now = state.clock.now();
                state.engine.prune(now);
            }
            AlertsMessage::Silence {
                pattern,
                until_ms,
                reply,
            } => {
                let now = state.clock.now();
                let op = DurableOp::Silence {
                    pattern: pattern.clone(),
                    until_ms,
                    created_ms: now,
                };
                let stored = state.args.store.durable(op, Some(STORE_WAIT)).await;
                let answer = match stored {
                    Ok(_) => {
                        match until_ms {
                            Some(until) => state.engine.silence(&pattern, until),
                            None => {
                                state.engine.unsilence(&pattern);
                            }
                        }
                        Ok(state.engine.silences(now))
                    }
                    Err(e) => Err(format!("the silence was not stored: {e}")),
                };
                let _ = reply.send(answer);
                // A lifted silence lets what it held through now; a new one is set to be
                // looked at when it ends.
                state.reconcile(&myself);
            }
            AlertsMessage::Test { channel, reply } => test(state, channel, reply),
            AlertsMessage::Status(reply) => {
                let _ = reply.send(state.status());
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut AlertsState,
    ) -> Result<(), ActorProcessingErr> {
        state.args.alerts.slot().detach(myself.get_id());
        // What was decided is stored now, so the next start delivers it.
        state.persist(&myself, false).await;
        Ok(())
    }
}
