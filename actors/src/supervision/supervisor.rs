//! The supervisor actor: OTP restart strategies, restart types and intensity on ractor, plus
//! restart backoff, ordered shutdown and run-time child operations.
//!
//! How it maps onto ractor (see ../../shared/NOTES.md):
//! - children are spawned linked to the supervisor, so their exits arrive as
//!   `SupervisionEvent`s; the default handler (which stops the supervisor) is replaced;
//! - every running incarnation is keyed by its `ActorId`; an event whose id is not the current
//!   incarnation of some child (a child the supervisor stopped itself, or an earlier
//!   incarnation) is ignored;
//! - a child the supervisor sets out to stop may already be stopping on its own (it crashed or
//!   stopped itself in the same tick; ractor then refuses the stop request): its exit is not
//!   reported as `shutdown` but kept pending (`unheard`) until its own event brings the true
//!   reason;
//! - ractor kills a dying actor's remaining children in no order, so the supervisor stops its
//!   children itself, in reverse start order, in `post_stop` and before giving up;
//! - a restart that has to wait (backoff) is a timer message, never a sleep, so the supervisor
//!   answers every other message meanwhile; a stale timer is recognised by its token.

use std::collections::HashMap;
use std::time::Duration;

use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;
use indexmap::IndexMap;
use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, ActorStatus, RactorErr, RpcReplyPort,
    SpawnErr, SupervisionEvent,
};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::supervision::backoff::Backoff;
use crate::supervision::directory::Directory;
use crate::supervision::event::{EventKind, EventSink};
use crate::supervision::exit::{should_restart, ExitReason, MaxRestartIntensity};
use crate::supervision::intensity::RestartWindow;
use crate::supervision::snapshot::{ChildInfo, NodeState};
use crate::supervision::spec::{
    check_name, ChildCtx, ChildSpec, ChildStart, Restart, Shutdown, Strategy, SupervisorSettings,
};
use crate::supervision::tree::TreeError;

/// How long to wait for a killed actor to be gone. An actor blocked outside an await point
/// cannot be killed in Rust; after this long it is abandoned (and logged) so shutdown goes on.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// The stop reason a supervisor gives its children.
const SHUTDOWN: &str = "shutdown";

pub struct SupervisorActor;

pub struct SupervisorArgs {
    /// This supervisor's tree path (`root`, `root/sync`); children are `{path}/{name}`.
    pub path: String,
    pub spec: crate::supervision::spec::SupervisorSpec,
    pub directory: Directory,
    pub events: EventSink,
    /// Where to say "I gave up" just before failing (the guardian gives the root one: a give-up
    /// can race the guardian's own shutdown, when the failure event would go unread).
    pub report: Option<watch::Sender<Option<ExitReason>>>,
}

pub enum SupervisorMessage {
    /// The children, in start order.
    Snapshot(RpcReplyPort<Vec<ChildInfo>>),
    /// One child, if it exists.
    ChildInfo(String, RpcReplyPort<Option<ChildInfo>>),
    /// Stop a child (its shutdown policy) and keep it stopped (OTP `terminate_child`). A
    /// temporary child is forgotten. Cancels a pending restart. A child already stopped (or
    /// failed) answers `AlreadyStopped`, as a running one answers `AlreadyRunning` to a start.
    StopChild(String, RpcReplyPort<Result<(), TreeError>>),
    /// Start a stopped, failed or restart-pending child now (OTP `restart_child`).
    StartChild(String, RpcReplyPort<Result<(), TreeError>>),
    /// Stop (if running) and start a child again.
    RestartChild(String, RpcReplyPort<Result<(), TreeError>>),
    /// Stop (if running) and forget a child (OTP `terminate_child` + `delete_child`).
    RemoveChild(String, RpcReplyPort<Result<(), TreeError>>),
    /// Add a child and start it (OTP `start_child`). `position` None: at the end. On a failed
    /// start the child is not kept, unless `keep_failed` (a declarative config wants it listed,
    /// failed, with its error).
    AddChild {
        spec: ChildSpec,
        position: Option<usize>,
        keep_failed: bool,
        reply: RpcReplyPort<Result<(), TreeError>>,
    },
    /// Replace a child's spec in place (same position) and start it with the new spec.
    ReplaceChild(ChildSpec, RpcReplyPort<Result<(), TreeError>>),
    /// Chaos: kill the child; its exit is treated as a crash (`failed: injected failure`). A
    /// child already being killed answers `NotRunning`.
    InjectFailure(String, RpcReplyPort<Result<(), TreeError>>),
    /// Change strategy, intensity, period and backoff in place; children keep running and the
    /// restart history is kept.
    Reconfigure(SupervisorSettings, RpcReplyPort<Result<(), TreeError>>),
    /// Replace a child's stored spec without restarting it: the spec its next (re)start uses.
    /// A reload changes a nested supervisor in place and then records its new spec here, so a
    /// later restart of that supervisor does not bring the old settings or children back.
    UpdateSpec(ChildSpec, RpcReplyPort<Result<(), TreeError>>),
    /// Put the named children first, in this order (unknown names skipped, unnamed children
    /// after them); nothing restarts.
    SetOrder(Vec<String>, RpcReplyPort<Result<(), TreeError>>),
    /// Its own settings and how much of its restart intensity is used.
    Report(RpcReplyPort<SupervisorReport>),
    /// Internal: a backoff delay for a restart batch elapsed.
    RestartDue { token: u64 },
}

