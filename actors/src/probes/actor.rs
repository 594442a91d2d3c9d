//! The probe actor: runs one check every `every` (off the actor, bounded by `timeout`), applies
//! the hysteresis ([`ProbeState`]) to report pass | warn | fail, turns every result into a
//! sample, every change of the reported status into an event and an alert (or its
//! resolution), and runs the heal actions it names when it turns warn or fail.
//!
//! Each heal action runs through the retry loop ([`crate::retry::retry()`], one attempt) with
//! a circuit breaker of its own as the guard ([`crate::heal::guard`]); every run is recorded
//! (`retry_runs`, `heal_actions`). While its breaker is open, an action is not run: the first
//! refused run is recorded as `rejected` (with the breaker's wait) and the action is then left
//! alone, like a cooldown, until the breaker lets a trial through.
//!
//! Its latest report sits in the shared [`Probes`] registry, so `/health`, `status` and the
//! dashboard read it without a message round trip; `health` asks each probe to check now. The
//! report is pending ([`ProbeReport::pending`]) until the first check completes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, SystemTime};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::check::{run, CheckOutcome, CheckSpec, CheckState, Health, Slots};
use super::status::{ProbeState, Thresholds};
use crate::alerts::{Alert, Alerts, Severity};
use crate::breakers::{Breaker, Breakers, Notifier, Snapshot, StateName, Transition};
use crate::heal::{self, HealAction, HealContext, HealFailure, HealLimits, Limiter, Verdict};
use crate::metrics::{Metric, Metrics, Sample};
use crate::retry::{self, Outcome, RetryError};
use crate::store::health::HealRow;
use crate::store::{unix_ms, DurableOp, Store, StoredEvent};

/// How long a heal action's record may take before the actor goes on.
const STORE_WAIT: Duration = Duration::from_secs(5);

pub struct ProbeActor;

/// A heal action with its limits, as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct HealSpec {
    pub action: HealAction,
    pub limits: HealLimits,
    /// Which reported statuses it runs at.
    pub on: HealOn,
}

/// When a heal action runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealOn {
    /// While the probe warns (a size warning a VACUUM fixes, not a corruption).
    Warn,
    /// While it fails.
    Fail,
    /// While it warns or fails.
    Any,
}

impl HealOn {
    pub fn applies(self, status: Health) -> bool {
        match self {
            HealOn::Warn => status == Health::Warn,
            HealOn::Fail => status == Health::Fail,
            HealOn::Any => status != Health::Pass,
        }
    }
}

#[derive(Clone)]
pub struct ProbeArgs {
    /// Its own tree path: the probe's name in reports, events, samples and alert keys.
    pub path: String,
    pub store: Store,
    pub metrics: Metrics,
    pub alerts: Alerts,
    /// For the `breakers` check and the `reset_breaker` action.
    pub breakers: Breakers,
    pub check: CheckSpec,
    pub every: Duration,
    pub timeout: Duration,
    pub thresholds: Thresholds,
    pub heal: Vec<HealSpec>,
    /// What heal actions act on (the tree, sync targets).
    pub heal_tree: Arc<dyn heal::Tree>,
    /// Where the probe publishes its reports.
    pub registry: Probes,
    /// The bound on blocking checks, shared by the daemon's probes.
    pub slots: Slots,
    /// The managed processes, for the `process` check.
    pub processes: crate::process::Processes,
}

pub enum ProbeMessage {
    /// Internal: a check finished.
    Done(Box<Done>),
    /// Check now and answer the report (`health`).
    CheckNow(RpcReplyPort<ProbeReport>),
    /// The latest report.
    Status(RpcReplyPort<ProbeReport>),
}

pub struct Done {
    outcome: CheckOutcome,
    state: CheckState,
    took: Duration,
}

