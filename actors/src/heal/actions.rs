//! The heal actions, and [`execute`], which runs one.
//!
//! [`execute`] never panics and never returns an error: whatever happens is a [`HealOutcome`]
//! (`ok`, and one line saying what was done or why not). It checks the action first
//! ([`HealAction::validate`], the same rules the config layer should apply when it loads the
//! action). It does not bound the run as a whole: a command has its own timeout, the filesystem
//! sweeps are bounded in entries, a vacuum in its wait for locks; restart and sync are bounded by
//! the [`Tree`] that does them. A caller may still wrap it in a timeout: dropping the future
//! kills a command's process group; a sweep already on the blocking pool, or a `VACUUM` already
//! sent to SQLite, finishes on its own thread.
//!
//! The sweeps (`cleanup`, `prune_backups`) are written so that a config mistake cannot wipe a
//! disk: the directory must be absolute with at least two named components (`/var/tmp` yes,
//! `/tmp` and `/` no), and neither the home directory nor one of its ancestors, both as written
//! and once symlinks are resolved; only regular files are removed, symlinks are never followed
//! (a symlink is left alone, whatever it points to), directories are never removed.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::panic::AssertUnwindSafe;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde::Serialize;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor};

use crate::breakers::{Breakers, StateName};
use crate::probes::command::{classify, first_line, run_program};
use crate::probes::{fmt_bytes, fmt_limit, CommandSpec};
use crate::sync::backups::{PruneLimits, Pruned};

/// How long backups are kept by default (DESIGN: "pruned after 30 days").
pub const BACKUP_RETENTION: Duration = Duration::from_secs(30 * 86_400);
/// The most directory entries one sweep looks at; past it the sweep stops, and the next run
/// goes on (what was old is gone by then).
pub const MAX_ENTRIES: usize = 100_000;
/// How long a vacuum waits for a lock another connection holds before it gives up (busy).
pub const VACUUM_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest pattern accepted for `cleanup`.
pub const MAX_PATTERN: usize = 255;
/// The daemon's own files in its state dir, which no sweep removes, in whatever directory it
/// finds them (a swept directory may be the state dir, or a link to it): deleting the live
/// store or the lock loses every event since the last checkpoint and lets a second daemon in.
pub const DAEMON_FILES: &[&str] = &[
    "metastore.db",
    "metastore.db-wal",
    "metastore.db-shm",
    "metastore.db-journal",
    "daemon.lock",
];
/// How many breaker names an unknown-breaker failure lists.
const NAMES_SHOWN: usize = 20;

/// What a probe can do about its problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealAction {
    /// Restart a node of the supervision tree (`path` as the tree names it), through [`Tree`].
    Restart { path: String },
    /// Run a sync target now, through [`Tree`].
    Sync { target: String },
    /// Remove backups (as sync names them: `BackupName`) older than `older_than` in `dir` and
    /// below it (not crossing into another filesystem), with the pruner sync targets use
    /// (`sync::backups::prune`). A backup's age is from the newer of its mtime and the
    /// timestamp in its name, so a backup made by renaming an old file is not taken for an
    /// old backup. Conflict copies, temp files and other files are never touched.
    PruneBackups { dir: PathBuf, older_than: Duration },
    /// `PRAGMA optimize` then `VACUUM` on an SQLite database (never created when missing).
    Vacuum { db: PathBuf },
    /// Remove regular files directly in `dir` (not below it: a deliberate limit) whose mtime is
    /// older than `older_than` and whose name matches `pattern` (see [`glob_match`]; `None`:
    /// any name).
    Cleanup {
        dir: PathBuf,
        older_than: Duration,
        pattern: Option<String>,
    },
    /// Move a circuit breaker that is open to half-open, so the next calls try the dependency.
    ResetBreaker { name: String },
    /// Run a program (no shell, its own process group; see [`crate::probes::command`]): exit 0
    /// is success.
    Command {
        program: String,
        args: Vec<String>,
        timeout: Duration,
    },
}

impl HealAction {
    /// `restart`, `sync`, `prune_backups`, `vacuum`, `cleanup`, `reset_breaker`, `command`.
    pub fn name(&self) -> &'static str {
        match self {
            HealAction::Restart { .. } => "restart",
            HealAction::Sync { .. } => "sync",
            HealAction::PruneBackups { .. } => "prune_backups",
            HealAction::Vacuum { .. } => "vacuum",
            HealAction::Cleanup { .. } => "cleanup",
            HealAction::ResetBreaker { .. } => "reset_breaker",
            HealAction::Command { .. } => "command",
        }
    }

    /// What it acts on: the tree path, the sync target, the directory, the database, the
    /// breaker's name, the program with its arguments.
    pub fn target(&self) -> String {
        match self {
            HealAction::Restart { path } => path.clone(),
            HealAction::Sync { target } => target.clone(),
            HealAction::PruneBackups { dir, .. } | HealAction::Cleanup { dir, .. } => {
                dir.display().to_string()
            }
            HealAction::Vacuum { db } => db.display().to_string(),
            HealAction::ResetBreaker { name } => name.clone(),
            HealAction::Command { program, args, .. } => {
                let mut words = vec![program.as_str()];
                words.extend(args.iter().map(String::as_str));
                words.join(" ")
            }
        }
    }

    /// The rules an action must follow, for the config layer (which should call this when it
    /// loads an action) and for [`execute`] (which refuses an action that breaks them).
    /// Directories are checked as written here; [`execute`] checks them again once symlinks
    /// are resolved.
    pub fn validate(&self) -> Result<(), String> {
        let non_empty = |what: &str, value: &str| {
            if value.trim().is_empty() {
                Err(format!("{}: {what} is empty", self.name()))
            } else {
                Ok(())
            }
        };
        match self {
            HealAction::Restart { path } => non_empty("the tree path", path),
            HealAction::Sync { target } => non_empty("the sync target", target),
            HealAction::ResetBreaker { name } => non_empty("the breaker name", name),
            HealAction::Vacuum { db } => non_empty("the database path", &db.to_string_lossy()),
            HealAction::Command {
                program, timeout, ..
            } => {
                non_empty("the program", program)?;
                if timeout.is_zero() {
                    return Err("command: the timeout is zero".to_string());
                }
                Ok(())
            }
            HealAction::PruneBackups { dir, older_than } => {
                if older_than.is_zero() {
                    return Err(
                        "prune_backups: older_than is zero, which would remove every backup"
                            .to_string(),
                    );
                }
                sweepable(dir, home_dir().as_deref()).map_err(|e| format!("prune_backups: {e}"))
            }
            HealAction::Cleanup { dir, pattern, .. } => {
                if let Some(p) = pattern {
                    if p.is_empty() || p.len() > MAX_PATTERN || p.contains(['/', '\0']) {
                        return Err(format!(
                            "cleanup: the pattern {p:?} is not a file name pattern (1 to \
                             {MAX_PATTERN} bytes, no '/')"
                        ));
                    }
                }
                sweepable(dir, home_dir().as_deref()).map_err(|e| format!("cleanup: {e}"))
            }
        }
    }
}

