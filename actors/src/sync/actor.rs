//! The `sync_target` actor: one per target. Runs the engine every `every` (a scheduled run is
//! skipped when one finished less than `min_interval` ago; a forced one never is), one run at a
//! time (forced requests that arrive meanwhile wait for the next run), behind the target's
//! circuit breaker. Every run is a `sync_event` (and a `sync_error` when it failed), a sample,
//! a breaker result (offline and skipped runs are none), and alerts: a refusal (marker missing,
//! mass deletion) is critical, a failed run and kept conflicts warn; each clears when it is over.
//!
//! A failed run is a result, not a crash: crashes are for bugs. The base state is not held
//! here between runs: a run or job reads it ([`base_file::load`]) and keeps it again after
//! ([`base_file::keep`]); one run or job holds it at a time.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use super::backups::{self, Restored, RestoredSet, Which};
use super::engine::{self, Outcome, Progress, Refusal, RunOptions, RunReport, SyncSpec};
use super::error::OpError;
use super::report::PARTIAL_AFTER;
use super::resolve::{self, Keep, Resolution};
use super::watch::{self, Signal, Watch};
use crate::alerts::{Alert, Alerts, Severity};
use crate::breakers::Breakers;
use crate::metrics::{Metric, Metrics, Sample};
use crate::store::base_file;
use crate::store::sync::conflicts;
use crate::store::{unix_ms, Store, StoredEvent};

pub struct SyncTargetActor;

#[derive(Clone)]
pub struct SyncTargetArgs {
    /// Its tree path (events' path); the target's name is `spec.name`.
    pub path: String,
    pub spec: SyncSpec,
    pub every: Duration,
    pub min_interval: Duration,
    /// The circuit breaker a run goes through (by name, from `breakers`), if any.
    pub breaker: Option<String>,
    pub store: Store,
    pub metrics: Metrics,
    pub alerts: Alerts,
    pub breakers: Breakers,
    /// Where the target publishes its status.
    pub registry: SyncTargets,
    /// `watch = true`: changes in the primary start runs.
    pub watch: Option<watch::WatchSpec>,
}

pub enum SyncTargetMessage {
    /// Internal: a scheduled run (stale generations are ignored).
    Tick(u64),
    /// A forced run; answers its report.
    Run(RunOptions, Option<RpcReplyPort<RunReport>>),
    /// Internal: the running task finished (its base is being kept).
    Finished(Box<Finished>),
    /// Internal: the run's base is kept (how many paths it holds; `None`: it was not read):
    /// the next run may start.
    Released(Option<usize>),
    /// The target's status.
    Status(RpcReplyPort<TargetStatus>),
    /// An operator settles the open conflict of a path (`conflicts resolve`); waits for a
    /// running run to finish, and no run starts until it is done.
    Resolve(String, Keep, ResolveReply),
    /// An operator puts a backup back in the primary (`backups restore NAME`); like
    /// `Resolve`, never during a run.
    Restore(String, RpcReplyPort<Result<Restored, OpError>>),
    /// An operator puts back every backup of a run, or each path's oldest since a time
    /// (`backups restore --run ID | --since D`); like `Restore`, never during a run.
    RestoreSet(Which, RestoreSetReply),
    /// Internal: an operator's job finished (its caller already answered).
    JobDone(Box<JobDone>),
    /// Internal: the primary's watcher (a change, its state), or a run it asked for is due.
    Watch(Signal),
}

/// An operator's change to the target's files, done between runs.
pub enum Job {
    Resolve(String, Keep, ResolveReply),
    Restore(String, RpcReplyPort<Result<Restored, OpError>>),
    RestoreSet(Which, RestoreSetReply),
}

/// Where a resolution's answer goes.
pub type ResolveReply = RpcReplyPort<Result<Resolution, OpError>>;

/// Where the answer of a restore of several backups goes.
pub type RestoreSetReply = RpcReplyPort<Result<RestoredSet, OpError>>;

pub struct JobDone {
    /// How many paths the base holds after the job.
    tracked: Option<usize>,
    event: Option<StoredEvent>,
    /// The stamp of the job's end (its backups' are not later).
    stamp: String,
}

pub struct Finished {
    report: RunReport,
    opts: RunOptions,
    /// Whether the target folder was there when the run ended.
    online: bool,
}

/// A run, in short.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LastRun {
    pub at_ms: i64,
    pub outcome: Outcome,
    pub reason: Option<String>,
    pub files: usize,
    pub bytes: u64,
    pub conflicts: usize,
    pub took_ms: u64,
    /// Its ID (the stamp of its backups), when it applied steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
}

