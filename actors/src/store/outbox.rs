//! The alert outbox, its delivery attempts and the silences (durable lane).
//!
//! A notification is stored (one row per channel) before any delivery is tried; each attempt
//! is recorded with what the channel answered, and the row is marked `sent` only once the
//! channel accepted it. Rows still `pending` when the daemon stops are delivered by the next
//! run.

use super::error::StoreError;
use std::collections::BTreeMap;

use sqlx::{QueryBuilder, Row, SqliteConnection, SqlitePool};

use crate::alerts::{Notification, Severity, Status};

/// One notification for one channel, to store.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEntry {
    pub channel: String,
    pub notification: Notification,
    pub created_ms: i64,
}

/// What an attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AttemptOutcome {
    /// The channel took it: the rows are sent.
    Accepted,
    /// Some recipients took it and the others refused it for good (email): the rows are
    /// partial. Their receivers got it; the refusals are in [`Attempt::recipients`].
    Partial,
    /// Failed, worth retrying: the rows stay pending until `next_attempt_ms`.
    Transient,
    /// Failed for good (the channel refused the message itself): the rows are failed.
    Permanent,
    /// Not tried: the channel is unknown or its config incomplete: the rows are skipped.
    Skipped,
}

impl AttemptOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Accepted => "accepted",
            AttemptOutcome::Partial => "partial",
            AttemptOutcome::Transient => "transient",
            AttemptOutcome::Permanent => "permanent",
            AttemptOutcome::Skipped => "skipped",
        }
    }

    fn state(self) -> &'static str {
        match self {
            AttemptOutcome::Accepted => "sent",
            AttemptOutcome::Partial => "partial",
            AttemptOutcome::Transient => "pending",
            AttemptOutcome::Permanent => "failed",
            AttemptOutcome::Skipped => "skipped",
        }
    }
}

/// One delivery attempt of some rows (a group goes out as one message).
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub ids: Vec<i64>,
    pub at_ms: i64,
    pub duration_ms: i64,
    pub outcome: AttemptOutcome,
    pub code: Option<u16>,
    /// The channel's answer, or the error.
    pub detail: String,
    /// For a transient failure: when to try again.
    pub next_attempt_ms: Option<i64>,
    /// Per recipient (email): what each one answered for which rows. Empty for channels
    /// with one receiver.
    pub recipients: Vec<RecipientOutcome>,
}

/// What one recipient of a message answered, for the rows the message carried to it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecipientOutcome {
    pub recipient: String,
    pub ids: Vec<i64>,
    /// Accepted, Transient (retried to this recipient only) or Permanent (refused for good).
    pub outcome: AttemptOutcome,
    pub code: Option<u16>,
    pub detail: String,
}

impl RecipientOutcome {
    fn state(&self) -> &'static str {
        match self.outcome {
            AttemptOutcome::Accepted | AttemptOutcome::Partial => "sent",
            AttemptOutcome::Transient => "pending",
            AttemptOutcome::Permanent | AttemptOutcome::Skipped => "failed",
        }
    }
}

/// What earlier attempts settled per recipient: for each recipient, the rows it took
/// (`true`) or refused for good (`false`). A retry sends each recipient only the rows it has
/// not settled.
pub type Settled = BTreeMap<String, BTreeMap<i64, bool>>;

/// Rows per statement (17 parameters each).
const ROWS_PER_STATEMENT: usize = 500;