/// What the daemon's supervision tree does for heal actions (the daemon implements it).
pub trait Tree: Send + Sync {
    /// Restarts the node at `path` (as the tree names it).
    fn restart(&self, path: &str) -> BoxFuture<'_, Result<(), String>>;
    /// Runs the sync target now; answers a one-line summary of what it did.
    fn sync(&self, target: &str) -> BoxFuture<'_, Result<String, String>>;
}

/// What actions reach.
#[derive(Clone)]
pub struct HealContext {
    pub tree: Arc<dyn Tree>,
    pub breakers: Breakers,
}

impl std::fmt::Debug for HealContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealContext")
            .field("breakers", &self.breakers)
            .finish_non_exhaustive()
    }
}

/// How an action went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealOutcome {
    pub ok: bool,
    /// One line for people: what was done, or why it failed.
    pub detail: String,
}

impl HealOutcome {
    pub fn success(detail: impl Into<String>) -> Self {
        HealOutcome {
            ok: true,
            detail: detail.into(),
        }
    }

    pub fn failure(detail: impl Into<String>) -> Self {
        HealOutcome {
            ok: false,
            detail: detail.into(),
        }
    }
}

/// Runs `action`. Never panics (a panic inside, for example in a [`Tree`] implementation, is a
/// failed outcome); see the module documentation for what bounds it.
pub async fn execute(action: &HealAction, cx: &HealContext) -> HealOutcome {
    if let Err(e) = action.validate() {
        return HealOutcome::failure(format!("refused: {e}"));
    }
    match AssertUnwindSafe(run(action, cx)).catch_unwind().await {
        Ok(outcome) => outcome,
        Err(panic) => HealOutcome::failure(format!(
            "the {} action panicked: {}",
            action.name(),
            panic_message(panic.as_ref())
        )),
    }
}

async fn run(action: &HealAction, cx: &HealContext) -> HealOutcome {
    match action {
        HealAction::Restart { path } => match cx.tree.restart(path).await {
            Ok(()) => HealOutcome::success(format!("restarted {path}")),
            Err(e) => HealOutcome::failure(format!("cannot restart {path}: {e}")),
        },
        HealAction::Sync { target } => match cx.tree.sync(target).await {
            Ok(summary) if summary.trim().is_empty() => {
                HealOutcome::success(format!("synced {target}"))
            }
            Ok(summary) => HealOutcome::success(summary),
            Err(e) => HealOutcome::failure(format!("sync of {target} failed: {e}")),
        },
        HealAction::PruneBackups { dir, older_than } => {
            prune_outcome(dir.clone(), *older_than, home_dir()).await
        }
        HealAction::Cleanup {
            dir,
            older_than,
            pattern,
        } => {
            sweep_outcome(Sweep {
                dir: dir.clone(),
                older_than: *older_than,
                select: Select::Pattern(pattern.clone()),
                max_depth: 0,
                home: home_dir(),
            })
            .await
        }
        HealAction::Vacuum { db } => vacuum(db, VACUUM_BUSY_TIMEOUT).await,
        HealAction::ResetBreaker { name } => reset_breaker(&cx.breakers, name),
        HealAction::Command {
            program,
            args,
            timeout,
        } => command(program, args, *timeout).await,
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}

// ------------------------------------------------------------------------------------------
// reset_breaker

fn reset_breaker(breakers: &Breakers, name: &str) -> HealOutcome {
    let Some(breaker) = breakers.get(name) else {
        let names = breakers.names();
        let known = if names.is_empty() {
            "there are none".to_string()
        } else if names.len() > NAMES_SHOWN {
            format!(
                "known: {}, ... ({} in all)",
                names[..NAMES_SHOWN].join(", "),
                names.len()
            )
        } else {
            format!("known: {}", names.join(", "))
        };
        return HealOutcome::failure(format!("no breaker named {name:?}; {known}"));
    };
    match breaker.state() {
        StateName::Open => match breaker.half_open() {
            Some(t) => HealOutcome::success(format!("breaker {name}: {} -> {}", t.from, t.to)),
            None => HealOutcome::success(format!("breaker {name} is already half_open")),
        },
        StateName::HalfOpen => HealOutcome::success(format!("breaker {name} is already half_open")),
        state @ (StateName::Closed | StateName::Disabled) => {
            HealOutcome::success(format!("breaker {name} is {state}; nothing to do"))
        }
        // The operator's decision (`breakers open NAME`) is not undone by a heal action.
        StateName::ForcedOpen => HealOutcome::failure(format!(
            "breaker {name} was forced open by the operator; left alone"
        )),
    }
}

// ------------------------------------------------------------------------------------------
// command

async fn command(program: &str, args: &[String], timeout: Duration) -> HealOutcome {
    let spec = CommandSpec::new(program, args.to_vec());
    let exited = match tokio::time::timeout(timeout, run_program(&spec)).await {
        Err(_) => {
            return HealOutcome::failure(format!(
                "{program} timed out after {}",
                fmt_limit(timeout)
            ))
        }
        Ok(Err(e)) => return HealOutcome::failure(e),
        Ok(Ok(exited)) => exited,
    };
    let (_, words) = classify(exited.status.code(), exited.status.signal());
    let (stdout, stderr) = (exited.stdout.text(), exited.stderr.text());
    let detail = match first_line(&stdout).or_else(|| first_line(&stderr)) {
        Some(line) => format!("{words}: {line}"),
        None => format!("{words}, no output"),
    };
    HealOutcome {
        ok: exited.status.code() == Some(0),
        detail,
    }
}

// ------------------------------------------------------------------------------------------
// vacuum

fn wal_path(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push("-wal");
    PathBuf::from(s)
}

/// The database's size with its WAL.
async fn db_size(db: &Path) -> u64 {
    let file = tokio::fs::metadata(db).await.map(|m| m.len()).unwrap_or(0);
    let wal = tokio::fs::metadata(wal_path(db))
        .await
        .map(|m| m.len())
        .unwrap_or(0);
    file.saturating_add(wal)
}

/// SQLite's own message when there is one, else sqlx's.
fn db_error(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(d) => d.message().to_string(),
        other => other.to_string(),
    }
}

