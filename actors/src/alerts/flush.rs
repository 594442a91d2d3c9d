//! Delivering the outbox without the actor: the daemon's last words when the root supervisor
//! gives up. The alerts actor is gone by then (the root stopped its children), yet the give-up
//! is the alert that matters most. [`last_words`] stores it like any notification (so it is
//! never lost: an undelivered row is resumed by the next start), then sends every pending row
//! once, within a deadline, recording each attempt.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use super::alert::{Alert, Notification, PerSeverity};
use super::channel::{self, ChannelSpec, Deliverer, Outcome, Sent};
use super::engine::notification_of;
use crate::store::outbox::{
    self, Attempt, AttemptOutcome, OutboxEntry, OutboxRow, RecipientOutcome,
};
use crate::store::{unix_ms, DurableOp, DurableReply, Store};

/// What the daemon's alerts child was configured with.
#[derive(Debug, Clone)]
pub struct LastWords {
    pub channels: Vec<ChannelSpec>,
    pub routes: PerSeverity<Vec<String>>,
    /// One delivery's time limit.
    pub timeout: Duration,
    pub hostname: String,
}

/// What became of the pending rows.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Flushed {
    /// Rows the channels accepted.
    pub accepted: usize,
    /// Rows still pending (a channel failed or the deadline passed): the next start sends them.
    pub left: usize,
    /// Rows whose channel refused them for good, or cannot send (incomplete config).
    pub dropped: usize,
}

/// How long before the deadline the last delivery may start: a delivery takes up to the
/// channel timeout, and its attempt must still be recorded.
const RECORD_MARGIN: Duration = Duration::from_millis(500);

/// Stores `alert` (unless a firing notification of its key was stored since `since_ms`: the
/// actor got to it first) for the channels its severity routes to, then delivers every
/// pending row before `deadline`.
pub async fn last_words(
    store: &Store,
    config: &LastWords,
    alert: &Alert,
    since_ms: i64,
    deadline: Instant,
) -> Flushed {
    let key = alert.key();
    let now = unix_ms(std::time::SystemTime::now());
    let stored = match outbox::latest_per_key(store.reader(), since_ms).await {
        // Its latest row firing: the actor got to it first (a resolution since, of an
        // earlier give-up, is no firing of this one).
        Ok(rows) => rows.iter().any(|r| {
            r.notification.key == key && r.notification.status == super::alert::Status::Firing
        }),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the alert outbox");
            false
        }
    };
    let routes = config.routes.get(alert.severity);
    if !stored && !routes.is_empty() {
        let n = notification_of(alert, now);
        let entries: Vec<OutboxEntry> = routes
            .iter()
            .map(|channel| OutboxEntry {
                channel: channel.clone(),
                notification: n.clone(),
                created_ms: now,
            })
            .collect();
        let wait = deadline.saturating_duration_since(Instant::now());
        match store
            .durable(DurableOp::OutboxAdd(entries), Some(wait))
            .await
        {
            Ok(DurableReply::Ids(_)) => {}
            Ok(_) => tracing::warn!("the store answered the outbox write oddly"),
            Err(e) => tracing::error!(error = %e, alert = %alert.title, "cannot store the alert"),
        }
    }
    flush(store, config, deadline).await
}

/// Sends every pending outbox row once (channels in parallel, each in order), before
/// `deadline`. A channel that fails is left for the next start.
pub async fn flush(store: &Store, config: &LastWords, deadline: Instant) -> Flushed {
    let pending = match outbox::pending(store.reader()).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the alert outbox");
            return Flushed::default();
        }
    };
    let mut by_channel: BTreeMap<String, Vec<Notification>> = BTreeMap::new();
    for OutboxRow {
        channel,
        notification,
        ..
    } in pending
    {
        by_channel.entry(channel).or_default().push(notification);
    }
    let deliverer = match Deliverer::new(config.timeout, config.hostname.clone()) {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "cannot deliver alerts");
            let left = by_channel.values().map(Vec::len).sum();
            return Flushed {
                left,
                ..Flushed::default()
            };
        }
    };
    let sends = by_channel.into_iter().map(|(name, rows)| {
        let spec = config.channels.iter().find(|c| c.name == name);
        one_channel(store, &deliverer, name.clone(), spec, rows, deadline)
    });
    let mut total = Flushed::default();
    for f in futures_util::future::join_all(sends).await {
        total.accepted += f.accepted;
        total.left += f.left;
        total.dropped += f.dropped;
    }
    total
}