/// A probe's latest report.
///
/// Until its first check completes a probe is *pending* ([`ProbeReport::pending`]): nothing is
/// known yet, and `status` (the hysteresis's starting point, Pass) is not a result. Serialized,
/// `status` then says `"pending"`, and `pending` says whether it is.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeReport {
    pub path: String,
    /// The check's kind: disk, sqlite, http, ...
    pub check: String,
    /// The reported status (after the hysteresis); Pass while pending.
    pub status: Health,
    /// The latest check's own result (`None` before the first).
    pub last: Option<CheckOutcome>,
    /// When the latest check ran (Unix ms).
    pub at_ms: Option<i64>,
    pub took_ms: Option<u64>,
    /// Raw failures (warn or fail) in a row.
    pub consecutive_failures: u32,
    /// When the reported status last changed (Unix ms).
    pub since_ms: i64,
}

/// A probe's status as shown: its health after its thresholds, or `pending` until its first
/// check completes. Ordered by how much it needs a look: pass, pending, warn, fail.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum ProbeStatus {
    Pass,
    Pending,
    Warn,
    Fail,
}

impl ProbeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeStatus::Pass => "pass",
            ProbeStatus::Pending => "pending",
            ProbeStatus::Warn => "warn",
            ProbeStatus::Fail => "fail",
        }
    }
}

impl std::fmt::Display for ProbeStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ProbeReport {
    /// Whether no check has completed yet.
    pub fn pending(&self) -> bool {
        self.last.is_none()
    }

    /// `pending`, `pass`, `warn` or `fail`.
    pub fn status_str(&self) -> &'static str {
        self.shown().as_str()
    }

    /// Its status as shown: pending until its first check completes.
    pub fn shown(&self) -> ProbeStatus {
        match (self.pending(), self.status) {
            (true, _) => ProbeStatus::Pending,
            (false, Health::Pass) => ProbeStatus::Pass,
            (false, Health::Warn) => ProbeStatus::Warn,
            (false, Health::Fail) => ProbeStatus::Fail,
        }
    }

    /// The status for those that know only pass, warn and fail: a pending probe is a Warn
    /// (not known to pass, not known to fail).
    pub fn health(&self) -> Health {
        if self.pending() {
            Health::Warn
        } else {
            self.status
        }
    }
}

impl serde::Serialize for ProbeReport {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(serde::Serialize)]
        struct Wire<'a> {
            path: &'a str,
            check: &'a str,
            status: &'static str,
            pending: bool,
            last: &'a Option<CheckOutcome>,
            at_ms: Option<i64>,
            took_ms: Option<u64>,
            consecutive_failures: u32,
            since_ms: i64,
        }
        Wire {
            path: &self.path,
            check: &self.check,
            status: self.status_str(),
            pending: self.pending(),
            last: &self.last,
            at_ms: self.at_ms,
            took_ms: self.took_ms,
            consecutive_failures: self.consecutive_failures,
            since_ms: self.since_ms,
        }
        .serialize(serializer)
    }
}

/// A probe's latest report, which its actor updates in place (under this lock, its own: a
/// check changes a few fields, and neither a copy of the whole report nor the registry's
/// lock is taken per check).
type Slot = Arc<Mutex<ProbeReport>>;

/// A probe's report, its actor, and its heal actions' breakers (for `breakers` and
/// `/health`: nobody else calls them, so they are not in the shared registry).
type Entry = (Slot, ActorRef<ProbeMessage>, Vec<Breaker>);

fn lock(slot: &Slot) -> MutexGuard<'_, ProbeReport> {
    // Every update is a few field assignments: a panic cannot leave it half-changed.
    slot.lock().unwrap_or_else(|e| e.into_inner())
}

/// The probes' latest reports, by path, with the actor to ask for a fresh check.
#[derive(Clone, Default)]
pub struct Probes {
    inner: Arc<RwLock<BTreeMap<String, Entry>>>,
}

impl Probes {
    /// Every probe's latest report, by path.
    pub fn reports(&self) -> Vec<ProbeReport> {
        let map = self.inner.read().unwrap_or_else(|e| e.into_inner());
        map.values().map(|(r, ..)| lock(r).clone()).collect()
    }

    /// The breakers of every probe's heal actions.
    pub fn heal_breakers(&self) -> Vec<Breaker> {
        let map = self.inner.read().unwrap_or_else(|e| e.into_inner());
        map.values().flat_map(|(.., b)| b.iter().cloned()).collect()
    }

