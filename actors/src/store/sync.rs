//! The sync tables: each target's base state (what both sides last agreed on, per path) and
//! the conflicts the manual strategy kept.

use super::error::StoreError;
use sqlx::{QueryBuilder, Row, SqliteConnection, SqlitePool};

use crate::paths::{From, Paths};

/// One side of a path as both sides last agreed on it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SideState {
    pub hash: [u8; 32],
    pub size: u64,
    pub mtime_ns: i64,
    /// A fingerprint of the file's inode number and change time as seen when recorded; 0
    /// when that cannot be trusted (racily clean, or no stable inode numbers): then the
    /// quick check never passes and the side is hashed.
    pub stamp: u64,
    /// Its permission bits (0: not recorded).
    pub mode: u32,
}

/// A path's base: the primary's side and the target's side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
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
/// BINARY collation and `str` order it). The paths are packed ([`Paths`]): ~112 bytes a path,
/// where a `Box<str>` each took ~144 and a `HashMap<String, _>` ~190; no hash table, since a
/// run walks the base in step with its sorted listings instead of looking each path up.
#[derive(Debug, Clone, Default)]
pub struct Base {
    paths: Paths,
    /// The entry of each of `paths`, index for index.
    entries: Vec<Packed>,
    /// The changes applied since [`Base::start_journal`], while there are at most
    /// [`JOURNAL_MAX`]: what a run changed, which the base's file takes as a small delta
    /// instead of the whole base written again (see `base_file`). `None`: not kept, or more.
    journal: Option<Vec<BaseChange>>,
}

/// The most changes a [`Base`]'s journal holds (a first copy's million are not kept twice).
pub const JOURNAL_MAX: usize = 65_536;

/// Two bases are equal when they hold the same paths and entries (journals aside).
impl PartialEq for Base {
    fn eq(&self, other: &Self) -> bool {
        self.paths == other.paths && self.entries == other.entries
    }
}

impl Eq for Base {}

/// A [`BaseEntry`] as the base holds it: 80 bytes instead of 112. Both sides of a synced
/// path have the same contents, the same time (a copy gets its source's) and as a rule the
/// same mode, so one hash, size, time and mode serve both; the target's are kept apart only
/// when they differ. Each side's stamp is its own (another inode, another change time).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Packed {
    hash: [u8; 32],
    size: u64,
    mtime_ns: i64,
    local_stamp: u64,
    remote_stamp: u64,
    /// Permission bits (they fit 16 bits).
    mode: u16,
    /// The target's hash, size, time and mode when not the primary's.
    remote: Option<Box<Remote>>,
}

/// The target's side of a [`Packed`] entry where it differs from the primary's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Remote {
    hash: [u8; 32],
    size: u64,
    mtime_ns: i64,
    mode: u32,
}

impl Packed {
    fn of(e: &BaseEntry) -> Self {
        let (l, r) = (&e.local, &e.remote);
        let same = l.hash == r.hash
            && l.size == r.size
            && l.mtime_ns == r.mtime_ns
            && l.mode == r.mode
            && l.mode <= 0xffff;
        Packed {
            hash: l.hash,
            size: l.size,
            mtime_ns: l.mtime_ns,
            local_stamp: l.stamp,
            remote_stamp: r.stamp,
            mode: u16::try_from(l.mode).unwrap_or(0),
            remote: (!same).then(|| {
                Box::new(Remote {
                    hash: r.hash,
                    size: r.size,
                    mtime_ns: r.mtime_ns,
                    mode: r.mode,
                })
            }),
        }
    }

    fn entry(&self) -> BaseEntry {
        let mode = u32::from(self.mode);
        let r = self.remote.as_deref().copied().unwrap_or(Remote {
            hash: self.hash,
            size: self.size,
            mtime_ns: self.mtime_ns,
            mode,
        });
        BaseEntry {
            local: SideState {
                hash: self.hash,
                size: self.size,
                mtime_ns: self.mtime_ns,
                stamp: self.local_stamp,
                mode,
            },
            remote: SideState {
                hash: r.hash,
                size: r.size,
                mtime_ns: r.mtime_ns,
                stamp: self.remote_stamp,
                mode: r.mode,
            },
        }
    }
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

    /// The bytes of all the paths held (what a listing of the same tree takes for its paths).
    pub fn path_bytes(&self) -> usize {
        self.paths.byte_len()
    }