/// Stores `entries`; their ids, in order.
pub(super) async fn add(
    conn: &mut SqliteConnection,
    entries: &[OutboxEntry],
) -> Result<Vec<i64>, sqlx::Error> {
    let mut ids = Vec::with_capacity(entries.len());
    for chunk in entries.chunks(ROWS_PER_STATEMENT) {
        let mut sql = QueryBuilder::new(
            "INSERT INTO alert_outbox (channel, fingerprint, key, status, severity, title, body, \
             source, labels, starts_at_ms, ends_at_ms, occurrences, created_ms, next_attempt_ms) ",
        );
        sql.push_values(chunk, |mut row, e| {
            let n = &e.notification;
            row.push_bind(e.channel.as_str())
                .push_bind(n.fingerprint.as_str())
                .push_bind(n.key.as_str())
                .push_bind(n.status.as_str())
                .push_bind(n.severity.as_str())
                .push_bind(n.title.as_str())
                .push_bind(n.body.as_str())
                .push_bind(n.source.as_str())
                .push_bind(serde_json::to_string(&n.labels).unwrap_or_else(|_| "{}".into()))
                .push_bind(n.starts_at_ms)
                .push_bind(n.ends_at_ms)
                .push_bind(i64::try_from(n.occurrences).unwrap_or(i64::MAX))
                .push_bind(e.created_ms)
                .push_bind(e.created_ms);
        });
        let done = sql.build().execute(&mut *conn).await?;
        // One writer, AUTOINCREMENT: the rows of one statement get consecutive ids.
        let last = done.last_insert_rowid();
        let first = last - chunk.len() as i64 + 1;
        ids.extend(first..=last);
    }
    Ok(ids)
}

/// Records an attempt on each of its rows and moves them to the state its outcome means.
pub(super) async fn attempted(conn: &mut SqliteConnection, a: &Attempt) -> Result<(), sqlx::Error> {
    let detail: String = a.detail.chars().take(2000).collect();
    for r in &a.recipients {
        let detail: String = r.detail.chars().take(2000).collect();
        for chunk in r.ids.chunks(ROWS_PER_STATEMENT) {
            let mut sql = QueryBuilder::new(
                "INSERT OR REPLACE INTO alert_recipients \
                 (outbox_id, recipient, state, code, detail, at_ms) ",
            );
            sql.push_values(chunk, |mut row, id| {
                row.push_bind(*id)
                    .push_bind(r.recipient.as_str())
                    .push_bind(r.state())
                    .push_bind(r.code.map(i64::from))
                    .push_bind(detail.as_str())
                    .push_bind(a.at_ms);
            });
            sql.build().execute(&mut *conn).await?;
        }
    }
    for chunk in a.ids.chunks(ROWS_PER_STATEMENT) {
        let mut sql = QueryBuilder::new(
            "INSERT INTO alert_attempts (outbox_id, at_ms, duration_ms, outcome, code, detail) ",
        );
        sql.push_values(chunk, |mut row, id| {
            row.push_bind(*id)
                .push_bind(a.at_ms)
                .push_bind(a.duration_ms)
                .push_bind(a.outcome.as_str())
                .push_bind(a.code.map(i64::from))
                .push_bind(detail.as_str());
        });
        sql.build().execute(&mut *conn).await?;
        let done_ms = (a.outcome != AttemptOutcome::Transient).then_some(a.at_ms);
        let error = (a.outcome != AttemptOutcome::Accepted).then_some(detail.as_str());
        let mut sql =
            QueryBuilder::new("UPDATE alert_outbox SET attempts = attempts + 1, state = ");
        sql.push_bind(a.outcome.state())
            .push(", next_attempt_ms = ")
            .push_bind(a.next_attempt_ms)
            .push(", done_ms = ")
            .push_bind(done_ms)
            .push(", last_error = ")
            .push_bind(error)
            .push(" WHERE state = 'pending' AND id IN (");
        let mut list = sql.separated(", ");
        for id in chunk {
            list.push_bind(*id);
        }
        sql.push(")");
        sql.build().execute(&mut *conn).await?;
    }
    Ok(())
}

pub(super) async fn silence(
    conn: &mut SqliteConnection,
    pattern: &str,
    until_ms: Option<i64>,
    created_ms: i64,
) -> Result<(), sqlx::Error> {
    match until_ms {
        Some(until) => sqlx::query(
            "INSERT OR REPLACE INTO alert_silences (pattern, until_ms, created_ms) VALUES (?, ?, ?)",
        )
        .bind(pattern)
        .bind(until)
        .bind(created_ms)
        .execute(conn)
        .await
        .map(drop),
        None => sqlx::query("DELETE FROM alert_silences WHERE pattern = ?")
            .bind(pattern)
            .execute(conn)
            .await
            .map(drop),
    }
}