/// What a supervisor says about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct SupervisorReport {
    pub settings: SupervisorSettings,
    /// Restart attempts inside the current period.
    pub restarts_in_period: usize,
    pub children: usize,
}

enum Status {
    Running {
        cell: ActorCell,
        since: Instant,
    },
    /// Waiting for the restart batch with this token (see `SupervisorState::restart`).
    Restarting {
        token: u64,
        due: Instant,
    },
    Stopped,
    Failed(String),
}

struct Child {
    spec: ChildSpec,
    /// `{supervisor path}/{name}`, kept to avoid rebuilding it on every event.
    path: String,
    status: Status,
    /// Starts so far (this incarnation included).
    incarnation: u64,
    /// Restart attempts by the supervisor.
    restarts: u64,
    /// Consecutive restarts since the child last stayed up for `backoff.reset_after`: the
    /// backoff schedule's step.
    step: u32,
    last_exit: Option<ExitReason>,
    /// An injected failure is pending: the next exit of this incarnation is a crash.
    injected: bool,
}

impl Child {
    fn new(spec: ChildSpec, parent: &str) -> Self {
        Child {
            path: format!("{parent}/{}", spec.name),
            spec,
            status: Status::Stopped,
            incarnation: 0,
            restarts: 0,
            step: 0,
            last_exit: None,
            injected: false,
        }
    }

    fn running_cell(&self) -> Option<&ActorCell> {
        match &self.status {
            Status::Running { cell, .. } => Some(cell),
            _ => None,
        }
    }

    fn info(&self, now: Instant) -> ChildInfo {
        let (state, uptime, restart_in, error) = match &self.status {
            Status::Running { since, .. } => (
                NodeState::Running,
                Some(now.saturating_duration_since(*since)),
                None,
                None,
            ),
            Status::Restarting { due, .. } => (
                NodeState::Restarting,
                None,
                Some(due.saturating_duration_since(now)),
                None,
            ),
            Status::Stopped => (NodeState::Stopped, None, None, None),
            Status::Failed(e) => (NodeState::Failed, None, None, Some(e.clone())),
        };
        let supervisor = match (&self.status, &self.spec.start) {
            (Status::Running { cell, .. }, ChildStart::Supervisor(_)) => {
                Some(ActorRef::<SupervisorMessage>::from(cell.clone()))
            }
            _ => None,
        };
        ChildInfo {
            name: self.spec.name.clone(),
            path: self.path.clone(),
            kind: self.spec.kind.clone(),
            restart: self.spec.restart,
            state,
            restarts: self.restarts,
            incarnation: self.incarnation,
            last_exit: self.last_exit.clone(),
            uptime,
            restart_in,
            error,
            strategy: self.spec.supervisor_spec().map(|s| s.strategy),
            supervisor,
        }
    }
}

/// An incarnation that ended on its own while its supervisor was stopping it: its exit is
/// reported when its own supervision event is read (see `SupervisorState::unheard`).
struct Unheard {
    name: String,
    path: String,
    incarnation: u64,
    /// An injected failure was pending: its exit is a crash, whatever the event says.
    injected: bool,
}

/// Whether a start is the supervisor's restart or a first/operator start (for the events).
#[derive(Clone, Copy, PartialEq, Eq)]
enum StartCause {
    Start,
    Restart,
}

pub struct SupervisorState {
    path: String,
    strategy: Strategy,
    intensity: u32,
    period: Duration,
    backoff: Backoff,
    /// Restart attempts inside the intensity period.
    window: RestartWindow,
    /// The children in start order.
    children: IndexMap<String, Child>,
    /// Running incarnation -> child name. Supervision events for ids not in here are stale,
    /// unless they are in `unheard`.
    by_id: HashMap<ActorId, String>,
    /// Incarnations the supervisor stopped (so no longer in `by_id`) that turned out to be
    /// stopping on their own already: their exit is reported, with its true reason, when their
    /// own supervision event arrives; it triggers no restart. In stop order.
    unheard: IndexMap<ActorId, Unheard>,
    directory: Directory,
    events: EventSink,
    /// Source of restart-batch tokens.
    next_token: u64,
    /// Pending restart batches: token -> members in start order. A member that was stopped or
    /// started meanwhile no longer holds the token and is skipped; a timer whose token is not
    /// here any more is stale.
    batches: HashMap<u64, Vec<String>>,
    /// For backoff jitter.
    rng: fastrand::Rng,
    /// See `SupervisorArgs::report`.
    report: Option<watch::Sender<Option<ExitReason>>>,
}

