//! `watch = true`: a change in the primary starts a run soon after it happens, on top of the
//! periodic full scan (`every`), which stays: watchers miss changes on network and cloud file
//! systems, and a watch can fail (no inotify watches left, the primary not there).
//!
//! - [`plan`]: what is watched: each selected path under the primary, recursively when it is a
//!   folder; a selected file, or a path that does not exist yet, through its nearest existing
//!   folder (not recursively), so that it is seen when it appears (and then watched itself);
//! - [`Filter`]: which events count: only what the target syncs (its paths, include and exclude
//!   globs), never this tool's temp files, never SQLite's companions except the `-wal` of a
//!   synced database when it holds data, never the daemon's own files (its store, its lock, the
//!   backups, its base files), never reads or metadata-only changes;
//! - [`Quiet`]: the watcher tells its target once the primary has been quiet for about
//!   `watch_debounce`, or [`MAX_WAIT_FACTOR`] times that after the first change of a burst that
//!   does not end;
//! - [`Trigger`]: when the target runs for a change: at most one run per `min_interval` (a
//!   change inside the interval runs at its end, never dropped); a change during a run makes
//!   one more run after it; never two runs at once (the actor runs one at a time);
//! - [`Watcher`]: the thread that owns the OS watch (notify and notify-debouncer-full): set up,
//!   re-planned when a watched or selected path appears or goes, retried when it cannot be set
//!   up, all off the daemon's scheduler thread; stopped when dropped (the watches and notify's
//!   threads go with it);
//! - [`Watch`]: what the actor holds: the watcher, the trigger, the state `sync status` shows.
//!
//! A run that changed the primary itself (a pull, a deletion, a conflict copy) is seen like
//! any other change: it is followed by one more run, `min_interval` later, which finds nothing
//! to do.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use notify::event::{CreateKind, ModifyKind, RemoveKind};
use notify::{EventKind, RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{new_debouncer, DebounceEventResult, DebouncedEvent, Debouncer};
use serde::{Deserialize, Serialize};

use super::scan::{self, under, Selection};

/// `watch_debounce` unless configured.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_secs(2);
/// The bounds of `watch_debounce`.
pub const MIN_DEBOUNCE: Duration = Duration::from_millis(100);
pub const MAX_DEBOUNCE: Duration = Duration::from_secs(600);
/// A burst that never goes quiet is told this many debounces after its first change.
pub const MAX_WAIT_FACTOR: u32 = 10;
/// How soon a watch that could not be set up because a path is missing is tried again.
const RETRY_MISSING: Duration = Duration::from_secs(30);
/// How soon a watch that failed otherwise (the inotify limit) is tried again.
const RETRY_FAILED: Duration = Duration::from_secs(600);

/// How a target watches its primary, as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchSpec {
    pub debounce: Duration,
    /// Never counted as changes, wherever they are: the daemon's own files (its store and its
    /// companions, its lock, the backups), which the daemon writes all the time.
    pub ignore: Vec<PathBuf>,
}

impl Default for WatchSpec {
    fn default() -> Self {
        WatchSpec {
            debounce: DEFAULT_DEBOUNCE,
            ignore: Vec::new(),
        }
    }
}

/// What the watcher (or a timer of the trigger) tells the target.
#[derive(Debug)]
pub enum Signal {
    /// Something the target syncs changed in the primary.
    Changed,
    /// The watch is up, or not (and why).
    State(WatchState),
    /// A run the trigger scheduled is due (its generation: stale ones do nothing).
    Due(u64),
}

/// The watch as `sync status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum WatchState {
    /// The watcher thread is setting up its watches.
    Starting,
    /// Watching `roots` paths (each folder recursively, or the folder of a selected file or
    /// of a selected path that is not there yet); `note` says what is missed, if anything.
    Watching { roots: usize, note: Option<String> },
    /// Not watching (the periodic scan goes on): why.
    NotWatching { reason: String },
}

impl WatchState {
    /// One line for humans.
    pub fn describe(&self) -> String {
        match self {
            WatchState::Starting => "starting".into(),
            WatchState::Watching { roots, note } => format!(
                "watching {roots} path(s) in the primary{}",
                note.as_deref()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default()
            ),
            WatchState::NotWatching { reason } => {
                format!("not watching: {reason}; the periodic scan goes on")
            }
        }
    }
}

