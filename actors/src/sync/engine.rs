//! One sync run of a target: guards (offline, marker, lock), both sides scanned, each path
//! classified against the base and decided, the guard on mass deletion, then the plan applied
//! with no torn or lost file, the base committed in batches as files become durable (so a run
//! that is killed resumes without re-reading what it finished), live databases pushed as
//! snapshots, old backups pruned.
//!
//! Plain-file work (scanning, hashing, copying, fsync) runs on the blocking pool, spread over
//! [`WORKERS`] threads; SQLite snapshots go through sqlx's own threads.

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use super::classify::{decide, Action, Class, Digest, Direction, Seen, Side, Strategy};
use super::fsops::{self, InstallError};
use super::lock::{LockError, TargetLock};
use super::scan::{self, Listing, Meta, Paths, Selection, MARKER};
use super::snapshot;
use crate::store::sync::{Base, BaseChange, BaseEntry, ConflictRow, SideState};
use crate::store::{unix_ms, DurableOp, DurableReply, Store};

/// Threads for hashing and copying plain files.
pub const WORKERS: usize = 2;
/// Base changes committed together (a killed run loses at most this many, which the next run
/// finds agreeing and records without copying again).
pub const COMMIT_BATCH: usize = 2_000;
/// How often a running chunk's counts are passed on to [`Progress`].
const PROGRESS_EVERY: Duration = Duration::from_millis(100);
/// How long a commit of the base may wait for the store.
const STORE_WAIT: Duration = Duration::from_secs(60);

/// A sync target, as configured.
#[derive(Debug, Clone)]
pub struct SyncSpec {
    /// The target's name (the actor's name): the key of its base, its events and alerts.
    pub name: String,
    /// The local side (default: the state dir).
    pub primary: PathBuf,
    /// The other side: a cloud folder, a folder on an external drive.
    pub target: PathBuf,
    pub selection: Selection,
    pub direction: Direction,
    pub strategy: Strategy,
    /// Where replaced and deleted files are kept (`NAME-YYYYMMDD-HHMMSS.bak`).
    pub backups: PathBuf,
    pub retention: Duration,
    /// A run that would delete more than this share of the synced files stops (0..=1).
    pub max_delete: f64,
    /// Live databases (absolute paths) pushed as snapshots into `hosts/HOST/` of the target.
    pub snapshots: Vec<PathBuf>,
    /// How often those snapshots are refreshed.
    pub snapshot_every: Duration,
    /// This machine's name (snapshots' folder, conflict copies).
    pub host: String,
}

/// What a forced run may override.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub direction: Option<Direction>,
    pub strategy: Option<Strategy>,
    pub dry_run: bool,
}

/// Live counters of a run, for progress bars and `sync status`.
#[derive(Debug, Default)]
pub struct Progress {
    pub files_total: AtomicU64,
    pub files_done: AtomicU64,
    pub bytes_total: AtomicU64,
    pub bytes_done: AtomicU64,
}

impl Progress {
    pub fn reset(&self) {
        for c in [
            &self.files_total,
            &self.files_done,
            &self.bytes_total,
            &self.bytes_done,
        ] {
            c.store(0, Ordering::Relaxed);
        }
    }
}

/// A run's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    /// Not run: the target is offline (or a run was not due).
    Skipped,
    Error,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Skipped => "skipped",
            Outcome::Error => "error",
        }
    }
}

/// Why a run stopped before it changed anything, when it is worth an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// The target is there but its marker is gone: not the folder synced before.
    MarkerMissing,
    /// More deletions than `max_delete` allows.
    MaxDelete,
    /// Another run (this host or another) holds the target's lock.
    Locked,
}

/// A conflict met by a run and how it was decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictReport {
    pub path: String,
    /// local | remote | both (kept both: the remote version beside it as `copy`).
    pub kept: String,
    pub copy: Option<String>,
}

/// A planned or applied action on a path (listed by dry runs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Planned {
    pub path: String,
    pub action: String,
    pub local: String,
    pub remote: String,
}

/// What a run did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    pub target: String,
    pub outcome: Outcome,
    /// Why it was skipped or failed.
    pub reason: Option<String>,
    pub refusal: Option<Refusal>,
    pub dry_run: bool,
    pub direction: Direction,
    pub strategy: Strategy,
    pub local_files: usize,
    pub remote_files: usize,
    pub copied_to_remote: usize,
    pub copied_to_local: usize,
    pub deleted_remote: usize,
    pub deleted_local: usize,
    /// Paths found the same on both sides and recorded (no copy).
    pub agreed: usize,
    pub bytes: u64,
    pub backups: usize,
    pub backups_pruned: usize,
    pub conflicts: Vec<ConflictReport>,
    /// Conflicts kept earlier and not resolved yet (left alone).
    pub unresolved: Vec<String>,
    /// Changes the direction does not take (`push` leaves the target's own changes here).
    pub pending: Vec<Planned>,
    /// Left for the next run: changed while this one ran, or in use.
    pub deferred: Vec<(String, String)>,
    /// Files that failed (unreadable, no space, ...): the rest went on.
    pub errors: Vec<(String, String)>,
    /// Not synced: symlinks, placeholders, unreadable folders.
    pub skipped: Vec<(String, String)>,
    /// Names that differ only by case or Unicode normalisation: reported, not merged.
    pub collisions: Vec<Vec<String>>,
    /// Live databases pushed as snapshots: (file, what happened).
    pub snapshots: Vec<(String, String)>,
    /// Dry runs: what would be done.
    pub planned: Vec<Planned>,
    pub took_ms: u64,
}

impl RunReport {
    /// The report of a run that did not happen (skipped for `reason`).
    pub fn not_run(spec: &SyncSpec, opts: &RunOptions, reason: String) -> Self {
        RunReport::new(
            spec,
            opts.direction.unwrap_or(spec.direction),
            opts.strategy.unwrap_or(spec.strategy),
            opts.dry_run,
        )
        .stop(Outcome::Skipped, reason, None)
    }

    fn new(spec: &SyncSpec, direction: Direction, strategy: Strategy, dry_run: bool) -> Self {
        RunReport {
            target: spec.name.clone(),
            outcome: Outcome::Success,
            reason: None,
            refusal: None,
            dry_run,
            direction,
            strategy,
            local_files: 0,
            remote_files: 0,
            copied_to_remote: 0,
            copied_to_local: 0,
            deleted_remote: 0,
            deleted_local: 0,
            agreed: 0,
            bytes: 0,
            backups: 0,
            backups_pruned: 0,
            conflicts: Vec::new(),
            unresolved: Vec::new(),
            pending: Vec::new(),
            deferred: Vec::new(),
            errors: Vec::new(),
            skipped: Vec::new(),
            collisions: Vec::new(),
            snapshots: Vec::new(),
            planned: Vec::new(),
            took_ms: 0,
        }
    }

    /// Files copied or deleted.
    pub fn files_changed(&self) -> usize {
        self.copied_to_remote + self.copied_to_local + self.deleted_remote + self.deleted_local
    }

    fn stop(mut self, outcome: Outcome, reason: String, refusal: Option<Refusal>) -> Self {
        self.outcome = outcome;
        self.reason = Some(reason);
        self.refusal = refusal;
        self
    }
}

/// Whether the target can be synced now, and whether this run is its first.
enum Online {
    Yes,
    /// Absent but its parent is there and nothing was ever synced: created by the first run.
    Create,
    No(String),
}

fn online(spec: &SyncSpec, first: bool) -> Online {
    match std::fs::metadata(&spec.target) {
        Ok(m) if m.is_dir() => Online::Yes,
        Ok(_) => Online::No(format!("{} is not a folder", spec.target.display())),
        Err(_) if first && spec.target.parent().is_some_and(Path::is_dir) => Online::Create,
        Err(e) => Online::No(format!(
            "offline: {} is not there ({e}); an unmounted drive or an absent cloud folder is \
             skipped, never read as deletions",
            spec.target.display()
        )),
    }
}

/// A path with both sides, its base and its decision. Held by the run as a [`Slot`] (96
/// bytes, its path in the run's packed names): a first copy of 100k files holds 100k of them
/// for the whole run, beside the base it builds. The steps that apply it get it with its path
/// (`Item`), a chunk at a time.
#[derive(Debug, Clone)]
struct Item<P = Box<str>> {
    rel: P,
    local: Option<Meta>,
    remote: Option<Meta>,
    /// Boxed: most items of a large run (a first copy) have none, and an inline entry made
    /// every item 96 bytes larger.
    base: Option<Box<BaseEntry>>,
    /// The two sides' hashes, once known (from the base by the quick check, or read). Boxed
    /// for the same reason as `base`: a file new on one side is hashed by its copy, not here.
    hashes: Option<Box<[Option<Digest>; 2]>>,
    /// Both sides changed differently (decided by the direction or the strategy).
    conflict: bool,
    /// A conflict record this item's outcome closes once applied, and why: the user edited
    /// the path after the conflict was kept.
    closes: Option<(i64, Closed)>,
    /// A new file on one side only, not hashed before the decision (which its hash cannot
    /// change): its copy hashes it, in the same read.
    unhashed: bool,
}