    /// The running probes, to ask for a check.
    pub fn actors(&self) -> Vec<(String, ActorRef<ProbeMessage>)> {
        let map = self.inner.read().unwrap_or_else(|e| e.into_inner());
        map.iter()
            .map(|(p, (_, a, _))| (p.clone(), a.clone()))
            .collect()
    }

    /// Lists a starting probe's report and heal breakers (replacing an earlier
    /// incarnation's).
    fn publish(
        &self,
        path: &str,
        report: &Slot,
        actor: &ActorRef<ProbeMessage>,
        heal_breakers: &[Breaker],
    ) {
        let mut map = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let entry = (report.clone(), actor.clone(), heal_breakers.to_vec());
        map.insert(path.to_string(), entry);
    }

    fn withdraw(&self, path: &str, id: ractor::ActorId) {
        let mut map = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if map.get(path).is_some_and(|(_, a, _)| a.get_id() == id) {
            map.remove(path);
        }
    }
}

/// A probe's entry in the registry, withdrawn when the actor's state is dropped: whatever
/// ends the actor (a stop, a kill, a panic: ractor runs `post_stop` only for the first), a
/// probe that is not restarted is not listed. A later incarnation's entry is left alone.
struct Listing {
    registry: Probes,
    path: String,
    id: ractor::ActorId,
}

impl Drop for Listing {
    fn drop(&mut self) {
        self.registry.withdraw(&self.path, self.id);
    }
}

pub struct ProbeActorState {
    args: ProbeArgs,
    /// Its entry in the registry, withdrawn when the state is dropped.
    _listing: Listing,
    probe: ProbeState,
    /// The check's own state, lent to the runner with each order.
    check_state: Option<CheckState>,
    /// The latest report, as listed in the registry.
    report: Slot,
    /// The reported status (the report's, kept here for the heal actions).
    status: Health,
    /// Waiting for the running check: `health` callers.
    waiting: Vec<RpcReplyPort<ProbeReport>>,
    /// The runner's orders; each carries a number, and a newer order makes older ones stale.
    runner: mpsc::UnboundedSender<Order>,
    /// Stopped with the actor: no check starts (and no connection is made) for a probe that
    /// stopped, whose result could not be recorded.
    runner_task: AbortOnDrop,
    generation: u64,
    /// Its status is told to the alerts (raised or cleared whatever changed): after its first
    /// check, until then what the receivers were told of it stands.
    told: bool,
    limiters: Vec<Limiter>,
    /// One breaker per heal action (in the order of `args.heal`), not in the shared registry
    /// (listed with the probe's report instead).
    heal_breakers: Vec<Breaker>,
    /// Per heal action: its breaker refused a run (recorded); nothing is tried or recorded
    /// again before this time (Unix ms), when the breaker lets a trial through.
    rejected_until: Vec<Option<i64>>,
}

/// The runner's task, aborted when the actor's state goes, however the actor ends: a probe
/// killed (no `post_stop`) must not leave its check running beside its next incarnation's,
/// nor what the check started (dropping the check kills its process group and its leftovers).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The alerts scope of the probe at `path`: its keys are `probe:PATH:STATUS`.
pub fn alert_scope(path: &str) -> String {
    format!("probe:{path}")
}

/// The alert key of "probe PATH is at `status`".
pub fn alert_key(path: &str, status: Health) -> String {
    format!("probe:{path}:{status}")
}

fn now_ms() -> i64 {
    unix_ms(SystemTime::now())
}

/// What the actor asks of its runner.
enum Order {
    /// Check at `at` (or earlier, on a [`Order::Now`] of this order's number) and send the
    /// result back as [`ProbeMessage::Done`], with the check's state.
    Check {
        generation: u64,
        at: Instant,
        state: CheckState,
    },
    /// Check now rather than at the time ordered, if order `generation` still waits.
    Now(u64),
}

/// What a runner needs to run a probe's check.
struct Job {
    spec: CheckSpec,
    timeout: Duration,
    breakers: Breakers,
    store: Store,
    processes: crate::process::Processes,
}