/// What `sync status` and `status` show of a target.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TargetStatus {
    pub name: String,
    pub path: String,
    pub primary: String,
    pub target: String,
    pub online: bool,
    pub direction: String,
    pub strategy: String,
    pub every_s: u64,
    pub running: bool,
    /// While running: files and bytes done of the totals.
    pub progress: Option<(u64, u64, u64, u64)>,
    /// While a forced run waits for the target's lock: who holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
    /// Sides (primary, target) whose file system has no stable inode numbers, as the last
    /// run found: every file there is hashed on every run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hashed_every_run: Vec<String>,
    pub last: Option<LastRun>,
    pub last_success_ms: Option<i64>,
    /// Paths in the base.
    pub tracked: usize,
    pub breaker: Option<String>,
    /// With `watch = true`: whether the primary is watched, and if not why; `None`: watch is
    /// off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch: Option<watch::WatchState>,
}

type Entry = (
    TargetStatus,
    ActorRef<SyncTargetMessage>,
    Arc<Progress>,
    Arc<SyncSpec>,
);

/// The targets' latest status, by name, with the actor to ask for a run.
#[derive(Clone, Default)]
pub struct SyncTargets {
    inner: Arc<RwLock<BTreeMap<String, Entry>>>,
}

impl SyncTargets {
    /// Every target's status (progress read live).
    pub fn statuses(&self) -> Vec<TargetStatus> {
        let map = self.inner.read().unwrap_or_else(|e| e.into_inner());
        map.values()
            .map(|(s, _, p, _)| {
                let mut s = s.clone();
                s.online = std::path::Path::new(&s.target).is_dir();
                if s.running {
                    s.progress = Some(progress_of(p));
                    s.waiting = p.waiting();
                }
                s
            })
            .collect()
    }

    /// Every target's status as its actor last published it (no look at the disk: `online`
    /// may be stale).
    pub fn published(&self) -> Vec<TargetStatus> {
        let map = self.inner.read().unwrap_or_else(|e| e.into_inner());
        map.values().map(|(s, _, _, _)| s.clone()).collect()
    }

    /// The actor of target `name`.
    pub fn actor(&self, name: &str) -> Option<ActorRef<SyncTargetMessage>> {
        let map = self.inner.read().unwrap_or_else(|e| e.into_inner());
        map.get(name).map(|(_, a, _, _)| a.clone())
    }

    /// Every target's spec (where its sides and backups are), by name.
    pub fn specs(&self) -> Vec<Arc<SyncSpec>> {
        let map = self.inner.read().unwrap_or_else(|e| e.into_inner());
        map.values().map(|(_, _, _, s)| s.clone()).collect()
    }

    /// Runs target `name` now (after a run in progress) and waits up to `wait` for its
    /// report.
    pub async fn run(
        &self,
        name: &str,
        opts: RunOptions,
        wait: Duration,
    ) -> Result<RunReport, String> {
        let Some(actor) = self.actor(name) else {
            let names = self.names();
            return Err(format!(
                "no sync target `{name}` is running (targets: {})",
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            ));
        };
        match actor
            .call(|r| SyncTargetMessage::Run(opts, Some(r)), Some(wait))
            .await
        {
            Ok(ractor::rpc::CallResult::Success(r)) => Ok(r),
            Ok(ractor::rpc::CallResult::Timeout) => Err(format!(
                "the sync of `{name}` did not finish within {}",
                humantime::format_duration(wait)
            )),
            _ => Err(format!("sync target `{name}` stopped before answering")),
        }
    }

    pub fn names(&self) -> Vec<String> {
        let map = self.inner.read().unwrap_or_else(|e| e.into_inner());
        map.keys().cloned().collect()
    }

    fn publish(
        &self,
        status: TargetStatus,
        actor: &ActorRef<SyncTargetMessage>,
        p: &Arc<Progress>,
        spec: &Arc<SyncSpec>,
    ) {
        let mut map = self.inner.write().unwrap_or_else(|e| e.into_inner());
        map.insert(
            status.name.clone(),
            (status, actor.clone(), p.clone(), spec.clone()),
        );
    }

    fn withdraw(&self, name: &str, id: ractor::ActorId) {
        let mut map = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if map.get(name).is_some_and(|(_, a, _, _)| a.get_id() == id) {
            map.remove(name);
        }
    }
}

/// A target's entry in the registry, withdrawn when the actor's state is dropped: whatever
/// ends the actor (a stop, a kill, a panic: ractor runs `post_stop` only for the first), a
/// target that is not restarted is not listed. A later incarnation's entry is left alone.
struct Listing {
    registry: SyncTargets,
    name: String,
    id: ractor::ActorId,
}

impl Drop for Listing {
    fn drop(&mut self) {
        self.registry.withdraw(&self.name, self.id);
    }
}

fn progress_of(p: &Progress) -> (u64, u64, u64, u64) {
    use std::sync::atomic::Ordering::Relaxed;
    (
        p.files_done.load(Relaxed),
        p.files_total.load(Relaxed),
        p.bytes_done.load(Relaxed),
        p.bytes_total.load(Relaxed),
    )
}

