//! One sync run of a target, in phases with typed values between them:
//!
//! 1. [`guards`](super::guards): offline, marker, lock → [`Guarded`](super::guards::Guarded);
//! 2. [`listings`](super::listings): both sides scanned → two [`Listing`]s;
//! 3. [`items`](super::items): the listings and the base joined → the paths that need a
//!    decision, then [`hashing`](super::hashing) of what the quick check could not settle;
//! 4. [`plan`](super::plan): each path decided (pure) → a [`Plan`], and the guard on mass
//!    deletion;
//! 5. [`apply`](super::apply) with [`record`](super::record): the steps applied in chunks, each
//!    chunk's base committed once its files are durable; databases through
//!    [`databases`](super::databases) snapshots;
//! 6. the daemon's own databases pushed as per-host snapshots, old backups pruned
//!    ([`backups::prune_backups`](super::backups::prune_backups)).
//!
//! Plain-file work (scanning, hashing, copying, fsync) runs on the blocking pool, spread over
//! [`WORKERS`] threads; SQLite snapshots go through sqlx's own threads.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::classify::Side;
use super::classify::{Direction, Strategy};
use super::report::{action_name, fmt_side, Planned, Stop};
use super::scan::Listing;
use super::scan::Selection;
use super::temps::Temps;
use super::{apply, backups, databases, guards, hashing, items, listings, plan, renames, shapes};
use crate::store::sync::{Base, ConflictRow};
use crate::store::Store;

pub use super::report::{ConflictReport, Outcome, Refusal, RunReport};

/// Threads for hashing and copying plain files.
pub const WORKERS: usize = 2;
/// Base changes committed together (a killed run loses at most this many, which the next run
/// finds agreeing and records without copying again).
pub const COMMIT_BATCH: usize = 2_000;
/// How long a write of the store (the base, the first sync) may wait.
pub(super) const STORE_WAIT: Duration = Duration::from_secs(60);

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
    /// A run that would delete more than this share of the synced files stops (0..=1)...
    pub max_delete: f64,
    /// ... unless it deletes this many files or fewer (`max_delete_floor`, default 10).
    pub max_delete_floor: usize,
    /// Live databases (absolute paths) pushed as snapshots into `hosts/HOST/` of the target.
    pub snapshots: Vec<PathBuf>,
    /// How often those snapshots are refreshed.
    pub snapshot_every: Duration,
    /// This machine's name (snapshots' folder, conflict copies).
    pub host: String,
    /// The daemon's state dir: never inside the target (checked before every run, symlinks
    /// resolved, as `check` does).
    pub state_dir: PathBuf,
}

/// What a forced run may override.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub direction: Option<Direction>,
    pub strategy: Option<Strategy>,
    pub dry_run: bool,
    /// How long to wait for the target's lock when another run holds it (a forced run);
    /// `None`: a held lock skips the run at once (a scheduled run).
    pub lock_wait: Option<Duration>,
    /// The stamp (run ID) of the target's previous run or job that may have taken backups: this
    /// run's is a later second, so that each run's backups are its own (`backups restore
    /// --run`). Set by the target's actor.
    pub after_stamp: Option<String>,
    /// An operator lets this run through the guard on mass deletion (`sync TARGET
    /// --allow-deletes N`): up to N deletions, whatever `max_delete`; more stop it. The
    /// deletions it plans are listed in the report's `planned`.
    pub allow_deletes: Option<usize>,
}