/// Runs one check of `job`, with its state: the data checks from what they read, the others
/// through [`run`] (bounded by the timeout).
async fn evaluate(job: &Job, state: &mut CheckState) -> CheckOutcome {
    match &job.spec {
        CheckSpec::Breakers => super::breakers(&open_breakers(&job.breakers.all())),
        CheckSpec::SyncRecency(s) => match sync_history(&job.store, &s.target).await {
            Ok(history) => super::data::quiet_unless_asked(
                super::sync_recency(&history, now_ms(), s.warn_after, s.fail_after),
                &history,
                s.alert_offline,
            ),
            Err(e) => CheckOutcome::warn(format!("cannot read the sync history: {e}")),
        },
        CheckSpec::Process(s) => {
            let (status, restarts) = job.processes.view(&s.path);
            super::process(s, status.as_ref(), &restarts, now_ms())
        }
        spec => run(spec, job.timeout, state).await,
    }
}

/// A probe's runner: one task for the actor's life, which waits for the time of each check,
/// runs it off the actor and sends the result back. One check at a time: the check's state
/// travels with each order and comes back with its result, and the actor orders the next
/// check only after it has handled the last. Ends when the actor is gone (its orders' sender
/// dropped, or the result cannot be delivered).
///
/// It replaces what each run used to cost: a timer task (`send_after`), a `Run` message and a
/// check task, spawned anew; a thousand probes checking every second spawned two thousand
/// tasks a second for it.
async fn runner(
    job: Job,
    mut orders: mpsc::UnboundedReceiver<Order>,
    actor: ActorRef<ProbeMessage>,
) {
    while let Some(order) = orders.recv().await {
        let Order::Check {
            generation,
            at,
            mut state,
        } = order
        else {
            continue; // a stale Now
        };
        let sleep = tokio::time::sleep_until(at);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => break,
                next = orders.recv() => match next {
                    None => return,
                    Some(Order::Now(g)) if g == generation => break,
                    // A stale Now (a Check cannot come: this one holds the only state).
                    Some(_) => {}
                },
            }
        }
        let started = Instant::now();
        let outcome = evaluate(&job, &mut state).await;
        let done = Done {
            outcome,
            state,
            took: started.elapsed(),
        };
        if actor.cast(ProbeMessage::Done(Box::new(done))).is_err() {
            return;
        }
    }
}

impl ProbeActorState {
    /// Orders the next check `after` from now; an error if the runner is gone.
    fn schedule(&mut self, after: Duration) -> Result<(), ActorProcessingErr> {
        let Some(state) = self.check_state.take() else {
            return Ok(()); // ordered already
        };
        self.generation += 1;
        let order = Order::Check {
            generation: self.generation,
            at: Instant::now() + after,
            state,
        };
        self.runner
            .send(order)
            .map_err(|_| ActorProcessingErr::from("the probe's runner is gone"))
    }

    /// Checks now: the waiting order runs at once.
    fn check_now(&mut self) -> Result<(), ActorProcessingErr> {
        if self.check_state.is_some() {
            return self.schedule(Duration::ZERO);
        }
        // Waiting for its time or running: a Now of a running order is stale when it arrives.
        self.runner
            .send(Order::Now(self.generation))
            .map_err(|_| ActorProcessingErr::from("the probe's runner is gone"))
    }