pub struct SyncTargetState {
    args: SyncTargetArgs,
    /// Its entry in the registry, withdrawn when the state is dropped.
    _listing: Listing,
    /// A run or job holds the target's base (reading it, using it or keeping it again):
    /// another waits.
    busy: bool,
    /// The run finished and its base is being kept (not shown as running).
    keeping: bool,
    /// Paths in the base, as the last run or job left it.
    tracked: usize,
    progress: Arc<Progress>,
    /// Forced runs waiting for the running one to finish.
    queued: Vec<(RunOptions, Option<RpcReplyPort<RunReport>>)>,
    /// Resolutions waiting for the running run (or resolution) to finish; served first.
    jobs: std::collections::VecDeque<Job>,
    /// The spec, shared with the registry.
    spec: Arc<SyncSpec>,
    /// Callers of the running run.
    waiting: Vec<RpcReplyPort<RunReport>>,
    generation: u64,
    last: Option<LastRun>,
    last_finished: Option<tokio::time::Instant>,
    last_success_ms: Option<i64>,
    /// Whether the target folder was there at the last look (at start and after each run:
    /// looked at on the blocking pool, as the target may be a slow or hung mount).
    online: bool,
    /// The primary's watcher and when its changes run the target.
    watch: Watch,
    /// Paths deferred by the latest runs, with how many runs in a row deferred each: one
    /// deferred [`PARTIAL_AFTER`] times makes the run `partial` and warns (a file that never
    /// stops changing is never synced, and nobody would be told).
    deferred_runs: std::collections::HashMap<String, u32>,
    /// What the last run said of the sides' inode numbers (shown by `sync status`).
    hashed_every_run: Vec<String>,
    /// The stamp of the latest run or job that may have taken backups: the next one is
    /// stamped a later second (`engine::run_time`), so each run's backups carry a stamp, an
    /// ID, of its own.
    last_stamp: Option<String>,
}

/// Whether `target` is a folder now, looked at on the blocking pool.
async fn target_online(target: &std::path::Path) -> bool {
    let t = target.to_path_buf();
    tokio::task::spawn_blocking(move || t.is_dir())
        .await
        .unwrap_or(false)
}

/// The alerts scope of a target: its keys are `sync:TARGET:WHAT`.
pub fn alert_scope(target: &str) -> String {
    format!("sync:{target}")
}

/// Alert keys of a target.
pub fn alert_key(target: &str, what: &str) -> String {
    format!("sync:{target}:{what}")
}

impl SyncTargetState {
    /// A run or job is under way (not only keeping its base).
    fn running(&self) -> bool {
        self.busy && !self.keeping
    }

    fn status(&self) -> TargetStatus {
        let spec = &self.args.spec;
        TargetStatus {
            name: spec.name.clone(),
            path: self.args.path.clone(),
            primary: spec.primary.display().to_string(),
            target: spec.target.display().to_string(),
            online: self.online,
            direction: spec.direction.name().into(),
            strategy: spec.strategy.name().into(),
            every_s: self.args.every.as_secs(),
            running: self.running(),
            progress: self.running().then(|| progress_of(&self.progress)),
            waiting: None,
            hashed_every_run: self.hashed_every_run.clone(),
            last: self.last.clone(),
            last_success_ms: self.last_success_ms,
            tracked: self.tracked,
            breaker: self.args.breaker.clone(),
            watch: self.watch.state(),
        }
    }

    fn publish(&self, myself: &ActorRef<SyncTargetMessage>) {
        self.args
            .registry
            .publish(self.status(), myself, &self.progress, &self.spec);
    }

    fn schedule(&mut self, myself: &ActorRef<SyncTargetMessage>, after: Duration) {
        self.generation += 1;
        let g = self.generation;
        myself.send_after(after, move || SyncTargetMessage::Tick(g));
    }

