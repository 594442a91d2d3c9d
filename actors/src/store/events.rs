//! The `events` table (telemetry lane): every lifecycle event of the tree and every event an
//! actor or the daemon records. Written in batches by the writer; read through the read pool,
//! in pages.

use super::error::StoreError;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::{QueryBuilder, Row, SqliteConnection, SqlitePool};

use crate::supervision::event::{EventKind, LifecycleEvent};
use crate::supervision::exit::ExitReason;

/// Generates [`Kind`] and [`KINDS`] from one list.
macro_rules! event_kinds {
    ($($variant:ident => $name:literal, $what:literal;)+) => {
        /// Every kind of stored event: the engine's lifecycle kinds, then the kinds' and the
        /// daemon's own. A writer names one of these (never a string), so a filter can be
        /// checked against the list (`--kind exitted` is a typo, not an empty answer).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Kind {
            $(#[doc = $what] $variant),+
        }

        impl Kind {
            pub const ALL: &'static [Kind] = &[$(Kind::$variant),+];

            /// As stored and filtered on (`snake_case`).
            pub fn as_str(self) -> &'static str {
                match self { $(Kind::$variant => $name),+ }
            }

            pub fn parse(s: &str) -> Option<Kind> {
                match s { $($name => Some(Kind::$variant),)+ _ => None }
            }
        }

        /// Every event kind's name, in [`Kind`]'s order.
        pub const KINDS: &[&str] = &[$($name),+];
    };
}

event_kinds! {
    Started => "started", "an actor started";
    StartFailed => "start_failed", "an actor's start failed";
    Exited => "exited", "an actor exited";
    RestartScheduled => "restart_scheduled", "a supervisor scheduled a restart";
    Restarted => "restarted", "an actor was restarted";
    GaveUp => "gave_up", "a supervisor gave up (restart intensity)";
    Heartbeat => "heartbeat", "a heartbeat";
    Reloaded => "reloaded", "the config was reloaded";
    Anomaly => "anomaly", "a metric's value was an anomaly";
    Alert => "alert", "an alert decided, a channel skipped";
    Breaker => "breaker", "a circuit breaker's transition";
    Probe => "probe", "a probe's status changed";
    Heal => "heal", "a heal action, or its breaker's transition";
    Chaos => "chaos", "a chaos run's step";
    SyncEvent => "sync_event", "a sync run or job";
    SyncError => "sync_error", "a sync run that failed";
    Process => "process", "a managed process's life";
}

/// One event to record.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub at: SystemTime,
    pub path: String,
    pub kind: String,
    pub message: String,
    /// The typed fields as a JSON object.
    pub data: serde_json::Value,
}

impl StoredEvent {
    pub fn new(path: impl Into<String>, kind: Kind, message: impl Into<String>) -> Self {
        StoredEvent {
            at: SystemTime::now(),
            path: path.into(),
            kind: kind.as_str().to_string(),
            message: message.into(),
            data: serde_json::Value::Object(Default::default()),
        }
    }

    pub fn at_ms(&self) -> i64 {
        unix_ms(self.at)
    }
}

/// One stored event, with its row id (ids grow with time: a cursor for paging and following).
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub id: i64,
    /// Unix milliseconds, as stored (any value a file holds, even one past year 9999).
    pub at_ms: i64,
    pub path: String,
    pub kind: String,
    pub message: String,
    pub data: serde_json::Value,
}

impl EventRow {
    fn from_event(id: i64, e: &StoredEvent) -> Self {
        EventRow {
            id,
            at_ms: e.at_ms(),
            path: e.path.clone(),
            kind: e.kind.clone(),
            message: e.message.clone(),
            data: e.data.clone(),
        }
    }
}

