//! The chaos monkey: `chaos` starts a run, `chaos_stop` ends it, `chaos_status` shows it.
//!
//! A run is a tokio task of the daemon (never a thread, never blocking the scheduler), so it
//! goes on when the client that started it goes away. At most one runs at a time. Each step
//! waits a random interval, picks a random running actor strictly under the run's PATH, kills
//! it as `kill PATH` does, and records a `chaos` event; the run then watches the tree every
//! 5 ms until that actor runs a new incarnation (at most 60 s), independently of later kills.
//! The store and the control server are not in the tree and are never targets
//! (`crate::chaos`).
//!
//! A run stops killing at its `--for`, at `chaos stop` (recoveries being measured then get
//! 5 s), or when the daemon shuts down (at once: a shutdown never waits for chaos). Its report
//! is kept for `chaos status` and recorded as a `chaos` event.

use super::handle::Answer;
use crate::control::protocol::Failure;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use metasystem_actors::store::{format_ms, unix_ms, Store, StoredEvent};
use metasystem_actors::{NodeSnapshot, TreeError};
use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;

use super::Daemon;
use crate::chaos::{self, Every, Monkey, Seen, KILLS_SHOWN, MAX_KILLS, RECOVERY_BOUND};
use crate::control::protocol::{code, ChaosKill, ChaosRun, ChaosStatusResult, ChaosStopResult};

/// After `chaos stop`, recoveries still being measured get this long.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// `chaos stop` waits this long for the report before answering with the run as it is.
const STOP_WAIT: Duration = Duration::from_secs(8);

/// The daemon's chaos runs: the one going on, or the last one.
#[derive(Default)]
pub(super) struct Chaos {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Runs started since the daemon started (the last run's number).
    runs: u64,
    /// The daemon is shutting down: no new run.
    closed: bool,
    current: Option<Handle>,
}

struct Handle {
    run: Arc<Mutex<Run>>,
    signal: watch::Sender<Signal>,
    /// Turns true once the report is made.
    done: watch::Receiver<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    Go,
    /// `chaos stop`: no more kills; measure what is pending for a little longer.
    Stop,
    /// The daemon is shutting down: end now.
    Shutdown,
}

/// Why a run stopped killing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Duration,
    Stopped,
    Shutdown,
    KillLimit,
    /// Its task ended without saying why (a bug).
    Aborted,
}

impl Ending {
    fn as_str(self) -> &'static str {
        match self {
            Ending::Duration => "duration",
            Ending::Stopped => "stopped",
            Ending::Shutdown => "shutdown",
            Ending::KillLimit => "kill_limit",
            Ending::Aborted => "aborted",
        }
    }
}

struct Run {
    id: u64,
    path: String,
    seed: u64,
    every: Every,
    duration: Duration,
    started: SystemTime,
    /// Set when it stops killing.
    ending: Option<Ending>,
    /// Set when the report is made.
    ended: Option<SystemTime>,
    kills: Vec<Kill>,
    skipped: u64,
}

struct Kill {
    path: String,
    at: SystemTime,
    incarnation: u64,
    outcome: Outcome,
}

enum Outcome {
    Pending,
    Recovered(Duration),
    NotRecovered(String),
}

/// A kill whose recovery is being measured.
struct Watch {
    index: usize,
    path: String,
    /// Taken just before the kill was sent.
    sent: Instant,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn ms(d: Duration) -> f64 {
    // Microsecond precision: restarts take tens of microseconds.
    (d.as_secs_f64() * 1e6).round() / 1e3
}

impl Run {
    fn state(&self) -> &'static str {
        match (self.ended, self.ending) {
            (Some(_), _) => "ended",
            (None, Some(_)) => "ending",
            (None, None) => "running",
        }
    }