/// An item as the run holds it: its path one of the run's names.
type Slot = Item<Name>;

/// The index of one of the run's names (not a number to print: `to_string` on it would give
/// the index, not the path).
#[derive(Debug, Clone, Copy)]
struct Name(usize);

impl Slot {
    /// The item with its path, for the steps that apply it.
    fn with_rel(&self, names: &Paths) -> Item {
        Item {
            rel: names.get(self.rel.0).into(),
            local: self.local,
            remote: self.remote,
            base: self.base.clone(),
            hashes: self.hashes.clone(),
            conflict: self.conflict,
            closes: self.closes,
            unhashed: self.unhashed,
        }
    }
}

impl<P> Item<P> {
    fn lhash(&self) -> Option<Digest> {
        self.hashes.as_ref().and_then(|h| h[0])
    }

    fn rhash(&self) -> Option<Digest> {
        self.hashes.as_ref().and_then(|h| h[1])
    }

    /// Sets one side's hash (`local`: the primary's).
    fn set_hash(&mut self, local: bool, hash: Option<Digest>) {
        let h = self.hashes.get_or_insert_with(Default::default);
        h[usize::from(!local)] = hash;
        if h[0].is_none() && h[1].is_none() {
            self.hashes = None;
        }
    }
}

fn side_state(hash: Digest, m: Meta) -> SideState {
    SideState {
        hash,
        size: m.size,
        mtime_ns: m.mtime_ns,
    }
}

/// The quick check: the side as the base recorded it (size and time) needs no hashing.
fn quick(base: Option<&SideState>, now: Option<&Meta>) -> Option<Digest> {
    match (base, now) {
        (Some(b), Some(m)) if b.size == m.size && b.mtime_ns == m.mtime_ns => Some(b.hash),
        _ => None,
    }
}

/// Runs `f` over `items` on [`WORKERS`] threads; answers the results in input order. Each
/// thread claims runs of consecutive items: paths come sorted, so the threads work in
/// different folders rather than side by side in one, where each create and rename waited
/// for the other's hold on the folder (a fifth of a first copy's system time went to that).
fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    if items.len() < 64 {
        return items.iter().map(&f).collect();
    }
    let run = (items.len() / (WORKERS * 8)).clamp(1, 256);
    let next = AtomicUsize::new(0);
    let parts: Vec<Vec<(usize, R)>> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..WORKERS)
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let start = next.fetch_add(run, Ordering::Relaxed);
                        if start >= items.len() {
                            break out;
                        }
                        for (i, item) in items.iter().enumerate().skip(start).take(run) {
                            out.push((i, f(item)));
                        }
                    }
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut all: Vec<(usize, R)> = parts.into_iter().flatten().collect();
    all.sort_unstable_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, r)| r).collect()
}

/// What applying one path gave.
enum Applied {
    Copied {
        to_remote: bool,
        bytes: u64,
        backup: bool,
        change: BaseChange,
    },
    Deleted {
        remote: bool,
        change: BaseChange,
    },
    Kept {
        copy: String,
        conflict: ConflictRow,
    },
    Deferred(String),
    Failed(String),
    /// A database: copied through a snapshot (async), after the plain files.
    NeedsSnapshot,
}

/// The run. `base` is the target's base as committed (the caller's cache, kept in step with
/// what is committed); `open` the target's unresolved conflicts.
pub async fn run(
    spec: &SyncSpec,
    opts: &RunOptions,
    store: &Store,
    base: &mut Base,
    open: &[ConflictRow],
    progress: &Progress,
) -> RunReport {
    let started = Instant::now();
    let direction = opts.direction.unwrap_or(spec.direction);
    let strategy = opts.strategy.unwrap_or(spec.strategy);
    let mut report = RunReport::new(spec, direction, strategy, opts.dry_run);
    progress.reset();
    let mut report = match run_inner(spec, opts, store, base, open, progress, &mut report).await {
        Ok(()) => report,
        Err((outcome, reason, refusal)) => report.stop(outcome, reason, refusal),
    };
    if report.outcome == Outcome::Success && !report.errors.is_empty() {
        report.outcome = Outcome::Error;
        report.reason = Some(format!(
            "{} file(s) failed, first: {}: {}",
            report.errors.len(),
            report.errors[0].0,
            report.errors[0].1
        ));
    }
    report.took_ms = started.elapsed().as_millis() as u64;
    report
}

type Stop = (Outcome, String, Option<Refusal>);

/// Where a run's time went, phase by phase: logged at debug level when the run ends
/// (`RUST_LOG=metasystem_actors::sync=debug`).
struct Phases {
    last: Instant,
    spent: Vec<(&'static str, Duration)>,
}

impl Phases {
    fn new() -> Self {
        Phases {
            last: Instant::now(),
            spent: Vec::new(),
        }
    }

    /// Adds `d` to the figure `name` (a part of a phase, listed after it).
    fn add(&mut self, name: &'static str, d: Duration) {
        match self.spent.iter_mut().find(|(n, _)| *n == name) {
            Some((_, total)) => *total += d,
            None => self.spent.push((name, d)),
        }
    }

    /// The phase `name` ended now.
    fn mark(&mut self, name: &'static str) {
        let now = Instant::now();
        self.spent.push((name, now - self.last));
        self.last = now;
    }

    fn log(&self, target: &str) {
        if tracing::enabled!(tracing::Level::DEBUG) {
            let text: Vec<String> = self
                .spent
                .iter()
                .map(|(n, d)| format!("{n} {:.1} ms", d.as_secs_f64() * 1e3))
                .collect();
            tracing::debug!(target: "metasystem_actors::sync", "sync {target}: {}", text.join(", "));
        }
    }
}

fn error(reason: impl Into<String>) -> Stop {
    (Outcome::Error, reason.into(), None)
}

async fn blocking<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> Result<R, Stop> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| error(format!("a sync task failed: {e}")))
}