/// Forgets delivered, failed and skipped rows (and their attempts) done before `cutoff_ms`,
/// and silences that ended before it.
pub(super) async fn prune(conn: &mut SqliteConnection, cutoff_ms: i64) -> Result<u64, sqlx::Error> {
    sqlx::query(
        "DELETE FROM alert_attempts WHERE outbox_id IN \
         (SELECT id FROM alert_outbox WHERE state != 'pending' AND done_ms < ?)",
    )
    .bind(cutoff_ms)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "DELETE FROM alert_recipients WHERE outbox_id IN \
         (SELECT id FROM alert_outbox WHERE state != 'pending' AND done_ms < ?)",
    )
    .bind(cutoff_ms)
    .execute(&mut *conn)
    .await?;
    let rows = sqlx::query("DELETE FROM alert_outbox WHERE state != 'pending' AND done_ms < ?")
        .bind(cutoff_ms)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    sqlx::query("DELETE FROM alert_silences WHERE until_ms < ?")
        .bind(cutoff_ms)
        .execute(&mut *conn)
        .await?;
    Ok(rows)
}

/// A stored notification with its delivery state.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OutboxRow {
    pub channel: String,
    pub notification: Notification,
    pub created_ms: i64,
    /// pending | sent | partial | failed | skipped
    pub state: String,
    pub attempts: u32,
    pub next_attempt_ms: Option<i64>,
    pub done_ms: Option<i64>,
    pub last_error: Option<String>,
}

macro_rules! columns {
    () => {
        "id, channel, fingerprint, key, status, severity, title, body, source, labels, \
         starts_at_ms, ends_at_ms, occurrences, created_ms, state, attempts, next_attempt_ms, \
         done_ms, last_error"
    };
}

fn outbox_row(r: &sqlx::sqlite::SqliteRow) -> OutboxRow {
    let labels: String = r.get("labels");
    let occurrences: i64 = r.get("occurrences");
    let attempts: i64 = r.get("attempts");
    OutboxRow {
        channel: r.get("channel"),
        notification: Notification {
            id: r.get("id"),
            fingerprint: r.get("fingerprint"),
            key: r.get("key"),
            status: Status::parse(r.get::<&str, _>("status")).unwrap_or(Status::Firing),
            severity: Severity::parse(r.get::<&str, _>("severity")).unwrap_or(Severity::Critical),
            title: r.get("title"),
            body: r.get("body"),
            source: r.get("source"),
            labels: serde_json::from_str::<BTreeMap<String, String>>(&labels).unwrap_or_default(),
            starts_at_ms: r.get("starts_at_ms"),
            ends_at_ms: r.get("ends_at_ms"),
            occurrences: u64::try_from(occurrences).unwrap_or(0),
        },
        created_ms: r.get("created_ms"),
        state: r.get("state"),
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        next_attempt_ms: r.get("next_attempt_ms"),
        done_ms: r.get("done_ms"),
        last_error: r.get("last_error"),
    }
}

/// Every pending row, oldest first (what a starting alerts actor resumes).
pub async fn pending(pool: &SqlitePool) -> Result<Vec<OutboxRow>, String> {
    sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM alert_outbox WHERE state = 'pending' ORDER BY id"
    ))
    .fetch_all(pool)
    .await
    .map(|rows| rows.iter().map(outbox_row).collect())
    .map_err(|e| format!("cannot read the alert outbox: {e}"))
}

/// The most recent `limit` rows, newest first.
pub async fn recent(pool: &SqlitePool, limit: usize) -> Result<Vec<OutboxRow>, StoreError> {
    sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM alert_outbox ORDER BY id DESC LIMIT ?"
    ))
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await
    .map(|rows| rows.iter().map(outbox_row).collect())
    .map_err(|e| StoreError::sqlx("cannot read the alert outbox", e))
}

/// For each key notified since `since_ms`, its latest row (firing or resolved), oldest first:
/// which conditions were left firing.
pub async fn latest_per_key(pool: &SqlitePool, since_ms: i64) -> Result<Vec<OutboxRow>, String> {
    sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM alert_outbox WHERE id IN \
         (SELECT max(id) FROM alert_outbox WHERE created_ms >= ? GROUP BY key) ORDER BY id"
    ))
    .bind(since_ms)
    .fetch_all(pool)
    .await
    .map(|rows| rows.iter().map(outbox_row).collect())
    .map_err(|e| format!("cannot read the alert outbox: {e}"))
}

