//! Consistent copies of SQLite databases: `VACUUM INTO` a temp file (a read transaction on the
//! source, so a database other processes write, WAL included, gives a consistent snapshot; sqlx
//! has no online-backup API), which must pass `PRAGMA integrity_check` before it replaces
//! anything. The copy is in rollback-journal mode: no `-wal` ever appears in a cloud folder.

use std::path::{Path, PathBuf};

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, Row};

/// Why a snapshot failed.
#[derive(Debug)]
pub enum SnapshotError {
    /// The source could not be read (or is not a database).
    Source(String),
    /// The copy was made and is damaged: kept aside at this path.
    Damaged(PathBuf, String),
    Io(String),
}

impl std::fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SnapshotError::Source(e) | SnapshotError::Io(e) => f.write_str(e),
            SnapshotError::Damaged(p, e) => {
                write!(
                    f,
                    "the copy failed its integrity check ({e}); kept aside at {}",
                    p.display()
                )
            }
        }
    }
}

fn options(path: &Path, read_only: bool) -> Result<SqliteConnectOptions, String> {
    Ok(SqliteConnectOptions::new()
        .filename(path)
        .read_only(read_only)
        .create_if_missing(false)
        .busy_timeout(std::time::Duration::from_secs(30))
        .disable_statement_logging())
}

/// `PRAGMA integrity_check` of the database at `path`: `Ok` when it says "ok".
pub async fn integrity(path: &Path) -> Result<(), String> {
    let mut conn = options(path, true)?
        .connect()
        .await
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let rows = sqlx::query("PRAGMA integrity_check")
        .fetch_all(&mut conn)
        .await
        .map_err(|e| format!("integrity_check of {} failed: {e}", path.display()));
    let _ = conn.close().await;
    let lines: Vec<String> = rows?.iter().map(|r| r.get::<String, _>(0)).collect();
    if lines.len() == 1 && lines[0] == "ok" {
        Ok(())
    } else {
        Err(lines.into_iter().take(5).collect::<Vec<_>>().join("; "))
    }
}

/// Row counts of every table of the database at `path`, by name.
pub async fn row_counts(path: &Path) -> Result<Vec<(String, i64)>, String> {
    let mut conn = options(path, true)?
        .connect()
        .await
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let tables: Vec<String> = sqlx::query(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .fetch_all(&mut conn)
    .await
    .map_err(|e| format!("cannot list the tables of {}: {e}", path.display()))?
    .iter()
    .map(|r| r.get(0))
    .collect();
    let mut out = Vec::new();
    for t in tables {
        let sql = format!("SELECT count(*) FROM \"{}\"", t.replace('"', "\"\""));
        // sqlx 0.9 takes only static SQL; the table name comes from the database's schema.
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&mut conn)
            .await
            .map_err(|e| format!("cannot count the rows of {t} in {}: {e}", path.display()))?;
        out.push((t, n));
    }
    let _ = conn.close().await;
    Ok(out)
}

/// Writes a consistent snapshot of `src` to `temp` (which must not exist) and checks it. On a
/// damaged copy, `temp` is moved to `temp.damaged` (kept for a look) and the error says where.
pub async fn snapshot(src: &Path, temp: &Path) -> Result<(), SnapshotError> {
    let mut conn = options(src, true)
        .map_err(SnapshotError::Source)?
        .connect()
        .await
        .map_err(|e| SnapshotError::Source(format!("cannot open {}: {e}", src.display())))?;
    let target = temp.to_string_lossy().into_owned();
    let done = sqlx::query("VACUUM INTO ?")
        .bind(&target)
        .execute(&mut conn)
        .await;
    let _ = conn.close().await;
    if let Err(e) = done {
        let _ = tokio::fs::remove_file(temp).await;
        return Err(SnapshotError::Source(format!(
            "cannot snapshot {}: {e}",
            src.display()
        )));
    }
    // The copy gets the source's permission bits (SQLite made it with the umask's): never
    // wider than its source.
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = tokio::fs::metadata(src)
            .await
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0o600);
        if let Err(e) =
            tokio::fs::set_permissions(temp, std::fs::Permissions::from_mode(mode)).await
        {
            let _ = tokio::fs::remove_file(temp).await;
            return Err(SnapshotError::Io(format!(
                "cannot set the permissions of {}: {e}",
                temp.display()
            )));
        }
    }
    if let Err(e) = integrity(temp).await {
        let mut aside = temp.as_os_str().to_owned();
        aside.push(".damaged");
        let aside = PathBuf::from(aside);
        let _ = tokio::fs::rename(temp, &aside).await;
        return Err(SnapshotError::Damaged(aside, e));
    }
    Ok(())
}