#[allow(clippy::too_many_arguments)]
async fn run_inner(
    spec: &SyncSpec,
    opts: &RunOptions,
    store: &Store,
    base: &mut Base,
    open: &[ConflictRow],
    progress: &Progress,
    report: &mut RunReport,
) -> Result<(), Stop> {
    let (direction, strategy) = (report.direction, report.strategy);
    // The first sync of this target: nothing in the base, and never recorded as synced (an
    // empty base alone is also what deleting everything on both sides leaves).
    let first = base.is_empty()
        && !crate::store::sync::synced_before(store.reader(), &spec.name)
            .await
            .map_err(error)?;
    let mut phases = Phases::new();
    // Guards: offline, marker, lock.
    let s = spec.clone();
    let dry = opts.dry_run;
    let lock = blocking(move || -> Result<Option<TargetLock>, Stop> {
        match online(&s, first) {
            Online::Yes => {}
            Online::Create if dry => return Ok(None),
            Online::Create => std::fs::create_dir(&s.target).map_err(|e| {
                error(format!("cannot create {}: {e}", s.target.display()))
            })?,
            Online::No(why) => return Err((Outcome::Skipped, why, None)),
        }
        if !s.primary.is_dir() {
            return Err(error(format!(
                "the primary {} is not a folder",
                s.primary.display()
            )));
        }
        let marker = s.target.join(MARKER);
        if !first && !marker.exists() {
            return Err((
                Outcome::Error,
                format!(
                    "refused: {} has no {MARKER} marker although it was synced before: it is not \
                     the folder synced before (a different drive, a fresh cloud folder?). If it is the \
                     right folder, put the marker back (`touch {}`) and sync again",
                    s.target.display(),
                    marker.display()
                ),
                Some(Refusal::MarkerMissing),
            ));
        }
        if dry {
            return Ok(None);
        }
        let lock = TargetLock::take(&s.target, &s.host).map_err(|e| match e {
            LockError::Held(why) => (Outcome::Skipped, why, Some(Refusal::Locked)),
            LockError::Failed(why) => error(why),
        })?;
        if !marker.exists() {
            let text = format!(
                "metasystem sync target {:?}, first synced by {} at {}\n",
                s.name,
                s.host,
                humantime::format_rfc3339_seconds(SystemTime::now())
            );
            std::fs::write(&marker, text)
                .and_then(|()| std::fs::File::open(&marker)?.sync_all())
                .map_err(|e| error(format!("cannot write the marker {}: {e}", marker.display())))?;
        }
        Ok(Some(lock))
    })
    .await??;
    if first && lock.is_some() {
        // The marker is written: from now on the target counts as synced before.
        store
            .durable(
                DurableOp::SyncFirst {
                    target: spec.name.clone(),
                    at_ms: unix_ms(SystemTime::now()),
                },
                Some(STORE_WAIT),
            )
            .await
            .map_err(|e| {
                error(format!(
                    "cannot record the first sync of {}: {e}",
                    spec.name
                ))
            })?;
    }
    phases.mark("guards");

    // Both sides, scanned at once.
    let (lsel, rsel) = (spec.selection.clone(), spec.selection.clone());
    let (lroot, rroot) = (spec.primary.clone(), spec.target.clone());
    let lscan = tokio::task::spawn_blocking(move || scan::scan(&lroot, &lsel));
    let rscan = tokio::task::spawn_blocking(move || scan::scan(&rroot, &rsel));
    let local = lscan
        .await
        .map_err(|e| error(format!("the scan failed: {e}")))?
        .map_err(|e| error(format!("cannot read {}: {e}", spec.primary.display())))?;
    let remote = match rscan
        .await
        .map_err(|e| error(format!("the scan failed: {e}")))?
    {
        Ok(l) => l,
        Err(e) => {
            let target = spec.target.clone();
            // Gone between the check and the scan: unplugged.
            return Err(if blocking(move || target.is_dir()).await? {
                error(format!("cannot read {}: {e}", spec.target.display()))
            } else {
                (
                    Outcome::Skipped,
                    format!("offline: {}: {e}", spec.target.display()),
                    None,
                )
            });
        }
    };
    report.local_files = local.len();
    report.remote_files = remote.len();
    for (rel, why) in local.skipped.iter().chain(&remote.skipped) {
        report.skipped.push((rel.clone(), why.clone()));
        // A folder or file that cannot be read is a fault to see and fix (an event, an
        // alert), not a quiet skip like a symlink; it does not count on the breaker.
        if scan::is_fault(why) {
            report.errors.push((rel.clone(), why.clone()));
        }
    }
    if !opts.dry_run {
        let stale: Vec<PathBuf> = local
            .stale_temps
            .iter()
            .chain(&remote.stale_temps)
            .cloned()
            .collect();
        if !stale.is_empty() {
            blocking(move || {
                for t in stale {
                    let _ = std::fs::remove_file(t);
                }
            })
            .await?;
        }
    }

    phases.mark("scan");
    let skipped: HashSet<String> = report.skipped.iter().map(|(p, _)| p.clone()).collect();
    let (mut items, names) = merge(&local, &remote, base, &skipped, report);
    // The listings are done with: what needs doing is in the items.
    drop((local, remote));
    phases.mark("merge");
    let disputed: HashSet<&str> = open.iter().map(|c| c.path.as_str()).collect();
    hash_sides(spec, &mut items, &names, &disputed, report).await?;
    phases.mark("hash");

    // Decide. The plan names items by their index: the items stay where they are (a first
    // copy's 100k items held twice, as items and as the plan, was most of its memory). At
    // most one step an item: room for that at once (grown by doubling it took 2.1 MB, not 1.6).
    let mut plan: Vec<(usize, Action)> = Vec::with_capacity(items.len());
    let mut touched: Vec<BaseChange> = Vec::new();
    let open_by_path: HashMap<&str, &ConflictRow> =
        open.iter().map(|c| (c.path.as_str(), c)).collect();
    // Conflict records closed by this run, sent once the base that settles them is committed.
    let mut closing: Vec<(i64, Closed)> = Vec::new();
    if !open.is_empty() {
        // A record whose path needs no decision, and not merely because it is unreadable or
        // colliding this time, is settled: in the base and unchanged on both sides (both as
        // the base has them), or on neither side nor in the base (both versions deleted, or
        // no longer selected).
        let listed: HashSet<&str> = items.iter().map(|i| names.get(i.rel.0)).collect();
        let held: HashSet<&str> = report
            .skipped
            .iter()
            .map(|(rel, _)| rel.as_str())
            .chain(report.collisions.iter().flatten().map(String::as_str))
            .collect();
        closing.extend(
            open.iter()
                .filter(|c| !listed.contains(c.path.as_str()) && !held.contains(c.path.as_str()))
                .map(|c| {
                    let why = if base.contains_key(&c.path) {
                        Closed::Edited
                    } else {
                        Closed::Gone
                    };
                    (c.id, why)
                }),
        );
    }
    for (index, item) in items.iter_mut().enumerate() {
        let rel = names.get(item.rel.0);
        let lb = item.base.as_ref().map(|b| b.local.hash);
        let rb = item.base.as_ref().map(|b| b.remote.hash);
        let seen = |hash: Option<Digest>, m: Option<Meta>| {
            // Unhashed: created on this side alone, which decides whatever its hash.
            let hash = if item.unhashed {
                hash.or(Some([0; 32]))
            } else {
                hash
            };
            hash.zip(m).map(|(hash, m)| Seen {
                hash,
                mtime_ns: m.mtime_ns,
            })
        };
        let lseen = seen(item.lhash(), item.local);
        let rseen = seen(item.rhash(), item.remote);
        let (lc, rc) = (Class::of(lb, lseen), Class::of(rb, rseen));
        let mut d = decide(lc, rc, direction, strategy);
        if let Some(c) = open_by_path.get(rel) {
            // A conflict kept earlier: left alone while the two versions are the ones it saw.
            if d.conflict
                && Some(c.local_hash) == item.lhash()
                && Some(c.remote_hash) == item.rhash()
            {
                report.unresolved.push(rel.to_string());
                continue;
            }
            item.closes = Some((c.id, Closed::Edited));
            if d.conflict {
                // The user changed the path since: the versions the conflict recorded act as
                // the base, so the side they edited wins. Both edited again: a new conflict,
                // which supersedes this one.
                let again = decide(
                    Class::of(Some(c.local_hash), lseen),
                    Class::of(Some(c.remote_hash), rseen),
                    direction,
                    strategy,
                );
                if again.conflict {
                    item.closes = Some((c.id, Closed::Superseded));
                } else {
                    d = again;
                }
            }
        }
        // Touched only (time changed, contents not): the base learns the new time.
        if let (Some(b), Class::Unchanged, Class::Unchanged) =
            (item.base.as_deref().copied(), lc, rc)
        {
            let (l, r) = (item.local, item.remote);
            if let (Some(l), Some(r)) = (l, r) {
                let e = BaseEntry {
                    local: side_state(b.local.hash, l),
                    remote: side_state(b.remote.hash, r),
                };
                if e != b {
                    touched.push(BaseChange::Put(rel.to_string(), e));
                }
            }
        }
        item.conflict = d.conflict;
        match d.action {
            // Both sides as the base has them: a record still open is settled already.
            Action::Nothing => closing.extend(item.closes),
            Action::Pending(_) => report.pending.push(planned(rel, d.action, lc, rc)),
            a => plan.push((index, a)),
        }
    }

    // The guard on mass deletion.
    let deletions = plan
        .iter()
        .filter(|(_, a)| matches!(a, Action::DeleteLocal | Action::DeleteRemote))
        .count();
    let tracked = base.len();
    if deletions > 0 && tracked > 0 && deletions as f64 > spec.max_delete * tracked as f64 {
        return Err((
            Outcome::Error,
            format!(
                "stopped: this run would delete {deletions} of {tracked} synced files, more than \
                 max_delete ({:.0}%); nothing was changed. If that is intended, raise max_delete \
                 for {} and run `metasystem sync {}`",
                spec.max_delete * 100.0,
                spec.name,
                spec.name
            ),
            Some(Refusal::MaxDelete),
        ));
    }

    phases.mark("decide");
    if opts.dry_run {
        for &(index, a) in &plan {
            let item = &items[index];
            report.planned.push(Planned {
                path: names.get(item.rel.0).to_string(),
                action: action_name(a).to_string(),
                local: fmt_side(item.local),
                remote: fmt_side(item.remote),
            });
        }
        return Ok(());
    }

    // Apply.
    progress
        .files_total
        .store(plan.len() as u64, Ordering::Relaxed);
    let bytes_total: u64 = plan
        .iter()
        .map(|&(i, a)| match a {
            Action::CopyToRemote => items[i].local.map_or(0, |m| m.size),
            Action::CopyToLocal | Action::KeepBoth => items[i].remote.map_or(0, |m| m.size),
            _ => 0,
        })
        .sum();
    progress.bytes_total.store(bytes_total, Ordering::Relaxed);
    // Paths the base will learn: grown once, not per chunk.
    let (more, bytes) = plan
        .iter()
        .filter(|&&(i, _)| items[i].base.is_none())
        .fold((0, 0), |(n, b), &(i, _)| {
            (n + 1, b + names.get(items[i].rel.0).len())
        });
    base.reserve(more, bytes);
    let mut pending_changes = touched;
    let at = SystemTime::now();
    let mut snapshots_needed = Vec::new();
    // Plain files in chunks: each chunk's base changes are committed once its files are durable.
    let chunk = COMMIT_BATCH.max(1);
    let mut start = 0;
    while start < plan.len() {
        let end = (start + chunk).min(plan.len());
        let part: Vec<(Item, Action)> = plan[start..end]
            .iter()
            .map(|&(i, a)| (items[i].with_rel(&names), a))
            .collect();
        let s = spec.clone();
        let prog = Arc::new(ProgressCell::default());
        let prog2 = prog.clone();
        let work = blocking(move || {
            let dur = fsops::Durability::new();
            let steps = par_map(&part, |(item, a)| {
                let r = apply_plain(&s, item, *a, at, &dur);
                prog2.files.fetch_add(1, Ordering::Relaxed);
                if let Step::Staged(st) = &r {
                    prog2.bytes.fetch_add(st.copy.size, Ordering::Relaxed);
                }
                r
            });
            let out = settle(&part, steps, &dur);
            (part, out, dur.flushing())
        });
        // The chunk's counts reach `progress` as its files are done, not when all are (a
        // chunk is up to 2,000 files: the progress bar would stand still for its length).
        let (files0, bytes0) = (
            progress.files_done.load(Ordering::Relaxed),
            progress.bytes_done.load(Ordering::Relaxed),
        );
        let relay = || {
            let files = prog.files.load(Ordering::Relaxed);
            let bytes = prog.bytes.load(Ordering::Relaxed);
            progress.files_done.store(files0 + files, Ordering::Relaxed);
            progress.bytes_done.store(bytes0 + bytes, Ordering::Relaxed);
        };
        tokio::pin!(work);
        let results = loop {
            tokio::select! {
                r = &mut work => break r?,
                () = tokio::time::sleep(PROGRESS_EVERY) => relay(),
            }
        };
        relay();
        let (part, out, flushing) = results;
        phases.add("apply's syncfs", flushing);
        for ((item, a), r) in part.into_iter().zip(out) {
            absorb(
                spec,
                report,
                &mut pending_changes,
                &mut closing,
                &mut snapshots_needed,
                store,
                item,
                a,
                r,
            )
            .await;
        }
        let committing = Instant::now();
        commit(spec, store, base, &mut pending_changes).await?;
        phases.add("apply's commits", committing.elapsed());
        close(store, &mut closing, at).await;
        start = end;
    }
    phases.mark("apply");
    for (item, a) in snapshots_needed {
        let r = apply_sqlite(spec, &item, a, at).await;
        progress.files_done.fetch_add(1, Ordering::Relaxed);
        absorb(
            spec,
            report,
            &mut pending_changes,
            &mut closing,
            &mut Vec::new(),
            store,
            item,
            a,
            r,
        )
        .await;
    }
    commit(spec, store, base, &mut pending_changes).await?;
    close(store, &mut closing, at).await;
    phases.mark("databases");

    // The daemon's own live databases: snapshots into hosts/HOST/.
    for db in &spec.snapshots {
        let what = push_snapshot(spec, db).await;
        report.snapshots.push((
            db.display().to_string(),
            what.unwrap_or_else(|e| format!("failed: {e}")),
        ));
    }

    // Backups past retention.
    let backups = spec.backups.clone();
    let retention = spec.retention;
    report.backups_pruned = blocking(move || prune_backups(&backups, retention))
        .await?
        .unwrap_or(0);
    if let Some(lock) = lock {
        lock.release().await;
    }
    phases.mark("snapshots and pruning");
    phases.log(&spec.name);
    Ok(())
}