/// What the watched paths are: (folder, recursive). `Err` when the primary is not there.
pub fn plan(primary: &Path, paths: &[String]) -> Result<Vec<(PathBuf, bool)>, String> {
    if !primary.is_dir() {
        return Err(format!("the primary {} is not there", primary.display()));
    }
    let wanted: Vec<PathBuf> = if paths.is_empty() {
        vec![primary.to_path_buf()]
    } else {
        paths.iter().map(|p| primary.join(p)).collect()
    };
    let mut out: Vec<(PathBuf, bool)> = Vec::new();
    for full in wanted {
        if full.is_dir() {
            out.push((full, true));
            continue;
        }
        // A file, or not there yet: its nearest existing folder, alone.
        let mut at = full.parent();
        while let Some(dir) = at {
            if dir.is_dir() {
                out.push((dir.to_path_buf(), false));
                break;
            }
            if dir == primary || !dir.starts_with(primary) {
                break;
            }
            at = dir.parent();
        }
    }
    out.sort();
    out.dedup();
    let all = out.clone();
    // What a recursive watch covers needs no watch of its own.
    out.retain(|(p, rec)| {
        !all.iter()
            .any(|(q, q_rec)| *q_rec && ((p != q && p.starts_with(q)) || (p == q && !*rec)))
    });
    Ok(out)
}

/// A path's kind, as far as the event says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum What {
    File,
    Folder,
    Unknown,
}

/// Which events count as changes of what a target syncs.
#[derive(Debug, Clone)]
pub struct Filter {
    primary: PathBuf,
    /// The primary as the OS names it, when that differs (macOS reports `/private/var/...`
    /// for `/var/...`).
    real: Option<PathBuf>,
    selection: Selection,
    /// The ignored paths, relative to the primary (those outside it are dropped).
    ignore: Vec<String>,
}

impl Filter {
    pub fn new(primary: &Path, selection: &Selection, ignore: &[PathBuf]) -> Filter {
        let real = std::fs::canonicalize(primary).ok().filter(|r| r != primary);
        let mut f = Filter {
            primary: primary.to_path_buf(),
            real,
            selection: selection.clone(),
            ignore: Vec::new(),
        };
        let rels = ignore
            .iter()
            .filter_map(|p| {
                f.rel(p).or_else(|| {
                    // Named another way (a symlink on the way): by its real folder.
                    let parent = std::fs::canonicalize(p.parent()?).ok()?;
                    f.rel(&parent.join(p.file_name()?))
                })
            })
            .collect();
        f.ignore = rels;
        f
    }

    /// `path` as a `/`-separated path relative to the primary; `None` outside it, for the
    /// primary itself, and for names that are not UTF-8 (never synced).
    fn rel(&self, path: &Path) -> Option<String> {
        let r = path
            .strip_prefix(&self.primary)
            .ok()
            .or_else(|| path.strip_prefix(self.real.as_ref()?).ok())?;
        let mut s = String::new();
        for c in r.components() {
            if !s.is_empty() {
                s.push('/');
            }
            s.push_str(&super::names::held(c.as_os_str()));
        }
        (!s.is_empty()).then_some(s)
    }

    /// `path` named under the primary as configured (events may name the real path).
    fn normal(&self, path: &Path) -> PathBuf {
        match self.real.as_ref().and_then(|r| path.strip_prefix(r).ok()) {
            Some(rest) => self.primary.join(rest),
            None => path.to_path_buf(),
        }
    }

    fn ignored(&self, rel: &str) -> bool {
        self.ignore.iter().any(|i| under(rel, i))
    }