/// SQLITE_BUSY or SQLITE_LOCKED, extended codes included.
fn is_busy(e: &sqlx::Error) -> bool {
    let sqlx::Error::Database(d) = e else {
        return false;
    };
    d.code()
        .and_then(|c| c.parse::<i32>().ok())
        .is_some_and(|c| matches!(c & 0xff, 5 | 6))
}

/// `PRAGMA optimize`, `VACUUM`, and in WAL mode a truncating checkpoint (so the size shrinks
/// now, not at the next checkpoint). sqlx runs SQLite on its own worker thread.
async fn vacuum(db: &Path, busy_timeout: Duration) -> HealOutcome {
    let shown = db.display().to_string();
    match tokio::fs::metadata(db).await {
        Ok(m) if m.is_file() => {}
        Ok(_) => return HealOutcome::failure(format!("{shown} is not a file")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return HealOutcome::failure(format!("no database at {shown}: the file does not exist"))
        }
        Err(e) => return HealOutcome::failure(format!("cannot read {shown}: {e}")),
    }
    let before = db_size(db).await;
    let options = SqliteConnectOptions::new()
        .filename(db)
        .create_if_missing(false)
        .busy_timeout(busy_timeout);
    let mut conn = match options.connect().await {
        Ok(c) => c,
        Err(e) => {
            return HealOutcome::failure(format!("cannot open {shown}: {}", db_error(&e)));
        }
    };
    let done = compact(&mut conn).await;
    let _ = conn.close().await;
    let checkpoint = match done {
        Ok(c) => c,
        Err((step, e)) if is_busy(&e) => {
            return HealOutcome::failure(format!(
                "cannot {step} {shown}: the database is busy ({}; waited {})",
                db_error(&e),
                fmt_limit(busy_timeout)
            ))
        }
        Err((step, e)) => {
            return HealOutcome::failure(format!("cannot {step} {shown}: {}", db_error(&e)))
        }
    };
    let after = db_size(db).await;
    let mut detail = format!(
        "vacuumed {shown}: {} before, {} after",
        fmt_bytes(before),
        fmt_bytes(after)
    );
    if checkpoint == Checkpoint::Incomplete {
        detail.push_str(" (readers kept part of the WAL)");
    }
    HealOutcome::success(detail)
}

#[derive(Debug, PartialEq, Eq)]
enum Checkpoint {
    /// Not in WAL mode.
    NotWal,
    Complete,
    /// Readers held back part of the WAL.
    Incomplete,
}

async fn compact(
    conn: &mut sqlx::SqliteConnection,
) -> Result<Checkpoint, (&'static str, sqlx::Error)> {
    conn.execute("PRAGMA optimize")
        .await
        .map_err(|e| ("optimize", e))?;
    conn.execute("VACUUM").await.map_err(|e| ("vacuum", e))?;
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| ("read the journal mode of", e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Ok(Checkpoint::NotWal);
    }
    // (busy, frames in the WAL, frames checkpointed)
    let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| ("checkpoint", e))?;
    Ok(if busy == 0 {
        Checkpoint::Complete
    } else {
        Checkpoint::Incomplete
    })
}

// ------------------------------------------------------------------------------------------
// cleanup and prune_backups

/// `*` matches any run of characters (none included), `?` exactly one; everything else itself.
/// On the whole name; a leading `.` is not special. Linear in memory, at most
/// `pattern × name` steps.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    // The last `*` seen, and where in the name it is trying to end.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if let Some((sp, sn)) = star {
            // Let that `*` take one more character.
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

/// Whether `dir` may be swept, as written: absolute, no `..`, at least two named components,
/// and neither `home` nor an ancestor of it.
fn sweepable(dir: &Path, home: Option<&Path>) -> Result<(), String> {
    let shown = dir.display();
    if !dir.is_absolute() {
        return Err(format!("{shown} is not an absolute path"));
    }
    if dir.components().any(|c| c == Component::ParentDir) {
        return Err(format!("{shown} contains '..'"));
    }
    let named = dir
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .count();
    if named < 2 {
        return Err(format!(
            "{shown} is too close to the root (at least two levels, like /var/tmp, are required)"
        ));
    }
    if let Some(home) = home {
        if home.starts_with(dir) {
            return Err(format!(
                "{shown} is the home directory or contains it ({})",
                home.display()
            ));
        }
    }
    Ok(())
}

#[derive(Debug, Clone)]
enum Select {
    /// Any name, or the names matching the pattern.
    Pattern(Option<String>),
}

#[derive(Debug, Clone)]
struct Sweep {
    dir: PathBuf,
    older_than: Duration,
    select: Select,
    /// 0: the directory's own entries only.
    max_depth: usize,
    home: Option<PathBuf>,
}

/// Counts an error of a sweep: the first one is kept to be said.
fn sweep_error(swept: &mut Pruned, e: String) {
    swept.errors += 1;
    swept.first_error.get_or_insert(e);
}

async fn sweep_outcome(spec: Sweep) -> HealOutcome {
    let now = SystemTime::now();
    match tokio::task::spawn_blocking(move || sweep(&spec, now, MAX_ENTRIES)).await {
        Ok(Ok(s)) => swept_outcome(&s),
        Ok(Err(e)) => HealOutcome::failure(e),
        Err(_) => HealOutcome::failure("the sweep panicked or was cancelled"),
    }
}