/// For each channel and key notified, its latest row (firing or resolved), oldest first:
/// what each channel was last told of each condition.
pub async fn latest_per_channel_key(pool: &SqlitePool) -> Result<Vec<OutboxRow>, String> {
    sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM alert_outbox WHERE id IN \
         (SELECT max(id) FROM alert_outbox GROUP BY channel, key) ORDER BY id"
    ))
    .fetch_all(pool)
    .await
    .map(|rows| rows.iter().map(outbox_row).collect())
    .map_err(|e| format!("cannot read the alert outbox: {e}"))
}

/// The recipients of `channel` (email) that took a firing notification of the episode
/// (`fingerprint`, `starts_at_ms`); `None` when no per-recipient record of one is stored.
pub async fn episode_takers(
    pool: &SqlitePool,
    channel: &str,
    fingerprint: &str,
    starts_at_ms: i64,
) -> Result<Option<std::collections::BTreeSet<String>>, String> {
    let rows = sqlx::query_as::<_, (String, String)>(
        "SELECT r.recipient, r.state FROM alert_outbox o \
         JOIN alert_recipients r ON r.outbox_id = o.id \
         WHERE o.fingerprint = ? AND o.starts_at_ms = ? AND o.channel = ? AND o.status = 'firing'",
    )
    .bind(fingerprint)
    .bind(starts_at_ms)
    .bind(channel)
    .fetch_all(pool)
    .await
    .map_err(|e| format!("cannot read alert recipients: {e}"))?;
    if rows.is_empty() {
        return Ok(None);
    }
    Ok(Some(
        rows.into_iter()
            .filter(|(_, state)| state == "sent")
            .map(|(recipient, _)| recipient)
            .collect(),
    ))
}

/// Whether a receiver heard of an episode (its firing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard {
    /// An attempt to send it may have reached the receiver: accepted, partially delivered,
    /// or failed for a while (a timeout may hide a delivery).
    Yes,
    /// Its firing notifications are stored and none may have reached it (never tried,
    /// superseded before a try, refused for good, skipped).
    No,
    /// No firing notification of it is stored for this channel (pruned, or from before the
    /// channel was routed): whether it heard is unknown.
    Unknown,
}

/// Whether `channel`'s receiver heard of the episode (`fingerprint`, `starts_at_ms`): what
/// decides whether it must be told the episode ended.
pub async fn episode_heard(
    pool: &SqlitePool,
    channel: &str,
    fingerprint: &str,
    starts_at_ms: i64,
    resent: bool,
) -> Result<Heard, String> {
    // On a channel that re-sends what fires, a firing refused for good may still have been
    // heard from a later resend: any attempt counts.
    let (rows, heard) = sqlx::query_as::<_, (i64, i64)>(
        "SELECT count(*), coalesce(sum(EXISTS (SELECT 1 FROM alert_attempts a \
         WHERE a.outbox_id = o.id AND (a.outcome IN ('accepted', 'partial', 'transient') \
         OR (? AND a.outcome = 'permanent')))), 0) \
         FROM alert_outbox o WHERE o.fingerprint = ? AND o.starts_at_ms = ? \
         AND o.channel = ? AND o.status = 'firing'",
    )
    .bind(resent)
    .bind(fingerprint)
    .bind(starts_at_ms)
    .bind(channel)
    .fetch_one(pool)
    .await
    .map_err(|e| format!("cannot read the alert outbox: {e}"))?;
    Ok(match (rows, heard) {
        (0, _) => Heard::Unknown,
        (_, 0) => Heard::No,
        _ => Heard::Yes,
    })
}

/// How many rows wait for delivery.
pub async fn undelivered(pool: &SqlitePool) -> Result<u64, StoreError> {
    sqlx::query_scalar::<_, i64>("SELECT count(*) FROM alert_outbox WHERE state = 'pending'")
        .fetch_one(pool)
        .await
        .map(|n| u64::try_from(n).unwrap_or(0))
        .map_err(|e| StoreError::sqlx("cannot read the alert outbox", e))
}