impl Actor for SupervisorActor {
    type Msg = SupervisorMessage;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: SupervisorArgs,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        let SupervisorArgs {
            path,
            spec,
            directory,
            events,
            report,
        } = args;
        let mut children = IndexMap::with_capacity(spec.children.len());
        for child in spec.children {
            check_name(&child.name).map_err(|e| format!("{path}: {e}"))?;
            if children.contains_key(&child.name) {
                return Err(format!("{path}: duplicate child name {:?}", child.name).into());
            }
            children.insert(child.name.clone(), Child::new(child, &path));
        }
        let mut state = SupervisorState {
            window: RestartWindow::new(spec.intensity, spec.period),
            strategy: spec.strategy,
            intensity: spec.intensity,
            period: spec.period,
            backoff: spec.backoff,
            by_id: HashMap::with_capacity(children.len()),
            unheard: IndexMap::new(),
            children,
            directory,
            events,
            path,
            next_token: 0,
            batches: HashMap::new(),
            report,
            rng: fastrand::Rng::new(),
        };
        // Start in order, synchronously; on the first failure stop what started (in reverse)
        // and fail this start.
        let myself = myself.get_cell();
        for index in 0..state.children.len() {
            if let Err(error) = state.start_at(&myself, index, StartCause::Start).await {
                let child_path = state.children[index].path.clone();
                state.terminate_all().await;
                state.report_unheard();
                return Err(format!("failed to start child {child_path}: {error}").into());
            }
        }
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: SupervisorMessage,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let myself = myself.get_cell();
        match message {
            SupervisorMessage::Snapshot(reply) => {
                let now = Instant::now();
                let _ = reply.send(state.children.values().map(|c| c.info(now)).collect());
            }
            SupervisorMessage::ChildInfo(name, reply) => {
                let now = Instant::now();
                let _ = reply.send(state.children.get(&name).map(|c| c.info(now)));
            }
            SupervisorMessage::StopChild(name, reply) => {
                let _ = reply.send(state.stop_child(&name).await);
            }
            SupervisorMessage::StartChild(name, reply) => {
                let _ = reply.send(state.start_child(&myself, &name).await);
            }
            SupervisorMessage::RestartChild(name, reply) => {
                let result = match state.children.get(&name) {
                    None => Err(TreeError::NotFound(state.child_path(&name))),
                    Some(_) => {
                        state.terminate(&name).await;
                        state.start_child(&myself, &name).await
                    }
                };
                let _ = reply.send(result);
            }
            SupervisorMessage::RemoveChild(name, reply) => {
                let result = if state.children.contains_key(&name) {
                    state.terminate(&name).await;
                    state.children.shift_remove(&name);
                    Ok(())
                } else {
                    Err(TreeError::NotFound(state.child_path(&name)))
                };
                let _ = reply.send(result);
            }
            SupervisorMessage::AddChild {
                spec,
                position,
                keep_failed,
                reply,
            } => {
                let result = state.add_child(&myself, spec, position, keep_failed).await;
                let _ = reply.send(result);
            }
            SupervisorMessage::Reconfigure(settings, reply) => {
                state.reconfigure(settings);
                let _ = reply.send(Ok(()));
            }
            SupervisorMessage::UpdateSpec(spec, reply) => {
                let result = match state.children.get_mut(&spec.name) {
                    Some(child)
                        if child.running_cell().is_some()
                            && child.spec.is_supervisor() != spec.is_supervisor() =>
                    {
                        Err(TreeError::Invalid(format!(
                            "{}: a running child cannot change between worker and supervisor; replace it",
                            child.path
                        )))
                    }
                    Some(child) => {
                        child.spec = spec;
                        Ok(())
                    }
                    None => Err(TreeError::NotFound(format!("{}/{}", state.path, spec.name))),
                };
                let _ = reply.send(result);
            }
            SupervisorMessage::SetOrder(names, reply) => {
                state.set_order(names);
                let _ = reply.send(Ok(()));
            }
            SupervisorMessage::ReplaceChild(spec, reply) => {
                let _ = reply.send(state.replace_child(&myself, spec).await);
            }
            SupervisorMessage::InjectFailure(name, reply) => {
                let result = match state.children.get_mut(&name) {
                    None => Err(TreeError::NotFound(format!("{}/{name}", state.path))),
                    // An incarnation already being killed (its exit not handled yet) is not
                    // killed twice: one kill, one recorded exit.
                    Some(child) if child.injected => Err(TreeError::NotRunning(child.path.clone())),
                    Some(child) => match child.running_cell() {
                        Some(cell) => {
                            cell.kill();
                            child.injected = true;
                            Ok(())
                        }
                        None => Err(TreeError::NotRunning(child.path.clone())),
                    },
                };
                let _ = reply.send(result);
            }
            SupervisorMessage::Report(reply) => {
                let _ = reply.send(SupervisorReport {
                    settings: SupervisorSettings {
                        strategy: state.strategy,
                        intensity: state.intensity,
                        period: state.period,
                        backoff: state.backoff,
                    },
                    restarts_in_period: state.window.count_at(Instant::now()),
                    children: state.children.len(),
                });
            }
            SupervisorMessage::RestartDue { token } => {
                state.run_restart(&myself, token).await?;
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let (id, reason) = match event {
            SupervisionEvent::ActorTerminated(cell, _, reason) => (
                cell.get_id(),
                ExitReason::from_stop_reason(reason.as_deref()),
            ),
            SupervisionEvent::ActorFailed(cell, err) => {
                (cell.get_id(), ExitReason::from_error(&err))
            }
            _ => return Ok(()),
        };
        state.on_exit(&myself.get_cell(), id, reason).await
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        state.terminate_all().await;
        // Events still queued for this supervisor are never read now.
        state.report_unheard();
        Ok(())
    }
}

impl SupervisorState {
    fn child_path(&self, name: &str) -> String {
        format!("{}/{name}", self.path)
    }