/// `prune_backups`: the one pruner of backups (`sync::backups::prune`, as a target's runs
/// use it) in a folder checked as a cleanup's is, without touching temp files (a run may be
/// writing them).
async fn prune_outcome(dir: PathBuf, older_than: Duration, home: Option<PathBuf>) -> HealOutcome {
    let now = SystemTime::now();
    let pruned = tokio::task::spawn_blocking(move || -> Result<Pruned, String> {
        let root = checked_root(&dir, home.as_deref())?;
        let limits = PruneLimits {
            retention: older_than,
            max_entries: MAX_ENTRIES,
            own: false,
        };
        crate::sync::backups::prune(&root, limits, now)
            .map_err(|e| format!("cannot list {}: {e}", dir.display()))
    })
    .await;
    match pruned {
        Ok(Ok(p)) => swept_outcome(&p),
        Ok(Err(e)) => HealOutcome::failure(e),
        Err(_) => HealOutcome::failure("the prune panicked or was cancelled"),
    }
}

/// A sweep's or a prune's outcome, in one line.
fn swept_outcome(swept: &Pruned) -> HealOutcome {
    let files = if swept.removed == 1 { "file" } else { "files" };
    let mut detail = format!(
        "removed {} {files} ({})",
        swept.removed,
        fmt_bytes(swept.bytes)
    );
    if swept.stopped {
        detail.push_str(&format!(
            "; stopped after {} entries, the rest at the next run",
            swept.examined
        ));
    }
    if let Some(first) = &swept.first_error {
        detail.push_str(&format!("; {} errors, the first: {first}", swept.errors));
    }
    HealOutcome {
        ok: swept.errors == 0,
        detail,
    }
}

/// `dir` with its symlinks resolved, once it and what it resolves to may be swept
/// ([`sweepable`]) and it is a directory.
fn checked_root(dir: &Path, home: Option<&Path>) -> Result<PathBuf, String> {
    let shown = dir.display().to_string();
    sweepable(dir, home)?;
    let root = match std::fs::canonicalize(dir) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!("no directory at {shown}"))
        }
        Err(e) => return Err(format!("cannot read {shown}: {e}")),
    };
    // Again with symlinks resolved (the directory, or the home directory, may be a link).
    let home = home.map(|h| std::fs::canonicalize(h).unwrap_or_else(|_| h.to_path_buf()));
    sweepable(&root, home.as_deref()).map_err(|e| format!("{shown} resolves to {e}"))?;
    let meta = std::fs::metadata(&root).map_err(|e| format!("cannot read {shown}: {e}"))?;
    if !meta.is_dir() {
        return Err(format!("{shown} is not a directory"));
    }
    Ok(root)
}

/// The sweep itself, blocking. `Err`: nothing was done (a refused or unreadable directory).
fn sweep(spec: &Sweep, now: SystemTime, max_entries: usize) -> Result<Pruned, String> {
    let shown = spec.dir.display().to_string();
    let root = checked_root(&spec.dir, spec.home.as_deref())?;
    let device = std::fs::metadata(&root)
        .map_err(|e| format!("cannot read {shown}: {e}"))?
        .dev();

    let mut swept = Pruned::default();
    let mut dirs: VecDeque<(PathBuf, usize)> = VecDeque::from([(root.clone(), 0)]);
    while let Some((dir, depth)) = dirs.pop_front() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if dir == root => return Err(format!("cannot list {shown}: {e}")),
            Err(e) => {
                sweep_error(&mut swept, format!("cannot list {}: {e}", dir.display()));
                continue;
            }
        };
        for entry in entries {
            if swept.examined >= max_entries {
                swept.stopped = true;
                return Ok(swept);
            }
            swept.examined += 1;
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    sweep_error(&mut swept, format!("cannot list {}: {e}", dir.display()));
                    break;
                }
            };
            // Not following symlinks.
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let path = entry.path();
            if kind.is_dir() {
                if depth < spec.max_depth
                    && std::fs::symlink_metadata(&path).is_ok_and(|m| m.dev() == device)
                {
                    dirs.push_back((path, depth + 1));
                }
                continue;
            }
            if !kind.is_file() {
                continue; // symlinks, sockets, fifos, devices
            }
            if DAEMON_FILES.iter().any(|f| entry.file_name() == *f) {
                continue;
            }
            if let Some(size) = old_enough(spec, &entry.file_name(), &path, now) {
                match std::fs::remove_file(&path) {
                    Ok(()) => {
                        swept.removed += 1;
                        swept.bytes = swept.bytes.saturating_add(size);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        sweep_error(&mut swept, format!("cannot remove {}: {e}", path.display()))
                    }
                }
            }
        }
    }
    Ok(swept)
}