/// Live counters of a run, for progress bars and `sync status`.
#[derive(Debug, Default)]
pub struct Progress {
    pub files_total: AtomicU64,
    pub files_done: AtomicU64,
    pub bytes_total: AtomicU64,
    pub bytes_done: AtomicU64,
    /// While the run waits for the target's lock: who holds it (shared with the blocking
    /// task that waits).
    pub waiting: Arc<std::sync::Mutex<Option<String>>>,
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
        self.set_waiting(None);
    }

    /// Who holds the lock the run waits for (`None`: not waiting).
    pub fn set_waiting(&self, who: Option<String>) {
        *self.waiting.lock().unwrap_or_else(|e| e.into_inner()) = who;
    }

    /// [`Progress::set_waiting`]'s last word.
    pub fn waiting(&self) -> Option<String> {
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The run. `base` is the target's base as committed (read by the caller, kept in step with
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
        Err(stop) => report.stop(stop),
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

/// The phases, in order (see the module's header).
async fn run_inner(
    spec: &SyncSpec,
    opts: &RunOptions,
    store: &Store,
    base: &mut Base,
    open: &[ConflictRow],
    progress: &Progress,
    report: &mut RunReport,
) -> Result<(), Stop> {
    let mut phases = Phases::new();
    let mut guarded = guards::check(spec, opts, base.is_empty(), store, progress).await?;
    // A first sync (a new or restored marker): no base, so nothing is read as deleted. The
    // store let it go already (not for a dry run, which only plans with none).
    let mut none = Base::new();
    report.first_sync = guarded.union;
    let base = match (guarded.union, opts.dry_run) {
        (true, true) => &mut none,
        (true, false) => {
            *base = Base::new();
            base
        }
        (false, _) => base,
    };
    phases.mark("guards");

    let room = (base.len(), base.path_bytes());
    let (mut local, mut remote) =
        listings::list_both(spec, opts.dry_run, store, report, room).await?;
    // Both listings are of the folders the run started on (a drive that dropped out during
    // the scan listed as empty would read as deleted).
    guards::check_id(spec, guarded.id.as_ref()).await?;
    let temps = Arc::new(Temps::new());
    // Type conflicts (a file here, a folder there, both changed) are settled, and case-only
    // renames made on one side made on the other, before anything is planned; then both
    // sides are listed again.
    // Off the scheduler thread: a join of a million paths takes a good part of a second.
    let (clashes, renames);
    (local, remote, clashes, renames) = with_base(base, move |base| {
        let one_sided = items::one_sided(&local, &remote);
        let (clashes, renames) = if one_sided.is_empty() {
            (Vec::new(), Vec::new())
        } else {
            (
                shapes::clashes(&one_sided, &local, &remote, base),
                renames::find(&one_sided, base),
            )
        };
        drop(one_sided);
        (local, remote, clashes, renames)
    })
    .await?;
    if !clashes.is_empty() || !renames.is_empty() {
        if opts.dry_run {
            for c in &clashes {
                let how = shapes::settle(c, report.direction, report.strategy);
                report.planned.push(Planned {
                    path: c.rel.clone(),
                    action: format!(
                        "type conflict (a file on one side, a folder on the other): {how:?}"
                    ),
                    local: String::new(),
                    remote: String::new(),
                });
                report
                    .skipped
                    .push((c.rel.clone(), "a type conflict: settled by a run".into()));
            }
            for r in &renames {
                report.planned.push(Planned {
                    path: r.from.clone(),
                    action: format!("rename to {} (a case-only rename)", r.to),
                    local: String::new(),
                    remote: String::new(),
                });
            }
        } else {
            let at = run_time(opts.after_stamp.as_deref(), SystemTime::now());
            guards::rotate(spec, store, &mut guarded).await?;
            let (l, r) = first_settle(
                spec, store, base, &guarded, &temps, clashes, renames, local, remote, report, at,
            )
            .await?;
            (local, remote) = (l, r);
        }
    }
    let stable = [local.stable_inodes, remote.stable_inodes];
    for (side, stable) in [("primary", stable[0]), ("target", stable[1])] {
        if !stable {
            report.hashed_every_run.push(side.to_string());
        }
    }
    listings::missing_listed(&local, base, report);
    phases.mark("scan");
    let skipped: HashSet<String> = report.skipped.iter().map(|(p, _)| p.clone()).collect();
    let (mut items, names, collisions) = with_base(base, move |base| {
        let mut collisions = Vec::new();
        let (items, names) = items::merge(&local, &remote, base, &skipped, &mut collisions);
        // The listings are done with: what needs doing is in the items (freed here, not on
        // the scheduler thread).
        drop((local, remote, skipped));
        (items, names, collisions)
    })
    .await?;
    report.collisions.extend(collisions);
    report.collisions.sort();
    phases.mark("merge");
    let disputed: HashSet<&str> = open.iter().map(|c| c.path.as_str()).collect();
    hashing::hash_sides(spec, &mut items, &names, &disputed, report).await?;
    phases.mark("hash");

    let held: Vec<String> = report
        .skipped
        .iter()
        .map(|(rel, _)| rel.clone())
        .chain(report.collisions.iter().flatten().cloned())
        .collect();
    let (open, listed_paths) = (open.to_vec(), spec.selection.paths.clone());
    let (direction, strategy) = (report.direction, report.strategy);
    let (list_all, list_deletions) = (opts.dry_run, opts.allow_deletes.is_some());
    // Off the scheduler thread, as the joins: a first copy plans a million items.
    let (items, names, mut plan, planned, listed) = with_base(base, move |base| {
        let held: HashSet<&str> = held.iter().map(String::as_str).collect();
        let plan = plan::plan(
            &mut items,
            &names,
            base,
            &open,
            &held,
            direction,
            strategy,
            super::scan::now_ns(),
        );
        // What the run is to do, listed before the guard (a refused run lists it too): every
        // step by a dry run, the deletions by a run an operator let through the guard.
        let mut planned = Vec::new();
        if list_all || list_deletions {
            for &(index, a) in &plan.steps {
                if list_all || plan::is_deletion(a) {
                    let item = &items[index];
                    planned.push(Planned {
                        path: item.rel.of(&names).to_string(),
                        action: action_name(a).to_string(),
                        local: fmt_side(item.local),
                        remote: fmt_side(item.remote),
                    });
                }
            }
        }
        let listed = plan::per_listed(&plan.steps, &items, &names, &listed_paths, base);
        (items, names, plan, planned, listed)
    })
    .await?;
    report
        .unresolved
        .extend(std::mem::take(&mut plan.unresolved));
    report.pending.extend(std::mem::take(&mut plan.pending));
    report.planned.extend(planned);
    if let Some(stop) = plan::mass_deletion(
        &plan.steps,
        base.len(),
        &listed,
        spec.max_delete,
        spec.max_delete_floor,
        opts.allow_deletes,
        &spec.name,
    ) {
        return Err(stop);
    }
    phases.mark("decide");
    if opts.dry_run {
        return Ok(());
    }

    let cx = apply::Ctx {
        spec: spec.clone(),
        at: run_time(opts.after_stamp.as_deref(), SystemTime::now()),
        temps,
        stable,
    };

    if !plan.steps.is_empty() {
        // The marker names the state this run leaves the target in (an image of it taken
        // before is then told apart).
        guards::rotate(spec, store, &mut guarded).await?;
        cx.temps
            .register(store, &spec.name)
            .await
            .map_err(Stop::error)?;
        // Every backup the run takes is named with this stamp: it is the run's ID.
        report.run_id = Some(super::fsops::stamp(cx.at));
        phases.mark("marker and temps");
    }
    let record = super::record::Record::new(
        spec,
        store,
        guarded.id.clone(),
        guarded.lock.as_ref(),
        cx.at,
        plan.touched,
        plan.closing,
    );
    apply::apply(
        &cx,
        base,
        &items,
        &names,
        &plan.steps,
        record,
        progress,
        report,
        &mut phases,
    )
    .await?;
    // A first copy's million items are freed on the blocking pool, not the scheduler thread.
    let steps = plan.steps;
    blocking(move || drop((items, names, steps))).await?;

    // The run's changes are made: the marker names the state they leave (not an image of the
    // target taken while they were being made).
    guards::rotate_after(spec, store, &mut guarded).await?;
    // Still the folders the run began on: nothing of this host goes to a bare mountpoint.
    guards::check_id(spec, guarded.id.as_ref()).await?;
    phases.mark("marker after");
    // The daemon's own live databases: snapshots into .metasystem-hosts/HOST/.
    for db in &spec.snapshots {
        let what = databases::push_snapshot(&cx, store, db).await;
        report.snapshots.push((
            db.display().to_string(),
            what.unwrap_or_else(|e| format!("failed: {e}")),
        ));
    }

    // Backups past retention: at most once an hour per backups folder (a walk of all of
    // them, which a run every few seconds would repeat for nothing; retention is in days).
    if prune_due(&spec.backups) {
        let dir = spec.backups.clone();
        let retention = spec.retention;
        report.backups_pruned = blocking(move || backups::prune_backups(&dir, retention))
            .await?
            .unwrap_or(0);
    }
    if let Some(lock) = guarded.lock {
        lock.release().await;
    }
    phases.mark("snapshots and pruning");
    phases.log(&spec.name);
    Ok(())
}

/// Where a run's time went, phase by phase: logged at debug level when the run ends
/// (`RUST_LOG=metasystem_actors::sync=debug`).
pub struct Phases {
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
    pub(super) fn add(&mut self, name: &'static str, d: Duration) {
        match self.spent.iter_mut().find(|(n, _)| *n == name) {
            Some((_, total)) => *total += d,
            None => self.spent.push((name, d)),
        }
    }

    /// The phase `name` ended now.
    pub(super) fn mark(&mut self, name: &'static str) {
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

/// How often a backups folder is pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Whether `dir`'s backups are due to be pruned (the first run of a daemon prunes): if so,
/// the time is noted now.
fn prune_due(dir: &Path) -> bool {
    static LAST: std::sync::Mutex<Option<HashMap<PathBuf, Instant>>> = std::sync::Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    let last = last.get_or_insert_with(HashMap::new);
    let now = Instant::now();
    match last.get(dir) {
        Some(at) if now.duration_since(*at) < PRUNE_EVERY => false,
        _ => {
            last.insert(dir.to_path_buf(), now);
            true
        }
    }
}

/// Settles `clashes` and makes `renames` (blocking), records what the base learns, and lists
/// both sides again.
#[allow(clippy::too_many_arguments)]
async fn first_settle(
    spec: &SyncSpec,
    store: &Store,
    base: &mut Base,
    guarded: &guards::Guarded,
    temps: &Arc<Temps>,
    clashes: Vec<shapes::Clash>,
    renames: Vec<renames::Rename>,
    local: Listing,
    remote: Listing,
    report: &mut RunReport,
    at: SystemTime,
) -> Result<(Listing, Listing), Stop> {
    if !clashes.is_empty() {
        temps
            .register(store, &spec.name)
            .await
            .map_err(Stop::error)?;
    }
    // A copy of the base for the blocking task (rare: only when there is something to do).
    let (s, t, b) = (spec.clone(), temps.clone(), base.clone());
    let (direction, strategy) = (report.direction, report.strategy);
    let (settled, renamed) = blocking(move || {
        let mut settled = Vec::new();
        for c in &clashes {
            let how = shapes::settle(c, direction, strategy);
            let folder_side = if c.file_on == Side::Local {
                &remote
            } else {
                &local
            };
            settled.push((
                c.rel.clone(),
                shapes::apply(&s, c, how, folder_side, &b, at, &t),
            ));
        }
        let mut renamed = Vec::new();
        for r in renames {
            let root = if r.side == Side::Local {
                &s.primary
            } else {
                &s.target
            };
            let done = renames::apply(root, &r);
            renamed.push((r, done));
        }
        (settled, renamed)
    })
    .await?;
    let mut changes = Vec::new();
    for (rel, r) in settled {
        match r {
            Ok((c, line)) => {
                changes.extend(c);
                report.conflicts.push(line);
            }
            Err(e) => report.errors.push((
                rel,
                format!("cannot settle a type conflict (a file here, a folder there): {e}"),
            )),
        }
    }
    // Each batch recorded as any run's are (identity and lock checked first).
    let record = |changes| {
        super::record::Record::new(
            spec,
            store,
            guarded.id.clone(),
            guarded.lock.as_ref(),
            at,
            changes,
            Vec::new(),
        )
    };
    record(changes).commit(base).await?;
    for (r, done) in renamed {
        match done {
            Ok(()) => {
                let changes = renames::rebase(base, &r);
                record(changes).commit(base).await?;
                report.renamed.push((r.from, r.to));
            }
            Err(e) => report.errors.push((
                r.from.clone(),
                format!("cannot rename it {} (a case-only rename): {e}", r.to),
            )),
        }
    }
    report.skipped.clear();
    let errors = std::mem::take(&mut report.errors);
    let room = (base.len(), base.path_bytes());
    let listed = listings::list_both(spec, false, store, report, room).await?;
    report.errors.splice(0..0, errors);
    guards::check_id(spec, guarded.id.as_ref()).await?;
    Ok(listed)
}

/// The time a run's changes are stamped with (its backups' names, its ID): `now`, or when
/// that is not past the second of `after` (the previous run's or job's stamp, which may
/// itself be a moment ahead), the second after it: stamps only grow, a run or job after
/// another is never stamped before it, and nothing waits for the clock. A clock set back
/// far (over a minute) is not followed.
pub fn run_time(after: Option<&str>, now: SystemTime) -> SystemTime {
    match after.and_then(super::fsops::parse_stamp) {
        Some(last)
            if super::fsops::stamp(now) <= super::fsops::stamp(last)
                && last < now + Duration::from_secs(60) =>
        {
            last + Duration::from_secs(1)
        }
        _ => now,
    }
}

/// Runs `f` on the blocking pool with the base moved in and back (pure steps over every path,
/// which on the daemon's one scheduler thread held up every other actor and `sync status`);
/// a task that panicked ends the run (the base is then left empty: the caller reads it again
/// from the store for the next run, never from this copy).
async fn with_base<R: Send + 'static>(
    base: &mut Base,
    f: impl FnOnce(&Base) -> R + Send + 'static,
) -> Result<R, Stop> {
    let taken = std::mem::take(base);
    let (taken, r) = blocking(move || {
        let r = f(&taken);
        (taken, r)
    })
    .await?;
    *base = taken;
    Ok(r)
}

/// Lowers the calling thread's CPU priority (nice +10; Syncthing lowers its whole process by
/// default): a run's scans, hashes and copies yield the CPU to the daemon's scheduler thread
/// (the control socket, the tree) and to the user's programs, and still take all of it when
/// nothing else wants it. Only on threads of a run's own (never the shared blocking pool, whose
/// threads serve the control socket's reads after): a thread cannot raise its priority back.
/// Linux only, where the nice value is a thread's; elsewhere it is the whole process's.
pub(super) fn lower_priority() {
    #[cfg(target_os = "linux")]
    if let Ok(now) = rustix::process::getpriority_process(None) {
        let _ = rustix::process::setpriority_process(None, (now + 10).min(19));
    }
}

/// Starts `f` on a thread of its own at a lower priority ([`lower_priority`]); its result
/// comes through the receiver (closed if it panicked).
pub(super) fn spawn_low<R: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> R + Send + 'static,
) -> Result<tokio::sync::oneshot::Receiver<R>, Stop> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            lower_priority();
            let _ = tx.send(f());
        })
        .map_err(|e| Stop::error(format!("cannot start a sync thread: {e}")))?;
    Ok(rx)
}