#[derive(Default)]
struct ProgressCell {
    files: AtomicU64,
    bytes: AtomicU64,
}

fn fmt_side(m: Option<Meta>) -> String {
    match m {
        Some(m) => format!("{} bytes", m.size),
        None => "absent".into(),
    }
}

fn action_name(a: Action) -> &'static str {
    match a {
        Action::Nothing => "nothing",
        Action::Agree => "record (same on both sides)",
        Action::Forget => "forget (deleted on both sides)",
        Action::CopyToRemote => "copy to the target",
        Action::CopyToLocal => "copy to the primary",
        Action::DeleteRemote => "delete on the target (backed up)",
        Action::DeleteLocal => "delete on the primary (backed up)",
        Action::KeepBoth => "conflict: keep both",
        Action::Pending(Side::Local) => "pending on the primary",
        Action::Pending(Side::Remote) => "pending on the target",
    }
}

fn planned(rel: &str, a: Action, lc: Class, rc: Class) -> Planned {
    Planned {
        path: rel.to_string(),
        action: action_name(a).to_string(),
        local: lc.name().to_string(),
        remote: rc.name().to_string(),
    }
}

/// Every path of either side or the base that needs a decision, minus names that collide by
/// case or normalisation (reported, not merged), and minus paths a side skipped (`unseen`: an
/// unreadable folder and what is in it, a symlink, a placeholder): absent from a listing
/// because it could not be read is not deleted, so such a path is not decided this run and its
/// base stays as it was. A path in the base whose two sides both pass the quick check is
/// unchanged on both: nothing to do or record, so no item. The listings (sorted) are joined in
/// one pass.
fn merge(
    local: &Listing,
    remote: &Listing,
    base: &Base,
    skipped: &HashSet<String>,
    report: &mut RunReport,
) -> (Vec<Slot>, Paths) {
    let mut folds = Folds::default();
    // `rel` or one of the folders above it was skipped by a side.
    let unseen = |rel: &str| {
        !skipped.is_empty()
            && rel
                .match_indices('/')
                .map(|(i, _)| &rel[..i])
                .chain([rel])
                .any(|p| skipped.contains(p))
    };
    // A path's item, if it needs one: its hashes the quick check settled.
    let needs = |rel: &str, l: Option<Meta>, r: Option<Meta>, b: Option<BaseEntry>| {
        if unseen(rel) {
            return None;
        }
        let lhash = quick(b.as_ref().map(|b| &b.local), l.as_ref());
        let rhash = quick(b.as_ref().map(|b| &b.remote), r.as_ref());
        if b.is_some() && lhash.is_some() && rhash.is_some() {
            return None; // unchanged on both sides
        }
        Some((lhash, rhash))
    };
    // Counted first, so the items take the room they need and no more: grown by doubling, a
    // first copy's 100k items took a third more than they used.
    let count = union(local, remote, base)
        .filter(|&(rel, l, r, b)| needs(rel, l, r, b).is_some())
        .count();
    let mut items = Vec::with_capacity(count);
    // The items' paths, packed.
    let mut names = Paths::default();
    for (rel, l, r, b) in union(local, remote, base) {
        // Only names on disk can collide: a path only the base still has (gone from both
        // sides, e.g. the old name of a case-only rename made on both) is forgotten, never
        // held back as colliding (which kept the new name unsynced for good).
        if l.is_some() || r.is_some() {
            folds.add(rel);
        }
        let Some((lhash, rhash)) = needs(rel, l, r, b) else {
            continue;
        };
        names.push(rel);
        items.push(Item {
            rel: Name(names.len() - 1),
            hashes: (lhash.is_some() || rhash.is_some()).then(|| Box::new([lhash, rhash])),
            local: l,
            remote: r,
            base: b.map(Box::new),
            conflict: false,
            unhashed: false,
            closes: None,
        });
    }
    let repeated = folds.repeated();
    if !repeated.is_empty() {
        // Two names whose folded forms hash alike: the names are walked again and compared by
        // their folded forms.
        let mut groups: HashMap<String, Vec<&str>> = HashMap::new();
        for (rel, ..) in
            union(local, remote, base).filter(|(_, l, r, _)| l.is_some() || r.is_some())
        {
            if repeated.contains(&folds.hash(rel)) {
                groups.entry(scan::fold(rel)).or_default().push(rel);
            }
        }
        let mut colliding = HashSet::new();
        for mut group in groups.into_values().filter(|g| g.len() > 1) {
            group.sort_unstable();
            colliding.extend(group.iter().map(|s| s.to_string()));
            report
                .collisions
                .push(group.into_iter().map(str::to_string).collect());
        }
        report.collisions.sort();
        if !colliding.is_empty() {
            items.retain(|i| !colliding.contains(names.get(i.rel.0)));
        }
    }
    names.shrink_to_fit();
    (items, names)
}