    /// Whether the event is a change of something the target syncs.
    pub fn counts(&self, event: &notify::Event) -> bool {
        let (what, content) = match event.kind {
            // Reads (hashing, snapshots), opens and closes, and metadata alone (a touch, a
            // chmod: a run would copy nothing) are not changes.
            EventKind::Access(_)
            | EventKind::Other
            | EventKind::Modify(ModifyKind::Metadata(_)) => return false,
            EventKind::Create(CreateKind::Folder) | EventKind::Remove(RemoveKind::Folder) => {
                (What::Folder, false)
            }
            EventKind::Create(CreateKind::File) => (What::File, true),
            EventKind::Remove(RemoveKind::File) => (What::File, false),
            EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any | ModifyKind::Other) => {
                (What::File, true)
            }
            EventKind::Create(_) => (What::Unknown, true),
            EventKind::Modify(ModifyKind::Name(_)) => {
                // A rename: the file or folder it names last is the one that moved.
                let what = match event.paths.last().map(std::fs::symlink_metadata) {
                    Some(Ok(m)) if m.is_dir() => What::Folder,
                    Some(Ok(_)) => What::File,
                    _ => What::Unknown,
                };
                (what, true)
            }
            EventKind::Remove(_) | EventKind::Any => (What::Unknown, true),
        };
        event.paths.iter().any(|p| {
            let what = match what {
                What::Unknown => match std::fs::symlink_metadata(p) {
                    Ok(m) if m.is_dir() => What::Folder,
                    Ok(_) => What::File,
                    Err(_) => What::Unknown,
                },
                w => w,
            };
            self.path_counts(p, what, content)
        })
    }

    fn path_counts(&self, path: &Path, what: What, content: bool) -> bool {
        let Some(rel) = self.rel(path) else {
            return false;
        };
        if self.ignored(&rel) {
            return false;
        }
        let name = rel.rsplit('/').next().unwrap_or(&rel);
        if scan::is_temp(name) {
            return false; // this tool's temp files
        }
        if what != What::Folder && scan::is_companion(path) {
            let Some(owner) = rel.strip_suffix("-wal") else {
                return false; // a database's -shm or -journal
            };
            // A database in use keeps its changes in its WAL until a checkpoint: a WAL written
            // to counts for a synced database. Created empty (a reader opening the database,
            // a snapshot), deleted (the last connection closing), it does not.
            return what != What::Folder
                && content
                && !self.ignored(owner)
                && self.selection.wants(owner)
                && std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file() && m.len() > 0);
        }
        match what {
            What::File => self.selection.wants(&rel),
            What::Folder => self.may_hold(&rel),
            // Gone, kind unknown: a file the target syncs, or a folder that may have held some.
            What::Unknown => self.selection.wants(&rel) || self.may_hold(&rel),
        }
    }

    /// Whether a folder may hold files the target syncs (a folder created, moved or deleted
    /// whole is one event, whatever it holds).
    fn may_hold(&self, rel: &str) -> bool {
        let s = &self.selection;
        if under(rel, scan::HOSTS) || s.never.iter().any(|p| under(rel, p)) {
            return false;
        }
        if !s.paths.is_empty() && !s.paths.iter().any(|p| under(rel, p) || under(p, rel)) {
            return false;
        }
        // An excluded folder, or one inside an excluded folder: nothing in it is synced.
        if s.excludes_folder(rel) || s.excluded_above(rel) {
            return false;
        }
        // A folder whose every file is excluded (`cache/**`).
        !s.excludes_all_in(rel)
    }
}

/// The quiet period: a burst of changes is told once, when it stops.
#[derive(Debug, Clone)]
pub struct Quiet {
    quiet: Duration,
    max_wait: Duration,
    first: Option<Instant>,
    last: Option<Instant>,
}

impl Quiet {
    /// The debouncer in front of it holds each event for half the debounce; this waits for
    /// the other half without one.
    pub fn new(debounce: Duration) -> Quiet {
        Quiet {
            quiet: debounce / 2,
            max_wait: debounce * MAX_WAIT_FACTOR,
            first: None,
            last: None,
        }
    }

    pub fn saw(&mut self, now: Instant) {
        self.first.get_or_insert(now);
        self.last = Some(now);
    }

    /// When the changes seen are told.
    pub fn deadline(&self) -> Option<Instant> {
        Some((self.last? + self.quiet).min(self.first? + self.max_wait))
    }

    /// Whether the changes seen are to be told now (and forgets them if so).
    pub fn take_due(&mut self, now: Instant) -> bool {
        if self.deadline().is_some_and(|d| d <= now) {
            self.first = None;
            self.last = None;
            return true;
        }
        false
    }
}

/// What the actor does for the watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Nothing,
    /// Start a run now.
    RunNow,
    /// Send itself `Signal::Due(generation)` after the delay.
    After(Duration, u64),
}

/// When a watched change runs the target (pure: the actor says whether a run is going and
/// how long ago the last one ended).
#[derive(Debug, Default)]
pub struct Trigger {
    /// Changes that no run started since has seen.
    pending: bool,
    /// The generation of the scheduled run, if one is.
    armed: Option<u64>,
    generation: u64,
}

impl Trigger {
    /// A change was seen.
    pub fn changed(&mut self, running: bool, since_last: Option<Duration>, min: Duration) -> Next {
        self.pending = true;
        if running || self.armed.is_some() {
            return Next::Nothing; // the end of the run, or the scheduled run, takes it
        }
        self.next(since_last, min)
    }

    /// A run started: it sees every change made so far.
    pub fn started(&mut self) {
        self.pending = false;
    }

    /// The target is idle again (a run or an operator's job ended).
    pub fn idle(&mut self, since_last: Option<Duration>, min: Duration) -> Next {
        if !self.pending || self.armed.is_some() {
            return Next::Nothing;
        }
        self.next(since_last, min)
    }

    /// The scheduled run `generation` is due.
    pub fn due(
        &mut self,
        generation: u64,
        running: bool,
        since_last: Option<Duration>,
        min: Duration,
    ) -> Next {
        if self.armed != Some(generation) {
            return Next::Nothing;
        }
        self.armed = None;
        if !self.pending || running {
            return Next::Nothing; // seen by a run since, or the end of this run takes it
        }
        self.next(since_last, min)
    }

    fn next(&mut self, since_last: Option<Duration>, min: Duration) -> Next {
        let wait = since_last.map_or(Duration::ZERO, |s| min.saturating_sub(s));
        if wait.is_zero() {
            return Next::RunNow;
        }
        self.generation += 1;
        self.armed = Some(self.generation);
        Next::After(wait, self.generation)
    }
}