    /// Starts a run unless one is running.
    fn start(
        &mut self,
        myself: &ActorRef<SyncTargetMessage>,
        opts: RunOptions,
        reply: Option<RpcReplyPort<RunReport>>,
    ) {
        if self.busy {
            self.queued.push((opts, reply));
            return;
        }
        self.busy = true;
        self.waiting.extend(reply);
        if !opts.dry_run {
            self.watch.started();
        }
        let spec = self.args.spec.clone();
        let store = self.args.store.clone();
        let progress = self.progress.clone();
        let breaker = self
            .args
            .breaker
            .as_deref()
            .and_then(|n| self.args.breakers.get(n));
        let myself2 = myself.clone();
        let opts = RunOptions {
            after_stamp: (!opts.dry_run).then(|| self.last_stamp.clone()).flatten(),
            ..opts
        };
        tokio::spawn(async move {
            let mut loaded = None;
            let report = match breaker.as_ref().map(|b| b.allow()) {
                Some(Err(rejected)) => RunReport::not_run(
                    &spec,
                    &opts,
                    format!("the circuit breaker refused the run: {rejected}"),
                ),
                permit => {
                    let open = conflicts(store.reader(), Some(&spec.name), false)
                        .await
                        .unwrap_or_default();
                    let r = match base_file::load(&store, &spec.name).await {
                        Ok(l) => {
                            let l = loaded.insert(l);
                            engine::run(&spec, &opts, &store, &mut l.base, &open, &progress).await
                        }
                        Err(e) => RunReport::failed(&spec, &opts, e),
                    };
                    if let (Some(b), Some(Ok(p))) = (breaker.as_ref(), permit) {
                        match r.outcome {
                            Outcome::Success => b.record(p, true),
                            // Files that failed (unreadable, no space) are for an alert,
                            // not the breaker: one bad file must not stop every run.
                            Outcome::Error if !r.errors.is_empty() => b.release(p),
                            Outcome::Error => b.record(p, false),
                            Outcome::Skipped | Outcome::Partial => b.release(p),
                        }
                    }
                    r
                }
            };
            let online = target_online(&spec.target).await;
            // A run's listings and items are freed by now: a large one's memory goes back.
            let _ = tokio::task::spawn_blocking(crate::memory::release_free).await;
            let _ = myself2.cast(SyncTargetMessage::Finished(Box::new(Finished {
                report,
                opts,
                online,
            })));
            // Kept after the report is out: its callers do not wait for the write.
            let tracked = match loaded {
                Some(l) => Some(base_file::keep(&store, &spec.name, l).await),
                None => None,
            };
            let _ = myself2.cast(SyncTargetMessage::Released(tracked));
        });
        self.publish(myself);
    }

    fn finished(&mut self, myself: &ActorRef<SyncTargetMessage>, f: Finished) {
        let Finished {
            mut report,
            opts,
            online,
        } = f;
        if !opts.dry_run && report.outcome == Outcome::Success {
            self.deferred_runs = partial(&mut report, &self.deferred_runs);
        }
        self.online = online;
        self.keeping = true;
        self.last_finished = Some(tokio::time::Instant::now());
        if report.run_id.is_some() {
            self.last_stamp = report.run_id.clone();
        }
        if !opts.dry_run {
            self.record(&report);
        }
        for w in self.waiting.drain(..) {
            let _ = w.send(report.clone());
        }
        self.publish(myself);
    }

    /// The run's base is kept (`tracked`: its paths, if it was read): what waited may start.
    fn released(&mut self, myself: &ActorRef<SyncTargetMessage>, tracked: Option<usize>) {
        self.busy = false;
        self.keeping = false;
        if let Some(n) = tracked {
            self.tracked = n;
        }
        self.publish(myself);
        self.next_queued(myself);
        self.watch_idle(myself);
    }

    /// What waited for the target: a resolution first, else the forced runs.
    fn next_queued(&mut self, myself: &ActorRef<SyncTargetMessage>) {
        if let Some(job) = self.jobs.pop_front() {
            self.start_job(myself, job);
            return;
        }
        // Forced runs that waited: one run for the first, and for every other with the same
        // options.
        if !self.queued.is_empty() {
            let (opts, first) = self.queued.remove(0);
            let same: Vec<_> = {
                let (same, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.queued)
                    .into_iter()
                    .partition(|(o, _)| same_options(o, &opts));
                self.queued = rest;
                same
            };
            self.waiting.extend(same.into_iter().filter_map(|(_, r)| r));
            self.start(myself, opts, first);
        }
    }