/// Every path of the two listings and the base (all sorted), in order, each once: the path,
/// its two sides and its base entry.
fn union<'a>(
    local: &'a Listing,
    remote: &'a Listing,
    base: &'a Base,
) -> impl Iterator<Item = (&'a str, Option<Meta>, Option<Meta>, Option<BaseEntry>)> + 'a {
    let mut sides = join(local, remote).peekable();
    let mut next = 0;
    std::iter::from_fn(move || {
        let b = base.at(next);
        let Some(&(rel, l, r)) = sides.peek() else {
            next += 1;
            return b.map(|(k, e)| (k, None, None, Some(e)));
        };
        match b {
            // In the base, on neither side: gone from both.
            Some((k, e)) if k < rel => {
                next += 1;
                Some((k, None, None, Some(e)))
            }
            Some((k, e)) if k == rel => {
                next += 1;
                sides.next();
                Some((rel, l, r, Some(e)))
            }
            _ => {
                sides.next();
                Some((rel, l, r, None))
            }
        }
    })
}

/// Two listings sorted by path, joined: (path, the local side, the remote side), each path
/// once, in order.
fn join<'a>(
    a: &'a Listing,
    b: &'a Listing,
) -> impl Iterator<Item = (&'a str, Option<Meta>, Option<Meta>)> + 'a {
    let (mut a, mut b) = (a.iter().peekable(), b.iter().peekable());
    std::iter::from_fn(move || {
        let order = match (a.peek(), b.peek()) {
            (None, None) => return None,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some(x), Some(y)) => x.0.cmp(y.0),
        };
        match order {
            std::cmp::Ordering::Less => a.next().map(|(p, m)| (p, Some(m), None)),
            std::cmp::Ordering::Greater => b.next().map(|(p, m)| (p, None, Some(m))),
            std::cmp::Ordering::Equal => {
                let y = b.next().map(|(_, m)| m);
                a.next().map(|(p, m)| (p, Some(m), y))
            }
        }
    })
}

/// Names that collide once case and Unicode normalisation are folded ([`scan::fold`]): a first
/// pass keeps each name's folded form as a 64-bit hash in a flat list (0.8 MB for 100k names,
/// where a hash table of them took 3-5 MB); only hashes seen twice make the caller look at the
/// names again.
#[derive(Default)]
struct Folds {
    hasher: std::hash::RandomState,
    hashes: Vec<u64>,
    buf: String,
}

impl Folds {
    fn hash(&mut self, name: &str) -> u64 {
        use std::hash::BuildHasher;
        if name.is_ascii() {
            self.buf.clear();
            self.buf.push_str(name);
            self.buf.make_ascii_lowercase();
            self.hasher.hash_one(self.buf.as_str())
        } else {
            self.hasher.hash_one(scan::fold(name).as_str())
        }
    }

    /// Adds `name` (each name once).
    fn add(&mut self, name: &str) {
        let h = self.hash(name);
        self.hashes.push(h);
    }

    /// The hashes added more than once (usually none); the list is let go.
    fn repeated(&mut self) -> HashSet<u64> {
        let mut hashes = std::mem::take(&mut self.hashes);
        hashes.sort_unstable();
        hashes
            .windows(2)
            .filter(|w| w[0] == w[1])
            .map(|w| w[0])
            .collect()
    }
}

/// Hashes what the quick check could not settle, on the worker threads; a file created on one
/// side only is left to its copy.
async fn hash_sides(
    spec: &SyncSpec,
    items: &mut [Slot],
    names: &Paths,
    disputed: &HashSet<&str>,
    report: &mut RunReport,
) -> Result<(), Stop> {
    // Created on one side only (not a database in use): copied whatever its hash, which the
    // copy takes in the same read. Not a path with an open conflict: its hash is compared
    // with the versions the conflict recorded.
    for it in items.iter_mut() {
        it.unhashed = it.base.is_none()
            && !disputed.contains(names.get(it.rel.0))
            && it.local.is_some() != it.remote.is_some()
            && !it.local.or(it.remote).is_some_and(|m| m.live_wal);
    }
    let jobs: Vec<(usize, bool, PathBuf, bool)> = items
        .iter()
        .enumerate()
        .flat_map(|(i, it)| {
            let mut v = Vec::new();
            if it.unhashed {
                return v;
            }
            if it.lhash().is_none() {
                if let Some(m) = it.local {
                    v.push((i, true, spec.primary.join(names.get(it.rel.0)), m.live_wal));
                }
            }
            if it.rhash().is_none() {
                if let Some(m) = it.remote {
                    v.push((i, false, spec.target.join(names.get(it.rel.0)), m.live_wal));
                }
            }
            v
        })
        .collect();
    if jobs.is_empty() {
        return Ok(());
    }
    let (jobs, hashes) = blocking(move || {
        let hashes = par_map(&jobs, |(_, _, path, wal)| fsops::hash_file(path, *wal));
        (jobs, hashes)
    })
    .await?;
    let mut failed = HashSet::new();
    for ((i, is_local, path, _), h) in jobs.into_iter().zip(hashes) {
        match h {
            Ok(h) => items[i].set_hash(is_local, Some(h)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // Gone since the scan: as if absent (the next run sees it settled).
                if is_local {
                    items[i].local = None;
                } else {
                    items[i].remote = None;
                }
            }
            Err(e) => {
                report.errors.push((
                    names.get(items[i].rel.0).to_string(),
                    format!("cannot read {}: {e}", path.display()),
                ));
                failed.insert(i);
            }
        }
    }
    if !failed.is_empty() {
        // A side that cannot be read is not decided on: neither copied over nor deleted.
        let mut i = 0;
        items.iter_mut().for_each(|it| {
            if failed.contains(&i) {
                it.local = None;
                it.remote = None;
                it.base = None;
            }
            i += 1;
        });
    }
    Ok(())
}

/// One plain-file action (blocking).
fn apply_plain(
    spec: &SyncSpec,
    item: &Item,
    action: Action,
    at: SystemTime,
    dur: &fsops::Durability,
) -> Step {
    let lpath = spec.primary.join(&*item.rel);
    let rpath = spec.target.join(&*item.rel);
    let done =
        |r: io::Result<Applied>| Step::Done(r.unwrap_or_else(|e| Applied::Failed(describe(&e))));
    let r = match action {
        Action::Agree => {
            let (Some(l), Some(r), Some(lh), Some(rh)) =
                (item.local, item.remote, item.lhash(), item.rhash())
            else {
                return Step::Done(Applied::Deferred("changed during the run".into()));
            };
            return Step::Done(Applied::Copied {
                to_remote: false,
                bytes: 0,
                backup: false,
                change: BaseChange::Put(
                    item.rel.to_string(),
                    BaseEntry {
                        local: side_state(lh, l),
                        remote: side_state(rh, r),
                    },
                ),
            });
        }
        Action::Forget => {
            return Step::Done(Applied::Deleted {
                remote: false,
                change: BaseChange::Forget(item.rel.to_string()),
            })
        }
        Action::CopyToRemote => return stage_copy(spec, item, &lpath, &rpath, true, at, dur),
        Action::CopyToLocal => return stage_copy(spec, item, &rpath, &lpath, false, at, dur),
        Action::DeleteRemote => delete(spec, item, &rpath, false, at),
        Action::DeleteLocal => delete(spec, item, &lpath, true, at),
        Action::KeepBoth => keep_both(spec, item, &rpath, at),
        Action::Nothing | Action::Pending(_) => {
            return Step::Done(Applied::Deferred(String::new()))
        }
    };
    done(r)
}

fn describe(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) if code == rustix::io::Errno::NOSPC.raw_os_error() => {
            format!("no space left on the device ({e}); nothing was replaced")
        }
        _ => e.to_string(),
    }
}

/// A plain-file action's first step: done (or failed, or deferred) at once, or a copy staged.
enum Step {
    Done(Applied),
    Staged(Staged),
}

/// A copy written to its temp file (and the destination's backup to its own temp), waiting
/// for its chunk's files to be durable before it is renamed into place.
struct Staged {
    copy: fsops::TempCopy,
    dest: PathBuf,
    src_hash: Digest,
    src_meta: Meta,
    to_remote: bool,
    /// The destination's backup: its temp, its name, where.
    backup: Option<(PathBuf, PathBuf, fsops::Dev)>,
}

impl Staged {
    /// Removes what was staged (a step that will not happen).
    fn discard(&self) {
        let _ = std::fs::remove_file(&self.copy.temp);
        if let Some((temp, _, _)) = &self.backup {
            let _ = std::fs::remove_file(temp);
        }
    }
}