/// Unix milliseconds (0 before the epoch, saturating far in the future).
pub fn unix_ms(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// RFC 3339 (UTC, milliseconds) for any stored value: times outside years 1970 to 9999,
/// which a damaged or hand-edited file may hold, are shown as their raw number.
pub fn format_ms(ms: i64) -> String {
    const MAX: i64 = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z
    if (0..=MAX).contains(&ms) {
        let at = UNIX_EPOCH + Duration::from_millis(ms as u64);
        humantime::format_rfc3339_millis(at).to_string()
    } else {
        format!("{ms} ms since 1970")
    }
}

fn reason_json(reason: &ExitReason) -> serde_json::Value {
    match reason {
        ExitReason::Failed(message) => {
            serde_json::json!({ "reason": reason.tag(), "error": message })
        }
        other => serde_json::json!({ "reason": other.tag() }),
    }
}

impl From<&LifecycleEvent> for StoredEvent {
    fn from(e: &LifecycleEvent) -> Self {
        use serde_json::json;
        let data = match &e.kind {
            EventKind::Started { incarnation } | EventKind::Restarted { incarnation } => {
                json!({ "incarnation": incarnation })
            }
            EventKind::StartFailed { error } => json!({ "error": error }),
            EventKind::Exited {
                reason,
                incarnation,
            } => {
                let mut v = reason_json(reason);
                v["incarnation"] = json!(incarnation);
                v
            }
            EventKind::RestartScheduled {
                delay,
                attempt,
                reset_after,
            } => json!({
                "delay_ms": delay.as_millis() as u64,
                "attempt": attempt,
                "reset_after_ms": reset_after.as_millis() as u64,
            }),
            EventKind::GaveUp { intensity, period } => {
                json!({ "intensity": intensity, "period_ms": period.as_millis() as u64 })
            }
        };
        StoredEvent {
            at: e.at,
            path: e.path.clone(),
            kind: e.kind.tag().to_string(),
            message: e.kind.to_string(),
            data,
        }
    }
}

/// Which events to read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventQuery {
    /// Only events at or after this time.
    pub since: Option<SystemTime>,
    /// Only events about this path or anything below it.
    pub path: Option<String>,
    /// Only this kind.
    pub kind: Option<String>,
}

impl EventQuery {
    /// Whether `row` passes the filters (for events that arrive live).
    pub fn matches(&self, row: &EventRow) -> bool {
        if let Some(since) = self.since {
            if row.at_ms < unix_ms(since) {
                return false;
            }
        }
        if let Some(path) = &self.path {
            let below = row
                .path
                .strip_prefix(path.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
            if !below {
                return false;
            }
        }
        self.kind.as_deref().is_none_or(|k| row.kind == k)
    }

    fn filter(&self, sql: &mut QueryBuilder<sqlx::Sqlite>) {
        if let Some(since) = self.since {
            sql.push(" AND at_ms >= ").push_bind(unix_ms(since));
        }
        if let Some(path) = &self.path {
            // The path itself or anything below it; GLOB is case-sensitive and byte-exact
            // (LIKE folds ASCII case; substr counts characters), its wildcards escaped.
            let mut pattern = String::with_capacity(path.len() + 2);
            for c in path.chars() {
                match c {
                    '*' | '?' | '[' => {
                        pattern.push('[');
                        pattern.push(c);
                        pattern.push(']');
                    }
                    _ => pattern.push(c),
                }
            }
            pattern.push_str("/*");
            sql.push(" AND (path = ")
                .push_bind(path.clone())
                .push(" OR path GLOB ")
                .push_bind(pattern)
                .push(")");
        }
        if let Some(kind) = &self.kind {
            sql.push(" AND kind = ").push_bind(kind.clone());
        }
    }
}

/// Matching events with ids above `after` (all when `None`), oldest first, at most `limit`.
pub async fn page(
    pool: &SqlitePool,
    query: &EventQuery,
    after: Option<i64>,
    limit: usize,
) -> Result<Vec<EventRow>, StoreError> {
    let mut sql =
        QueryBuilder::new("SELECT id, at_ms, path, kind, message, data FROM events WHERE 1=1");
    query.filter(&mut sql);
    if let Some(after) = after {
        sql.push(" AND id > ").push_bind(after);
    }
    sql.push(" ORDER BY id LIMIT ")
        .push_bind(i64::try_from(limit).unwrap_or(i64::MAX));
    let rows = sql
        .build()
        .fetch_all(pool)
        .await
        .map_err(|e| StoreError::sqlx("cannot read events", e))?;
    Ok(rows
        .iter()
        .map(|row| {
            let data: String = row.get(5);
            EventRow {
                id: row.get(0),
                at_ms: row.get(1),
                path: row.get(2),
                kind: row.get(3),
                message: row.get(4),
                data: serde_json::from_str(&data).unwrap_or(serde_json::Value::Null),
            }
        })
        .collect())
}

/// The cursor after which the last `n` matching events begin: reading pages from it gives
/// the `n` most recent, oldest first. `None`: there are at most `n`, read from the start.
pub async fn last_n_cursor(
    pool: &SqlitePool,
    query: &EventQuery,
    n: usize,
) -> Result<Option<i64>, StoreError> {
    let mut sql = QueryBuilder::new("SELECT id FROM events WHERE 1=1");
    query.filter(&mut sql);
    sql.push(" ORDER BY id DESC LIMIT 1 OFFSET ")
        .push_bind(i64::try_from(n).unwrap_or(i64::MAX));
    let row = sql
        .build()
        .fetch_optional(pool)
        .await
        .map_err(|e| StoreError::sqlx("cannot read events", e))?;
    Ok(row.map(|r| r.get::<i64, _>(0)))
}

/// The status the probe at `path` last changed to (`"pass"`, `"warn"`, `"fail"`), if its
/// `probe` events are still kept.
pub async fn last_probe_status(pool: &SqlitePool, path: &str) -> Result<Option<String>, String> {
    sqlx::query_scalar::<_, Option<String>>(
        "SELECT json_extract(data, '$.to') FROM events WHERE path = ? AND kind = 'probe' \
         ORDER BY id DESC LIMIT 1",
    )
    .bind(path)
    .fetch_optional(pool)
    .await
    .map(Option::flatten)
    .map_err(|e| format!("cannot read events: {e}"))
}

/// The highest event id, if any.
pub async fn last_id(pool: &SqlitePool) -> Result<Option<i64>, StoreError> {
    sqlx::query_scalar::<_, Option<i64>>("SELECT max(id) FROM events")
        .fetch_one(pool)
        .await
        .map_err(|e| StoreError::sqlx("cannot read events", e))
}

/// Inserts `events` with one multi-row INSERT inside the caller's transaction; the stored
/// rows with their ids.
pub(super) async fn insert(
    conn: &mut SqliteConnection,
    events: &[StoredEvent],
) -> Result<Vec<EventRow>, sqlx::Error> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    // SQLite allows 32,766 bound parameters; 5 per row and a batch stay well under.
    let mut sql = QueryBuilder::new("INSERT INTO events (at_ms, path, kind, message, data) ");
    sql.push_values(events, |mut row, e| {
        row.push_bind(e.at_ms())
            .push_bind(e.path.as_str())
            .push_bind(e.kind.as_str())
            .push_bind(e.message.as_str())
            .push_bind(e.data.to_string());
    });
    let done = sql.build().execute(&mut *conn).await?;
    // One writer, AUTOINCREMENT: the rows of one statement get consecutive ids.
    let last = done.last_insert_rowid();
    let first = last - events.len() as i64 + 1;
    Ok(events
        .iter()
        .enumerate()
        .map(|(i, e)| EventRow::from_event(first + i as i64, e))
        .collect())
}