async fn one_channel(
    store: &Store,
    deliverer: &Deliverer,
    name: String,
    spec: Option<&ChannelSpec>,
    rows: Vec<Notification>,
    deadline: Instant,
) -> Flushed {
    let mut done = Flushed::default();
    let prepared = match spec {
        Some(spec) => channel::prepare(spec, &|v| std::env::var(v).ok()),
        None => Err(format!("no channel named `{name}` is configured")),
    };
    let channel = match prepared {
        Ok(c) => c,
        Err(why) => {
            let now = unix_ms(std::time::SystemTime::now());
            done.dropped = rows.len();
            record(
                store,
                rows.iter().map(|n| n.id).collect(),
                now,
                Duration::ZERO,
                (AttemptOutcome::Skipped, None, why),
                Vec::new(),
                deadline,
            )
            .await;
            return done;
        }
    };
    // As the actor sends: each episode once, at its latest; no end of an episode the
    // receiver never heard of.
    let ids: Vec<i64> = rows.iter().map(|n| n.id).collect();
    let resent = channel.resend_interval().is_some();
    let compacted = super::message::compact(store.reader(), &name, ids, rows, resent).await;
    let now = unix_ms(std::time::SystemTime::now());
    for (skipped, why) in [
        (
            compacted.superseded,
            "superseded by a later notification of the same alert in the same message",
        ),
        (
            compacted.unheard,
            "the receiver never heard of this episode (its firing was not delivered): its end \
             is not sent",
        ),
    ] {
        if !skipped.is_empty() {
            done.dropped += skipped.len();
            let outcome = (AttemptOutcome::Skipped, None, why.to_string());
            record(
                store,
                skipped,
                now,
                Duration::ZERO,
                outcome,
                Vec::new(),
                deadline,
            )
            .await;
        }
    }
    let rows = compacted.batch;
    let max = channel.max_per_message().max(1);
    let mut rest = rows.as_slice();
    while !rest.is_empty() {
        let budget = deadline.saturating_duration_since(Instant::now());
        if budget <= RECORD_MARGIN {
            break;
        }
        let (batch, after) = rest.split_at(max.min(rest.len()));
        let at = unix_ms(std::time::SystemTime::now());
        let started = Instant::now();
        let ids: Vec<i64> = batch.iter().map(|n| n.id).collect();
        let settled = super::message::settled_for(store.reader(), &name, &channel, batch)
            .await
            .unwrap_or_default();
        let sent = match tokio::time::timeout(
            budget - RECORD_MARGIN,
            deliverer.deliver(&channel, batch, &settled),
        )
        .await
        {
            Ok(sent) => sent,
            Err(_) => Sent::whole(
                Outcome::Transient {
                    code: None,
                    error: "the daemon's exit deadline passed".into(),
                    retry_after: None,
                },
                None,
            ),
        };
        let (kind, code, detail) = sent.attempt();
        record(
            store,
            ids,
            at,
            started.elapsed(),
            (kind, code, detail.clone()),
            sent.recipients,
            deadline,
        )
        .await;
        match kind {
            AttemptOutcome::Accepted | AttemptOutcome::Partial => done.accepted += batch.len(),
            AttemptOutcome::Permanent => done.dropped += batch.len(),
            _ => {
                tracing::warn!(channel = %name, error = %detail, "alert delivery failed; the next start retries");
                break;
            }
        }
        rest = after;
    }
    done.left += rest.len();
    done
}

async fn record(
    store: &Store,
    ids: Vec<i64>,
    at_ms: i64,
    took: Duration,
    (outcome, code, detail): (AttemptOutcome, Option<u16>, String),
    recipients: Vec<RecipientOutcome>,
    deadline: Instant,
) {
    let attempt = Attempt {
        ids,
        at_ms,
        duration_ms: took.as_millis() as i64,
        outcome,
        code,
        detail,
        next_attempt_ms: None,
        recipients,
    };
    let wait = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(100));
    if let Err(e) = store
        .durable(DurableOp::OutboxAttempt(attempt), Some(wait))
        .await
    {
        tracing::warn!(error = %e, "cannot record an alert delivery");
    }
}