/// A copy, up to its temp file and the destination's backup (durable at the chunk's flush).
fn stage_copy(
    spec: &SyncSpec,
    item: &Item,
    src: &Path,
    dest: &Path,
    to_remote: bool,
    at: SystemTime,
    dur: &fsops::Durability,
) -> Step {
    let (src_meta, src_hash, dest_meta) = if to_remote {
        (item.local, item.lhash(), item.remote)
    } else {
        (item.remote, item.rhash(), item.local)
    };
    let Some(sm) = src_meta else {
        return Step::Done(Applied::Deferred("changed during the run".into()));
    };
    if src_hash.is_none() && !item.unhashed {
        return Step::Done(Applied::Deferred("changed during the run".into()));
    }
    if dest_meta.is_some_and(|m| m.live_wal) {
        return Step::Done(Applied::Deferred(format!(
            "{} is a database in use (a live -wal beside it): not replaced under its writer",
            dest.display()
        )));
    }
    if sm.live_wal {
        return Step::Done(Applied::NeedsSnapshot);
    }
    let root = if to_remote {
        &spec.target
    } else {
        &spec.primary
    };
    let staged = (|| -> io::Result<Step> {
        fsops::make_parents_in(root, dest, dur)?;
        let copy = match fsops::copy_staged(src, dest, sm.mtime_ns, dur) {
            Ok(Some(c)) => c,
            Ok(None) => return Ok(Step::Done(Applied::NeedsSnapshot)),
            // Gone since the scan: the next run sees it absent.
            Err(e) if e.kind() == io::ErrorKind::NotFound && !src.exists() => {
                return Ok(Step::Done(Applied::Deferred(format!(
                    "{} vanished during the run",
                    src.display()
                ))))
            }
            Err(e) => return Err(e),
        };
        // What was copied is what the scan saw: the hash taken before, or (unhashed) the
        // source's size and time once read, as the quick check does.
        let same = match src_hash {
            Some(sh) => copy.hash == sh,
            None => copy.source == (sm.size, sm.mtime_ns),
        };
        if !same {
            let _ = std::fs::remove_file(&copy.temp);
            return Ok(Step::Done(Applied::Deferred(format!(
                "{} changed during the run",
                src.display()
            ))));
        }
        let sh = src_hash.unwrap_or(copy.hash);
        let mut backup = None;
        if dest_meta.is_some() {
            let b = match fsops::unchanged(dest, dest_meta) {
                Ok(true) => fsops::backup_staged(dest, &spec.backups, &item.rel, at, dur),
                Ok(false) => {
                    let _ = std::fs::remove_file(&copy.temp);
                    return Ok(Step::Done(Applied::Deferred(format!(
                        "{} changed during the run",
                        dest.display()
                    ))));
                }
                Err(e) => Err(e),
            };
            match b {
                Ok(b) => backup = Some(b),
                Err(e) => {
                    let _ = std::fs::remove_file(&copy.temp);
                    return Err(io::Error::new(
                        e.kind(),
                        format!("cannot back up {} before replacing it: {e}", dest.display()),
                    ));
                }
            }
        }
        Ok(Step::Staged(Staged {
            copy,
            dest: dest.to_path_buf(),
            src_hash: sh,
            src_meta: sm,
            to_remote,
            backup,
        }))
    })();
    staged.unwrap_or_else(|e| Step::Done(Applied::Failed(describe(&e))))
}

/// The chunk's staged copies put in place, in the order that leaves no torn file and no
/// replaced file without its backup: their temp files (and the backups' temps) durable, the
/// backups renamed to their names and durable, the copies renamed over their destinations
/// (each re-checked just before) and durable. Answers one result per step.
fn settle(part: &[(Item, Action)], steps: Vec<Step>, dur: &fsops::Durability) -> Vec<Applied> {
    let mut out: Vec<Option<Applied>> = Vec::with_capacity(steps.len());
    let mut staged: Vec<(usize, Staged)> = Vec::new();
    for (i, step) in steps.into_iter().enumerate() {
        match step {
            Step::Done(a) => out.push(Some(a)),
            Step::Staged(s) => {
                out.push(None);
                staged.push((i, s));
            }
        }
    }
    let fail = |staged: &mut Vec<(usize, Staged)>, out: &mut [Option<Applied>], why: &str| {
        for (i, s) in staged.drain(..) {
            s.discard();
            out[i] = Some(Applied::Failed(why.to_string()));
        }
    };
    if !staged.is_empty() {
        if let Err(e) = dur.flush() {
            let why = format!("cannot make the copy durable: {}", describe(&e));
            fail(&mut staged, &mut out, &why);
        }
    }
    // Backups under their names, durable before anything they keep is replaced.
    let mut placed = false;
    staged.retain(|(i, s)| {
        let Some((temp, name, dev)) = &s.backup else {
            return true;
        };
        match fsops::place_backup(temp, name, dur, *dev) {
            Ok(()) => {
                placed = true;
                true
            }
            Err(e) => {
                s.discard();
                out[*i] = Some(Applied::Failed(format!(
                    "cannot back up {} before replacing it: {}",
                    s.dest.display(),
                    describe(&e)
                )));
                false
            }
        }
    });
    if placed {
        if let Err(e) = dur.flush() {
            let why = format!("cannot make the backups durable: {}", describe(&e));
            fail(&mut staged, &mut out, &why);
        }
    }
    let installed = par_map(&staged, |(i, s)| install_staged(&part[*i].0, s, dur));
    let flushed = if staged.is_empty() {
        Ok(())
    } else {
        dur.flush()
    };
    for ((i, _), r) in staged.iter().zip(installed) {
        out[*i] = Some(match (&flushed, r) {
            // In place but maybe not durable: not recorded (the next run finds them agreeing).
            (Err(e), Applied::Copied { .. }) => {
                Applied::Failed(format!("cannot make the copy durable: {}", describe(e)))
            }
            (_, r) => r,
        });
    }
    out.into_iter()
        .map(|a| a.unwrap_or_else(|| Applied::Failed("not applied".into())))
        .collect()
}

/// A staged copy renamed over its destination if that is still what the scan saw.
fn install_staged(item: &Item, s: &Staged, dur: &fsops::Durability) -> Applied {
    let dest_meta = if s.to_remote { item.remote } else { item.local };
    match fsops::install_with(&s.copy.temp, &s.dest, dest_meta, dur, s.copy.dev) {
        Ok(()) => {}
        Err(InstallError::Changed) => {
            return Applied::Deferred(format!("{} changed during the run", s.dest.display()))
        }
        Err(InstallError::Io(e)) => return Applied::Failed(describe(&e)),
    }
    let (local, remote) = if s.to_remote {
        (
            side_state(s.src_hash, s.src_meta),
            side_state(s.copy.hash, s.copy.meta),
        )
    } else {
        (
            side_state(s.copy.hash, s.copy.meta),
            side_state(s.src_hash, s.src_meta),
        )
    };
    Applied::Copied {
        to_remote: s.to_remote,
        bytes: s.copy.size,
        backup: s.backup.is_some(),
        change: BaseChange::Put(item.rel.to_string(), BaseEntry { local, remote }),
    }
}

#[allow(clippy::too_many_arguments)]
fn finish_copy(
    spec: &SyncSpec,
    item: &Item,
    temp: PathBuf,
    dest: &Path,
    copy_hash: Digest,
    src_hash: Digest,
    src_meta: Meta,
    to_remote: bool,
    bytes: u64,
    at: SystemTime,
) -> io::Result<Applied> {
    let dest_meta = if to_remote { item.remote } else { item.local };
    let mut backed_up = false;
    if dest_meta.is_some() {
        if !fsops::unchanged(dest, dest_meta)? {
            let _ = std::fs::remove_file(&temp);
            return Ok(Applied::Deferred(format!(
                "{} changed during the run",
                dest.display()
            )));
        }
        if let Err(e) = fsops::backup(dest, &spec.backups, &item.rel, at, false) {
            let _ = std::fs::remove_file(&temp);
            return Err(io::Error::new(
                e.kind(),
                format!("cannot back up {} before replacing it: {e}", dest.display()),
            ));
        }
        backed_up = true;
    }
    match fsops::install(&temp, dest, dest_meta) {
        Ok(()) => {}
        Err(InstallError::Changed) => {
            return Ok(Applied::Deferred(format!(
                "{} changed during the run",
                dest.display()
            )))
        }
        Err(InstallError::Io(e)) => return Err(e),
    }
    let Some(new_meta) = scan::meta_of(dest)? else {
        return Ok(Applied::Deferred(format!(
            "{} vanished after the copy",
            dest.display()
        )));
    };
    let (local, remote) = if to_remote {
        (
            side_state(src_hash, src_meta),
            side_state(copy_hash, new_meta),
        )
    } else {
        (
            side_state(copy_hash, new_meta),
            side_state(src_hash, src_meta),
        )
    };
    Ok(Applied::Copied {
        to_remote,
        bytes,
        backup: backed_up,
        change: BaseChange::Put(item.rel.to_string(), BaseEntry { local, remote }),
    })
}