    /// The `i`-th path (in path order) and its entry.
    pub fn at(&self, i: usize) -> Option<(&str, BaseEntry)> {
        self.entries.get(i).map(|e| (self.paths.get(i), e.entry()))
    }

    /// Every path and its entry, in path order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, BaseEntry)> + '_ {
        self.paths
            .iter()
            .zip(self.entries.iter().map(Packed::entry))
    }

    pub fn get(&self, path: &str) -> Option<BaseEntry> {
        self.paths.find(path).ok().map(|i| self.entries[i].entry())
    }

    pub fn contains_key(&self, path: &str) -> bool {
        self.paths.find(path).is_ok()
    }

    /// How many paths are `path` or under it (all paths under it sort together, from `path/` on).
    pub fn count_under(&self, path: &str) -> usize {
        let own = usize::from(self.contains_key(path));
        let folder = format!("{}/", path.trim_end_matches('/'));
        let start = match self.paths.find(&folder) {
            Ok(i) | Err(i) => i,
        };
        own + (start..self.paths.len())
            .take_while(|&i| self.paths.get(i).starts_with(&folder))
            .count()
    }

    /// Room for `more` entries of paths of `bytes` bytes in all beyond those held: a run that
    /// is about to add many (a first copy) grows the storage once instead of once per batch,
    /// which left the freed smaller copies behind as holes in the heap.
    pub fn reserve(&mut self, more: usize, bytes: usize) {
        self.entries.reserve_exact(more);
        self.paths.reserve(more, bytes);
    }

    /// Keeps the changes applied from now on (up to [`JOURNAL_MAX`]).
    pub fn start_journal(&mut self) {
        self.journal = Some(Vec::new());
    }

    /// The changes applied since [`Base::start_journal`], if kept (and no more than
    /// [`JOURNAL_MAX`]).
    pub fn take_journal(&mut self) -> Option<Vec<BaseChange>> {
        self.journal.take()
    }

    /// Sets one path's entry.
    pub fn insert(&mut self, path: String, entry: BaseEntry) {
        self.apply(vec![BaseChange::Put(path, entry)]);
    }

    /// Applies a batch of changes (in order: a later change of a path wins). New paths are
    /// merged in place (no second copy of the base; appended when they all sort after the last
    /// one, as a first copy's do).
    pub fn apply(&mut self, changes: Vec<BaseChange>) {
        if let Some(j) = &mut self.journal {
            if j.len() + changes.len() > JOURNAL_MAX {
                self.journal = None;
            } else {
                j.extend(changes.iter().cloned());
            }
        }
        let mut new: Vec<(String, BaseEntry)> = Vec::new();
        let mut dropped = std::collections::HashSet::new();
        for c in changes {
            match c {
                BaseChange::Put(p, e) => match self.paths.find(&p) {
                    Ok(i) => {
                        self.entries[i] = Packed::of(&e);
                        dropped.remove(&i);
                    }
                    Err(_) => new.push((p, e)),
                },
                BaseChange::Forget(p) => {
                    if let Ok(i) = self.paths.find(&p) {
                        dropped.insert(i);
                    }
                    new.retain(|(k, _)| *k != p);
                }
            }
        }
        if !dropped.is_empty() {
            self.paths.retain(|i| !dropped.contains(&i));
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
        let names: Vec<&str> = new.iter().map(|(p, _)| p.as_str()).collect();
        self.entries.reserve(new.len());
        self.entries
            .resize(self.entries.len() + new.len(), Packed::default());
        let entries = &mut self.entries;
        self.paths.merge(&names, |from, at| {
            entries[at] = match from {
                From::Held(i) => std::mem::take(&mut entries[i]),
                From::New(j) => Packed::of(&new[j].1),
            };
        });
    }
}

/// One entry as [`Base::encode`] writes it: the primary's hash, size, time, both stamps, the
/// mode and whether the target's side follows ([`REMOTE_LEN`] bytes).
const ENTRY_LEN: usize = 32 + 8 + 8 + 8 + 8 + 2 + 1;
/// The target's side where it differs: hash, size, time, mode.
const REMOTE_LEN: usize = 32 + 8 + 8 + 4;
/// The longest path [`Base::decode`] takes (more is a damaged file, not a path).
const MAX_PATH: usize = 1 << 16;