/// The file's size when it is selected and old enough to go.
fn old_enough(spec: &Sweep, name: &OsStr, path: &Path, now: SystemTime) -> Option<u64> {
    let Select::Pattern(pattern) = &spec.select;
    if let Some(p) = pattern {
        if !glob_match(p, name.to_str()?) {
            return None;
        }
    }
    let meta = std::fs::symlink_metadata(path).ok()?;
    if !meta.is_file() {
        return None;
    }
    let age = now.duration_since(meta.modified().ok()?).ok()?;
    (age > spec.older_than).then_some(meta.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breakers::{no_notifier, Breaker, BreakerConfig};
    use std::fs::{File, FileTimes};
    use std::sync::Mutex;
    use std::time::Instant;
    use std::time::UNIX_EPOCH;

    const DAY: Duration = Duration::from_secs(86_400);

    /// A [`Tree`] that records what it is asked, fails for names starting with `bad`, and
    /// panics for `panic`.
    #[derive(Default)]
    struct FakeTree {
        calls: Mutex<Vec<String>>,
    }

    impl Tree for FakeTree {
        fn restart(&self, path: &str) -> BoxFuture<'_, Result<(), String>> {
            let path = path.to_owned();
            Box::pin(async move {
                self.calls.lock().unwrap().push(format!("restart {path}"));
                if path == "panic" {
                    panic!("the tree broke");
                }
                if path.starts_with("bad") {
                    return Err("no such node".to_owned());
                }
                Ok(())
            })
        }

        fn sync(&self, target: &str) -> BoxFuture<'_, Result<String, String>> {
            let target = target.to_owned();
            Box::pin(async move {
                self.calls.lock().unwrap().push(format!("sync {target}"));
                match target.as_str() {
                    t if t.starts_with("bad") => Err("sync targets are not available".to_owned()),
                    "quiet" => Ok(String::new()),
                    _ => Ok(format!("{target}: 3 files pushed")),
                }
            })
        }
    }

    fn context() -> (Arc<FakeTree>, HealContext) {
        let tree = Arc::new(FakeTree::default());
        let cx = HealContext {
            tree: tree.clone(),
            breakers: Breakers::new(),
        };
        (tree, cx)
    }

    /// A file of `len` bytes last modified `age` ago.
    fn file_aged(path: &Path, len: usize, age: Duration) {
        std::fs::write(path, vec![b'x'; len]).unwrap();
        let f = File::options().write(true).open(path).unwrap();
        f.set_times(FileTimes::new().set_modified(SystemTime::now() - age))
            .unwrap();
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn names_and_targets() {
        let actions = [
            (
                HealAction::Restart {
                    path: "root/store".into(),
                },
                "restart",
                "root/store",
            ),
            (
                HealAction::Sync {
                    target: "icloud".into(),
                },
                "sync",
                "icloud",
            ),
            (
                HealAction::PruneBackups {
                    dir: "/var/lib/m/backups".into(),
                    older_than: BACKUP_RETENTION,
                },
                "prune_backups",
                "/var/lib/m/backups",
            ),
            (
                HealAction::Vacuum {
                    db: "/var/lib/m/metastore.db".into(),
                },
                "vacuum",
                "/var/lib/m/metastore.db",
            ),
            (
                HealAction::Cleanup {
                    dir: "/var/tmp/m".into(),
                    older_than: DAY,
                    pattern: Some("*.tmp".into()),
                },
                "cleanup",
                "/var/tmp/m",
            ),
            (
                HealAction::ResetBreaker { name: "db".into() },
                "reset_breaker",
                "db",
            ),
            (
                HealAction::Command {
                    program: "systemctl".into(),
                    args: vec!["restart".into(), "x".into()],
                    timeout: Duration::from_secs(5),
                },
                "command",
                "systemctl restart x",
            ),
        ];
        for (action, name, target) in actions {
            assert_eq!(action.name(), name);
            assert_eq!(action.target(), target);
        }
    }

    #[test]
    fn globs_match_whole_names() {
        let cases = [
            ("*.tmp", "a.tmp", true),
            ("*.tmp", ".tmp", true),
            ("*.tmp", "a.tmp.gz", false),
            ("*.tmp", "a.TMP", false),
            ("core.?", "core.1", true),
            ("core.?", "core.12", false),
            ("core.?", "core.", false),
            ("*", "", true),
            ("", "", true),
            ("", "a", false),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("*a*a*a*a*b", &"a".repeat(200), false),
            ("log-*-??.txt", "log-2024-01.txt", true),
            ("log-*-??.txt", "log-2024-1.txt", false),
            ("é?", "éü", true),
            ("**x", "x", true),
        ];
        for (p, n, want) in cases {
            assert_eq!(glob_match(p, n), want, "{p:?} on {n:?}");
        }
    }

    #[test]
    fn backup_names_carry_their_timestamp() {
        let at = |secs: u64| Some(UNIX_EPOCH + Duration::from_secs(secs));
        let taken = crate::sync::backup_name::BackupName::taken_from_file_name;
        // 2024-01-02 03:04:05 UTC
        assert_eq!(taken("notes.db-20240102-030405.bak"), at(1_704_164_645));
        assert_eq!(taken("a-19700101-000000.bak"), at(0));
        assert_eq!(
            taken("x-20240229-235959.bak"),
            at(1_709_251_199),
            "leap day"
        );
        // Regression (issue 21): sync's same-second duplicates and a long name's backups (a
        // file named by its stamp in a folder named as the original) were never pruned.
        assert_eq!(taken("notes.db-20240102-030405.2.bak"), at(1_704_164_645));
        assert_eq!(taken("20240102-030405.bak"), at(1_704_164_645));
        assert_eq!(taken("20240102-030405.3.bak"), at(1_704_164_645));
        for not in [
            "-20240102-030405.bak",
            "notes-20240102-030405.bak.tmp",
            "notes-20240102-030405",
            "notes-20240102030405.bak",
            "notes_20240102_030405.bak",
            "notes-2024010-030405.bak",
            "notes-20241302-030405.bak",
            "notes-20230229-030405.bak",
            "notes-20240100-030405.bak",
            "notes-20240102-240000.bak",
            "notes.bak",
            "notes.conflict-20240102-030405",
            "é-2024010é-030405.bak",
            "",
        ] {
            assert_eq!(taken(not), None, "{not}");
        }
    }

    #[test]
    fn sweeps_refuse_dangerous_directories() {
        let home = Path::new("/home/me");
        assert!(sweepable(Path::new("/var/tmp"), Some(home)).is_ok());
        assert!(sweepable(Path::new("/home/me/.cache/x"), Some(home)).is_ok());
        for (dir, why) in [
            ("/", "too close to the root"),
            ("/tmp", "too close to the root"),
            ("//", "too close to the root"),
            ("/tmp/./", "too close to the root"),
            ("tmp/x", "not an absolute path"),
            ("", "not an absolute path"),
            ("/var/tmp/../..", "contains '..'"),
            ("/home/me", "home directory"),
            ("/home/me/", "home directory"),
            ("/home", "too close to the root"),
        ] {
            let e = sweepable(Path::new(dir), Some(home)).unwrap_err();
            assert!(e.contains(why), "{dir}: {e}");
        }
        let e = sweepable(Path::new("/Users/me"), Some(Path::new("/Users/me/inner"))).unwrap_err();
        assert!(e.contains("contains it"), "{e}");
    }

    #[tokio::test]
    async fn cleanup_removes_old_matching_files_only() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("scratch");
        std::fs::create_dir(&dir).unwrap();
        file_aged(&dir.join("old1.tmp"), 1000, 3 * DAY);
        file_aged(&dir.join("old2.tmp"), 500, 2 * DAY);
        file_aged(&dir.join("new.tmp"), 100, Duration::from_secs(60));
        file_aged(&dir.join("old.log"), 100, 3 * DAY);
        // A directory with an old matching name and old files inside: left alone.
        std::fs::create_dir(dir.join("sub.tmp")).unwrap();
        file_aged(&dir.join("sub.tmp/deep.tmp"), 100, 3 * DAY);
        // A symlink to an old matching file elsewhere, and one to a directory: not followed.
        let outside = tmp.path().join("outside.tmp");
        file_aged(&outside, 100, 3 * DAY);
        std::os::unix::fs::symlink(&outside, dir.join("link.tmp")).unwrap();
        std::os::unix::fs::symlink(tmp.path(), dir.join("dirlink.tmp")).unwrap();

        let (_, cx) = context();
        let action = HealAction::Cleanup {
            dir: dir.clone(),
            older_than: DAY,
            pattern: Some("*.tmp".into()),
        };
        let o = execute(&action, &cx).await;
        assert_eq!(o, HealOutcome::success("removed 2 files (1.5 kB)"));
        assert_eq!(
            names_in(&dir),
            ["dirlink.tmp", "link.tmp", "new.tmp", "old.log", "sub.tmp"]
        );
        assert!(outside.exists());
        assert_eq!(names_in(&dir.join("sub.tmp")), ["deep.tmp"]);

        // Again: nothing left to do. Without a pattern, any old file goes.
        assert_eq!(
            execute(&action, &cx).await,
            HealOutcome::success("removed 0 files (0 B)")
        );
        let any = HealAction::Cleanup {
            dir: dir.clone(),
            older_than: DAY,
            pattern: None,
        };
        assert_eq!(
            execute(&any, &cx).await,
            HealOutcome::success("removed 1 file (100 B)")
        );
        assert_eq!(
            names_in(&dir),
            ["dirlink.tmp", "link.tmp", "new.tmp", "sub.tmp"]
        );
    }

    #[tokio::test]
    async fn cleanup_of_the_state_dir_spares_the_store_and_the_lock() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state");
        std::fs::create_dir(&dir).unwrap();
        for f in DAEMON_FILES {
            file_aged(&dir.join(f), 10, 3 * DAY);
        }
        file_aged(&dir.join("old.tmp"), 10, 3 * DAY);
        // Also through a link to the state dir.
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        let (_, cx) = context();
        for d in [&dir, &link] {
            let action = HealAction::Cleanup {
                dir: d.clone(),
                older_than: DAY,
                pattern: None,
            };
            execute(&action, &cx).await;
        }
        let mut expected: Vec<&str> = DAEMON_FILES.to_vec();
        expected.sort();
        assert_eq!(names_in(&dir), expected);
    }

    #[tokio::test]
    async fn cleanup_refuses_the_root_and_what_resolves_to_it() {
        let (_, cx) = context();
        let tmp = tempfile::tempdir().unwrap();
        for dir in [
            PathBuf::from("/"),
            PathBuf::from("/tmp"),
            "relative/dir".into(),
        ] {
            let o = execute(
                &HealAction::Cleanup {
                    dir: dir.clone(),
                    older_than: Duration::ZERO,
                    pattern: None,
                },
                &cx,
            )
            .await;
            assert!(!o.ok && o.detail.starts_with("refused: cleanup:"), "{o:?}");
        }
        // A link to the root passes the check as written, not once resolved.
        let link = tmp.path().join("root");
        std::os::unix::fs::symlink("/", &link).unwrap();
        let spec = Sweep {
            dir: link,
            older_than: Duration::ZERO,
            select: Select::Pattern(None),
            max_depth: 0,
            home: None,
        };
        let e = sweep(&spec, SystemTime::now(), MAX_ENTRIES).unwrap_err();
        assert!(e.contains("resolves to / is too close to the root"), "{e}");
        // The home directory, given as a link to it.
        let home = tmp.path().join("home/me");
        std::fs::create_dir_all(&home).unwrap();
        let to_home = tmp.path().join("to-home");
        std::os::unix::fs::symlink(&home, &to_home).unwrap();
        let spec = Sweep {
            dir: to_home,
            home: Some(home.clone()),
            ..spec
        };
        let e = sweep(&spec, SystemTime::now(), MAX_ENTRIES).unwrap_err();
        assert!(e.contains("home directory"), "{e}");
        // A missing directory, and a file instead of one.
        let missing = HealAction::Cleanup {
            dir: tmp.path().join("nope"),
            older_than: DAY,
            pattern: None,
        };
        let o = execute(&missing, &cx).await;
        assert!(!o.ok && o.detail.starts_with("no directory at"), "{o:?}");
        file_aged(&tmp.path().join("f"), 1, DAY);
        let o = execute(
            &HealAction::Cleanup {
                dir: tmp.path().join("f"),
                older_than: DAY,
                pattern: None,
            },
            &cx,
        )
        .await;
        assert!(!o.ok && o.detail.ends_with("is not a directory"), "{o:?}");
        // A pattern that is not a file name pattern.
        let o = execute(
            &HealAction::Cleanup {
                dir: tmp.path().to_path_buf(),
                older_than: DAY,
                pattern: Some("a/*".into()),
            },
            &cx,
        )
        .await;
        assert!(
            !o.ok && o.detail.contains("not a file name pattern"),
            "{o:?}"
        );
    }

    #[test]
    fn a_sweep_stops_at_its_entry_bound() {
        let tmp = tempfile::tempdir().unwrap();
        for i in 0..10 {
            file_aged(&tmp.path().join(format!("f{i}")), 10, 2 * DAY);
        }
        let spec = Sweep {
            dir: tmp.path().to_path_buf(),
            older_than: DAY,
            select: Select::Pattern(None),
            max_depth: 0,
            home: None,
        };
        let s = sweep(&spec, SystemTime::now(), 4).unwrap();
        assert!(s.stopped);
        assert_eq!((s.examined, s.removed, s.bytes), (4, 4, 40));
        assert_eq!(names_in(tmp.path()).len(), 6);
        let s = sweep(&spec, SystemTime::now(), 100).unwrap();
        assert!(!s.stopped);
        assert_eq!(s.removed, 6);
    }

    #[tokio::test]
    async fn prune_backups_removes_old_backups_only() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("backups");
        std::fs::create_dir_all(dir.join("icloud/notes")).unwrap();
        let old = 40 * DAY;
        file_aged(&dir.join("metastore.db-20200101-010101.bak"), 2000, old);
        file_aged(&dir.join("icloud/notes/a.md-20200102-000000.bak"), 500, old);
        // Regression (issue 21): sync's same-second duplicate and a long name's backup.
        file_aged(
            &dir.join("icloud/notes/a.md-20200102-000000.1.bak"),
            100,
            old,
        );
        std::fs::create_dir_all(dir.join("icloud/notes/long.md")).unwrap();
        file_aged(
            &dir.join("icloud/notes/long.md/20200102-000000.bak"),
            100,
            old,
        );
        // Kept: a recent backup; an old file renamed into a backup today (its name is recent);
        // names that are not backups; a conflict copy.
        file_aged(
            &dir.join("config.toml-20200101-010101.bak"),
            10,
            Duration::from_secs(3600),
        );
        file_aged(&dir.join("renamed-20991231-000000.bak"), 10, old);
        file_aged(&dir.join("notes.bak"), 10, old);
        file_aged(&dir.join("notes.md.conflict-20200101-010101"), 10, old);
        file_aged(&dir.join("x-20200101-010101.bak.part"), 10, old);
        std::os::unix::fs::symlink(dir.join("notes.bak"), dir.join("link-20200101-010101.bak"))
            .unwrap();

        let (_, cx) = context();
        let action = HealAction::PruneBackups {
            dir: dir.clone(),
            older_than: BACKUP_RETENTION,
        };
        let o = execute(&action, &cx).await;
        assert_eq!(o, HealOutcome::success("removed 4 files (2.7 kB)"));
        assert_eq!(
            names_in(&dir),
            [
                "config.toml-20200101-010101.bak",
                "icloud",
                "link-20200101-010101.bak",
                "notes.bak",
                "notes.md.conflict-20200101-010101",
                "renamed-20991231-000000.bak",
                "x-20200101-010101.bak.part",
            ]
        );
        assert_eq!(names_in(&dir.join("icloud/notes")), ["long.md"]);
        assert!(names_in(&dir.join("icloud/notes/long.md")).is_empty());

        let zero = HealAction::PruneBackups {
            dir,
            older_than: Duration::ZERO,
        };
        let o = execute(&zero, &cx).await;
        assert!(!o.ok && o.detail.contains("every backup"), "{o:?}");
    }

    /// Regression (issue 21): heal's pruner stopped 8 levels down while a sync target's
    /// backups mirror its primary's depth; there is one pruner now, at any depth, and it
    /// leaves the temp files a run may be writing.
    #[tokio::test]
    async fn prune_backups_goes_to_any_depth_and_leaves_temps() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("backups");
        let mut deep = dir.clone();
        for level in 0..12 {
            std::fs::create_dir_all(&deep).unwrap();
            file_aged(&deep.join("f-20200101-000000.bak"), 1, 40 * DAY);
            deep.push(format!("d{level}"));
        }
        let temp = dir.join(".msync-0123456789abcdef-00000001.tmp");
        file_aged(&temp, 1, 40 * DAY);
        let (_, cx) = context();
        let action = HealAction::PruneBackups {
            dir: dir.clone(),
            older_than: BACKUP_RETENTION,
        };
        let o = execute(&action, &cx).await;
        assert_eq!(o, HealOutcome::success("removed 12 files (12 B)"));
        assert!(temp.exists());
    }

    async fn make_db(path: &Path, wal: bool) -> sqlx::SqliteConnection {
        let mut options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true);
        if wal {
            options = options.journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
        }
        let mut conn = options.connect().await.unwrap();
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB)")
            .await
            .unwrap();
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) \
             INSERT INTO t (body) SELECT randomblob(1000) FROM n",
        )
        .await
        .unwrap();
        conn.execute("DELETE FROM t WHERE id > 100").await.unwrap();
        conn
    }

    fn size_of(path: &Path) -> u64 {
        std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
            + std::fs::metadata(wal_path(path))
                .map(|m| m.len())
                .unwrap_or(0)
    }

    #[tokio::test]
    async fn vacuum_shrinks_a_database_with_deleted_rows() {
        for wal in [false, true] {
            let tmp = tempfile::tempdir().unwrap();
            let db = tmp.path().join("m.db");
            make_db(&db, wal).await.close().await.unwrap();
            let before = size_of(&db);
            assert!(before > 1_500_000, "{before}");
            let (_, cx) = context();
            let o = execute(&HealAction::Vacuum { db: db.clone() }, &cx).await;
            assert!(o.ok, "{o:?}");
            let after = size_of(&db);
            assert!(after < 300_000, "wal {wal}: {before} -> {after}");
            assert_eq!(
                o.detail,
                format!(
                    "vacuumed {}: {} before, {} after",
                    db.display(),
                    fmt_bytes(before),
                    fmt_bytes(after)
                )
            );
            // The rows that were kept are still there.
            let mut conn = SqliteConnectOptions::new()
                .filename(&db)
                .connect()
                .await
                .unwrap();
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM t")
                .fetch_one(&mut conn)
                .await
                .unwrap();
            assert_eq!(n, 100);
            let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(&mut conn)
                .await
                .unwrap();
            assert_eq!(mode, if wal { "wal" } else { "delete" }, "unchanged");
            conn.close().await.unwrap();
        }
    }

    #[tokio::test]
    async fn vacuum_of_a_missing_file_fails_without_creating_it() {
        let tmp = tempfile::tempdir().unwrap();
        let db = tmp.path().join("missing.db");
        let (_, cx) = context();
        let o = execute(&HealAction::Vacuum { db: db.clone() }, &cx).await;
        assert!(!o.ok);
        assert!(o.detail.contains("does not exist"), "{o:?}");
        assert!(!db.exists());
        // A directory, and a file that is not a database.
        let o = vacuum(tmp.path(), VACUUM_BUSY_TIMEOUT).await;
        assert!(!o.ok && o.detail.ends_with("is not a file"), "{o:?}");
        let junk = tmp.path().join("junk.db");
        std::fs::write(&junk, vec![7u8; 4096]).unwrap();
        let o = vacuum(&junk, VACUUM_BUSY_TIMEOUT).await;
        assert!(!o.ok && o.detail.contains("not a database"), "{o:?}");
    }

    #[tokio::test]
    async fn vacuum_of_a_busy_database_fails_with_the_reason() {
        let tmp = tempfile::tempdir().unwrap();
        let db = tmp.path().join("busy.db");
        let mut holder = make_db(&db, false).await;
        holder.execute("BEGIN IMMEDIATE").await.unwrap();
        holder.execute("DELETE FROM t WHERE id = 1").await.unwrap();
        let started = Instant::now();
        let o = vacuum(&db, Duration::from_millis(200)).await;
        assert!(!o.ok);
        assert!(o.detail.contains("busy"), "{o:?}");
        assert!(o.detail.contains("locked"), "{o:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
        holder.execute("COMMIT").await.unwrap();
        holder.close().await.unwrap();
        let o = vacuum(&db, Duration::from_millis(200)).await;
        assert!(o.ok, "{o:?}");
    }

    #[tokio::test]
    async fn reset_breaker_moves_an_open_breaker_to_half_open() {
        let (_, cx) = context();
        let config = BreakerConfig {
            failure_threshold: 1,
            open_for: Duration::from_secs(3600),
            ..BreakerConfig::default()
        };
        let db = Breaker::new("db", config.clone(), no_notifier());
        cx.breakers.insert(db.clone());
        cx.breakers
            .insert(Breaker::new("api", config, no_notifier()));
        let permit = db.allow().unwrap();
        db.record(permit, false);
        assert_eq!(db.state(), StateName::Open);

        let action = HealAction::ResetBreaker { name: "db".into() };
        let o = execute(&action, &cx).await;
        assert_eq!(o, HealOutcome::success("breaker db: open -> half_open"));
        assert_eq!(db.state(), StateName::HalfOpen);
        let o = execute(&action, &cx).await;
        assert_eq!(o, HealOutcome::success("breaker db is already half_open"));

        // Closed: left closed. Forced open by the operator: left alone.
        db.reset();
        let o = execute(&action, &cx).await;
        assert_eq!(
            o,
            HealOutcome::success("breaker db is closed; nothing to do")
        );
        assert_eq!(db.state(), StateName::Closed);
        db.force_open();
        let o = execute(&action, &cx).await;
        assert!(!o.ok && o.detail.contains("forced open"), "{o:?}");
        assert_eq!(db.state(), StateName::ForcedOpen);

        let o = execute(
            &HealAction::ResetBreaker {
                name: "nope".into(),
            },
            &cx,
        )
        .await;
        assert_eq!(
            o,
            HealOutcome::failure("no breaker named \"nope\"; known: api, db")
        );
        let (_, empty) = context();
        let o = execute(&HealAction::ResetBreaker { name: "x".into() }, &empty).await;
        assert_eq!(
            o,
            HealOutcome::failure("no breaker named \"x\"; there are none")
        );
    }

    fn cmd(program: &str, args: &[&str], timeout: Duration) -> HealAction {
        HealAction::Command {
            program: program.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            timeout,
        }
    }

    #[tokio::test]
    async fn a_command_succeeds_on_exit_0_only() {
        let (_, cx) = context();
        let secs = Duration::from_secs(10);
        let o = execute(&cmd("sh", &["-c", "echo cleaned 3 caches"], secs), &cx).await;
        assert_eq!(o, HealOutcome::success("exit 0: cleaned 3 caches"));
        let o = execute(&cmd("true", &[], secs), &cx).await;
        assert_eq!(o, HealOutcome::success("exit 0, no output"));
        let o = execute(
            &cmd("sh", &["-c", "echo; echo nope >&2; exit 1"], secs),
            &cx,
        )
        .await;
        assert_eq!(o, HealOutcome::failure("exit 1: nope"));
        let o = execute(&cmd("sh", &["-c", "kill -9 $$"], secs), &cx).await;
        assert_eq!(
            o,
            HealOutcome::failure("killed by signal 9 (SIGKILL), no output")
        );
        let o = execute(&cmd("/no/such/program", &[], secs), &cx).await;
        assert!(
            !o.ok && o.detail.starts_with("cannot start /no/such/program"),
            "{o:?}"
        );
    }

    #[tokio::test]
    async fn a_command_past_its_timeout_is_killed() {
        let (_, cx) = context();
        let tmp = tempfile::tempdir().unwrap();
        let marker = tmp.path().join("still-running");
        let script = format!("sleep 2; touch {}", marker.display());
        let started = Instant::now();
        let o = execute(
            &cmd("sh", &["-c", &script], Duration::from_millis(200)),
            &cx,
        )
        .await;
        assert_eq!(o, HealOutcome::failure("sh timed out after 200ms"));
        assert!(started.elapsed() < Duration::from_secs(2));
        // The group was killed: the script never gets to its second step.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(!marker.exists());
        let o = execute(&cmd("true", &[], Duration::ZERO), &cx).await;
        assert!(!o.ok && o.detail.contains("timeout is zero"), "{o:?}");
    }

    #[tokio::test]
    async fn restart_and_sync_go_through_the_tree() {
        let (tree, cx) = context();
        let run = |a: HealAction| {
            let cx = cx.clone();
            async move { execute(&a, &cx).await }
        };
        assert_eq!(
            run(HealAction::Restart {
                path: "root/store".into()
            })
            .await,
            HealOutcome::success("restarted root/store")
        );
        assert_eq!(
            run(HealAction::Restart {
                path: "bad/node".into()
            })
            .await,
            HealOutcome::failure("cannot restart bad/node: no such node")
        );
        assert_eq!(
            run(HealAction::Sync {
                target: "icloud".into()
            })
            .await,
            HealOutcome::success("icloud: 3 files pushed")
        );
        assert_eq!(
            run(HealAction::Sync {
                target: "quiet".into()
            })
            .await,
            HealOutcome::success("synced quiet")
        );
        assert_eq!(
            run(HealAction::Sync {
                target: "bad".into()
            })
            .await,
            HealOutcome::failure("sync of bad failed: sync targets are not available")
        );
        assert_eq!(
            run(HealAction::Restart { path: " ".into() }).await,
            HealOutcome::failure("refused: restart: the tree path is empty")
        );
        assert_eq!(
            *tree.calls.lock().unwrap(),
            [
                "restart root/store",
                "restart bad/node",
                "sync icloud",
                "sync quiet",
                "sync bad"
            ]
        );
    }

    #[tokio::test]
    async fn a_panic_inside_an_action_is_a_failed_outcome() {
        let (_, cx) = context();
        let o = execute(
            &HealAction::Restart {
                path: "panic".into(),
            },
            &cx,
        )
        .await;
        assert_eq!(
            o,
            HealOutcome::failure("the restart action panicked: the tree broke")
        );
    }

    #[test]
    fn the_context_is_shareable() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<HealContext>();
        let (_, cx) = context();
        assert!(format!("{cx:?}").starts_with("HealContext { breakers: [], .."));
    }
}
