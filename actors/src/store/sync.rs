//! The sync tables: each target's base state (what both sides last agreed on, per path) and
//! the conflicts the manual strategy kept.

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

impl BaseChange {
    pub fn path(&self) -> &str {
        match self {
            BaseChange::Put(p, _) | BaseChange::Forget(p) => p,
        }
    }
}

/// A target's base in memory: every path's entry, sorted by path (byte order, as SQLite's
/// BINARY collation and `str` order it). ~110 bytes a path, no hash table (a
/// `HashMap<String, _>` of 100k paths took ~19 MB), and a run walks it in step with its
/// sorted listings instead of looking each path up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Base {
    entries: Vec<(Box<str>, BaseEntry)>,
}

impl Base {
    pub fn new() -> Self {
        Base::default()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every entry, sorted by path.
    pub fn entries(&self) -> &[(Box<str>, BaseEntry)] {
        &self.entries
    }

    fn find(&self, path: &str) -> Result<usize, usize> {
        self.entries.binary_search_by(|(k, _)| (**k).cmp(path))
    }

    pub fn get(&self, path: &str) -> Option<&BaseEntry> {
        self.find(path).ok().map(|i| &self.entries[i].1)
    }

    pub fn contains_key(&self, path: &str) -> bool {
        self.find(path).is_ok()
    }

    /// Room for `more` entries beyond those held: a run that is about to add many (a first
    /// copy) grows the storage once instead of once per batch, which left the freed smaller
    /// copies behind as holes in the heap.
    pub fn reserve(&mut self, more: usize) {
        self.entries.reserve_exact(more);
    }

    /// Sets one path's entry.
    pub fn insert(&mut self, path: String, entry: BaseEntry) {
        match self.find(&path) {
            Ok(i) => self.entries[i].1 = entry,
            Err(i) => self.entries.insert(i, (path.into_boxed_str(), entry)),
        }
    }

    /// Applies a batch of changes (in order: a later change of a path wins). New paths are
    /// merged in (appended when they all sort after the last one, as a first copy's do), the
    /// storage grown as a Vec grows (see [`Base::reserve`]).
    pub fn apply(&mut self, changes: Vec<BaseChange>) {
        let mut new: Vec<(Box<str>, BaseEntry)> = Vec::new();
        let mut dropped = std::collections::HashSet::new();
        for c in changes {
            match c {
                BaseChange::Put(p, e) => match self.find(&p) {
                    Ok(i) => {
                        self.entries[i].1 = e;
                        dropped.remove(&i);
                    }
                    Err(_) => new.push((p.into_boxed_str(), e)),
                },
                BaseChange::Forget(p) => {
                    if let Ok(i) = self.find(&p) {
                        dropped.insert(i);
                    }
                    new.retain(|(k, _)| **k != *p);
                }
            }
        }
        if !dropped.is_empty() {
            let mut i = 0;
            self.entries.retain(|_| {
                i += 1;
                !dropped.contains(&(i - 1))
            });
        }
        if new.is_empty() {
            return;
        }
        // The last put of a path wins.
        new.reverse();
        new.sort_by(|a, b| a.0.cmp(&b.0));
        new.dedup_by(|a, b| a.0 == b.0);
        let append = self.entries.last().is_none_or(|(last, _)| new[0].0 > *last);
        self.entries.reserve(new.len());
        self.entries.extend(new);
        if !append {
            // Two sorted runs: the stable sort merges them.
            self.entries.sort_by(|a, b| a.0.cmp(&b.0));
        }
    }
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

/// A target's whole base. Rows are read as a stream, in path order, into storage sized
/// beforehand, so loading a large base never holds its rows twice.
pub async fn base(pool: &SqlitePool, target: &str) -> Result<Base, String> {
    use futures_util::TryStreamExt;
    let fail = |e: sqlx::Error| format!("cannot read the sync state of {target}: {e}");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM sync_base WHERE target = ?")
        .bind(target)
        .fetch_one(pool)
        .await
        .map_err(fail)?;
    let mut out = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
    let mut rows = sqlx::query(
        "SELECT path, local_hash, local_size, local_mtime_ns, remote_hash, remote_size, \
         remote_mtime_ns FROM sync_base WHERE target = ? ORDER BY path",
    )
    .bind(target)
    .fetch(pool);
    while let Some(r) = rows.try_next().await.map_err(fail)? {
        let lh: &[u8] = r.get(1);
        let rh: &[u8] = r.get(4);
        out.push((
            r.get::<String, _>(0).into_boxed_str(),
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
        ));
    }
    // In path order already (the primary key's); sorted again only if the collation differed.
    if out.windows(2).any(|w| w[0].0 >= w[1].0) {
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out.dedup_by(|a, b| a.0 == b.0);
    }
    Ok(Base { entries: out })
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

pub(super) async fn first_synced(
    conn: &mut SqliteConnection,
    target: &str,
    at_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT OR IGNORE INTO sync_targets (target, first_ms) VALUES (?, ?)")
        .bind(target)
        .bind(at_ms)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Whether `target` has been synced before (its first run wrote the marker).
pub async fn synced_before(pool: &SqlitePool, target: &str) -> Result<bool, String> {
    sqlx::query_scalar::<_, i64>("SELECT count(*) FROM sync_targets WHERE target = ?")
        .bind(target)
        .fetch_one(pool)
        .await
        .map(|n| n > 0)
        .map_err(|e| format!("cannot read the sync targets: {e}"))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u8) -> BaseEntry {
        let side = SideState {
            hash: [n; 32],
            size: u64::from(n),
            mtime_ns: i64::from(n),
        };
        BaseEntry {
            local: side,
            remote: side,
        }
    }

    fn paths(b: &Base) -> Vec<&str> {
        b.entries().iter().map(|(k, _)| &**k).collect()
    }

    #[test]
    fn the_base_stays_sorted_through_batches_of_changes() {
        use BaseChange::{Forget, Put};
        let mut b = Base::new();
        // Appended (all after the last), then merged in among the others.
        b.apply(vec![Put("b".into(), entry(1)), Put("a".into(), entry(2))]);
        b.apply(vec![Put("d".into(), entry(3)), Put("c".into(), entry(4))]);
        assert_eq!(paths(&b), ["a", "b", "c", "d"]);
        b.apply(vec![
            Put("a/x".into(), entry(5)),
            Put("a.b".into(), entry(6)),
            Put("b".into(), entry(7)),
        ]);
        assert_eq!(paths(&b), ["a", "a.b", "a/x", "b", "c", "d"]);
        assert_eq!(b.get("b"), Some(&entry(7)));
        // Forgets, a put after a forget of the same path, the last put of a path wins.
        b.apply(vec![
            Forget("a".into()),
            Forget("c".into()),
            Put("c".into(), entry(8)),
            Put("e".into(), entry(9)),
            Put("e".into(), entry(10)),
            Forget("nope".into()),
        ]);
        assert_eq!(paths(&b), ["a.b", "a/x", "b", "c", "d", "e"]);
        assert_eq!(
            (b.get("c"), b.get("e")),
            (Some(&entry(8)), Some(&entry(10)))
        );
        b.apply(vec![Put("f".into(), entry(1)), Forget("f".into())]);
        assert!(!b.contains_key("f"));
        b.insert("0".into(), entry(2));
        b.apply(vec![Forget("d".into())]);
        assert_eq!(paths(&b), ["0", "a.b", "a/x", "b", "c", "e"]);
        assert_eq!(b.len(), 6);
    }
}