    async fn done(&mut self, d: Done) -> Result<(), ActorProcessingErr> {
        self.check_state = Some(d.state);
        let at = now_ms();
        let raw = d.outcome.status;
        self.args.metrics.report(
            Sample::now(
                Metric::ProbeChecks,
                self.args.path.clone(),
                d.took.as_secs_f64(),
            )
            .outcome(raw == Health::Pass),
        );
        let change = self.probe.observe(raw, self.args.thresholds);
        // What the event and the alert of a change say.
        let said = change.map(|_| (d.outcome.message.clone(), d.outcome.value));
        {
            let mut report = lock(&self.report);
            report.last = Some(d.outcome);
            report.at_ms = Some(at);
            report.took_ms = Some(d.took.as_millis() as u64);
            report.consecutive_failures = self.probe.consecutive_failures();
            if let Some(change) = change {
                report.status = change.to;
                report.since_ms = at;
            }
            for reply in self.waiting.drain(..) {
                let _ = reply.send(report.clone());
            }
        }
        if let (Some(change), Some((message, value))) = (change, said) {
            self.status = change.to;
            self.changed(change.from, change.to, message, value);
        } else if !self.told {
            // The first check left the status as it was resumed: said again, so that what
            // the receivers were told before a restart is held to what is true.
            let message = lock(&self.report)
                .last
                .as_ref()
                .map(|o| o.message.clone())
                .unwrap_or_default();
            self.tell(self.status, message);
        }
        if !self.told {
            self.told = true;
            self.args.alerts.told(&alert_scope(&self.args.path));
        }
        // While not passing, the heal actions run at every check, each within its cooldown
        // and hourly cap (monit's "if failed then restart" with "N restarts within M cycles").
        // Boxed: the heal's future is ~9 KB (a command action's child process), and inline it
        // would be part of every probe actor's task for the probe's whole life.
        if self.status != Health::Pass {
            Box::pin(self.heal(self.status)).await;
        }
        self.schedule(self.args.every)
    }

    /// The reported status changed: an event, and the alert of the new status (the old one
    /// resolved).
    fn changed(&self, from: Health, to: Health, message: String, value: Option<f64>) {
        let path = &self.args.path;
        let mut event = StoredEvent::new(
            path,
            crate::store::events::Kind::Probe,
            format!("{} {from} -> {to}: {message}", self.args.check.kind()),
        );
        event.data = serde_json::json!({
            "check": self.args.check.kind(),
            "from": from,
            "to": to,
            "message": message,
            "value": value,
        });
        self.args.store.record(event);
        self.tell(to, message);
    }

    /// The alerts of status `to`: its own raised (`message`: why), the others cleared.
    fn tell(&self, to: Health, message: String) {
        let path = &self.args.path;
        for status in [Health::Warn, Health::Fail] {
            if status != to {
                self.args.alerts.clear(alert_key(path, status));
            }
        }
        let severity = match to {
            Health::Pass => return,
            Health::Warn => Severity::Warning,
            Health::Fail => Severity::Critical,
        };
        let mut alert = Alert::new(
            severity,
            format!("probe {to}: {path} ({})", self.args.check.kind()),
            path.clone(),
        )
        .body(message)
        .label("probe", path.clone())
        .label("check", self.args.check.kind())
        .at_once();
        alert.key = Some(alert_key(path, to));
        self.args.alerts.raise(alert);
    }