    /// Starts an operator's job unless a run or another job holds the base (then it waits).
    fn start_job(&mut self, myself: &ActorRef<SyncTargetMessage>, job: Job) {
        if self.busy {
            self.jobs.push_back(job);
            return;
        }
        self.busy = true;
        let spec = self.spec.clone();
        let store = self.args.store.clone();
        let path = self.args.path.clone();
        let myself2 = myself.clone();
        // The job's stamp (its backups' names, its ID): a second of its own after the last.
        let at = engine::run_time(self.last_stamp.as_deref(), SystemTime::now());
        tokio::spawn(async move {
            // Only a resolution reads and changes the base.
            let mut loaded = None;
            let event = match job {
                Job::Resolve(rel, keep, reply) => {
                    let result = match conflicts(store.reader(), Some(&spec.name), false).await {
                        Err(e) => Err(OpError::Store(e.into())),
                        Ok(open) => {
                            let rows: Vec<_> =
                                open.iter().filter(|c| c.path == rel).cloned().collect();
                            if rows.is_empty() {
                                Err(OpError::NotFound(no_conflict(&spec.name, &rel, &open)))
                            } else {
                                match base_file::load(&store, &spec.name).await {
                                    Err(e) => Err(OpError::Store(e)),
                                    Ok(l) => {
                                        let l = loaded.insert(l);
                                        resolve::resolve(
                                            &spec,
                                            &store,
                                            &mut l.base,
                                            &rows,
                                            keep,
                                            at,
                                        )
                                        .await
                                    }
                                }
                            }
                        }
                    };
                    let event = result.as_ref().ok().map(|res| {
                        let mut e = StoredEvent::new(
                            &path,
                            crate::store::events::Kind::SyncEvent,
                            format!(
                                "{}: conflict of {} resolved keeping {}",
                                spec.name,
                                res.path,
                                res.keep.name()
                            ),
                        );
                        e.data = serde_json::json!({
                            "target": spec.name,
                            "outcome": "resolved",
                            "path": res.path,
                            "keep": res.keep,
                            "backup": res.backup,
                        });
                        e
                    });
                    let _ = reply.send(result);
                    event
                }
                Job::Restore(name, reply) => {
                    let s = spec.clone();
                    let temps = super::temps::Temps::new();
                    let result = match temps.register(&store, &spec.name).await {
                        Ok(()) => tokio::task::spawn_blocking(move || {
                            backups::restore(&s, &name, at, &temps)
                        })
                        .await
                        .unwrap_or_else(|e| Err(OpError::Io(format!("the restore failed: {e}")))),
                        Err(e) => Err(OpError::Store(e)),
                    };
                    let event = result.as_ref().ok().map(|r| {
                        let mut e = StoredEvent::new(
                            &path,
                            crate::store::events::Kind::SyncEvent,
                            format!(
                                "{}: backup {} restored to {}",
                                spec.name, r.name, r.restored_to
                            ),
                        );
                        e.data = serde_json::json!({
                            "target": spec.name,
                            "outcome": "restored",
                            "path": r.original,
                            "backup": r.name,
                            "previous_backup": r.previous_backup,
                        });
                        e
                    });
                    let _ = reply.send(result);
                    event
                }
                Job::RestoreSet(which, reply) => {
                    let result = restore_set(&spec, &store, which, at).await;
                    let event = result.as_ref().ok().map(|r| restored_event(&path, r));
                    let _ = reply.send(result);
                    event
                }
            };
            let tracked = match loaded {
                Some(l) => Some(base_file::keep(&store, &spec.name, l).await),
                None => None,
            };
            let _ = myself2.cast(SyncTargetMessage::JobDone(Box::new(JobDone {
                tracked,
                event,
                stamp: super::fsops::stamp(at),
            })));
        });
        self.publish(myself);
    }

    fn job_done(&mut self, myself: &ActorRef<SyncTargetMessage>, done: JobDone) {
        let JobDone {
            tracked,
            event,
            stamp,
        } = done;
        self.last_stamp = Some(stamp);
        self.busy = false;
        if let Some(n) = tracked {
            self.tracked = n;
        }
        if let Some(e) = event {
            self.args.store.record(e);
        }
        self.publish(myself);
        self.next_queued(myself);
        self.watch_idle(myself);
    }

    /// A signal of the watch: a change may start a run now or schedule one.
    fn watched(&mut self, myself: &ActorRef<SyncTargetMessage>, s: Signal) {
        let since = self.last_finished.map(|t| t.elapsed());
        let running = self.busy;
        let (next, shown) = self.watch.signal(s, running, since, self.args.min_interval);
        if shown {
            self.publish(myself);
        }
        self.follow(myself, next);
    }

    /// Idle again after a run or a job: one more run if the primary changed meanwhile.
    fn watch_idle(&mut self, myself: &ActorRef<SyncTargetMessage>) {
        if !self.busy {
            let since = self.last_finished.map(|t| t.elapsed());
            let next = self.watch.idle(since, self.args.min_interval);
            self.follow(myself, next);
        }
    }

    fn follow(&mut self, myself: &ActorRef<SyncTargetMessage>, next: watch::Next) {
        match next {
            watch::Next::RunNow => self.start(myself, RunOptions::default(), None),
            watch::Next::After(delay, g) => {
                myself.send_after(delay, move || SyncTargetMessage::Watch(Signal::Due(g)));
            }
            watch::Next::Nothing => {}
        }
    }