enum Msg {
    Events(DebounceEventResult),
    Stop,
}

/// The thread watching a primary. Dropping it stops the thread, which drops the OS watch.
pub struct Watcher {
    tx: mpsc::Sender<Msg>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.tx.send(Msg::Stop);
    }
}

impl Watcher {
    /// Starts the thread (it sets the watch up itself: a recursive watch walks the tree).
    /// `tell` is called from that thread; when it returns false (the target is gone) the
    /// thread ends.
    pub fn start(
        name: &str,
        primary: &Path,
        selection: &Selection,
        spec: &WatchSpec,
        tell: impl FnMut(Signal) -> bool + Send + 'static,
    ) -> std::io::Result<Watcher> {
        let (tx, rx) = mpsc::channel();
        let looper = Looper {
            name: name.to_string(),
            filter: Filter::new(primary, selection, &spec.ignore),
            paths: selection.paths.clone(),
            debounce: spec.debounce,
            tx: tx.clone(),
            tell,
            debouncer: None,
            plan: Vec::new(),
            told: None,
            quiet: Quiet::new(spec.debounce),
            retry_at: None,
        };
        std::thread::Builder::new()
            .name(thread_name(name))
            .spawn(move || looper.run(rx))?;
        Ok(Watcher { tx })
    }
}

/// The watcher thread's name (Linux keeps 15 bytes).
pub fn thread_name(target: &str) -> String {
    let mut n = format!("msw-{target}");
    while n.len() > 15 {
        n.pop();
    }
    n
}

type OsWatch = Debouncer<RecommendedWatcher, notify_debouncer_full::RecommendedCache>;

struct Looper<F> {
    name: String,
    filter: Filter,
    paths: Vec<String>,
    debounce: Duration,
    tx: mpsc::Sender<Msg>,
    tell: F,
    debouncer: Option<OsWatch>,
    plan: Vec<(PathBuf, bool)>,
    told: Option<WatchState>,
    quiet: Quiet,
    /// When to (re)build the watch.
    retry_at: Option<Instant>,
}

