//! The durable tables of the resilience kinds: circuit breakers (state and transitions), retried
//! operations (one row per run) and self-heal actions. Writers take typed rows; the snapshots
//! and run summaries are JSON the kinds define (the store does not interpret them).

use super::error::StoreError;
use sqlx::{Row, SqliteConnection, SqlitePool};

/// A breaker's transition, with the snapshot to keep after it.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerSave {
    pub name: String,
    pub state: String,
    pub snapshot: serde_json::Value,
    pub at_ms: i64,
    /// `(from, to, reason)` when the state changed; `None` for a save of the counts only.
    pub transition: Option<(String, String, String)>,
}

/// A breaker as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerRow {
    pub name: String,
    pub state: String,
    pub snapshot: serde_json::Value,
    pub updated_ms: i64,
}

/// A transition as stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TransitionRow {
    pub name: String,
    pub at_ms: i64,
    pub from: String,
    pub to: String,
    pub reason: String,
}

pub(super) async fn save_breakers(
    conn: &mut SqliteConnection,
    saves: &[BreakerSave],
) -> Result<(), sqlx::Error> {
    for s in saves {
        sqlx::query(
            "INSERT OR REPLACE INTO breakers (name, state, snapshot, updated_ms) VALUES (?, ?, ?, ?)",
        )
        .bind(&s.name)
        .bind(&s.state)
        .bind(s.snapshot.to_string())
        .bind(s.at_ms)
        .execute(&mut *conn)
        .await?;
        if let Some((from, to, reason)) = &s.transition {
            sqlx::query(
                "INSERT INTO breaker_transitions (name, at_ms, from_state, to_state, reason) \
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(&s.name)
            .bind(s.at_ms)
            .bind(from)
            .bind(to)
            .bind(reason)
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}

/// Every stored breaker (a snapshot that is not JSON any more is skipped with a warning: the
/// breaker starts closed).
pub async fn breakers(pool: &SqlitePool) -> Result<Vec<BreakerRow>, String> {
    let rows = sqlx::query("SELECT name, state, snapshot, updated_ms FROM breakers ORDER BY name")
        .fetch_all(pool)
        .await
        .map_err(|e| format!("cannot read the breakers: {e}"))?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let name: String = r.get("name");
        let text: String = r.get("snapshot");
        match serde_json::from_str(&text) {
            Ok(snapshot) => out.push(BreakerRow {
                name,
                state: r.get("state"),
                snapshot,
                updated_ms: r.get("updated_ms"),
            }),
            Err(e) => {
                tracing::warn!(breaker = %name, error = %e, "stored breaker state unreadable; it starts closed")
            }
        }
    }
    Ok(out)
}

/// The latest `limit` transitions (of breaker `name` when given), newest first.
pub async fn transitions(
    pool: &SqlitePool,
    name: Option<&str>,
    limit: u32,
) -> Result<Vec<TransitionRow>, StoreError> {
    let rows = sqlx::query(
        "SELECT name, at_ms, from_state, to_state, reason FROM breaker_transitions \
         WHERE (?1 IS NULL OR name = ?1) ORDER BY id DESC LIMIT ?2",
    )
    .bind(name)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(|e| StoreError::sqlx("cannot read breaker transitions", e))?;
    Ok(rows
        .iter()
        .map(|r| TransitionRow {
            name: r.get("name"),
            at_ms: r.get("at_ms"),
            from: r.get("from_state"),
            to: r.get("to_state"),
            reason: r.get("reason"),
        })
        .collect())
}

/// One run of a retried operation.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryRunRow {
    pub op: String,
    pub started_ms: i64,
    pub attempts: u32,
    pub outcome: String,
    pub summary: serde_json::Value,
}

pub(super) async fn add_retry_runs(
    conn: &mut SqliteConnection,
    runs: &[RetryRunRow],
) -> Result<(), sqlx::Error> {
    for r in runs {
        sqlx::query(
            "INSERT INTO retry_runs (op, started_ms, attempts, outcome, summary) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&r.op)
        .bind(r.started_ms)
        .bind(i64::from(r.attempts))
        .bind(&r.outcome)
        .bind(r.summary.to_string())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Runs since `since_ms`, oldest first, at most `limit` per call (of `op` when given).
pub async fn retry_runs(
    pool: &SqlitePool,
    op: Option<&str>,
    since_ms: i64,
    limit: u32,
) -> Result<Vec<RetryRunRow>, StoreError> {
    let rows = sqlx::query(
        "SELECT op, started_ms, attempts, outcome, summary FROM retry_runs \
         WHERE (?1 IS NULL OR op = ?1) AND started_ms >= ?2 ORDER BY id DESC LIMIT ?3",
    )
    .bind(op)
    .bind(since_ms)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(|e| StoreError::sqlx("cannot read retried operations", e))?;
    let mut out: Vec<RetryRunRow> = rows
        .iter()
        .filter_map(|r| {
            let text: String = r.get("summary");
            Some(RetryRunRow {
                op: r.get("op"),
                started_ms: r.get("started_ms"),
                attempts: u32::try_from(r.get::<i64, _>("attempts")).unwrap_or(0),
                outcome: r.get("outcome"),
                summary: serde_json::from_str(&text).ok()?,
            })
        })
        .collect();
    out.reverse();
    Ok(out)
}

/// One self-heal action.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HealRow {
    pub probe: String,
    pub action: String,
    pub target: String,
    pub started_ms: i64,
    pub took_ms: i64,
    pub outcome: String,
    pub detail: String,
    pub recheck: Option<String>,
}

pub(super) async fn add_heal(
    conn: &mut SqliteConnection,
    row: &HealRow,
) -> Result<i64, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO heal_actions (probe, action, target, started_ms, took_ms, outcome, detail, recheck) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&row.probe)
    .bind(&row.action)
    .bind(&row.target)
    .bind(row.started_ms)
    .bind(row.took_ms)
    .bind(&row.outcome)
    .bind(&row.detail)
    .bind(&row.recheck)
    .execute(conn)
    .await?;
    Ok(done.last_insert_rowid())
}

/// Heal actions since `since_ms`, newest first, at most `limit`.
pub async fn heals(
    pool: &SqlitePool,
    since_ms: i64,
    limit: u32,
) -> Result<Vec<HealRow>, StoreError> {
    let rows = sqlx::query(
        "SELECT probe, action, target, started_ms, took_ms, outcome, detail, recheck \
         FROM heal_actions WHERE started_ms >= ? ORDER BY id DESC LIMIT ?",
    )
    .bind(since_ms)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(|e| StoreError::sqlx("cannot read heal actions", e))?;
    Ok(rows
        .iter()
        .map(|r| HealRow {
            probe: r.get("probe"),
            action: r.get("action"),
            target: r.get("target"),
            started_ms: r.get("started_ms"),
            took_ms: r.get("took_ms"),
            outcome: r.get("outcome"),
            detail: r.get("detail"),
            recheck: r.get("recheck"),
        })
        .collect())
}

/// Transitions, retry runs and heal actions older than `cutoff_ms` (breakers' current state
/// stays).
pub(super) async fn prune(conn: &mut SqliteConnection, cutoff_ms: i64) -> Result<u64, sqlx::Error> {
    let mut n = 0;
    n += sqlx::query("DELETE FROM breaker_transitions WHERE at_ms < ?")
        .bind(cutoff_ms)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    n += sqlx::query("DELETE FROM retry_runs WHERE started_ms < ?")
        .bind(cutoff_ms)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    n += sqlx::query("DELETE FROM heal_actions WHERE started_ms < ?")
        .bind(cutoff_ms)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    Ok(n)
}