fn delete(
    spec: &SyncSpec,
    item: &Item,
    path: &Path,
    local: bool,
    at: SystemTime,
) -> io::Result<Applied> {
    let meta = if local { item.local } else { item.remote };
    let Some(meta) = meta else {
        return Ok(Applied::Deferred("changed during the run".into()));
    };
    if meta.live_wal {
        return Ok(Applied::Deferred(format!(
            "{} is a database in use: not deleted under its writer",
            path.display()
        )));
    }
    if !fsops::unchanged(path, Some(meta))? {
        return Ok(Applied::Deferred(format!(
            "{} changed during the run",
            path.display()
        )));
    }
    // The primary's file moves into the backups (same disk as a rule); the target's is copied.
    fsops::backup(path, &spec.backups, &item.rel, at, local)?;
    if !local {
        match fsops::remove(path, meta) {
            Ok(()) => {}
            Err(InstallError::Changed) => {
                return Ok(Applied::Deferred(format!(
                    "{} changed during the run",
                    path.display()
                )))
            }
            Err(InstallError::Io(e)) => return Err(e),
        }
    }
    Ok(Applied::Deleted {
        remote: !local,
        change: BaseChange::Forget(item.rel.to_string()),
    })
}

fn keep_both(spec: &SyncSpec, item: &Item, rpath: &Path, at: SystemTime) -> io::Result<Applied> {
    let (Some(rm), Some(lh), Some(rh)) = (item.remote, item.lhash(), item.rhash()) else {
        return Ok(Applied::Deferred("changed during the run".into()));
    };
    // A second conflict on the same path in the same second gets `-2`, `-3`... after the name.
    let mut copy_rel = fsops::conflict_name(&item.rel, at, &spec.name);
    let mut n = 2;
    while n < 1000 && std::fs::symlink_metadata(spec.primary.join(&copy_rel)).is_ok() {
        copy_rel = fsops::conflict_name(&item.rel, at, &format!("{}-{n}", spec.name));
        n += 1;
    }
    let dest = spec.primary.join(&copy_rel);
    fsops::make_parents(&spec.primary, &dest)?;
    let (temp, hash, _) = fsops::copy_to_temp(rpath, &dest, rm.mtime_ns)?;
    if hash != rh {
        let _ = std::fs::remove_file(&temp);
        return Ok(Applied::Deferred(format!(
            "{} changed during the run",
            rpath.display()
        )));
    }
    match fsops::install(&temp, &dest, None) {
        Ok(()) => {}
        Err(InstallError::Changed) => {
            return Ok(Applied::Deferred(format!(
                "{} exists already",
                dest.display()
            )))
        }
        Err(InstallError::Io(e)) => return Err(e),
    }
    Ok(Applied::Kept {
        copy: copy_rel.clone(),
        conflict: ConflictRow {
            id: 0,
            target: spec.name.clone(),
            path: item.rel.to_string(),
            local_hash: lh,
            remote_hash: rh,
            copy: copy_rel,
            detected_ms: unix_ms(at),
            resolved_ms: None,
            resolution: None,
        },
    })
}

/// A database copied through a snapshot (its source may be written meanwhile).
async fn apply_sqlite(spec: &SyncSpec, item: &Item, action: Action, at: SystemTime) -> Applied {
    let to_remote = action == Action::CopyToRemote;
    let (src, dest) = if to_remote {
        (spec.primary.join(&*item.rel), spec.target.join(&*item.rel))
    } else {
        (spec.target.join(&*item.rel), spec.primary.join(&*item.rel))
    };
    let (src_meta, src_hash) = if to_remote {
        (item.local, item.lhash())
    } else {
        (item.remote, item.rhash())
    };
    let Some(sm) = src_meta else {
        return Applied::Deferred("changed during the run".into());
    };
    let sh = match src_hash {
        Some(h) => h,
        None if item.unhashed => {
            let src2 = src.clone();
            match tokio::task::spawn_blocking(move || fsops::hash_file(&src2, sm.live_wal)).await {
                Ok(Ok(h)) => h,
                Ok(Err(e)) => {
                    return Applied::Failed(format!("cannot read {}: {e}", src.display()))
                }
                Err(e) => return Applied::Failed(format!("cannot read {}: {e}", src.display())),
            }
        }
        None => return Applied::Deferred("changed during the run".into()),
    };
    let root = if to_remote {
        spec.target.clone()
    } else {
        spec.primary.clone()
    };
    let dest2 = dest.clone();
    match tokio::task::spawn_blocking(move || fsops::make_parents(&root, &dest2)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Applied::Failed(describe(&e)),
        Err(e) => return Applied::Failed(format!("a sync task failed: {e}")),
    }
    let temp = fsops::temp_beside(&dest);
    if let Err(e) = snapshot::snapshot(&src, &temp).await {
        return Applied::Failed(e.to_string());
    }
    let s = spec.clone();
    let item = item.clone();
    let dest2 = dest.clone();
    let r = tokio::task::spawn_blocking(move || -> io::Result<Applied> {
        let f = std::fs::OpenOptions::new().write(true).open(&temp)?;
        f.set_modified(fsops::time_of(sm.mtime_ns))?;
        f.sync_all()?;
        drop(f);
        let hash = fsops::hash_file(&temp, false)?;
        let bytes = std::fs::metadata(&temp)?.len();
        let r = finish_copy(
            &s,
            &item,
            temp.clone(),
            &dest2,
            hash,
            sh,
            sm,
            to_remote,
            bytes,
            at,
        );
        if r.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        r
    })
    .await;
    match r {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => Applied::Failed(describe(&e)),
        Err(e) => Applied::Failed(format!("the copy of {} failed: {e}", dest.display())),
    }
}

#[allow(clippy::too_many_arguments)]
async fn absorb(
    _spec: &SyncSpec,
    report: &mut RunReport,
    changes: &mut Vec<BaseChange>,
    closes: &mut Vec<(i64, Closed)>,
    snapshots: &mut Vec<(Item, Action)>,
    store: &Store,
    item: Item,
    action: Action,
    r: Applied,
) {
    if matches!(
        r,
        Applied::Copied { .. } | Applied::Deleted { .. } | Applied::Kept { .. }
    ) {
        closes.extend(item.closes);
    }
    match r {
        Applied::Copied {
            to_remote,
            bytes,
            backup,
            change,
        } => {
            match action {
                Action::Agree => report.agreed += 1,
                _ if to_remote => report.copied_to_remote += 1,
                _ => report.copied_to_local += 1,
            }
            if item.conflict {
                // A conflict decided by the direction or the strategy.
                report.conflicts.push(ConflictReport {
                    path: item.rel.to_string(),
                    kept: if to_remote { "local" } else { "remote" }.into(),
                    copy: None,
                });
            }
            report.bytes += bytes;
            report.backups += usize::from(backup);
            changes.push(change);
        }
        Applied::Deleted { remote, change } => {
            match action {
                Action::Forget => {}
                _ if remote => report.deleted_remote += 1,
                _ => report.deleted_local += 1,
            }
            if action != Action::Forget {
                report.backups += 1;
            }
            changes.push(change);
        }
        Applied::Kept { copy, conflict } => {
            if let Err(e) = store
                .durable(DurableOp::SyncConflict(conflict), Some(STORE_WAIT))
                .await
            {
                report.errors.push((
                    item.rel.to_string(),
                    format!("cannot record the conflict: {e}"),
                ));
            }
            report.conflicts.push(ConflictReport {
                path: item.rel.into(),
                kept: "both".into(),
                copy: Some(copy),
            });
        }
        Applied::Deferred(why) if why.is_empty() => {}
        Applied::Deferred(why) => report.deferred.push((item.rel.into(), why)),
        Applied::Failed(why) => report.errors.push((item.rel.into(), why)),
        Applied::NeedsSnapshot => snapshots.push((item, action)),
    }
}

/// Commits `changes` to the base (durable lane) and the cache.
async fn commit(
    spec: &SyncSpec,
    store: &Store,
    base: &mut Base,
    changes: &mut Vec<BaseChange>,
) -> Result<(), Stop> {
    if changes.is_empty() {
        return Ok(());
    }
    let batch = std::mem::take(changes);
    match store
        .durable(
            DurableOp::SyncBase {
                target: spec.name.clone(),
                changes: batch.clone(),
            },
            Some(STORE_WAIT),
        )
        .await
    {
        Ok(DurableReply::Done) | Ok(_) => {}
        Err(e) => {
            return Err(error(format!(
                "cannot record the sync state ({e}); the files are in place and the next run \
                 finds them agreeing"
            )))
        }
    }
    base.apply(batch);
    Ok(())
}

/// How a conflict record closed by a run reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closed {
    /// The user edited one side after it was kept.
    Edited,
    /// Both sides were edited again after it was kept: a newer conflict replaces it.
    Superseded,
    /// The path is on neither side any more.
    Gone,
}

impl Closed {
    fn as_str(self) -> &'static str {
        match self {
            Closed::Edited => "edited",
            Closed::Superseded => "superseded",
            Closed::Gone => "gone",
        }
    }
}