impl<F: FnMut(Signal) -> bool> Looper<F> {
    fn run(mut self, rx: mpsc::Receiver<Msg>) {
        self.retry_at = Some(Instant::now());
        loop {
            if self.retry_at.is_some_and(|t| t <= Instant::now()) {
                self.retry_at = None;
                if !self.arm() {
                    break;
                }
            }
            let wake = [self.retry_at, self.quiet.deadline()]
                .into_iter()
                .flatten()
                .min();
            let msg = match wake {
                Some(t) => rx.recv_timeout(t.saturating_duration_since(Instant::now())),
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            match msg {
                Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {}
                Ok(Msg::Events(Ok(events))) => self.events(&events),
                Ok(Msg::Events(Err(errors))) => {
                    if !self.errors(errors) {
                        break;
                    }
                }
            }
            if self.quiet.take_due(Instant::now()) && !(self.tell)(Signal::Changed) {
                break;
            }
        }
        // The debouncer goes with `self`: its thread ends at its next tick, notify's
        // inotify thread at once, with every watch.
    }

    /// Sets the watch up for the current plan (again, when the plan changed); false when the
    /// target is gone.
    fn arm(&mut self) -> bool {
        let again = self.told.is_some();
        match plan(&self.filter.primary, &self.paths) {
            Err(why) => {
                self.debouncer = None;
                self.plan.clear();
                self.retry_at = Some(Instant::now() + RETRY_MISSING);
                self.state(WatchState::NotWatching {
                    reason: format!(
                        "{why} (tried again every {})",
                        humantime::format_duration(RETRY_MISSING)
                    ),
                })
            }
            Ok(p) if p == self.plan && self.debouncer.is_some() => true,
            Ok(p) => {
                self.debouncer = None; // the old watches go first
                match self.watch(&p) {
                    Ok(d) => {
                        self.debouncer = Some(d);
                        let roots = p.len();
                        self.plan = p;
                        if again {
                            // A selected path appeared or went, or the primary came back.
                            self.quiet.saw(Instant::now());
                        }
                        self.state(WatchState::Watching { roots, note: None })
                    }
                    Err(e) => {
                        self.plan.clear();
                        let (reason, retry) = match e.kind {
                            notify::ErrorKind::MaxFilesWatch => (
                                "the inotify watch limit is reached (raise \
                                 fs.inotify.max_user_watches)"
                                    .to_string(),
                                RETRY_FAILED,
                            ),
                            notify::ErrorKind::PathNotFound => {
                                (format!("a watched path went away: {e}"), RETRY_MISSING)
                            }
                            _ => (format!("cannot watch the primary: {e}"), RETRY_FAILED),
                        };
                        self.retry_at = Some(Instant::now() + retry);
                        self.state(WatchState::NotWatching {
                            reason: format!(
                                "{reason} (tried again every {})",
                                humantime::format_duration(retry)
                            ),
                        })
                    }
                }
            }
        }
    }

    fn watch(&self, plan: &[(PathBuf, bool)]) -> notify::Result<OsWatch> {
        let tx = self.tx.clone();
        // Half the debounce in the debouncer (renames stitched, duplicates merged), the
        // other half in `Quiet`.
        let timeout = (self.debounce / 2).max(Duration::from_millis(10));
        let tick = (timeout / 2).max(Duration::from_millis(5));
        let mut d = new_debouncer(timeout, Some(tick), move |r| {
            let _ = tx.send(Msg::Events(r));
        })?;
        for (root, recursive) in plan {
            let mode = if *recursive {
                RecursiveMode::Recursive
            } else {
                RecursiveMode::NonRecursive
            };
            d.watch(root, mode)?;
        }
        Ok(d)
    }

    fn events(&mut self, events: &[DebouncedEvent]) {
        let mut changed = false;
        let mut reshaped = false;
        for e in events {
            if e.need_rescan() {
                changed = true; // events were lost: a run finds what changed
                continue;
            }
            reshaped = reshaped || self.reshapes(e);
            changed = changed || self.filter.counts(e);
        }
        let now = Instant::now();
        if changed {
            self.quiet.saw(now);
        }
        if reshaped {
            self.retry_at = Some(now);
        }
    }

    /// Whether an event may change what is to be watched: a watched folder, a selected path,
    /// or a folder above one, appeared, went or moved.
    fn reshapes(&self, e: &DebouncedEvent) -> bool {
        if !matches!(
            e.kind,
            EventKind::Create(_)
                | EventKind::Remove(_)
                | EventKind::Modify(ModifyKind::Name(_))
                | EventKind::Any
        ) {
            return false;
        }
        let primary = &self.filter.primary;
        e.paths.iter().any(|p| {
            let p = self.filter.normal(p);
            self.plan.iter().any(|(root, _)| root.starts_with(&p))
                || self.paths.iter().any(|s| primary.join(s).starts_with(&p))
        })
    }

    /// Errors from the OS watch; false when the target is gone.
    fn errors(&mut self, errors: Vec<notify::Error>) -> bool {
        // Whatever went wrong, changes may have been missed: a run finds them.
        self.quiet.saw(Instant::now());
        for e in errors {
            if matches!(e.kind, notify::ErrorKind::MaxFilesWatch) {
                let roots = self.plan.len();
                let state = WatchState::Watching {
                    roots,
                    note: Some(
                        "the inotify watch limit is reached: folders created since are not \
                         watched, the periodic scan covers them (raise \
                         fs.inotify.max_user_watches)"
                            .into(),
                    ),
                };
                if !self.state(state) {
                    return false;
                }
            } else {
                tracing::warn!(target_name = %self.name, error = %e, "sync watch: error");
            }
        }
        true
    }

    /// Tells the target a new state (once); false when the target is gone.
    fn state(&mut self, s: WatchState) -> bool {
        if self.told.as_ref() == Some(&s) {
            return true;
        }
        match &s {
            WatchState::NotWatching { .. } => {
                tracing::warn!(target_name = %self.name, "sync watch: {}", s.describe())
            }
            WatchState::Watching { note: Some(_), .. } => {
                tracing::warn!(target_name = %self.name, "sync watch: {}", s.describe())
            }
            _ => tracing::info!(target_name = %self.name, "sync watch: {}", s.describe()),
        }
        self.told = Some(s.clone());
        (self.tell)(Signal::State(s))
    }
}

/// A target's watch as its actor holds it: the watcher thread (stopped when this is dropped or
/// stopped), the trigger, and the state `sync status` shows (`None`: watch is off).
#[derive(Default)]
pub struct Watch {
    watcher: Option<Watcher>,
    trigger: Trigger,
    state: Option<WatchState>,
}

impl Watch {
    /// Starts watching when `spec` says so.
    pub fn start(
        name: &str,
        primary: &Path,
        selection: &Selection,
        spec: Option<&WatchSpec>,
        tell: impl FnMut(Signal) -> bool + Send + 'static,
    ) -> Watch {
        let Some(spec) = spec else {
            return Watch::default();
        };
        match Watcher::start(name, primary, selection, spec, tell) {
            Ok(w) => Watch {
                watcher: Some(w),
                trigger: Trigger::default(),
                state: Some(WatchState::Starting),
            },
            Err(e) => {
                let s = WatchState::NotWatching {
                    reason: format!("cannot start the watcher thread: {e}"),
                };
                tracing::warn!(target_name = %name, "sync watch: {}", s.describe());
                Watch {
                    watcher: None,
                    trigger: Trigger::default(),
                    state: Some(s),
                }
            }
        }
    }