/// One recorded attempt.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AttemptRow {
    pub outbox_id: i64,
    pub at_ms: i64,
    pub duration_ms: i64,
    pub outcome: String,
    pub code: Option<i64>,
    pub detail: String,
}

/// The attempts of the given rows, oldest first.
pub async fn attempts(pool: &SqlitePool, ids: &[i64]) -> Result<Vec<AttemptRow>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = QueryBuilder::new(
        "SELECT outbox_id, at_ms, duration_ms, outcome, code, detail FROM alert_attempts \
         WHERE outbox_id IN (",
    );
    let mut list = sql.separated(", ");
    for id in ids.iter().take(10_000) {
        list.push_bind(*id);
    }
    sql.push(") ORDER BY id");
    sql.build()
        .fetch_all(pool)
        .await
        .map(|rows| {
            rows.iter()
                .map(|r| AttemptRow {
                    outbox_id: r.get(0),
                    at_ms: r.get(1),
                    duration_ms: r.get(2),
                    outcome: r.get(3),
                    code: r.get(4),
                    detail: r.get(5),
                })
                .collect()
        })
        .map_err(|e| StoreError::sqlx("cannot read alert attempts", e))
}

/// Silences that have not ended at `now_ms`.
pub async fn silences(pool: &SqlitePool, now_ms: i64) -> Result<Vec<(String, i64)>, StoreError> {
    sqlx::query_as::<_, (String, i64)>(
        "SELECT pattern, until_ms FROM alert_silences WHERE until_ms > ? ORDER BY pattern",
    )
    .bind(now_ms)
    .fetch_all(pool)
    .await
    .map_err(|e| StoreError::sqlx("cannot read alert silences", e))
}

/// What earlier attempts settled per recipient for the rows `ids` (see [`Settled`]).
pub async fn settled(pool: &SqlitePool, ids: &[i64]) -> Result<Settled, String> {
    let mut settled = Settled::new();
    for chunk in ids.chunks(ROWS_PER_STATEMENT) {
        let mut sql = QueryBuilder::new(
            "SELECT outbox_id, recipient, state FROM alert_recipients \
             WHERE state != 'pending' AND outbox_id IN (",
        );
        let mut list = sql.separated(", ");
        for id in chunk {
            list.push_bind(*id);
        }
        sql.push(")");
        let rows = sql
            .build()
            .fetch_all(pool)
            .await
            .map_err(|e| format!("cannot read alert recipients: {e}"))?;
        for r in rows {
            let id: i64 = r.get(0);
            let recipient: String = r.get(1);
            let state: &str = r.get(2);
            settled
                .entry(recipient)
                .or_default()
                .insert(id, state == "sent");
        }
    }
    Ok(settled)
}

/// One recipient's delivery of a row (email).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RecipientRow {
    pub outbox_id: i64,
    pub recipient: String,
    /// sent | failed | pending
    pub state: String,
    pub code: Option<i64>,
    pub detail: String,
    pub at_ms: i64,
}

/// The per-recipient deliveries of the given rows, by row and recipient.
pub async fn recipients(pool: &SqlitePool, ids: &[i64]) -> Result<Vec<RecipientRow>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = QueryBuilder::new(
        "SELECT outbox_id, recipient, state, code, detail, at_ms FROM alert_recipients \
         WHERE outbox_id IN (",
    );
    let mut list = sql.separated(", ");
    for id in ids.iter().take(10_000) {
        list.push_bind(*id);
    }
    sql.push(") ORDER BY outbox_id, recipient");
    sql.build()
        .fetch_all(pool)
        .await
        .map(|rows| {
            rows.iter()
                .map(|r| RecipientRow {
                    outbox_id: r.get(0),
                    recipient: r.get(1),
                    state: r.get(2),
                    code: r.get(3),
                    detail: r.get(4),
                    at_ms: r.get(5),
                })
                .collect()
        })
        .map_err(|e| StoreError::sqlx("cannot read alert recipients", e))
}