    /// The run as the protocol shows it, with the kills numbered from `from` (at most
    /// [`KILLS_SHOWN`]); without `from`, the last ones.
    fn info(&self, from: Option<u64>) -> ChaosRun {
        let total = self.kills.len();
        let first = match from {
            Some(n) => usize::try_from(n.saturating_sub(1))
                .unwrap_or(usize::MAX)
                .min(total),
            None => total.saturating_sub(KILLS_SHOWN),
        };
        let kills = self.kills[first..]
            .iter()
            .take(KILLS_SHOWN)
            .enumerate()
            .map(|(i, k)| ChaosKill {
                n: (first + i + 1) as u64,
                path: k.path.clone(),
                at: format_ms(unix_ms(k.at)),
                at_ms: unix_ms(k.at),
                incarnation: k.incarnation,
                recovered_after_ms: match k.outcome {
                    Outcome::Recovered(d) => Some(ms(d)),
                    _ => None,
                },
                not_recovered: match &k.outcome {
                    Outcome::NotRecovered(why) => Some(why.clone()),
                    _ => None,
                },
            })
            .collect();
        let mut recovered: Vec<f64> = self
            .kills
            .iter()
            .filter_map(|k| match k.outcome {
                Outcome::Recovered(d) => Some(ms(d)),
                _ => None,
            })
            .collect();
        let pending = self
            .kills
            .iter()
            .filter(|k| matches!(k.outcome, Outcome::Pending))
            .count();
        let median = chaos::median(&mut recovered);
        ChaosRun {
            run: self.id,
            path: self.path.clone(),
            seed: self.seed,
            every_min_ms: self.every.min_ms(),
            every_max_ms: self.every.max_ms(),
            for_ms: u64::try_from(self.duration.as_millis()).unwrap_or(u64::MAX),
            started: format_ms(unix_ms(self.started)),
            started_ms: unix_ms(self.started),
            state: self.state().to_string(),
            ended_by: self.ending.map(|e| e.as_str().to_string()),
            ended: self.ended.map(|t| format_ms(unix_ms(t))),
            ended_ms: self.ended.map(unix_ms),
            kill_count: total as u64,
            recovered: recovered.len() as u64,
            not_recovered: (total - recovered.len() - pending) as u64,
            pending: pending as u64,
            skipped: self.skipped,
            median_recovery_ms: median,
            max_recovery_ms: recovered.last().copied(),
            kills,
        }
    }
}

impl Daemon {
    /// `chaos`: checks the request and starts the run; answers it at once.
    pub(super) async fn chaos_start(
        self: &Arc<Self>,
        path: String,
        for_ms: u64,
        every: (Option<u64>, Option<u64>),
        seed: Option<u64>,
    ) -> Answer<ChaosRun> {
        let bad = |message: String| Err(Failure::new(code::BAD_REQUEST, message));
        let duration = match chaos::check_for(Duration::from_millis(for_ms)) {
            Ok(d) => d,
            Err(e) => return bad(format!("--for: {e}")),
        };
        let every = match Every::from_ms(
            every.0.unwrap_or(chaos::DEFAULT_EVERY.min_ms()),
            every.1.unwrap_or(chaos::DEFAULT_EVERY.max_ms()),
        ) {
            Ok(e) => e,
            Err(e) => return bad(format!("--every: {e}")),
        };
        match self.tree.supervisor(&path).await {
            Ok(_) => {}
            Err(TreeError::NotASupervisor(p)) => {
                return Err(Failure::new(
                    code::NOT_A_SUPERVISOR,
                    format!("{p}: not a supervisor; chaos kills the actors under a supervisor"),
                ))
            }
            Err(e) => return Err(e.into()),
        }
        if !self
            .tree
            .snapshot()
            .await
            .iter()
            .any(|n| chaos::under(&n.path, &path))
        {
            return Err(Failure::new(
                code::NOT_FOUND,
                format!("{path} has no actors under it: nothing to kill"),
            ));
        }
        let seed = seed.unwrap_or_else(|| fastrand::u64(..));
        let (run, signal, done) = {
            let mut inner = lock(&self.chaos.inner);
            if inner.closed {
                return Err(Failure::new(
                    code::UNAVAILABLE,
                    "the daemon is shutting down",
                ));
            }
            if let Some(current) = &inner.current {
                let run = lock(&current.run);
                if run.ended.is_none() {
                    return Err(Failure::new(code::ALREADY_RUNNING,
                        format!(
                            "chaos run {} over {} is already running (started {}, {} kill(s) so far); `metasystem chaos stop` ends it",
                            run.id,
                            run.path,
                            format_ms(unix_ms(run.started)),
                            run.kills.len()
                        ),
                    ));
                }
            }
            inner.runs += 1;
            let run = Arc::new(Mutex::new(Run {
                id: inner.runs,
                path: path.clone(),
                seed,
                every,
                duration,
                started: SystemTime::now(),
                ending: None,
                ended: None,
                kills: Vec::new(),
                skipped: 0,
            }));
            let (signal, signal_rx) = watch::channel(Signal::Go);
            let (done_tx, done) = watch::channel(false);
            inner.current = Some(Handle {
                run: run.clone(),
                signal,
                done,
            });
            (run, signal_rx, done_tx)
        };
        let info = lock(&run).info(None);
        tracing::info!(
            run = info.run,
            path = %path,
            seed,
            every = %every,
            duration = %humantime::format_duration(duration),
            "chaos run started"
        );
        let mut event = StoredEvent::new(
            path.as_str(),
            metasystem_actors::store::events::Kind::Chaos,
            format!(
                "chaos run {} started under {path} for {}, every {every}, seed {seed}",
                info.run,
                humantime::format_duration(duration)
            ),
        );
        event.data = json!({
            "action": "start",
            "run": info.run,
            "path": path,
            "seed": seed,
            "every_min_ms": every.min_ms(),
            "every_max_ms": every.max_ms(),
            "for_ms": info.for_ms,
        });
        self.store.record(event);
        let finish = Finish {
            run: run.clone(),
            store: self.store.clone(),
            done,
            cause: Ending::Aborted,
        };
        tokio::spawn(self.clone().chaos_task(run, signal, finish));
        Ok(info)
    }