    fn token(&mut self) -> u64 {
        self.next_token += 1;
        self.next_token
    }

    /// Starts the child at `index` (which must not be running). On success it is running and
    /// registered; on failure its status is left as it was and the error is returned.
    async fn start_at(
        &mut self,
        myself: &ActorCell,
        index: usize,
        cause: StartCause,
    ) -> Result<(), String> {
        let Some((name, child)) = self.children.get_index_mut(index) else {
            return Err("no such child".into());
        };
        let name = name.clone();
        let ctx = ChildCtx {
            supervisor: myself.clone(),
            path: child.path.clone(),
            directory: self.directory.clone(),
            events: self.events.clone(),
        };
        let start = match &child.spec.start {
            // User code runs here, on the supervisor's task: a panic in it is a failed start,
            // never a crash of the supervisor.
            ChildStart::Worker(start) => {
                match std::panic::catch_unwind(AssertUnwindSafe(|| start(ctx))) {
                    Ok(future) => async move {
                        match AssertUnwindSafe(future).catch_unwind().await {
                            Ok(result) => result,
                            Err(panic) => Err(SpawnErr::StartupFailed(panic_message(panic).into())),
                        }
                    }
                    .boxed(),
                    Err(panic) => {
                        let error = SpawnErr::StartupFailed(panic_message(panic).into());
                        futures_util::future::ready(Err(error)).boxed()
                    }
                }
            }
            ChildStart::Supervisor(spec) => {
                let args = SupervisorArgs {
                    path: ctx.path,
                    spec: spec.clone(),
                    directory: ctx.directory,
                    events: ctx.events,
                    report: None,
                };
                Actor::spawn_linked(None, SupervisorActor, args, ctx.supervisor)
                    .map(|spawned| spawned.map(|(r, _)| r.get_cell()))
                    .boxed()
            }
        };
        // ractor runs `pre_start` inside the start future, so dropping it on timeout cancels
        // the start: the half-started actor is dropped and whatever it had linked is killed.
        let started = match child.spec.start_timeout {
            None => start.await,
            Some(limit) => match tokio::time::timeout(limit, start).await {
                Ok(result) => result,
                Err(_) => {
                    if child.spec.is_supervisor() {
                        self.directory.unregister_below(&child.path);
                    }
                    Err(SpawnErr::StartupFailed(
                        format!("did not start within {}", humantime::format_duration(limit))
                            .into(),
                    ))
                }
            },
        };
        match started {
            Ok(cell) => {
                child.incarnation += 1;
                self.by_id.insert(cell.get_id(), name);
                self.directory.register(&child.path, cell.clone());
                child.status = Status::Running {
                    cell,
                    since: Instant::now(),
                };
                let incarnation = child.incarnation;
                let kind = match cause {
                    StartCause::Start => EventKind::Started { incarnation },
                    StartCause::Restart => EventKind::Restarted { incarnation },
                };
                self.events.emit(&child.path, kind);
                Ok(())
            }
            Err(err) => {
                let error = match err {
                    SpawnErr::StartupFailed(inner) => inner.to_string(),
                    other => other.to_string(),
                };
                tracing::warn!(path = %child.path, %error, "child failed to start");
                // Its last exit is this failed start, not the exit (a kill, a crash) that
                // came before it: what `tree` and `status` show as LAST EXIT.
                child.last_exit = Some(ExitReason::Failed(format!("start failed: {error}")));
                self.events.emit(
                    &child.path,
                    EventKind::StartFailed {
                        error: error.clone(),
                    },
                );
                Err(error)
            }
        }
    }

    async fn start_named(
        &mut self,
        myself: &ActorCell,
        name: &str,
        cause: StartCause,
    ) -> Result<(), String> {
        match self.children.get_index_of(name) {
            Some(index) => self.start_at(myself, index, cause).await,
            None => Err("no such child".into()),
        }
    }

