//! The `daemon_runs` table (durable lane): one row per daemon run, so `status` can tell whether
//! the previous run ended cleanly.

use sqlx::{Row, SqliteConnection, SqlitePool};

/// A daemon run as stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Run {
    pub id: i64,
    pub started_ms: i64,
    pub pid: i64,
    pub version: String,
    pub config: String,
    /// `None`: still running, or ended without a clean shutdown.
    pub stopped_ms: Option<i64>,
    pub exit_code: Option<i64>,
}

pub(super) async fn started(
    conn: &mut SqliteConnection,
    started_ms: i64,
    pid: u32,
    version: &str,
    config: &str,
) -> Result<i64, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO daemon_runs (started_ms, pid, version, config) VALUES (?, ?, ?, ?)",
    )
    .bind(started_ms)
    .bind(i64::from(pid))
    .bind(version)
    .bind(config)
    .execute(conn)
    .await?;
    Ok(done.last_insert_rowid())
}

pub(super) async fn ended(
    conn: &mut SqliteConnection,
    id: i64,
    stopped_ms: i64,
    exit_code: i32,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE daemon_runs SET stopped_ms = ?, exit_code = ? WHERE id = ?")
        .bind(stopped_ms)
        .bind(i64::from(exit_code))
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// The run before run `current` (the most recent one when `current` is `None`).
pub async fn previous(pool: &SqlitePool, current: Option<i64>) -> Result<Option<Run>, String> {
    let row = sqlx::query(
        "SELECT id, started_ms, pid, version, config, stopped_ms, exit_code FROM daemon_runs \
         WHERE id < ? ORDER BY id DESC LIMIT 1",
    )
    .bind(current.unwrap_or(i64::MAX))
    .fetch_optional(pool)
    .await
    .map_err(|e| format!("cannot read daemon runs: {e}"))?;
    Ok(row.map(|r| Run {
        id: r.get(0),
        started_ms: r.get(1),
        pid: r.get(2),
        version: r.get(3),
        config: r.get(4),
        stopped_ms: r.get(5),
        exit_code: r.get(6),
    }))
}