    /// `chaos_stop`: tells the run to stop and waits (briefly) for its report.
    pub(super) async fn chaos_stop(&self) -> Answer<ChaosStopResult> {
        let (run, mut done) = {
            let inner = lock(&self.chaos.inner);
            match &inner.current {
                Some(h) if lock(&h.run).ended.is_none() => {
                    h.signal.send_replace(Signal::Stop);
                    (h.run.clone(), h.done.clone())
                }
                other => {
                    let last = other.as_ref().map(|h| lock(&h.run).info(None));
                    return Ok(ChaosStopResult {
                        stopped: false,
                        run: last,
                    });
                }
            }
        };
        let _ = tokio::time::timeout(STOP_WAIT, done.wait_for(|d| *d)).await;
        let info = lock(&run).info(None);
        Ok(ChaosStopResult {
            stopped: true,
            run: Some(info),
        })
    }

    /// `chaos_status`: the run going on, else the last one.
    pub(super) fn chaos_status(&self, from: Option<u64>) -> Answer<ChaosStatusResult> {
        let inner = lock(&self.chaos.inner);
        let run = inner.current.as_ref().map(|h| lock(&h.run).info(from));
        Ok(ChaosStatusResult {
            running: run.as_ref().is_some_and(|r| !r.ended()),
            run,
        })
    }

    /// The daemon is shutting down: a run going on ends now (its report is recorded before
    /// the store closes); no new run starts. Never waits.
    pub(super) fn chaos_shutdown(&self) {
        let mut inner = lock(&self.chaos.inner);
        inner.closed = true;
        if let Some(h) = &inner.current {
            h.signal.send_replace(Signal::Shutdown);
        }
    }

    /// A run, from its start to its report (made by `finish` however the task ends).
    async fn chaos_task(
        self: Arc<Self>,
        run: Arc<Mutex<Run>>,
        signal: watch::Receiver<Signal>,
        mut finish: Finish,
    ) {
        let mut shutdown = signal.clone();
        finish.cause = tokio::select! {
            biased;
            () = async { let _ = shutdown.wait_for(|s| *s == Signal::Shutdown).await; } => Ending::Shutdown,
            () = self.chaos_steps(&run, signal) => Ending::Duration,
        };
    }