    /// Stops the named child if it is running (its shutdown policy) and leaves it `Stopped`;
    /// a pending restart is cancelled. Returns true if it was already stopping on its own: its
    /// exit is reported once its own supervision event is read (see `unheard`).
    async fn terminate(&mut self, name: &str) -> bool {
        let Some(child) = self.children.get_mut(name) else {
            return false;
        };
        let previous = std::mem::replace(&mut child.status, Status::Stopped);
        let Status::Running { cell, .. } = previous else {
            return false;
        };
        let id = cell.get_id();
        self.by_id.remove(&id);
        self.directory.unregister(&child.path, id);
        let injected = std::mem::take(&mut child.injected);
        let ended = shutdown_cell(&cell, child.spec.shutdown, &child.path).await;
        // A stopping supervisor's children stay findable until each stops; whatever a kill
        // left behind goes now.
        if child.spec.is_supervisor() {
            self.directory.unregister_below(&child.path);
        }
        record_stop(child, id, injected, ended, &self.events, &mut self.unheard)
    }

    /// Stops every child: reverse start order, or all at once for a dynamic supervisor.
    async fn terminate_all(&mut self) {
        if self.strategy != Strategy::Dynamic {
            let names: Vec<String> = self.children.keys().rev().cloned().collect();
            for name in names {
                self.terminate(&name).await;
            }
            return;
        }
        let mut stopping = JoinSet::new();
        for child in self.children.values_mut() {
            let previous = std::mem::replace(&mut child.status, Status::Stopped);
            if let Status::Running { cell, .. } = previous {
                let id = cell.get_id();
                self.by_id.remove(&id);
                self.directory.unregister(&child.path, id);
                let injected = std::mem::take(&mut child.injected);
                let (policy, path, name) = (
                    child.spec.shutdown,
                    child.path.clone(),
                    child.spec.name.clone(),
                );
                stopping.spawn(async move {
                    let ended = shutdown_cell(&cell, policy, &path).await;
                    (name, id, injected, ended)
                });
            }
        }
        while let Some(joined) = stopping.join_next().await {
            let Ok((name, id, injected, ended)) = joined else {
                continue;
            };
            if let Some(child) = self.children.get_mut(&name) {
                if child.spec.is_supervisor() {
                    self.directory.unregister_below(&child.path);
                }
                record_stop(child, id, injected, ended, &self.events, &mut self.unheard);
            }
        }
    }

    /// Reports the exit of an incarnation that ended on its own while being stopped: its true
    /// reason, now that its event is read (or `Unknown`, see `report_unheard`). The restart
    /// that stop was part of, if any, has been decided already: nothing restarts here.
    fn report_exit_of(&mut self, unheard: Unheard, reason: ExitReason) {
        let reason = if unheard.injected {
            ExitReason::Failed("injected failure".into())
        } else {
            reason
        };
        if reason.is_abnormal() {
            tracing::warn!(path = %unheard.path, %reason, "child exited while being stopped");
        } else {
            tracing::debug!(path = %unheard.path, %reason, "child exited while being stopped");
        }
        // The slot's last exit, unless a later incarnation has exited since: the slot still
        // holds this incarnation (stopped, failed or waiting to restart), or the next one,
        // still running (an operator's restart started it before this event was read).
        if let Some(child) = self.children.get_mut(&unheard.name) {
            let latest = child.incarnation == unheard.incarnation
                || (child.incarnation == unheard.incarnation + 1
                    && matches!(child.status, Status::Running { .. }));
            if child.path == unheard.path && latest {
                child.last_exit = Some(reason.clone());
            }
        }
        self.events.emit(
            &unheard.path,
            EventKind::Exited {
                reason,
                incarnation: unheard.incarnation,
            },
        );
    }

    /// The supervisor is ending: the events of children that ended on their own while being
    /// stopped will never be read (ractor queued them for this supervisor). Their exits are
    /// reported as `unknown`: `shutdown` would be a lie, and so would any other guess.
    fn report_unheard(&mut self) {
        let pending: Vec<Unheard> = self.unheard.drain(..).map(|(_, u)| u).collect();
        for unheard in pending {
            self.report_exit_of(unheard, ExitReason::Unknown);
        }
    }