impl Base {
    /// Writes every path and entry in path order: the path's length (u32) and bytes, then the
    /// entry (little-endian). The caller writes the header that says how many ([`Base::len`],
    /// [`Base::path_bytes`]).
    pub fn encode(&self, w: &mut impl std::io::Write) -> std::io::Result<()> {
        for (i, e) in self.entries.iter().enumerate() {
            let path = self.paths.get(i).as_bytes();
            let len = u32::try_from(path.len()).map_err(|_| bad("a path too long"))?;
            w.write_all(&len.to_le_bytes())?;
            w.write_all(path)?;
            let mut b = [0u8; ENTRY_LEN];
            b[..32].copy_from_slice(&e.hash);
            b[32..40].copy_from_slice(&e.size.to_le_bytes());
            b[40..48].copy_from_slice(&e.mtime_ns.to_le_bytes());
            b[48..56].copy_from_slice(&e.local_stamp.to_le_bytes());
            b[56..64].copy_from_slice(&e.remote_stamp.to_le_bytes());
            b[64..66].copy_from_slice(&e.mode.to_le_bytes());
            b[66] = u8::from(e.remote.is_some());
            w.write_all(&b)?;
            if let Some(r) = &e.remote {
                let mut b = [0u8; REMOTE_LEN];
                b[..32].copy_from_slice(&r.hash);
                b[32..40].copy_from_slice(&r.size.to_le_bytes());
                b[40..48].copy_from_slice(&r.mtime_ns.to_le_bytes());
                b[48..52].copy_from_slice(&r.mode.to_le_bytes());
                w.write_all(&b)?;
            }
        }
        Ok(())
    }

    /// Reads what [`Base::encode`] wrote of a base of `len` paths of `bytes` bytes in all, into
    /// storage of that size. Anything that is not such a base (a path not in strictly
    /// increasing order, not UTF-8, a count or size that does not add up, bytes left over) is
    /// an error: the caller reads the store instead.
    pub fn decode(r: &mut impl std::io::Read, len: usize, bytes: usize) -> std::io::Result<Base> {
        let mut out = Base::new();
        // The header is checked against what follows, never trusted for the room it asks.
        out.reserve(len.min(1 << 24), bytes.min(1 << 30));
        let mut path = Vec::new();
        let mut total = 0usize;
        for _ in 0..len {
            let mut n = [0u8; 4];
            r.read_exact(&mut n)?;
            let n = u32::from_le_bytes(n) as usize;
            if n == 0 || n > MAX_PATH {
                return Err(bad("a path of a length no path has"));
            }
            path.resize(n, 0);
            r.read_exact(&mut path)?;
            let p = std::str::from_utf8(&path).map_err(|_| bad("a path that is not UTF-8"))?;
            if !out.paths.is_empty() && out.paths.get(out.paths.len() - 1) >= p {
                return Err(bad("paths out of order"));
            }
            total += n;
            let mut b = [0u8; ENTRY_LEN];
            r.read_exact(&mut b)?;
            let u64_at = |b: &[u8], i: usize| {
                let mut a = [0u8; 8];
                a.copy_from_slice(&b[i..i + 8]);
                u64::from_le_bytes(a)
            };
            let mut hash = [0u8; 32];
            hash.copy_from_slice(&b[..32]);
            let remote = match b[66] {
                0 => None,
                1 => {
                    let mut rb = [0u8; REMOTE_LEN];
                    r.read_exact(&mut rb)?;
                    let mut h = [0u8; 32];
                    h.copy_from_slice(&rb[..32]);
                    Some(Box::new(Remote {
                        hash: h,
                        size: u64_at(&rb, 32),
                        mtime_ns: u64_at(&rb, 40) as i64,
                        mode: u32::from_le_bytes([rb[48], rb[49], rb[50], rb[51]]),
                    }))
                }
                _ => return Err(bad("an entry of no known shape")),
            };
            out.paths.push(p);
            out.entries.push(Packed {
                hash,
                size: u64_at(&b, 32),
                mtime_ns: u64_at(&b, 40) as i64,
                local_stamp: u64_at(&b, 48),
                remote_stamp: u64_at(&b, 56),
                mode: u16::from_le_bytes([b[64], b[65]]),
                remote,
            });
        }
        if total != bytes {
            return Err(bad("the paths' size is not the one the header gives"));
        }
        if r.read(&mut [0u8; 1])? != 0 {
            return Err(bad("more than the header says"));
        }
        out.paths.shrink_to_fit();
        out.entries.shrink_to_fit();
        Ok(out)
    }
}