    /// Runs the heal actions for `status` (in order), within their cooldowns, hourly caps and
    /// breakers, then checks again and records what each achieved.
    async fn heal(&mut self, status: Health) {
        let cx = HealContext {
            tree: self.args.heal_tree.clone(),
            breakers: self.args.breakers.clone(),
        };
        for i in 0..self.args.heal.len() {
            let spec = self.args.heal[i].clone();
            if !spec.on.applies(status) {
                continue;
            }
            let started_ms = now_ms();
            // The breaker's refusal is recorded once per open period: until it lets a trial
            // through, the action waits as it waits out a cooldown (unless an operator reset
            // or half-opened it meanwhile: `breakers reset heal:...`).
            let still_open = matches!(
                self.heal_breakers[i].state(),
                StateName::Open | StateName::ForcedOpen
            );
            if still_open && self.rejected_until[i].is_some_and(|until| started_ms < until) {
                continue;
            }
            self.rejected_until[i] = None;
            // Waiting out a cooldown or the cap is not an action: nothing to record (the cap
            // raised its alert when it was reached).
            if self.limiters[i].check(started_ms) != Verdict::Run {
                continue;
            }
            let breaker = self.heal_breakers[i].clone();
            // The action's own name (`heal:PROBE:ACTION:TARGET`), its breaker's.
            let op = breaker.name().to_string();
            let run = retry::retry(
                &op,
                &heal::guard::retry_policy(),
                None,
                Some(&breaker),
                |_| attempt(&spec.action, &cx),
            )
            .await;
            retry::record_to(&self.args.metrics, &run.summary);
            let ran = run.summary.attempts > 0;
            let took = run.summary.took;
            let (outcome, detail) = match run.result {
                Ok(done) => ("done", done.detail),
                Err(RetryError::Rejected { reason, .. }) => {
                    // Forced open by an operator: no deadline, refused until they say so.
                    self.rejected_until[i] = Some(breaker.next_deadline().unwrap_or(i64::MAX));
                    ("rejected", reason)
                }
                Err(failed) => (
                    "failed",
                    failed
                        .into_last()
                        .map(|HealFailure(o)| o.detail)
                        .unwrap_or_default(),
                ),
            };
            let capped = ran && self.limiters[i].ran(started_ms).is_some();
            if ran {
                self.args.metrics.report(
                    Sample::now(
                        Metric::HealActions,
                        op.trim_start_matches("heal:").to_string(),
                        took.as_secs_f64(),
                    )
                    .outcome(run.summary.outcome == Outcome::Success),
                );
            }
            if capped {
                self.capped(&spec, &op);
            }
            // What the action achieved: the check again, now.
            let recheck = if ran {
                Some(self.recheck().await)
            } else {
                None
            };
            let row = HealRow {
                probe: self.args.path.clone(),
                action: spec.action.name().to_string(),
                target: spec.action.target(),
                started_ms,
                took_ms: if ran { took.as_millis() as i64 } else { 0 },
                outcome: outcome.to_string(),
                detail: detail.clone(),
                recheck: recheck.map(|h| h.as_str().to_string()),
            };
            let mut event = StoredEvent::new(
                &self.args.path,
                crate::store::events::Kind::Heal,
                format!(
                    "heal {} {}: {outcome}: {detail}",
                    spec.action.name(),
                    spec.action.target()
                ),
            );
            event.data = serde_json::json!({
                "action": spec.action.name(), "target": spec.action.target(),
                "outcome": outcome, "recheck": row.recheck,
            });
            self.args.store.record(event);
            if let Err(e) = self
                .args
                .store
                .durable(DurableOp::Heal(row), Some(STORE_WAIT))
                .await
            {
                tracing::warn!(error = %e, "cannot record a heal action yet (the store keeps trying)");
            }
            if recheck == Some(Health::Pass) {
                break;
            }
        }
    }

    /// The heal cap was reached: the action stops until the hour frees a slot (monit's "then
    /// unmonitor"), and someone should look.
    /// `op`: the action's name, `heal:PROBE:ACTION:TARGET`; the alert's key is
    /// `heal_cap:PROBE:ACTION:TARGET`, one per action.
    fn capped(&self, spec: &HealSpec, op: &str) {
        let path = &self.args.path;
        let mut alert = Alert::new(
            Severity::Critical,
            format!("self-heal gave up: {} on {path}", spec.action.name()),
            path.clone(),
        )
        .body(format!(
            "{} ({}) ran {} times within an hour and {path} is still not passing; it is not \
             run again until the hour frees a slot",
            spec.action.name(),
            spec.action.target(),
            spec.limits.max_per_hour
        ))
        .label("probe", path.clone())
        .at_once();
        alert.key = Some(format!("heal_cap:{}", op.trim_start_matches("heal:")));
        self.args.alerts.raise(alert);
    }

    /// Runs the check once more, right away, outside the schedule and the hysteresis: what
    /// the heal action achieved.
    async fn recheck(&mut self) -> Health {
        let Some(mut state) = self.check_state.take() else {
            return self.status;
        };
        let job = Job {
            spec: self.args.check.clone(),
            timeout: self.args.timeout,
            breakers: self.args.breakers.clone(),
            store: self.args.store.clone(),
            processes: self.args.processes.clone(),
        };
        let outcome = evaluate(&job, &mut state).await;
        self.check_state = Some(state);
        outcome.status
    }
}

/// One run of a heal action as the retry loop calls it: a failed outcome is the error.
async fn attempt(action: &HealAction, cx: &HealContext) -> Result<heal::HealOutcome, HealFailure> {
    let done = heal::execute(action, cx).await;
    if done.ok {
        Ok(done)
    } else {
        Err(HealFailure(done))
    }
}