    /// Kills until the run ends, and measures each recovery until it is known.
    async fn chaos_steps(&self, run: &Mutex<Run>, mut signal: watch::Receiver<Signal>) {
        let (path, seed, every, duration) = {
            let r = lock(run);
            (r.path.clone(), r.seed, r.every, r.duration)
        };
        let mut monkey = Monkey::new(seed, every);
        let start = Instant::now();
        let end_at = start + duration;
        let mut next_kill = start + monkey.interval();
        let mut watching: Vec<Watch> = Vec::new();
        let mut killing = true;
        let mut grace: Option<Instant> = None;
        let mut next_look = start;
        loop {
            if grace.is_none() && *signal.borrow_and_update() != Signal::Go {
                // Stopped while killing, or while measuring after its end.
                grace = Some(Instant::now() + STOP_GRACE);
                if killing {
                    killing = false;
                    lock(run).ending = Some(Ending::Stopped);
                }
            }
            if !killing && watching.is_empty() {
                return;
            }
            if grace.is_some_and(|g| Instant::now() >= g) {
                let why = format!(
                    "still not running {} after the run was stopped",
                    humantime::format_duration(STOP_GRACE)
                );
                let mut r = lock(run);
                for w in watching.drain(..) {
                    r.kills[w.index].outcome = Outcome::NotRecovered(why.clone());
                }
                return;
            }
            let wake = [
                killing.then_some(next_kill.min(end_at)),
                (!watching.is_empty()).then_some(next_look),
                grace,
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or_else(Instant::now);
            tokio::select! {
                biased;
                changed = signal.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    continue;
                }
                () = tokio::time::sleep_until(wake) => {}
            }
            let now = Instant::now();
            if killing && now >= end_at {
                killing = false;
                lock(run).ending = Some(Ending::Duration);
                continue;
            }
            if killing && now >= next_kill {
                // A stop while the tree is being looked at cancels the step; a kill that was
                // sent is always recorded.
                let nodes = tokio::select! {
                    biased;
                    changed = signal.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        continue;
                    }
                    nodes = self.look(run, &mut watching) => nodes,
                };
                if *signal.borrow() == Signal::Go {
                    self.kill_one(run, &path, &nodes, &mut monkey, &mut watching)
                        .await;
                }
                next_kill = Instant::now() + monkey.interval();
                if lock(run).kills.len() >= MAX_KILLS {
                    tracing::warn!(kills = MAX_KILLS, "chaos: the run reached its kill limit");
                    killing = false;
                    lock(run).ending = Some(Ending::KillLimit);
                }
                continue;
            }
            if !watching.is_empty() && now >= next_look {
                self.look(run, &mut watching).await;
                next_look = Instant::now() + chaos::WATCH_EVERY;
            }
        }
    }

    /// Takes a snapshot of the tree and settles the recoveries it shows; the snapshot.
    async fn look(&self, run: &Mutex<Run>, watching: &mut Vec<Watch>) -> Vec<NodeSnapshot> {
        let started = Instant::now();
        let nodes = self.tree.snapshot().await;
        let ended = Instant::now();
        if watching.is_empty() {
            return nodes;
        }
        let mut r = lock(run);
        watching.retain(|w| {
            let seen = chaos::judge(
                &nodes,
                &w.path,
                started.saturating_duration_since(w.sent),
                ended.saturating_duration_since(w.sent),
            );
            let outcome = match seen {
                Seen::Back(after) => Outcome::Recovered(after),
                Seen::Removed => Outcome::NotRecovered(
                    "removed from the tree (by a reload, or a temporary child)".into(),
                ),
                Seen::Down(why) => Outcome::NotRecovered(why),
                Seen::Waiting if ended >= w.sent + RECOVERY_BOUND => {
                    Outcome::NotRecovered(format!(
                        "not running again within {}",
                        humantime::format_duration(RECOVERY_BOUND)
                    ))
                }
                Seen::Waiting => return true,
            };
            if let Outcome::NotRecovered(why) = &outcome {
                tracing::warn!(path = %w.path, why = %why, "chaos: a killed actor did not recover");
            }
            r.kills[w.index].outcome = outcome;
            false
        });
        nodes
    }

    /// One step's kill: a random running actor under `path` in `nodes`, killed as `kill`
    /// does, recorded, and watched.
    async fn kill_one(
        &self,
        run: &Mutex<Run>,
        path: &str,
        nodes: &[NodeSnapshot],
        monkey: &mut Monkey,
        watching: &mut Vec<Watch>,
    ) {
        let candidates = chaos::candidates(nodes, path);
        let Some(target) = monkey.pick(candidates.len()).map(|i| candidates[i]) else {
            lock(run).skipped += 1;
            tracing::debug!(path, "chaos: nothing running to kill");
            return;
        };
        let sent = Instant::now();
        let at = SystemTime::now();
        if let Err(e) = self.tree.inject_failure(&target.path).await {
            lock(run).skipped += 1;
            tracing::debug!(path = %target.path, error = %e, "chaos: the kill did not happen");
            return;
        }
        let (id, n) = {
            let mut r = lock(run);
            r.kills.push(Kill {
                path: target.path.clone(),
                at,
                incarnation: target.incarnation,
                outcome: Outcome::Pending,
            });
            (r.id, r.kills.len())
        };
        watching.push(Watch {
            index: n - 1,
            path: target.path.clone(),
            sent,
        });
        tracing::debug!(path = %target.path, incarnation = target.incarnation, "chaos: killed");
        let mut event = StoredEvent::new(
            target.path.as_str(),
            metasystem_actors::store::events::Kind::Chaos,
            format!(
                "chaos run {id}: killed {} (incarnation {})",
                target.path, target.incarnation
            ),
        );
        event.at = at;
        event.data = json!({
            "action": "kill",
            "run": id,
            "n": n,
            "path": target.path,
            "incarnation": target.incarnation,
        });
        self.store.record(event);
    }
}