    /// The run's records: event, sample, alerts.
    fn record(&mut self, r: &RunReport) {
        let name = &self.args.spec.name;
        let at = unix_ms(SystemTime::now());
        self.last = Some(LastRun {
            at_ms: at,
            outcome: r.outcome,
            reason: r.reason.clone(),
            files: r.files_changed(),
            bytes: r.bytes,
            conflicts: r.conflicts.len(),
            took_ms: r.took_ms,
            run_id: r.run_id.clone(),
        });
        if r.outcome == Outcome::Success {
            self.last_success_ms = Some(at);
        }
        if r.outcome != Outcome::Skipped {
            self.hashed_every_run = r.hashed_every_run.clone();
        }
        let mut summary = match &r.reason {
            Some(reason) => format!("{name}: {}: {reason}", r.outcome.name()),
            None => format!(
                "{name}: success: {} to the target, {} to the primary, {} deleted, {} conflicts, {} bytes in {} ms",
                r.copied_to_remote,
                r.copied_to_local,
                r.deleted_local + r.deleted_remote,
                r.conflicts.len(),
                r.bytes,
                r.took_ms
            ),
        };
        if let Some(id) = &r.run_id {
            summary.push_str(&format!(" (run {id})"));
        }
        let mut event = StoredEvent::new(
            &self.args.path,
            crate::store::events::Kind::SyncEvent,
            summary.clone(),
        );
        event.data = serde_json::json!({
            "target": name,
            "outcome": r.outcome,
            "reason": r.reason,
            "run_id": r.run_id,
            "files": r.files_changed(),
            "copied_to_remote": r.copied_to_remote,
            "copied_to_local": r.copied_to_local,
            "deleted": r.deleted_local + r.deleted_remote,
            "bytes": r.bytes,
            "conflicts": r.conflicts.len(),
            "deferred": r.deferred.len(),
            "errors": r.errors.len(),
            "duration_ms": r.took_ms,
        });
        self.args.store.record(event);
        if r.outcome == Outcome::Error {
            let mut e = StoredEvent::new(
                &self.args.path,
                crate::store::events::Kind::SyncError,
                summary.clone(),
            );
            e.data = serde_json::json!({
                "target": name,
                "reason": r.reason,
                "refusal": r.refusal,
                "errors": r.errors.iter().take(20).collect::<Vec<_>>(),
            });
            self.args.store.record(e);
        }
        if r.outcome != Outcome::Skipped {
            self.args.metrics.report(
                Sample::now(Metric::SyncRuns, name.clone(), r.took_ms as f64 / 1000.0)
                    .outcome(r.outcome == Outcome::Success),
            );
            if r.bytes > 0 {
                self.args.metrics.report(Sample::now(
                    Metric::SyncBytes,
                    name.clone(),
                    r.bytes as f64,
                ));
            }
        }
        self.alerts(r);
    }

    fn alerts(&self, r: &RunReport) {
        let name = &self.args.spec.name;
        let alert = |severity, key: &str, title: String, body: String| {
            let mut a = Alert::new(severity, title, self.args.path.clone())
                .body(body)
                .label("target", name.clone());
            if severity == Severity::Critical {
                a = a.at_once();
            }
            a.key = Some(alert_key(name, key));
            self.args.alerts.raise(a);
        };
        match (r.outcome, r.refusal) {
            (_, Some(Refusal::MarkerMissing | Refusal::MaxDelete)) => alert(
                Severity::Critical,
                "refused",
                format!("sync of {name} refused"),
                r.reason.clone().unwrap_or_default(),
            ),
            (Outcome::Error, _) => alert(
                Severity::Warning,
                "error",
                format!("sync of {name} failed"),
                r.reason.clone().unwrap_or_default(),
            ),
            (Outcome::Success | Outcome::Partial, _) => {
                self.args.alerts.clear(alert_key(name, "refused"));
                self.args.alerts.clear(alert_key(name, "error"));
            }
            _ => {}
        }
        match r.outcome {
            Outcome::Partial => alert(
                Severity::Warning,
                "partial",
                format!("sync of {name} is partial"),
                r.reason.clone().unwrap_or_default(),
            ),
            Outcome::Success => self.args.alerts.clear(alert_key(name, "partial")),
            _ => {}
        }
        let kept: Vec<&str> = r
            .conflicts
            .iter()
            .filter(|c| c.copy.is_some())
            .map(|c| c.path.as_str())
            .collect();
        if !kept.is_empty() {
            let mut a = Alert::new(
                Severity::Warning,
                format!(
                    "sync of {name}: {} conflict(s) kept both versions",
                    kept.len()
                ),
                self.args.path.clone(),
            )
            .body(format!(
                "both sides changed: {}. The other version is beside each as NAME.conflict-...; \
                 `metasystem conflicts` lists them, `metasystem conflicts resolve PATH --keep \
                 local|remote|both` settles one",
                kept.join(", ")
            ))
            .label("target", name.clone())
            .at_once();
            a.key = Some(alert_key(name, "conflict"));
            self.args.alerts.raise(a);
        } else if !r.unresolved.is_empty() {
            // Kept by an earlier run and still open: the condition holds (said again, so it
            // is known to hold after a restart).
            let mut a = Alert::new(
                Severity::Warning,
                format!(
                    "sync of {name}: {} conflict(s) kept both versions",
                    r.unresolved.len()
                ),
                self.args.path.clone(),
            )
            .body(format!(
                "unresolved conflicts: {}. `metasystem conflicts` lists them, `metasystem \
                 conflicts resolve PATH --keep local|remote|both` settles one",
                r.unresolved.join(", ")
            ))
            .label("target", name.clone())
            .at_once();
            a.key = Some(alert_key(name, "conflict"));
            self.args.alerts.raise(a);
        } else if matches!(r.outcome, Outcome::Success | Outcome::Partial) {
            self.args.alerts.clear(alert_key(name, "conflict"));
        }
        if matches!(r.outcome, Outcome::Success | Outcome::Partial) {
            // A run that got through has said what holds of every key of the target.
            self.args.alerts.told(&alert_scope(name));
        }
    }
}