    /// Stops the watcher (its thread ends by itself, the actor does not wait for it).
    pub fn stop(&mut self) {
        self.watcher = None;
    }

    pub fn state(&self) -> Option<WatchState> {
        self.state.clone()
    }

    /// A signal from the watcher or the trigger's timer: what to do, and whether the state
    /// shown changed.
    pub fn signal(
        &mut self,
        s: Signal,
        running: bool,
        since_last: Option<Duration>,
        min: Duration,
    ) -> (Next, bool) {
        match s {
            Signal::Changed => (self.trigger.changed(running, since_last, min), false),
            Signal::Due(g) => (self.trigger.due(g, running, since_last, min), false),
            Signal::State(st) => {
                let changed = self.state.as_ref() != Some(&st);
                if self.watcher.is_some() {
                    self.state = Some(st);
                }
                (Next::Nothing, changed)
            }
        }
    }

    /// A run started.
    pub fn started(&mut self) {
        self.trigger.started();
    }

    /// A run or an operator's job ended and the target is idle.
    pub fn idle(&mut self, since_last: Option<Duration>, min: Duration) -> Next {
        self.trigger.idle(since_last, min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{DataChange, MetadataKind, RenameMode};
    use notify::Event;

    const MIN: Duration = Duration::from_secs(60);

    fn secs(s: u64) -> Option<Duration> {
        Some(Duration::from_secs(s))
    }

    #[test]
    fn a_change_runs_at_once_when_the_last_run_is_old_enough() {
        let mut t = Trigger::default();
        assert_eq!(t.changed(false, None, MIN), Next::RunNow);
        t.started();
        assert_eq!(t.idle(secs(0), MIN), Next::Nothing);
        let mut t = Trigger::default();
        assert_eq!(t.changed(false, secs(61), MIN), Next::RunNow);
    }

    #[test]
    fn changes_inside_the_interval_run_once_at_its_end() {
        let mut t = Trigger::default();
        let Next::After(wait, g) = t.changed(false, secs(20), MIN) else {
            panic!("not scheduled")
        };
        assert_eq!(wait, Duration::from_secs(40));
        // More changes meanwhile: nothing more scheduled.
        for _ in 0..100 {
            assert_eq!(t.changed(false, secs(30), MIN), Next::Nothing);
        }
        assert_eq!(t.due(g, false, secs(60), MIN), Next::RunNow);
        t.started();
        // The timer went off once; a stale one does nothing.
        assert_eq!(t.due(g, false, secs(60), MIN), Next::Nothing);
        assert_eq!(t.idle(secs(0), MIN), Next::Nothing);
    }

    #[test]
    fn a_change_during_a_run_makes_one_more_run_after_it() {
        let mut t = Trigger::default();
        assert_eq!(t.changed(false, None, MIN), Next::RunNow);
        t.started();
        assert_eq!(t.changed(true, None, MIN), Next::Nothing);
        assert_eq!(t.changed(true, None, MIN), Next::Nothing);
        let Next::After(wait, g) = t.idle(secs(0), MIN) else {
            panic!("no run after the run")
        };
        assert_eq!(wait, MIN);
        assert_eq!(t.due(g, false, secs(60), MIN), Next::RunNow);
        t.started();
        assert_eq!(t.idle(secs(0), MIN), Next::Nothing, "only one more");
    }

    #[test]
    fn a_run_started_meanwhile_takes_the_scheduled_change() {
        let mut t = Trigger::default();
        let Next::After(_, g) = t.changed(false, secs(10), MIN) else {
            panic!("not scheduled")
        };
        // A forced or periodic run starts before the timer: it sees the change.
        t.started();
        assert_eq!(t.idle(secs(0), MIN), Next::Nothing);
        assert_eq!(t.due(g, false, secs(50), MIN), Next::Nothing);
        // The timer went off while a run was going: the run's end decides.
        let mut t = Trigger::default();
        let Next::After(_, g) = t.changed(false, secs(10), MIN) else {
            panic!("not scheduled")
        };
        assert_eq!(t.due(g, true, secs(50), MIN), Next::Nothing);
        assert!(matches!(t.idle(secs(0), MIN), Next::After(..)));
    }

    #[test]
    fn a_forced_run_ending_before_the_timer_reschedules_it_later() {
        let mut t = Trigger::default();
        let Next::After(_, g) = t.changed(false, secs(50), MIN) else {
            panic!("not scheduled")
        };
        // A dry run (which does not count as seeing the change) ended 5 s before the timer.
        assert_eq!(
            t.due(g, false, secs(5), MIN),
            Next::After(Duration::from_secs(55), g + 1)
        );
    }

    #[test]
    fn quiet_tells_a_burst_once_when_it_stops_or_at_the_cap() {
        let debounce = Duration::from_secs(2);
        let t0 = Instant::now();
        let mut q = Quiet::new(debounce);
        assert_eq!(q.deadline(), None);
        assert!(!q.take_due(t0));
        q.saw(t0);
        q.saw(t0 + Duration::from_millis(500));
        assert_eq!(q.deadline(), Some(t0 + Duration::from_millis(1500)));
        assert!(!q.take_due(t0 + Duration::from_millis(1400)));
        assert!(q.take_due(t0 + Duration::from_millis(1500)));
        assert_eq!(q.deadline(), None);
        // Never quiet: told at the cap.
        for i in 0..100 {
            q.saw(t0 + Duration::from_millis(500 * i));
        }
        assert_eq!(q.deadline(), Some(t0 + debounce * MAX_WAIT_FACTOR));
    }

    fn globs(patterns: &[&str]) -> Option<super::super::select::Patterns> {
        Some(super::super::select::Patterns::parse(patterns).unwrap())
    }

    fn ev(kind: EventKind, paths: &[&Path]) -> Event {
        let mut e = Event::new(kind);
        for p in paths {
            e = e.add_path(p.to_path_buf());
        }
        e
    }

    #[test]
    fn only_changes_of_what_is_synced_count() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("primary");
        for dir in [
            "shared/sub",
            "shared/cache",
            "state",
            "other",
            "shared/backups",
        ] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        let state = root.join("state");
        let sel = Selection {
            paths: vec!["shared".into(), "notes.db".into()],
            include: None,
            exclude: globs(&["**/*.tmp", "shared/cache/**"]),
            never: vec!["shared/backups".into()],
        };
        let f = Filter::new(
            &root,
            &sel,
            &[state.join("metastore.db"), state.join("backups")],
        );
        let write = |rel: &str, text: &str| {
            let p = root.join(rel);
            std::fs::write(&p, text).unwrap();
            p
        };
        let data = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        let created = EventKind::Create(CreateKind::File);
        // Synced files: written, created, removed.
        let a = write("shared/a.txt", "a");
        assert!(f.counts(&ev(data, &[&a])));
        assert!(f.counts(&ev(created, &[&a])));
        assert!(f.counts(&ev(EventKind::Remove(RemoveKind::File), &[&a])));
        let n = write("notes.db", "x");
        assert!(f.counts(&ev(data, &[&n])));
        // Reads, opens, closes, metadata: never.
        for kind in [
            EventKind::Access(notify::event::AccessKind::Close(
                notify::event::AccessMode::Write,
            )),
            EventKind::Access(notify::event::AccessKind::Open(
                notify::event::AccessMode::Any,
            )),
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any)),
            EventKind::Other,
        ] {
            assert!(!f.counts(&ev(kind, &[&a])), "{kind:?}");
        }
        // Not selected, excluded, our temp files, the never-synced backups, SQLite's
        // companions beside their database, the daemon's files: never.
        write("shared/app.db", "SQLite format 3\0");
        for rel in [
            "other/x.txt",
            "outside.txt",
            "shared/x.tmp",
            "shared/cache/blob",
            "shared/.a.txt.msync-tmp-000000000000007b",
            "shared/backups/a-20260101-000000.bak",
            "shared/app.db-shm",
            "shared/app.db-journal",
        ] {
            let p = write(rel, "x");
            assert!(!f.counts(&ev(data, &[&p])), "{rel}");
            assert!(!f.counts(&ev(created, &[&p])), "{rel}");
        }
        // A name with a companion's suffix and no database beside it is a file like any
        // other.
        let plain = write("shared/build-wal", "x");
        assert!(f.counts(&ev(data, &[&plain])));
        for rel in ["metastore.db", "metastore.db-wal", "backups"] {
            let p = state.join(rel);
            assert!(!f.counts(&ev(data, &[&p])), "{rel}");
        }
        // A folder an exclude pattern matches: nothing in it counts, nor the folder itself. A
        // bare name matches at any depth; a trailing `/`, folders only (as a scan selects).
        let pruned = Filter::new(
            &root,
            &Selection {
                exclude: globs(&["node_modules", "tmp/"]),
                ..Selection::default()
            },
            &[],
        );
        std::fs::create_dir_all(root.join("shared/node_modules/m")).unwrap();
        std::fs::create_dir_all(root.join("shared/sub/tmp")).unwrap();
        let inside = write("shared/node_modules/m/x.js", "x");
        assert!(!pruned.counts(&ev(data, &[&inside])));
        assert!(!pruned.counts(&ev(
            EventKind::Create(CreateKind::Folder),
            &[&root.join("shared/node_modules")]
        )));
        let in_tmp = write("shared/sub/tmp/t", "x");
        assert!(!pruned.counts(&ev(data, &[&in_tmp])));
        assert!(!pruned.counts(&ev(
            EventKind::Create(CreateKind::Folder),
            &[&root.join("shared/sub/tmp")]
        )));
        // A file named as a folders-only pattern is synced, so its change counts.
        assert!(pruned.counts(&ev(data, &[&write("shared/tmp", "x")])));
        assert!(pruned.counts(&ev(data, &[&a])));
        // With everything under the primary selected, the daemon's files still never count.
        let all = Filter::new(
            &root,
            &Selection::default(),
            &[state.join("metastore.db"), state.join("backups")],
        );
        let db = write("state/metastore.db", "x");
        let bak = root.join("state/backups/t/a.bak");
        std::fs::create_dir_all(bak.parent().unwrap()).unwrap();
        std::fs::write(&bak, "x").unwrap();
        assert!(!all.counts(&ev(data, &[&db])));
        assert!(!all.counts(&ev(created, &[&bak])));
        assert!(!all.counts(&ev(
            EventKind::Create(CreateKind::Folder),
            &[&root.join("state/backups")]
        )));
        assert!(all.counts(&ev(data, &[&write("state/other.txt", "x")])));
        // Our own install: a rename from a temp name over a synced file is still a change
        // of that file (the debouncer cannot tell whose), the temp name alone is not.
        let tmp = write("shared/.b.txt.msync-tmp-0000000000000009", "b");
        assert!(!f.counts(&ev(created, &[&tmp])));
        // A live database's WAL: counts when written and not empty, for a synced database.
        write("shared/app.db", "SQLite format 3\0db");
        let wal = write("shared/app.db-wal", "");
        assert!(!f.counts(&ev(created, &[&wal])), "an empty WAL");
        assert!(!f.counts(&ev(data, &[&wal])), "an empty WAL");
        std::fs::write(&wal, "frames").unwrap();
        assert!(f.counts(&ev(data, &[&wal])));
        assert!(f.counts(&ev(created, &[&wal])));
        assert!(!f.counts(&ev(EventKind::Remove(RemoveKind::File), &[&wal])));
        let own_wal = write("shared/cache/x.db-wal", "frames");
        assert!(
            !f.counts(&ev(data, &[&own_wal])),
            "the WAL of an excluded db"
        );
        // Folders: created or removed whole, when they may hold synced files.
        let sub = root.join("shared/sub");
        assert!(f.counts(&ev(EventKind::Create(CreateKind::Folder), &[&sub])));
        assert!(f.counts(&ev(EventKind::Remove(RemoveKind::Folder), &[&sub])));
        for rel in ["shared/cache", "other", "shared/backups"] {
            let p = root.join(rel);
            assert!(
                !f.counts(&ev(EventKind::Create(CreateKind::Folder), &[&p])),
                "{rel}"
            );
        }
        // The primary itself is no file of the target.
        assert!(!f.counts(&ev(
            EventKind::Remove(RemoveKind::Folder),
            &[root.as_path()]
        )));
        // Renames: by the kind of what moved.
        let gone = root.join("shared/old.tmp");
        let now = write("shared/new.tmp", "x");
        assert!(!f.counts(&ev(
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)),
            &[&gone, &now]
        )));
        let kept = write("shared/kept.txt", "x");
        assert!(f.counts(&ev(
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)),
            &[&gone, &kept]
        )));
        // Gone, kind unknown: a synced name or a folder that may have held synced files.
        let unknown = root.join("shared/gone");
        assert!(f.counts(&ev(EventKind::Remove(RemoveKind::Any), &[&unknown])));
        assert!(!f.counts(&ev(
            EventKind::Remove(RemoveKind::Any),
            &[&root.join("other/gone")]
        )));
    }

    #[test]
    fn a_plan_watches_selected_folders_and_the_folders_of_files_and_missing_paths() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::create_dir_all(root.join("shared/sub")).unwrap();
        std::fs::create_dir_all(root.join("a")).unwrap();
        std::fs::write(root.join("notes.db"), "x").unwrap();
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(plan(root, &[]).unwrap(), vec![(root.to_path_buf(), true)]);
        assert_eq!(
            plan(root, &s(&["shared", "shared/sub", "notes.db", "a/b/c"])).unwrap(),
            vec![
                (root.to_path_buf(), false),
                (root.join("a"), false),
                (root.join("shared"), true),
            ]
        );
        assert!(plan(&root.join("missing"), &[]).is_err());
        // A folder watched recursively covers a file's folder inside it.
        assert_eq!(
            plan(root, &s(&["shared", "shared/sub/x.txt"])).unwrap(),
            vec![(root.join("shared"), true)]
        );
    }

    #[test]
    fn thread_names_fit_linux() {
        assert_eq!(thread_name("icloud"), "msw-icloud");
        assert_eq!(thread_name("a-very-long-target-name").len(), 15);
    }
}