/// Deletes events older than `cutoff_ms`; how many.
pub(super) async fn prune(conn: &mut SqliteConnection, cutoff_ms: i64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("DELETE FROM events WHERE at_ms < ?")
        .bind(cutoff_ms)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_lifecycle_kind_is_known() {
        let kinds = [
            EventKind::Started { incarnation: 1 },
            EventKind::StartFailed { error: "x".into() },
            EventKind::Exited {
                reason: ExitReason::Normal,
                incarnation: 1,
            },
            EventKind::RestartScheduled {
                delay: Duration::ZERO,
                attempt: 1,
                reset_after: Duration::from_secs(60),
            },
            EventKind::Restarted { incarnation: 2 },
            EventKind::GaveUp {
                intensity: 1,
                period: Duration::from_secs(1),
            },
        ];
        for kind in kinds {
            assert!(KINDS.contains(&kind.tag()), "{}", kind.tag());
        }
    }

    #[test]
    fn event_kinds_are_one_list() {
        assert_eq!(KINDS.len(), Kind::ALL.len());
        for (k, name) in Kind::ALL.iter().zip(KINDS) {
            assert_eq!(k.as_str(), *name);
            assert_eq!(Kind::parse(name), Some(*k));
        }
        assert_eq!(Kind::parse("exitted"), None);
        assert_eq!(
            StoredEvent::new("root", Kind::SyncError, "x").kind,
            "sync_error"
        );
    }

    #[test]
    fn any_stored_time_can_be_shown() {
        assert_eq!(format_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_ms(253_402_300_799_999), "9999-12-31T23:59:59.999Z");
        assert_eq!(
            format_ms(253_402_300_800_000),
            "253402300800000 ms since 1970"
        );
        assert_eq!(format_ms(i64::MAX), format!("{} ms since 1970", i64::MAX));
        assert_eq!(format_ms(-1), "-1 ms since 1970");
    }

    #[test]
    fn live_rows_are_filtered_like_queries() {
        let row = EventRow {
            id: 1,
            at_ms: 1_000,
            path: "root/sync/icloud".into(),
            kind: "exited".into(),
            message: String::new(),
            data: serde_json::Value::Null,
        };
        let q = |path: Option<&str>, kind: Option<&str>| EventQuery {
            since: None,
            path: path.map(str::to_string),
            kind: kind.map(str::to_string),
        };
        assert!(q(None, None).matches(&row));
        assert!(q(Some("root/sync"), Some("exited")).matches(&row));
        assert!(q(Some("root/sync/icloud"), None).matches(&row));
        assert!(!q(Some("root/syn"), None).matches(&row));
        assert!(!q(None, Some("started")).matches(&row));
        let late = EventQuery {
            since: Some(UNIX_EPOCH + Duration::from_secs(2)),
            ..Default::default()
        };
        assert!(!late.matches(&row));
    }
}