/// Counts the runs in a row that deferred each path (`before`: the counts after the previous
/// run); a path deferred [`PARTIAL_AFTER`] times makes `report` partial, saying which and why.
/// Answers the new counts.
fn partial(report: &mut RunReport, before: &HashMap<String, u32>) -> HashMap<String, u32> {
    let now: HashMap<String, u32> = report
        .deferred
        .iter()
        .map(|(p, _)| (p.clone(), before.get(p).copied().unwrap_or(0) + 1))
        .collect();
    let mut stuck: Vec<&str> = now
        .iter()
        .filter(|(_, n)| **n >= PARTIAL_AFTER)
        .map(|(p, _)| p.as_str())
        .collect();
    if !stuck.is_empty() {
        stuck.sort_unstable();
        let n = stuck.len();
        let first: Vec<&str> = stuck.into_iter().take(5).collect();
        report.outcome = Outcome::Partial;
        report.reason = Some(format!(
            "{n} path(s) deferred on {PARTIAL_AFTER} or more runs in a row, never synced: {}{} \
             (a file that never stops changing or stays in use: exclude it, or stop what \
             writes it during runs)",
            first.join(", "),
            if n > 5 { ", ..." } else { "" }
        ));
    }
    now
}

/// The error for a path with no open conflict, naming the open ones.
pub fn no_conflict(target: &str, path: &str, open: &[crate::store::sync::ConflictRow]) -> String {
    let mut names: Vec<&str> = open.iter().map(|c| c.path.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    if names.is_empty() {
        format!("{path} has no open conflict in sync target `{target}`: it has none open")
    } else {
        format!(
            "{path} has no open conflict in sync target `{target}`; open: {}",
            names.join(", ")
        )
    }
}

fn same_options(a: &RunOptions, b: &RunOptions) -> bool {
    a.direction == b.direction
        && a.strategy == b.strategy
        && a.dry_run == b.dry_run
        && a.allow_deletes == b.allow_deletes
}

/// `backups restore --run ID | --since D` of `spec`'s target: the job's own temps
/// registered, then [`backups::restore_set`] on the blocking pool, with one stamp for every
/// backup it takes (its `restore_id`).
async fn restore_set(
    spec: &SyncSpec,
    store: &Store,
    which: Which,
    at: SystemTime,
) -> Result<RestoredSet, OpError> {
    let temps = super::temps::Temps::new();
    temps
        .register(store, &spec.name)
        .await
        .map_err(OpError::Store)?;
    let s = spec.clone();
    tokio::task::spawn_blocking(move || backups::restore_set(&s, &which, at, &temps))
        .await
        .unwrap_or_else(|e| Err(OpError::Io(format!("the restore failed: {e}"))))
}

/// The `sync_event` of a restore of several backups.
fn restored_event(path: &str, r: &RestoredSet) -> StoredEvent {
    let what = match (&r.run, &r.since) {
        (Some(id), _) => format!("of run {id}"),
        (None, Some(t)) => format!("taken since {t}"),
        (None, None) => String::new(),
    };
    let mut e = StoredEvent::new(
        path,
        crate::store::events::Kind::SyncEvent,
        format!(
            "{}: {} backup(s) {what} restored, {} failed (restore {})",
            r.target, r.restored, r.failed, r.restore_id
        ),
    );
    e.data = serde_json::json!({
        "target": r.target,
        "outcome": "restored",
        "run": r.run,
        "since": r.since,
        "restore_id": r.restore_id,
        "restored": r.restored,
        "failed": r.failed,
        "paths": r.paths.iter().take(100).map(|p| &p.original).collect::<Vec<_>>(),
    });
    e
}

impl Actor for SyncTargetActor {
    type Msg = SyncTargetMessage;
    type State = SyncTargetState;
    type Arguments = SyncTargetArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: SyncTargetArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        // Until a run gets through, what the receivers were told of this target stands.
        args.alerts.own(&alert_scope(&args.spec.name));
        // Only its size: the base itself is read by each run.
        let tracked = crate::store::sync::base_len(args.store.reader(), &args.spec.name)
            .await
            .map_err(|e| format!("sync target {}: {e}", args.spec.name))?;
        let last_success_ms =
            crate::probes::actor::last_sync_success(&args.store, &args.spec.name).await;
        let online = target_online(&args.spec.target).await;
        let me = myself.clone();
        let watch = Watch::start(
            &args.spec.name,
            &args.spec.primary,
            &args.spec.selection,
            args.watch.as_ref(),
            move |s| me.cast(SyncTargetMessage::Watch(s)).is_ok(),
        );
        let mut state = SyncTargetState {
            online,
            tracked,
            busy: false,
            keeping: false,
            progress: Arc::new(Progress::default()),
            queued: Vec::new(),
            jobs: std::collections::VecDeque::new(),
            spec: Arc::new(args.spec.clone()),
            waiting: Vec::new(),
            generation: 0,
            last: None,
            last_finished: None,
            last_success_ms,
            watch,
            deferred_runs: HashMap::new(),
            hashed_every_run: Vec::new(),
            last_stamp: None,
            _listing: Listing {
                registry: args.registry.clone(),
                name: args.spec.name.clone(),
                id: myself.get_id(),
            },
            args,
        };
        state.publish(&myself);
        // The first run soon after start (not at once: the tree settles first).
        state.schedule(&myself, Duration::from_secs(5).min(state.args.every));
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SyncTargetMessage::Tick(g) => {
                if g != state.generation {
                    return Ok(());
                }
                let every = state.args.every;
                state.schedule(&myself, every);
                let recent = state
                    .last_finished
                    .is_some_and(|t| t.elapsed() < state.args.min_interval);
                if !recent && !state.busy {
                    state.start(&myself, RunOptions::default(), None);
                }
            }
            SyncTargetMessage::Run(opts, reply) => state.start(&myself, opts, reply),
            SyncTargetMessage::Finished(f) => state.finished(&myself, *f),
            SyncTargetMessage::Released(tracked) => state.released(&myself, tracked),
            SyncTargetMessage::Status(reply) => {
                let _ = reply.send(state.status());
            }
            SyncTargetMessage::Resolve(path, keep, reply) => {
                state.start_job(&myself, Job::Resolve(path, keep, reply))
            }
            SyncTargetMessage::Restore(name, reply) => {
                state.start_job(&myself, Job::Restore(name, reply))
            }
            SyncTargetMessage::RestoreSet(which, reply) => {
                state.start_job(&myself, Job::RestoreSet(which, reply))
            }
            SyncTargetMessage::JobDone(d) => state.job_done(&myself, *d),
            SyncTargetMessage::Watch(s) => state.watched(&myself, s),
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.watch.stop();
        state
            .args
            .registry
            .withdraw(&state.args.spec.name, myself.get_id());
        // Stopped on purpose: its conditions end with it, unless a new incarnation owns them
        // by the time the alerts look.
        state
            .args
            .alerts
            .disown(&alert_scope(&state.args.spec.name));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::{Direction, Selection, Strategy};
    use std::path::PathBuf;

    fn report(deferred: &[&str]) -> RunReport {
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
            max_delete_floor: 10,
            snapshots: Vec::new(),
            snapshot_every: Duration::from_secs(1),
            host: "h".into(),
            state_dir: PathBuf::from("/s"),
        };
        let mut r = RunReport::not_run(&spec, &RunOptions::default(), String::new());
        r.outcome = Outcome::Success;
        r.reason = None;
        r.deferred = deferred
            .iter()
            .map(|p| (p.to_string(), "changed during the run".into()))
            .collect();
        r
    }

    /// A path deferred on three runs in a row makes the run partial, naming it; a run that
    /// syncs it starts the count again.
    #[test]
    fn a_path_deferred_on_every_run_makes_the_run_partial() {
        let mut counts = HashMap::new();
        for run in 1..=PARTIAL_AFTER {
            let mut r = report(&["busy.log", "once.txt"][..if run == 1 { 2 } else { 1 }]);
            counts = partial(&mut r, &counts);
            let want = if run < PARTIAL_AFTER {
                Outcome::Success
            } else {
                Outcome::Partial
            };
            assert_eq!(r.outcome, want, "run {run}");
        }
        let mut r = report(&["busy.log"]);
        counts = partial(&mut r, &counts);
        let why = r.reason.unwrap();
        assert!(
            why.contains("busy.log") && !why.contains("once.txt"),
            "{why}"
        );
        assert_eq!(counts.get("busy.log"), Some(&(PARTIAL_AFTER + 1)));
        let mut r = report(&[]);
        assert!(partial(&mut r, &counts).is_empty());
        assert_eq!(r.outcome, Outcome::Success);
    }
}