/// Makes a run's report when its task ends, however it ends (even by a panic): what is still
/// pending is not recovered, the report is kept for `chaos status` and recorded as an event.
struct Finish {
    run: Arc<Mutex<Run>>,
    store: Store,
    done: watch::Sender<bool>,
    /// Why the task ended (the run's ending, unless it had one already).
    cause: Ending,
}

impl Drop for Finish {
    fn drop(&mut self) {
        let report = {
            let mut run = lock(&self.run);
            run.ending.get_or_insert(self.cause);
            let why = match self.cause {
                Ending::Shutdown => "the daemon shut down before it came back",
                _ => "the run ended before it came back",
            };
            for kill in &mut run.kills {
                if matches!(kill.outcome, Outcome::Pending) {
                    kill.outcome = Outcome::NotRecovered(why.into());
                }
            }
            run.ended = Some(SystemTime::now());
            run.info(None)
        };
        let median = report
            .median_recovery_ms
            .map_or("-".to_string(), |m| format!("{m} ms"));
        let max = report
            .max_recovery_ms
            .map_or("-".to_string(), |m| format!("{m} ms"));
        tracing::info!(
            run = report.run,
            ended_by = report.ended_by.as_deref().unwrap_or(""),
            kills = report.kill_count,
            recovered = report.recovered,
            not_recovered = report.not_recovered,
            median = %median,
            max = %max,
            "chaos run ended"
        );
        let mut event = StoredEvent::new(
            report.path.as_str(),
            metasystem_actors::store::events::Kind::Chaos,
            format!(
                "chaos run {} ended ({}): {} kill(s), {} recovered, {} not; median {median}, max {max}",
                report.run,
                report.ended_by.as_deref().unwrap_or(""),
                report.kill_count,
                report.recovered,
                report.not_recovered
            ),
        );
        let mut data = json!(report);
        if let Some(object) = data.as_object_mut() {
            object.insert("action".into(), json!("report"));
        }
        event.data = data;
        self.store.record(event);
        self.done.send_replace(true);
    }
}