fn bad(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string())
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

fn mode(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

fn sql_size(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Rows written by one statement of [`apply_base`] (12 parameters each): a statement per row
/// ran at ~64k rows/s, one per batch of rows at over a million.
const BASE_ROWS_PER_STATEMENT: usize = 256;

/// Applies `changes` in order, inside the caller's transaction: runs of puts as multi-row
/// `INSERT OR REPLACE`, runs of forgets as `DELETE ... IN (...)`, in statements of a few fixed
/// sizes (powers of two), which sqlx keeps prepared.
/// Public for the `base` fuzz target, which holds it and [`base`] to a model.
pub async fn apply_base(
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
                 local_mtime_ns, remote_hash, remote_size, remote_mtime_ns, local_stamp, \
                 remote_stamp, local_mode, remote_mode) ",
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
                        .push_bind(e.remote.mtime_ns)
                        // The stamp's 64 bits as SQLite's signed integer.
                        .push_bind(e.local.stamp as i64)
                        .push_bind(e.remote.stamp as i64)
                        .push_bind(i64::from(e.local.mode))
                        .push_bind(i64::from(e.remote.mode));
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

/// `target`'s base generation: a new one with every change of its rows, in the same
/// transaction (the store's triggers), so a copy of the base taken at one generation is the
/// base for as long as the store is at it (0: never changed).
pub async fn generation(pool: &SqlitePool, target: &str) -> Result<i64, String> {
    sqlx::query_scalar::<_, i64>("SELECT gen FROM sync_base_gen WHERE target = ?")
        .bind(target)
        .fetch_optional(pool)
        .await
        .map(Option::unwrap_or_default)
        .map_err(|e| format!("cannot read the sync state of {target}: {e}"))
}

/// How many paths `target`'s base holds.
pub async fn base_len(pool: &SqlitePool, target: &str) -> Result<usize, String> {
    sqlx::query_scalar::<_, i64>("SELECT count(*) FROM sync_base WHERE target = ?")
        .bind(target)
        .fetch_one(pool)
        .await
        .map(|n| usize::try_from(n).unwrap_or(0))
        .map_err(|e| format!("cannot read the sync state of {target}: {e}"))
}

/// A target's whole base. Rows are read as a stream, in path order, into storage sized
/// beforehand, so loading a large base never holds its rows twice.
pub async fn base(pool: &SqlitePool, target: &str) -> Result<Base, String> {
    use futures_util::TryStreamExt;
    let fail = |e: sqlx::Error| format!("cannot read the sync state of {target}: {e}");
    // Room for all at once: rows and their paths' bytes.
    let (n, bytes): (i64, i64) = sqlx::query_as(
        "SELECT count(*), coalesce(sum(length(CAST(path AS BLOB))), 0) FROM sync_base \
         WHERE target = ?",
    )
    .bind(target)
    .fetch_one(pool)
    .await
    .map_err(fail)?;
    let mut out = Base::new();
    out.reserve(
        usize::try_from(n).unwrap_or(0),
        usize::try_from(bytes).unwrap_or(0),
    );
    let mut rows = sqlx::query(
        "SELECT path, local_hash, local_size, local_mtime_ns, remote_hash, remote_size, \
         remote_mtime_ns, local_stamp, remote_stamp, local_mode, remote_mode FROM sync_base \
         WHERE target = ? ORDER BY path",
    )
    .bind(target)
    .fetch(pool);
    while let Some(r) = rows.try_next().await.map_err(fail)? {
        // A row that does not decode (a store edited by hand) fails the load, never the actor.
        let lh: &[u8] = r.try_get(1).map_err(fail)?;
        let rh: &[u8] = r.try_get(4).map_err(fail)?;
        out.paths.push(r.try_get::<&str, _>(0).map_err(fail)?);
        out.entries.push(Packed::of(&BaseEntry {
            local: SideState {
                hash: digest(lh),
                size: size(r.try_get(2).map_err(fail)?),
                mtime_ns: r.try_get(3).map_err(fail)?,
                stamp: r.try_get::<i64, _>(7).map_err(fail)? as u64,
                mode: mode(r.try_get(9).map_err(fail)?),
            },
            remote: SideState {
                hash: digest(rh),
                size: size(r.try_get(5).map_err(fail)?),
                mtime_ns: r.try_get(6).map_err(fail)?,
                stamp: r.try_get::<i64, _>(8).map_err(fail)? as u64,
                mode: mode(r.try_get(10).map_err(fail)?),
            },
        }));
    }
    // In path order already (the primary key's); sorted again only if the collation differed.
    if !out.paths.is_sorted() {
        out.paths.sort_along(&mut out.entries);
    }
    out.paths.shrink_to_fit();
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

/// Records the nonce of `target`'s marker as adopted (a target not synced before counts as
/// synced from `at_ms`); with `forget_base`, its base is let go (a first sync follows).
pub(super) async fn adopt_marker(
    conn: &mut SqliteConnection,
    target: &str,
    nonce: &str,
    forget_base: bool,
    primary: Option<&str>,
    at_ms: i64,
) -> Result<(), sqlx::Error> {
    first_synced(conn, target, at_ms).await?;
    if let Some(primary) = primary {
        sqlx::query("UPDATE sync_targets SET primary_root = ? WHERE target = ?")
            .bind(primary)
            .bind(target)
            .execute(&mut *conn)
            .await?;
    }
    if forget_base {
        sqlx::query("DELETE FROM sync_base WHERE target = ?")
            .bind(target)
            .execute(&mut *conn)
            .await?;
    }
    sqlx::query("UPDATE sync_targets SET marker = ? WHERE target = ?")
        .bind(nonce)
        .bind(target)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Records the temp nonce `add` of `target` and forgets the ones in `forget`.
pub(super) async fn temps(
    conn: &mut SqliteConnection,
    target: &str,
    add: Option<&str>,
    forget: &[String],
    at_ms: i64,
) -> Result<(), sqlx::Error> {
    if let Some(nonce) = add {
        sqlx::query(
            "INSERT OR IGNORE INTO sync_temps (target, nonce, created_ms) VALUES (?, ?, ?)",
        )
        .bind(target)
        .bind(nonce)
        .bind(at_ms)
        .execute(&mut *conn)
        .await?;
    }
    for nonce in forget {
        sqlx::query("DELETE FROM sync_temps WHERE target = ? AND nonce = ?")
            .bind(target)
            .bind(nonce)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// The temp nonces recorded for `target`.
pub async fn temp_nonces(pool: &SqlitePool, target: &str) -> Result<Vec<String>, String> {
    sqlx::query_scalar("SELECT nonce FROM sync_temps WHERE target = ? ORDER BY nonce")
        .bind(target)
        .fetch_all(pool)
        .await
        .map_err(|e| format!("cannot read the temp files of {target}: {e}"))
}

/// What the store knows of a target: whether it was synced before, and the nonce of its
/// marker as last adopted (`None`: none recorded).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetRecord {
    pub synced_before: bool,
    pub marker: Option<String>,
    /// The primary folder last synced from ("MAJOR:MINOR INODE BIRTH_NS PATH"; `None`: not
    /// recorded yet).
    pub primary: Option<String>,
}

/// [`TargetRecord`] of `target`.
pub async fn target_record(pool: &SqlitePool, target: &str) -> Result<TargetRecord, String> {
    let row: Option<(Option<String>, Option<String>)> =
        sqlx::query_as("SELECT marker, primary_root FROM sync_targets WHERE target = ?")
            .bind(target)
            .fetch_optional(pool)
            .await
            .map_err(|e| format!("cannot read the sync targets: {e}"))?;
    Ok(match row {
        None => TargetRecord::default(),
        Some((marker, primary)) => TargetRecord {
            synced_before: true,
            marker,
            primary,
        },
    })
}

/// Whether `target` has been synced before (its first run wrote the marker).
pub async fn synced_before(pool: &SqlitePool, target: &str) -> Result<bool, String> {
    target_record(pool, target).await.map(|r| r.synced_before)
}

/// Conflicts of `target` (every target when `None`), open ones only unless `all`, newest first.
pub async fn conflicts(
    pool: &SqlitePool,
    target: Option<&str>,
    all: bool,
) -> Result<Vec<ConflictRow>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, target, path, local_hash, remote_hash, copy, detected_ms, resolved_ms, \
         resolution FROM sync_conflicts WHERE (?1 IS NULL OR target = ?1) \
         AND (?2 OR resolved_ms IS NULL) ORDER BY id DESC LIMIT 10000",
    )
    .bind(target)
    .bind(all)
    .fetch_all(pool)
    .await
    .map_err(|e| StoreError::sqlx("cannot read the sync conflicts", e))?;
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
            ..SideState::default()
        };
        BaseEntry {
            local: side,
            remote: side,
        }
    }

    fn paths(b: &Base) -> Vec<&str> {
        b.iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn random_batches_of_changes_give_what_a_sorted_map_gives() {
        use std::collections::BTreeMap;
        // A deterministic generator (xorshift): 300 batches of up to 40 changes over 200 names.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let mut base = Base::new();
        let mut model: BTreeMap<String, BaseEntry> = BTreeMap::new();
        for _ in 0..300 {
            let mut batch = Vec::new();
            for _ in 0..next(40) {
                let name = format!("d{}/\u{e9}{}", next(7), next(30));
                if next(3) == 0 {
                    model.remove(&name);
                    batch.push(BaseChange::Forget(name));
                } else {
                    let mut e = entry(next(250) as u8);
                    if next(4) == 0 {
                        e.remote.hash = [next(250) as u8; 32];
                        e.remote.size = next(1000);
                    }
                    model.insert(name.clone(), e);
                    batch.push(BaseChange::Put(name, e));
                }
            }
            base.apply(batch);
            assert_eq!(base.len(), model.len());
            assert!(base
                .iter()
                .map(|(k, e)| (k.to_string(), e))
                .eq(model.iter().map(|(k, e)| (k.clone(), *e))));
        }
        assert!(base.len() > 50, "the model grew: {}", base.len());
    }

    #[test]
    fn a_journal_keeps_the_changes_applied_up_to_its_limit() {
        let mut b = Base::new();
        b.apply(vec![BaseChange::Put("before".into(), entry(1))]);
        assert_eq!(b.take_journal(), None, "not kept until started");
        b.start_journal();
        let changes = vec![
            BaseChange::Put("a".into(), entry(2)),
            BaseChange::Forget("before".into()),
        ];
        b.apply(changes.clone());
        assert_eq!(b.take_journal(), Some(changes));
        b.start_journal();
        let many: Vec<_> = (0..=JOURNAL_MAX)
            .map(|i| BaseChange::Forget(format!("p{i}")))
            .collect();
        b.apply(many);
        assert_eq!(b.take_journal(), None, "more than the limit is not kept");
        // Equal whatever their journals.
        let mut c = b.clone();
        c.start_journal();
        assert_eq!(b, c);
    }

    #[test]
    fn an_entry_whose_sides_differ_comes_back_as_it_went_in() {
        let mut e = entry(1);
        e.remote.hash = [9; 32];
        e.remote.mtime_ns = -5;
        let mut sized = entry(2);
        sized.remote.size = 77;
        let mut b = Base::new();
        b.apply(vec![
            BaseChange::Put("a".into(), e),
            BaseChange::Put("b".into(), sized),
            BaseChange::Put("c".into(), entry(3)),
        ]);
        assert_eq!(b.get("a"), Some(e));
        assert_eq!(b.get("b"), Some(sized));
        assert_eq!(b.get("c"), Some(entry(3)));
        // Moved by a merge in front of them, still whole.
        b.apply(vec![BaseChange::Put("0".into(), entry(4))]);
        assert_eq!(
            b.iter().collect::<Vec<_>>(),
            [("0", entry(4)), ("a", e), ("b", sized), ("c", entry(3))]
        );
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
        assert_eq!(b.get("b"), Some(entry(7)));
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
        assert_eq!((b.get("c"), b.get("e")), (Some(entry(8)), Some(entry(10))));
        b.apply(vec![Put("f".into(), entry(1)), Forget("f".into())]);
        assert!(!b.contains_key("f"));
        b.insert("0".into(), entry(2));
        b.apply(vec![Forget("d".into())]);
        assert_eq!(paths(&b), ["0", "a.b", "a/x", "b", "c", "e"]);
        assert_eq!(b.len(), 6);
    }
}