    /// A child's incarnation `id` exited on its own (crash, normal exit, kill from outside).
    async fn on_exit(
        &mut self,
        myself: &ActorCell,
        id: ActorId,
        mut reason: ExitReason,
    ) -> Result<(), ActorProcessingErr> {
        let Some(name) = self.by_id.remove(&id) else {
            // One we stopped that was already stopping on its own: report its true reason.
            // Otherwise stale: an earlier incarnation, or one we stopped ourselves.
            if let Some(unheard) = self.unheard.shift_remove(&id) {
                self.report_exit_of(unheard, reason);
            }
            return Ok(());
        };
        let Some(child) = self.children.get_mut(&name) else {
            return Ok(());
        };
        let since = match std::mem::replace(&mut child.status, Status::Stopped) {
            Status::Running { since, .. } => since,
            other => {
                child.status = other;
                return Ok(());
            }
        };
        if std::mem::take(&mut child.injected) {
            reason = ExitReason::Failed("injected failure".into());
        }
        self.directory.unregister(&child.path, id);
        if child.spec.is_supervisor() {
            self.directory.unregister_below(&child.path);
        }
        if reason.is_abnormal() {
            tracing::warn!(path = %child.path, %reason, "child exited");
        } else {
            tracing::debug!(path = %child.path, %reason, "child exited");
        }
        child.last_exit = Some(reason.clone());
        self.events.emit(
            &child.path,
            EventKind::Exited {
                reason: reason.clone(),
                incarnation: child.incarnation,
            },
        );
        if !should_restart(child.spec.restart, &reason) {
            if child.spec.restart == Restart::Temporary {
                self.children.shift_remove(&name);
            }
            return Ok(());
        }
        if since.elapsed() >= self.backoff.reset_after {
            child.step = 0;
        }
        self.restart(myself, &name).await
    }

    /// Decides the restart of `anchor` (just exited, now `Stopped`): counts it toward intensity,
    /// stops the bystanders its strategy names, and schedules the batch.
    async fn restart(
        &mut self,
        myself: &ActorCell,
        anchor: &str,
    ) -> Result<(), ActorProcessingErr> {
        if !self.window.record(Instant::now()) {
            return Err(self.give_up().await);
        }
        let Some(index) = self.children.get_index_of(anchor) else {
            return Ok(());
        };
        let mut batch: Vec<String> = match self.strategy {
            Strategy::OneForOne | Strategy::Dynamic => vec![anchor.to_string()],
            Strategy::OneForAll | Strategy::RestForOne => {
                let from = if self.strategy == Strategy::OneForAll {
                    0
                } else {
                    index
                };
                self.children
                    .iter()
                    .enumerate()
                    .skip(from)
                    .filter(|(i, (_, c))| {
                        *i == index
                            || matches!(
                                c.status,
                                Status::Running { .. } | Status::Restarting { .. }
                            )
                    })
                    .map(|(_, (name, _))| name.clone())
                    .collect()
            }
        };
        // Bystanders stop in reverse start order; temporary ones are then forgotten, never
        // restarted. One already stopping on its own has its exit event queued: the batch then
        // goes through the mailbox, so that event (read before messages) reports its true
        // reason before the group restarts.
        let mut unheard = false;
        for name in batch.iter().rev() {
            if name != anchor {
                unheard |= self.terminate(name).await;
            }
        }
        batch.retain(|name| {
            let temporary = self
                .children
                .get(name)
                .is_some_and(|c| c.spec.restart == Restart::Temporary);
            if temporary && name != anchor {
                self.children.shift_remove(name);
            }
            !temporary
        });
        match self.schedule(myself, anchor, &batch, unheard) {
            Some(token) => self.run_restart(myself, token).await,
            None => Ok(()),
        }
    }