/// The breakers of a probe's heal actions: one each, named by the action's operation
/// (`heal:PROBE:ACTION:TARGET`, distinct within the probe), whose transitions are logged and
/// recorded as `heal` events of the probe.
fn heal_breakers(path: &str, heal: &[HealSpec], store: &Store) -> Vec<Breaker> {
    let names = heal::guard::ops(path, heal.iter().map(|h| &h.action));
    heal.iter()
        .zip(names)
        .map(|(h, name)| {
            Breaker::new(
                name,
                heal::breaker_config(&h.limits),
                breaker_notifier(path, store),
            )
        })
        .collect()
}

fn breaker_notifier(path: &str, store: &Store) -> Notifier {
    let (path, store) = (path.to_string(), store.clone());
    std::sync::Arc::new(move |name: &str, t: &Transition, _: &Snapshot| {
        tracing::info!(breaker = name, from = %t.from, to = %t.to, reason = %t.reason, "heal action breaker");
        let mut event = StoredEvent::new(
            &path,
            crate::store::events::Kind::Heal,
            format!("breaker {name}: {} -> {}: {}", t.from, t.to, t.reason),
        );
        event.data = serde_json::json!({
            "breaker": name, "from": t.from, "to": t.to, "reason": t.reason,
        });
        store.record(event);
    })
}

/// Breakers not closed (open, half-open, forced open): `name (state)`.
pub fn open_breakers(breakers: &[Breaker]) -> Vec<String> {
    breakers
        .iter()
        .filter_map(|b| {
            let state = b.state();
            matches!(
                state,
                StateName::Open | StateName::HalfOpen | StateName::ForcedOpen
            )
            .then(|| format!("{} ({state})", b.name()))
        })
        .collect()
}

/// The time of the latest successful run of sync target `target`, from its `sync_event`
/// events (`data.target`, `data.outcome = "success"`).
pub(crate) async fn last_sync_success(store: &Store, target: &str) -> Option<i64> {
    let row: Result<Option<(Option<i64>,)>, _> = sqlx::query_as(
        "SELECT max(at_ms) FROM events WHERE kind = 'sync_event' \
         AND json_extract(data, '$.target') = ? AND json_extract(data, '$.outcome') = 'success'",
    )
    .bind(target)
    .fetch_optional(store.reader())
    .await;
    match row {
        Ok(found) => found.and_then(|(t,)| t),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the sync history");
            None
        }
    }
}

/// What the events say of sync target `target`'s runs (one read, so the parts agree): the
/// latest success, the first run and the latest one.
pub(crate) async fn sync_history(
    store: &Store,
    target: &str,
) -> Result<super::SyncHistory, sqlx::Error> {
    // Runs only: an operator's `resolved` / `restored` events are not runs.
    type Row = (Option<i64>, Option<i64>, Option<String>, Option<String>);
    let row: Option<Row> = sqlx::query_as(
        "WITH runs AS MATERIALIZED (SELECT id, at_ms, json_extract(data, '$.outcome') AS outcome, \
           json_extract(data, '$.reason') AS reason FROM events \
           WHERE kind = 'sync_event' AND json_extract(data, '$.target') = ?1 \
           AND json_extract(data, '$.outcome') IN ('success', 'partial', 'skipped', 'error')) \
         SELECT (SELECT max(at_ms) FROM runs WHERE outcome = 'success'), \
                (SELECT min(at_ms) FROM runs), \
                (SELECT outcome FROM runs ORDER BY id DESC LIMIT 1), \
                (SELECT reason FROM runs ORDER BY id DESC LIMIT 1)",
    )
    .bind(target)
    .fetch_optional(store.reader())
    .await?;
    Ok(match row {
        Some((last_success_ms, first_run_ms, last_outcome, last_reason)) => super::SyncHistory {
            last_success_ms,
            first_run_ms,
            last_outcome,
            last_reason,
        },
        None => super::SyncHistory::default(),
    })
}

