//! The sync tables: each target's base state (what both sides last agreed on, per path) and
//! the conflicts the manual strategy kept.

use std::collections::HashMap;

use sqlx::{QueryBuilder, Row, SqliteConnection, SqlitePool};

/// One side of a path as both sides last agreed on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SideState {
    pub hash: [u8; 32],
    pub size: u64,
    pub mtime_ns: i64,
}

/// A path's base: the primary's side and the target's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BaseEntry {
    pub local: SideState,
    pub remote: SideState,
}

/// A change to a target's base.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseChange {
    Put(String, BaseEntry),
    Forget(String),
}

/// A kept conflict.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConflictRow {
    pub id: i64,
    pub target: String,
    pub path: String,
    #[serde(serialize_with = "hex32")]
    pub local_hash: [u8; 32],
    #[serde(serialize_with = "hex32")]
    pub remote_hash: [u8; 32],
    /// The remote version's copy, relative to the primary.
    pub copy: String,
    pub detected_ms: i64,
    pub resolved_ms: Option<i64>,
    pub resolution: Option<String>,
}

fn hex32<S: serde::Serializer>(h: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(64);
    for b in h {
        let _ = write!(out, "{b:02x}");
    }
    s.serialize_str(&out)
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    if bytes.len() == 32 {
        out.copy_from_slice(bytes);
    }
    out
}

fn size(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn sql_size(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Rows written by one statement of [`apply_base`] (8 parameters each): a statement per row
/// ran at ~64k rows/s, one per batch of rows at over a million.
const BASE_ROWS_PER_STATEMENT: usize = 256;

/// Applies `changes` in order, inside the caller's transaction: runs of puts as multi-row
/// `INSERT OR REPLACE`, runs of forgets as `DELETE ... IN (...)`, in statements of a few fixed
/// sizes (powers of two), which sqlx keeps prepared.
pub(super) async fn apply_base(
    conn: &mut SqliteConnection,
    target: &str,
    changes: &[BaseChange],
) -> Result<(), sqlx::Error> {
    let mut rest = changes;
    while let Some(first) = rest.first() {
        let put = matches!(first, BaseChange::Put(..));
        let run = rest
            .iter()
            .take_while(|c| matches!(c, BaseChange::Put(..)) == put)
            .count();
        let rows = super::samples::statement_rows(run, BASE_ROWS_PER_STATEMENT);
        let (chunk, tail) = rest.split_at(rows);
        rest = tail;
        if put {
            let mut sql = QueryBuilder::new(
                "INSERT OR REPLACE INTO sync_base (target, path, local_hash, local_size, \
                 local_mtime_ns, remote_hash, remote_size, remote_mtime_ns) ",
            );
            sql.push_values(chunk, |mut row, c| {
                if let BaseChange::Put(path, e) = c {
                    row.push_bind(target)
                        .push_bind(path.as_str())
                        .push_bind(&e.local.hash[..])
                        .push_bind(sql_size(e.local.size))
                        .push_bind(e.local.mtime_ns)
                        .push_bind(&e.remote.hash[..])
                        .push_bind(sql_size(e.remote.size))
                        .push_bind(e.remote.mtime_ns);
                }
            });
            sql.build().execute(&mut *conn).await?;
        } else {
            let mut sql = QueryBuilder::new("DELETE FROM sync_base WHERE target = ");
            sql.push_bind(target).push(" AND path IN (");
            let mut list = sql.separated(", ");
            for c in chunk {
                if let BaseChange::Forget(path) = c {
                    list.push_bind(path.as_str());
                }
            }
            sql.push(")");
            sql.build().execute(&mut *conn).await?;
        }
    }
    Ok(())
}

/// A target's whole base, by path. Rows are read as a stream into a map sized beforehand, so
/// loading a large base never holds its rows twice.
pub async fn base(pool: &SqlitePool, target: &str) -> Result<HashMap<String, BaseEntry>, String> {
    use futures_util::TryStreamExt;
    let fail = |e: sqlx::Error| format!("cannot read the sync state of {target}: {e}");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM sync_base WHERE target = ?")
        .bind(target)
        .fetch_one(pool)
        .await
        .map_err(fail)?;
    let mut out = HashMap::with_capacity(usize::try_from(n).unwrap_or(0));
    let mut rows = sqlx::query(
        "SELECT path, local_hash, local_size, local_mtime_ns, remote_hash, remote_size, \
         remote_mtime_ns FROM sync_base WHERE target = ?",
    )
    .bind(target)
    .fetch(pool);
    while let Some(r) = rows.try_next().await.map_err(fail)? {
        let lh: &[u8] = r.get(1);
        let rh: &[u8] = r.get(4);
        out.insert(
            r.get::<String, _>(0),
            BaseEntry {
                local: SideState {
                    hash: digest(lh),
                    size: size(r.get(2)),
                    mtime_ns: r.get(3),
                },
                remote: SideState {
                    hash: digest(rh),
                    size: size(r.get(5)),
                    mtime_ns: r.get(6),
                },
            },
        );
    }
    Ok(out)
}

pub(super) async fn add_conflict(
    conn: &mut SqliteConnection,
    c: &ConflictRow,
) -> Result<i64, sqlx::Error> {
    let r = sqlx::query(
        "INSERT INTO sync_conflicts (target, path, local_hash, remote_hash, copy, detected_ms) \
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(&c.target)
    .bind(&c.path)
    .bind(&c.local_hash[..])
    .bind(&c.remote_hash[..])
    .bind(&c.copy)
    .bind(c.detected_ms)
    .execute(&mut *conn)
    .await?;
    Ok(r.last_insert_rowid())
}

pub(super) async fn resolve(
    conn: &mut SqliteConnection,
    ids: &[i64],
    resolution: &str,
    at_ms: i64,
) -> Result<(), sqlx::Error> {
    for id in ids {
        sqlx::query(
            "UPDATE sync_conflicts SET resolved_ms = ?, resolution = ? \
             WHERE id = ? AND resolved_ms IS NULL",
        )
        .bind(at_ms)
        .bind(resolution)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Conflicts of `target` (every target when `None`), open ones only unless `all`, newest first.
pub async fn conflicts(
    pool: &SqlitePool,
    target: Option<&str>,
    all: bool,
) -> Result<Vec<ConflictRow>, String> {
    let rows = sqlx::query(
        "SELECT id, target, path, local_hash, remote_hash, copy, detected_ms, resolved_ms, \
         resolution FROM sync_conflicts WHERE (?1 IS NULL OR target = ?1) \
         AND (?2 OR resolved_ms IS NULL) ORDER BY id DESC LIMIT 10000",
    )
    .bind(target)
    .bind(all)
    .fetch_all(pool)
    .await
    .map_err(|e| format!("cannot read the sync conflicts: {e}"))?;
    Ok(rows
        .iter()
        .map(|r| {
            let lh: Vec<u8> = r.get("local_hash");
            let rh: Vec<u8> = r.get("remote_hash");
            ConflictRow {
                id: r.get("id"),
                target: r.get("target"),
                path: r.get("path"),
                local_hash: digest(&lh),
                remote_hash: digest(&rh),
                copy: r.get("copy"),
                detected_ms: r.get("detected_ms"),
                resolved_ms: r.get("resolved_ms"),
                resolution: r.get("resolution"),
            }
        })
        .collect())
}