    /// Marks `batch` as waiting for one restart, with the delay of `anchor`'s next backoff
    /// step, and arms the timer. Returns the batch's token when it is to run right now: zero
    /// delay on a first attempt, restarted inline as OTP does. After a failed start
    /// (`via_mailbox`), even a zero-delay retry goes through the mailbox, so the supervisor
    /// answers other messages between attempts (OTP's `try_again_restart`); so does a batch
    /// with a bystander whose own exit event is still to be read.
    fn schedule(
        &mut self,
        myself: &ActorCell,
        anchor: &str,
        batch: &[String],
        via_mailbox: bool,
    ) -> Option<u64> {
        let token = self.token();
        let unit = self.rng.f64();
        let child = self.children.get_mut(anchor)?;
        child.step = child.step.saturating_add(1);
        let step = child.step;
        let delay = self.backoff.delay(step, unit);
        self.events.emit(
            &child.path,
            EventKind::RestartScheduled {
                delay,
                attempt: step,
                reset_after: self.backoff.reset_after,
            },
        );
        // An absurd backoff must not overflow: such a restart is simply never due.
        let now = Instant::now();
        let due = now
            .checked_add(delay)
            .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600));
        for name in batch {
            if let Some(c) = self.children.get_mut(name) {
                c.status = Status::Restarting { token, due };
            }
        }
        self.batches.insert(token, batch.to_vec());
        let message = move || SupervisorMessage::RestartDue { token };
        if !delay.is_zero() {
            ractor::time::send_after(delay, myself.clone(), message);
        } else if via_mailbox {
            let _ = myself.send_message(message());
        } else {
            return Some(token);
        }
        None
    }

    /// Runs the restart batch `token` (if it is still pending): starts its members in start
    /// order. If one fails to start, the ones started in this batch are stopped again and the
    /// whole batch is retried; the failure counts toward intensity (OTP's
    /// `try_again_restart`).
    async fn run_restart(
        &mut self,
        myself: &ActorCell,
        token: u64,
    ) -> Result<(), ActorProcessingErr> {
        let Some(mut batch) = self.batches.remove(&token) else {
            return Ok(()); // stale timer
        };
        batch.retain(|name| {
            self.children.get(name).is_some_and(
                |c| matches!(c.status, Status::Restarting { token: t, .. } if t == token),
            )
        });
        let mut started: Vec<&String> = Vec::with_capacity(batch.len());
        for name in &batch {
            if let Some(child) = self.children.get_mut(name) {
                child.restarts += 1;
            }
            if self
                .start_named(myself, name, StartCause::Restart)
                .await
                .is_ok()
            {
                started.push(name);
                continue;
            }
            // Undo this batch and try it again later.
            for done in started.iter().rev() {
                self.terminate(done).await;
            }
            if !self.window.record(Instant::now()) {
                return Err(self.give_up().await);
            }
            self.schedule(myself, name, &batch, true);
            return Ok(());
        }
        Ok(())
    }

    /// Restart intensity reached: stop everything and fail with the distinct reason.
    async fn give_up(&mut self) -> ActorProcessingErr {
        tracing::error!(
            path = %self.path,
            intensity = self.intensity,
            period = ?self.period,
            "reached max restart intensity; stopping children and giving up"
        );
        self.events.emit(
            &self.path,
            EventKind::GaveUp {
                intensity: self.intensity,
                period: self.period,
            },
        );
        self.terminate_all().await;
        // Failing now: events still queued for this supervisor are never read.
        self.report_unheard();
        if let Some(report) = &self.report {
            report.send_if_modified(|slot| {
                let empty = slot.is_none();
                if empty {
                    *slot = Some(ExitReason::MaxRestartIntensity);
                }
                empty
            });
        }
        Box::new(MaxRestartIntensity {
            path: self.path.clone(),
            intensity: self.intensity,
            period: self.period,
        })
    }

    async fn stop_child(&mut self, name: &str) -> Result<(), TreeError> {
        let Some(child) = self.children.get(name) else {
            return Err(TreeError::NotFound(self.child_path(name)));
        };
        if matches!(child.status, Status::Stopped | Status::Failed(_)) {
            return Err(TreeError::AlreadyStopped(child.path.clone()));
        }
        let temporary = child.spec.restart == Restart::Temporary;
        self.terminate(name).await;
        if temporary {
            self.children.shift_remove(name);
        }
        Ok(())
    }

    /// An operator's start: not a restart, so it neither counts toward intensity nor waits for
    /// backoff, and the backoff schedule starts over.
    async fn start_child(&mut self, myself: &ActorCell, name: &str) -> Result<(), TreeError> {
        let Some(child) = self.children.get_mut(name) else {
            return Err(TreeError::NotFound(self.child_path(name)));
        };
        if child.running_cell().is_some() {
            return Err(TreeError::AlreadyRunning(child.path.clone()));
        }
        child.step = 0;
        let path = child.path.clone();
        match self.start_named(myself, name, StartCause::Start).await {
            Ok(()) => Ok(()),
            Err(error) => {
                if let Some(child) = self.children.get_mut(name) {
                    child.status = Status::Failed(error.clone());
                }
                Err(TreeError::StartFailed { path, error })
            }
        }
    }

    async fn add_child(
        &mut self,
        myself: &ActorCell,
        spec: ChildSpec,
        position: Option<usize>,
        keep_failed: bool,
    ) -> Result<(), TreeError> {
        let path = self.child_path(&spec.name);
        check_name(&spec.name).map_err(|e| TreeError::Invalid(format!("{path}: {e}")))?;
        if self.children.contains_key(&spec.name) {
            return Err(TreeError::AlreadyExists(path));
        }
        let name = spec.name.clone();
        let child = Child::new(spec, &self.path);
        match position {
            Some(index) if index < self.children.len() => {
                self.children.shift_insert(index, name.clone(), child);
            }
            _ => {
                self.children.insert(name.clone(), child);
            }
        }
        match self.start_named(myself, &name, StartCause::Start).await {
            Ok(()) => Ok(()),
            Err(error) => {
                if keep_failed {
                    if let Some(child) = self.children.get_mut(&name) {
                        child.status = Status::Failed(error.clone());
                    }
                } else {
                    self.children.shift_remove(&name);
                }
                Err(TreeError::StartFailed { path, error })
            }
        }
    }

    fn reconfigure(&mut self, settings: SupervisorSettings) {
        self.strategy = settings.strategy;
        self.intensity = settings.intensity;
        self.period = settings.period;
        self.backoff = settings.backoff;
        self.window.reconfigure(settings.intensity, settings.period);
    }

    /// Puts the named children first, in the given order; names that are not children (a
    /// temporary child that already exited, say) are skipped, and children not named keep
    /// their relative order after them. Nothing restarts.
    fn set_order(&mut self, names: Vec<String>) {
        let mut reordered = IndexMap::with_capacity(self.children.len());
        for name in names {
            if let Some(child) = self.children.shift_remove(&name) {
                reordered.insert(name, child);
            }
        }
        reordered.extend(self.children.drain(..));
        self.children = reordered;
    }

    /// A new spec for an existing child: it restarts with it, unless an operator stopped it,
    /// in which case it stays stopped and the new spec is used when it is started.
    async fn replace_child(
        &mut self,
        myself: &ActorCell,
        spec: ChildSpec,
    ) -> Result<(), TreeError> {
        let name = spec.name.clone();
        let Some(child) = self.children.get(&name) else {
            return Err(TreeError::NotFound(self.child_path(&name)));
        };
        let stopped = matches!(child.status, Status::Stopped);
        self.terminate(&name).await;
        if let Some(child) = self.children.get_mut(&name) {
            child.spec = spec;
            child.step = 0;
        }
        if stopped {
            return Ok(());
        }
        self.start_child(myself, &name).await
    }
}

fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    let text = match panic.downcast::<String>() {
        Ok(s) => *s,
        Err(other) => match other.downcast::<&str>() {
            Ok(s) => (*s).to_string(),
            Err(_) => "a panic with no message".to_string(),
        },
    };
    format!("panicked while starting: {text}")
}

/// Records how a child the supervisor stopped ended: its exit now when the supervisor ended it;
/// otherwise (it was already ending on its own) the incarnation waits in `unheard` for its own
/// event, which carries the true reason. True in that second case.
fn record_stop(
    child: &mut Child,
    id: ActorId,
    injected: bool,
    ended: Ended,
    events: &EventSink,
    unheard: &mut IndexMap<ActorId, Unheard>,
) -> bool {
    match ended {
        Ended::ByUs(reason) => {
            child.last_exit = Some(reason.clone());
            events.emit(
                &child.path,
                EventKind::Exited {
                    reason,
                    incarnation: child.incarnation,
                },
            );
            false
        }
        Ended::OnItsOwn => {
            unheard.insert(
                id,
                Unheard {
                    name: child.spec.name.clone(),
                    path: child.path.clone(),
                    incarnation: child.incarnation,
                    injected,
                },
            );
            true
        }
    }
}

/// How `shutdown_cell` ended a child.
enum Ended {
    /// It stopped because it was asked to (`Shutdown`) or was killed (`Killed`).
    ByUs(ExitReason),
    /// It was already stopping, or had stopped, on its own (it crashed or stopped itself:
    /// ractor refused the stop request) and ended without being killed; its own supervision
    /// event, queued for the supervisor, carries the reason.
    OnItsOwn,
}

/// Stops one actor by its shutdown policy; returns how it ended. An actor that is already
/// stopping on its own (ractor then refuses a second stop request) is waited for under the same
/// policy, so two incarnations never run at once; if it ends within the policy, it ended on its
/// own, not by our stop.
async fn shutdown_cell(cell: &ActorCell, policy: Shutdown, path: &str) -> Ended {
    let reason = Some(SHUTDOWN.to_string());
    match policy {
        Shutdown::BrutalKill => {
            // A kill cannot be refused; a crashed actor has already left `Running`.
            let on_its_own = cell.get_status() >= ActorStatus::Stopping;
            kill(cell, path).await;
            if on_its_own {
                Ended::OnItsOwn
            } else {
                Ended::ByUs(ExitReason::Killed)
            }
        }
        Shutdown::Timeout(limit) => {
            let deadline = Instant::now().checked_add(limit);
            match cell.stop_and_wait(reason, Some(limit)).await {
                Ok(()) => return Ended::ByUs(ExitReason::Shutdown),
                Err(RactorErr::Timeout) => {}
                // Refused: already stopping (or gone). Wait for what is left of the limit.
                Err(_) => {
                    let left =
                        deadline.map_or(limit, |d| d.saturating_duration_since(Instant::now()));
                    if cell.wait(Some(left)).await.is_ok() {
                        return Ended::OnItsOwn;
                    }
                }
            }
            tracing::warn!(%path, ?limit, "child did not stop in time; killing it");
            kill(cell, path).await;
            Ended::ByUs(ExitReason::Killed)
        }
        Shutdown::Infinity => {
            if cell.stop_and_wait(reason, None).await.is_ok() {
                return Ended::ByUs(ExitReason::Shutdown);
            }
            let _ = cell.wait(None).await;
            Ended::OnItsOwn
        }
    }
}

async fn kill(cell: &ActorCell, path: &str) {
    let dead = match cell.kill_and_wait(Some(KILL_GRACE)).await {
        Ok(()) => true,
        Err(RactorErr::Timeout) => false,
        // Already killed or gone: make sure it is.
        Err(_) => cell.wait(Some(KILL_GRACE)).await.is_ok(),
    };
    if !dead {
        tracing::error!(
            %path,
            "child did not die within {KILL_GRACE:?} of being killed (blocked outside an \
             await point?); abandoning it"
        );
    }
}