/// The heal limiters, with the runs of the last hour read back from the store: a probe that
/// restarts (a crash, a reload that changed it, a daemon restart) must not get a fresh hourly
/// cap, or a crash loop would heal without limit.
async fn restore_limiters(args: &ProbeArgs) -> Vec<Limiter> {
    let mut limiters: Vec<Limiter> = args.heal.iter().map(|h| Limiter::new(h.limits)).collect();
    let since = now_ms() - heal::limits::WINDOW.as_millis() as i64;
    let rows = match crate::store::health::heals(args.store.reader(), since, 10_000).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the heal history; the hourly caps start afresh");
            return limiters;
        }
    };
    // Oldest first, as they ran; only runs (not refusals) count.
    for row in rows.iter().rev() {
        if row.probe != args.path || !(row.outcome == "done" || row.outcome == "failed") {
            continue;
        }
        let matching = args
            .heal
            .iter()
            .position(|h| h.action.name() == row.action && h.action.target() == row.target);
        if let Some(i) = matching {
            let _ = limiters[i].ran(row.started_ms);
        }
    }
    limiters
}

impl Actor for ProbeActor {
    type Msg = ProbeMessage;
    type State = ProbeActorState;
    type Arguments = ProbeArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: ProbeArgs,
    ) -> Result<ProbeActorState, ActorProcessingErr> {
        // What it reported before a restart, resumed (its alerts owned until its first check).
        args.alerts.own(&alert_scope(&args.path));
        let resumed = match crate::store::events::last_probe_status(args.store.reader(), &args.path)
            .await
        {
            Ok(Some(s)) if s == "fail" => Health::Fail,
            Ok(Some(s)) if s == "warn" => Health::Warn,
            Ok(_) => Health::Pass,
            Err(e) => {
                tracing::warn!(probe = %args.path, error = %e, "cannot read the probe's last status; it starts passing");
                Health::Pass
            }
        };
        let report = ProbeReport {
            path: args.path.clone(),
            check: args.check.kind().to_string(),
            status: resumed,
            last: None,
            at_ms: None,
            took_ms: None,
            consecutive_failures: 0,
            since_ms: now_ms(),
        };
        let report = Arc::new(Mutex::new(report));
        let heal_breakers = heal_breakers(&args.path, &args.heal, &args.store);
        args.registry
            .publish(&args.path, &report, &myself, &heal_breakers);
        let (runner_tx, orders) = mpsc::unbounded_channel();
        let job = Job {
            spec: args.check.clone(),
            timeout: args.timeout,
            breakers: args.breakers.clone(),
            store: args.store.clone(),
            processes: args.processes.clone(),
        };
        let runner_task = AbortOnDrop(tokio::spawn(runner(job, orders, myself.clone())));
        let limiters = restore_limiters(&args).await;
        let rejected_until = vec![None; args.heal.len()];
        let check_state = CheckState::new().with_slots(args.slots.clone());
        let thresholds = args.thresholds;
        let mut state = ProbeActorState {
            _listing: Listing {
                registry: args.registry.clone(),
                path: args.path.clone(),
                id: myself.get_id(),
            },
            args,
            probe: ProbeState::resumed(resumed, thresholds),
            check_state: Some(check_state),
            report,
            status: resumed,
            waiting: Vec::new(),
            runner: runner_tx,
            runner_task,
            generation: 0,
            told: false,
            limiters,
            heal_breakers,
            rejected_until,
        };
        // The first check right away.
        state.schedule(Duration::ZERO)?;
        Ok(state)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: ProbeMessage,
        state: &mut ProbeActorState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ProbeMessage::Done(d) => state.done(*d).await,
            ProbeMessage::CheckNow(reply) => {
                state.waiting.push(reply);
                state.check_now()
            }
            ProbeMessage::Status(reply) => {
                let _ = reply.send(lock(&state.report).clone());
                Ok(())
            }
        }
    }

    async fn post_stop(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut ProbeActorState,
    ) -> Result<(), ActorProcessingErr> {
        state
            .args
            .registry
            .withdraw(&state.args.path, myself.get_id());
        state.runner_task.0.abort();
        // Stopped on purpose (removed, or replaced by a reload): its conditions end with it,
        // unless a new incarnation owns them by the time the alerts look.
        state.args.alerts.disown(&alert_scope(&state.args.path));
        Ok(())
    }
}
