//! The `host_info` table (durable lane) and the reading of other hosts' snapshots of their
//! store, for the fleet view (`metasystem hosts`).
//!
//! Just before a sync target snapshots the daemon's own store into
//! `TARGET/.metasystem-hosts/HOST/`, the one `host_info` row is written (under a lock held
//! until the snapshot is taken, so each target's snapshot carries its own `snapshot_every`):
//! the host's identity, version, start, when the snapshot is taken and the daemon's summary
//! of itself, as JSON the daemon defines ([`Describe`]). Another host reads that row from the
//! snapshot read only and immutable ([`read_snapshot`]): SQLite takes no lock and creates no
//! `-journal`, `-wal` or `-shm` beside a file in a shared folder.

use std::future::Future;
use std::io::Read;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, Row, SqliteConnection};

/// The `host_info` row: this host as a snapshot of its store carries it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HostInfo {
    pub host: String,
    pub version: String,
    /// The daemon's start (Unix ms).
    pub started_ms: i64,
    /// When the snapshot carrying the row was taken (Unix ms).
    pub taken_ms: i64,
    /// How often the pushing target refreshes it.
    pub snapshot_every_ms: i64,
    /// The daemon's summary of itself (its own JSON; `{}` when it gave none).
    pub summary: serde_json::Value,
}

/// What the daemon says of itself when a snapshot of its store is about to be taken.
#[derive(Debug, Clone, PartialEq)]
pub struct Described {
    pub version: String,
    pub started_ms: i64,
    pub summary: serde_json::Value,
}

/// How the daemon describes itself (set with [`super::Store::describe_with`]).
pub type Describe = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Described> + Send>> + Send + Sync>;

pub(super) async fn put(conn: &mut SqliteConnection, info: &HostInfo) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT OR REPLACE INTO host_info \
         (id, host, version, started_ms, taken_ms, snapshot_every_ms, summary) \
         VALUES (1, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&info.host)
    .bind(&info.version)
    .bind(info.started_ms)
    .bind(info.taken_ms)
    .bind(info.snapshot_every_ms)
    .bind(info.summary.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

/// Whether the file at `path` looks like a whole SQLite database: the header's magic, and
/// at least as many bytes as the header's page count says (a half-synced copy is shorter).
/// Blocking.
pub fn check_whole(path: &Path) -> Result<(), String> {
    let mut f = std::fs::File::open(path).map_err(|e| format!("cannot open it: {e}"))?;
    let len = f
        .metadata()
        .map_err(|e| format!("cannot stat it: {e}"))?
        .len();
    let mut header = [0u8; 100];
    f.read_exact(&mut header)
        .map_err(|_| format!("not an SQLite database ({len} bytes, shorter than a header)"))?;
    if &header[..16] != b"SQLite format 3\0" {
        return Err("not an SQLite database (no SQLite header)".into());
    }
    let page_size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65_536,
        n => u64::from(n),
    };
    // SQLite's page sizes are powers of two from 512 to 65,536: anything else is not its file.
    if !page_size.is_power_of_two() || page_size < 512 {
        return Err(format!(
            "not an SQLite database (its header gives a page size of {page_size})"
        ));
    }
    let pages = u64::from(u32::from_be_bytes([
        header[28], header[29], header[30], header[31],
    ]));
    let want = page_size.saturating_mul(pages);
    if len < want {
        return Err(format!(
            "truncated (half-synced?): {len} of {want} bytes ({pages} pages of {page_size})"
        ));
    }
    Ok(())
}

/// Reads the `host_info` row of the snapshot at `path`, read only and immutable (no lock, no
/// file created beside it); `None` when the snapshot has no such row (taken by a version
/// before the table). Checks the file is whole first ([`check_whole`], on the blocking pool).
pub async fn read_snapshot(path: &Path) -> Result<Option<HostInfo>, String> {
    let p = path.to_path_buf();
    tokio::task::spawn_blocking(move || check_whole(&p))
        .await
        .map_err(|e| e.to_string())??;
    let mut conn = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .immutable(true)
        .connect()
        .await
        .map_err(|e| format!("cannot open it: {e}"))?;
    let r = read_row(&mut conn).await;
    let _ = conn.close().await;
    r
}

/// The most a host's summary may take (failed actors, firing alerts, probes not passing: a
/// few hundred bytes each): more is not a daemon's, and is not read into memory.
pub const MAX_SUMMARY: i64 = 4 * 1024 * 1024;
/// The most a host's name or version may take.
pub const MAX_NAME: i64 = 1024;