/// Runs blocking `f` on the blocking pool; a task that panicked ends the run.
pub(super) async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> R + Send + 'static,
) -> Result<R, Stop> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Stop::error(format!("a sync task failed: {e}")))
}

/// Runs `f` over `items` on [`WORKERS`] threads; answers the results in input order. Each
/// thread claims runs of consecutive items: paths come sorted, so the threads work in
/// different folders rather than side by side in one, where each create and rename waited
/// for the other's hold on the folder (a fifth of a first copy's system time went to that).
pub(super) fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    if items.len() < 64 {
        return items.iter().map(&f).collect();
    }
    let run = (items.len() / (WORKERS * 8)).clamp(1, 256);
    let next = AtomicUsize::new(0);
    let parts: Vec<Vec<(usize, R)>> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..WORKERS)
            .map(|_| {
                s.spawn(|| {
                    lower_priority();
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Two runs in one second: the second is stamped a second later (no wait); a run in a
    /// later second, or after a clock set back, is stamped now.
    #[test]
    fn a_run_in_the_same_second_as_the_previous_is_stamped_the_next() {
        let now = std::time::UNIX_EPOCH + Duration::from_millis(1_795_000_000_400);
        let same = super::super::fsops::stamp(now);
        let next = run_time(Some(&same), now);
        assert_eq!(
            super::super::fsops::stamp(next),
            super::super::fsops::stamp(now + Duration::from_secs(1))
        );
        assert_eq!(run_time(None, now), now);
        assert_eq!(run_time(Some("20200101-000000"), now), now);
        // After a stamp a moment ahead (itself a second after its own previous): the one after.
        assert_eq!(
            super::super::fsops::stamp(run_time(Some(&super::super::fsops::stamp(next)), now)),
            super::super::fsops::stamp(now + Duration::from_secs(2))
        );
        // A clock set back far: not followed; a little: stamps still grow.
        let far = super::super::fsops::stamp(now + Duration::from_secs(120));
        assert_eq!(run_time(Some(&far), now), now);
        let near = now + Duration::from_secs(30);
        assert!(run_time(Some(&super::super::fsops::stamp(near)), now) > near);
    }
}