/// Marks the conflict records in `closing` resolved. A failure leaves them open (the next run
/// retries: the same edit settles them again), so it is only logged.
async fn close(store: &Store, closing: &mut Vec<(i64, Closed)>, at: SystemTime) {
    for resolution in [Closed::Edited, Closed::Superseded, Closed::Gone] {
        let ids: Vec<i64> = closing
            .iter()
            .filter(|(_, r)| *r == resolution)
            .map(|(id, _)| *id)
            .collect();
        if ids.is_empty() {
            continue;
        }
        let op = DurableOp::SyncResolve {
            ids,
            resolution: resolution.as_str().to_string(),
            at_ms: crate::store::unix_ms(at),
        };
        if let Err(e) = store.durable(op, Some(STORE_WAIT)).await {
            tracing::warn!(error = %e, "cannot close conflict records; the next run retries");
        }
    }
    closing.clear();
}

/// Pushes a consistent snapshot of `db` to `TARGET/hosts/HOST/NAME` when the one there is
/// older than `snapshot_every`. Snapshots are not backed up: each is a newer copy of a
/// database that lives on here.
async fn push_snapshot(spec: &SyncSpec, db: &Path) -> Result<String, String> {
    let name = db
        .file_name()
        .ok_or_else(|| format!("{} has no file name", db.display()))?;
    let dir = spec.target.join(scan::HOSTS).join(&spec.host);
    let dest = dir.join(name);
    let (dest2, db2, every) = (dest.clone(), db.to_path_buf(), spec.snapshot_every);
    let fresh = tokio::task::spawn_blocking(move || -> Result<bool, String> {
        if let Ok(age) = std::fs::metadata(&dest2)
            .and_then(|m| m.modified())
            .map(|t| t.elapsed().unwrap_or_default())
        {
            if age < every {
                return Ok(true);
            }
        }
        if !db2.is_file() {
            return Err(format!("{} does not exist", db2.display()));
        }
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        Ok(false)
    })
    .await
    .map_err(|e| e.to_string())??;
    if fresh {
        return Ok("fresh enough".into());
    }
    let temp = fsops::temp_beside(&dest);
    snapshot::snapshot(db, &temp)
        .await
        .map_err(|e| e.to_string())?;
    let dest2 = dest.clone();
    let r = tokio::task::spawn_blocking(move || -> io::Result<u64> {
        std::fs::File::open(&temp)?.sync_all()?;
        let n = std::fs::metadata(&temp)?.len();
        if let Err(e) = std::fs::rename(&temp, &dest2) {
            let _ = std::fs::remove_file(&temp);
            return Err(e);
        }
        fsops::sync_dir(&dest2)?;
        Ok(n)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| describe(&e))?;
    Ok(format!("pushed {} ({r} bytes)", dest.display()))
}

/// Deletes backups whose name says they are older than `retention` (and temp files of backups
/// a killed run left); answers how many backups.
pub fn prune_backups(dir: &Path, retention: Duration) -> io::Result<usize> {
    if !dir.is_dir() {
        return Ok(0);
    }
    let now = SystemTime::now();
    let mut n = 0;
    for entry in walkdir::WalkDir::new(dir).follow_links(false) {
        let Ok(entry) = entry else { continue };
        if !entry.file_type().is_file() {
            continue;
        }
        let Ok(rel) = entry.path().strip_prefix(dir) else {
            continue;
        };
        let rel = rel.to_string_lossy();
        // A backup a killed run left half-written (one run per target at a time: none of
        // this run's is still being written).
        if scan::is_temp(&entry.file_name().to_string_lossy()) {
            let _ = std::fs::remove_file(entry.path());
            continue;
        }
        let Some((_, taken)) = fsops::parse_backup_name(&rel) else {
            continue;
        };
        if now.duration_since(taken).is_ok_and(|age| age > retention)
            && std::fs::remove_file(entry.path()).is_ok()
        {
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(size: u64) -> Meta {
        Meta {
            size,
            mtime_ns: 1,
            live_wal: false,
            dataless: false,
        }
    }

    /// A base entry with both sides alike, of `size` bytes.
    fn entry(size: u64) -> BaseEntry {
        let side = SideState {
            hash: [7; 32],
            size,
            mtime_ns: 1,
        };
        BaseEntry {
            local: side,
            remote: side,
        }
    }

    /// An empty report of a bidirectional run.
    fn report() -> RunReport {
        let spec = SyncSpec {
            name: "t".into(),
            primary: PathBuf::from("/p"),
            target: PathBuf::from("/t"),
            selection: Selection::default(),
            direction: Direction::Bidirectional,
            strategy: Strategy::Newest,
            backups: PathBuf::from("/b"),
            retention: Duration::from_secs(1),
            max_delete: 0.5,
            snapshots: Vec::new(),
            snapshot_every: Duration::from_secs(1),
            host: "h".into(),
        };
        RunReport::new(&spec, Direction::Bidirectional, Strategy::Newest, false)
    }

    fn listing(names: &[&str]) -> Listing {
        let mut l = Listing::default();
        for n in names {
            l.paths.push(n);
            l.metas.push(meta(1));
        }
        l
    }

    #[test]
    fn two_sorted_listings_join_each_path_once_in_order() {
        let a = listing(&["a", "a.b", "a/x", "c"]);
        let b = listing(&["a/x", "b", "d"]);
        let got: Vec<(&str, bool, bool)> = join(&a, &b)
            .map(|(k, l, r)| (k, l.is_some(), r.is_some()))
            .collect();
        assert_eq!(
            got,
            [
                ("a", true, false),
                ("a.b", true, false),
                ("a/x", true, true),
                ("b", false, true),
                ("c", true, false),
                ("d", false, true),
            ]
        );
        assert_eq!(join(&Listing::default(), &a).count(), 4);
        assert_eq!(join(&a, &Listing::default()).count(), 4);
    }

    #[test]
    fn merge_leaves_out_what_is_unchanged_on_both_sides_and_keeps_what_is_gone() {
        let mut base = Base::new();
        base.apply(vec![
            BaseChange::Put("same".to_string(), entry(1)),
            BaseChange::Put("changed".to_string(), entry(2)),
            BaseChange::Put("gone".to_string(), entry(1)),
        ]);
        let local = listing(&["Case", "case", "changed", "new", "same"]);
        let remote = listing(&["changed", "same"]);
        let mut report = report();
        let (items, paths) = merge(&local, &remote, &base, &HashSet::new(), &mut report);
        let names: Vec<&str> = items.iter().map(|i| paths.get(i.rel.0)).collect();
        assert_eq!(names, ["changed", "gone", "new"]);
        // Counted before: room for exactly the items needed (the colliding two included).
        assert_eq!(items.capacity(), 5);
        assert_eq!(
            report.collisions,
            vec![vec!["Case".to_string(), "case".to_string()]]
        );
        // The quick check settled the side it could: the size changed on both.
        assert!(items[0].lhash().is_none() && items[0].rhash().is_none());
        assert!(items[1].local.is_none() && items[1].remote.is_none() && items[1].base.is_some());
    }

    #[test]
    fn the_union_walks_the_base_in_step_with_the_listings() {
        let mut base = Base::new();
        base.apply(
            ["0first", "b", "c/x", "zz"]
                .iter()
                .map(|p| BaseChange::Put(p.to_string(), entry(1)))
                .collect(),
        );
        let local = listing(&["a", "b", "c"]);
        let remote = listing(&["b", "c/x", "d"]);
        let got: Vec<(&str, bool, bool, bool)> = union(&local, &remote, &base)
            .map(|(k, l, r, b)| (k, l.is_some(), r.is_some(), b.is_some()))
            .collect();
        assert_eq!(
            got,
            [
                ("0first", false, false, true),
                ("a", true, false, false),
                ("b", true, true, true),
                ("c", true, false, false),
                ("c/x", false, true, true),
                ("d", false, true, false),
                ("zz", false, false, true),
            ]
        );
        let none = Listing::default();
        assert_eq!(union(&none, &none, &base).count(), 4);
        assert_eq!(union(&local, &none, &Base::new()).count(), 3);
    }

    #[test]
    fn names_on_disk_collide_and_a_path_only_in_the_base_collides_with_nothing() {
        let mut base = Base::new();
        base.apply(vec![BaseChange::Put("Notes/A.txt".into(), entry(1))]);
        // The same name in NFD on one side, in another case on the other.
        let local = listing(&["notes/a\u{301}.txt", "notes/a.txt"]);
        let remote = listing(&["notes/\u{e1}.txt", "other"]);
        let mut report = report();
        let (items, paths) = merge(&local, &remote, &base, &HashSet::new(), &mut report);
        let names: Vec<&str> = items.iter().map(|i| paths.get(i.rel.0)).collect();
        // The base-only name is on neither side: it is forgotten, and collides with nothing
        // (a case-only rename made on both sides settles instead of staying held for good).
        assert_eq!(names, ["Notes/A.txt", "notes/a.txt", "other"]);
        assert_eq!(
            report.collisions,
            vec![vec![
                "notes/a\u{301}.txt".to_string(),
                "notes/\u{e1}.txt".to_string()
            ]]
        );
    }
}