async fn read_row(conn: &mut SqliteConnection) -> Result<Option<HostInfo>, String> {
    let has: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'host_info'",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| format!("cannot read it: {e}"))?;
    if has == 0 {
        return Ok(None);
    }
    // Another host's file: its sizes are checked before anything is read into memory.
    let sizes: Option<(Option<i64>, Option<i64>, Option<i64>)> = sqlx::query_as(
        "SELECT length(host), length(version), length(summary) FROM host_info WHERE id = 1",
    )
    .fetch_optional(&mut *conn)
    .await
    .map_err(|e| format!("cannot read its host_info: {e}"))?;
    if let Some((host, version, summary)) = sizes {
        for (what, len, max) in [
            ("host", host, MAX_NAME),
            ("version", version, MAX_NAME),
            ("summary", summary, MAX_SUMMARY),
        ] {
            let len = len.unwrap_or(0);
            if len > max {
                return Err(format!(
                    "its host_info {what} is {len} bytes, more than a daemon writes ({max}): not read"
                ));
            }
        }
    }
    let row = sqlx::query(
        "SELECT host, version, started_ms, taken_ms, snapshot_every_ms, summary \
         FROM host_info WHERE id = 1",
    )
    .fetch_optional(&mut *conn)
    .await
    .map_err(|e| format!("cannot read its host_info: {e}"))?;
    let Some(r) = row else { return Ok(None) };
    let text: String = r
        .try_get(5)
        .map_err(|e| format!("cannot read its host_info: {e}"))?;
    let summary = serde_json::from_str(&text)
        .map_err(|e| format!("its host_info summary is not JSON: {e}"))?;
    let get = |i: usize| -> Result<i64, String> {
        r.try_get(i)
            .map_err(|e| format!("cannot read its host_info: {e}"))
    };
    Ok(Some(HostInfo {
        host: r
            .try_get(0)
            .map_err(|e| format!("cannot read its host_info: {e}"))?,
        version: r
            .try_get(1)
            .map_err(|e| format!("cannot read its host_info: {e}"))?,
        started_ms: get(2)?,
        taken_ms: get(3)?,
        snapshot_every_ms: get(4)?,
        summary,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_or_foreign_file_is_not_whole() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.db");
        std::fs::write(&p, b"hello").unwrap();
        assert!(check_whole(&p)
            .unwrap_err()
            .contains("shorter than a header"));
        std::fs::write(&p, [b'x'; 200]).unwrap();
        assert!(check_whole(&p).unwrap_err().contains("no SQLite header"));
        let mut h = b"SQLite format 3\0".to_vec();
        h.resize(100, 0);
        h[16..18].copy_from_slice(&4096u16.to_be_bytes());
        h[28..32].copy_from_slice(&3u32.to_be_bytes());
        h.resize(4096 * 2, 0);
        std::fs::write(&p, &h).unwrap();
        let e = check_whole(&p).unwrap_err();
        assert!(
            e.contains("truncated") && e.contains("8192 of 12288"),
            "{e}"
        );
        h.resize(4096 * 3, 0);
        std::fs::write(&p, &h).unwrap();
        check_whole(&p).unwrap();
        // A page size SQLite never writes: not its file (was "truncated").
        h[16..18].copy_from_slice(&65535u16.to_be_bytes());
        std::fs::write(&p, &h).unwrap();
        let e = check_whole(&p).unwrap_err();
        assert!(e.contains("page size of 65535"), "{e}");
    }

    #[tokio::test]
    async fn an_oversized_summary_is_not_read_into_memory() {
        use sqlx::sqlite::SqliteConnectOptions;
        use sqlx::Connection;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("metastore.db");
        let mut c = SqliteConnection::connect_with(
            &SqliteConnectOptions::new()
                .filename(&p)
                .create_if_missing(true),
        )
        .await
        .unwrap();
        sqlx::query(
            "CREATE TABLE host_info (id INTEGER PRIMARY KEY, host TEXT, version TEXT, \
             started_ms INTEGER, taken_ms INTEGER, snapshot_every_ms INTEGER, summary TEXT)",
        )
        .execute(&mut c)
        .await
        .unwrap();
        sqlx::query("INSERT INTO host_info VALUES (1, 'h', 'v', 0, 1, 1000, ?)")
            .bind("x".repeat(5 << 20))
            .execute(&mut c)
            .await
            .unwrap();
        c.close().await.unwrap();
        let e = read_snapshot(&p).await.unwrap_err();
        assert!(e.contains("summary is 5242880 bytes"), "{e}");
    }
}
