//! `Tree`: a running restart tree and the operations on it by path. This is the engine's API
//! for the daemon: start, snapshot, stop/start/restart/remove/add/replace/kill by path, wait for
//! the root to exit, shut down.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{Actor, ActorRef, RpcReplyPort};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::supervision::directory::Directory;
use crate::supervision::event::EventSink;
use crate::supervision::exit::ExitReason;
use crate::supervision::guardian::{GuardianActor, GuardianArgs, GuardianMessage, ROOT};
use crate::supervision::snapshot::{ChildInfo, NodeSnapshot, NodeState};
use crate::supervision::spec::{ChildSpec, Restart, Strategy, SupervisorSettings, SupervisorSpec};
use crate::supervision::supervisor::{SupervisorMessage, SupervisorReport};

/// How long a snapshot waits for one supervisor's answer. A supervisor is busy only while it
/// starts or stops children synchronously; after this its node is marked unresponsive.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeError {
    /// Nothing at this path.
    NotFound(String),
    /// Not a well-formed path (`root/...`).
    InvalidPath(String),
    /// The operation does not apply to the root; shut the tree down instead.
    Root,
    /// The path names a worker where a supervisor is needed.
    NotASupervisor(String),
    AlreadyExists(String),
    AlreadyRunning(String),
    /// The actor is already stopped (or failed): stopping it changes nothing.
    AlreadyStopped(String),
    /// The actor at this path exists but is not running (stopped, failed or restarting).
    NotRunning(String),
    /// The request cannot be done as asked; the message says why.
    Invalid(String),
    StartFailed {
        path: String,
        error: String,
    },
    /// The supervisor at this path did not answer in time (busy starting or stopping
    /// children); the operation may still happen.
    Timeout(String),
    /// The tree is not running (it exited or was shut down).
    Unavailable,
}

impl fmt::Display for TreeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TreeError::NotFound(p) => write!(f, "{p}: no such actor"),
            TreeError::InvalidPath(p) => {
                // Shown escaped and cut: whatever a client sent comes back readable and short.
                let mut shown: String = p.chars().take(80).collect();
                if p.chars().count() > 80 {
                    shown.push('…');
                }
                write!(
                    f,
                    "{shown:?} is not a tree path: root, or root/NAME/... where {}",
                    crate::supervision::spec::NAME_RULE
                )
            }
            TreeError::Root => write!(f, "the root cannot be operated on; shut the daemon down"),
            TreeError::NotASupervisor(p) => write!(f, "{p}: not a supervisor"),
            TreeError::AlreadyExists(p) => write!(f, "{p}: already exists"),
            TreeError::AlreadyRunning(p) => write!(f, "{p}: already running"),
            TreeError::AlreadyStopped(p) => write!(f, "{p}: already stopped"),
            TreeError::NotRunning(p) => write!(f, "{p}: not running"),
            TreeError::Invalid(msg) => f.write_str(msg),
            TreeError::StartFailed { path, error } => write!(f, "{path}: failed to start: {error}"),
            TreeError::Timeout(p) => write!(
                f,
                "{p}: did not answer in time (busy starting or stopping children); it may still happen"
            ),
            TreeError::Unavailable => write!(f, "the supervision tree is not running"),
        }
    }
}

impl std::error::Error for TreeError {}

/// A failed tree start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartError(pub String);

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the supervision tree failed to start: {}", self.0)
    }
}

impl std::error::Error for StartError {}

/// A running tree. Dropping it (or a clone) does not stop the tree; call [`Tree::shutdown`].
#[derive(Clone)]
pub struct Tree {
    guardian: ActorRef<GuardianMessage>,
    directory: Directory,
    exit: watch::Receiver<Option<ExitReason>>,
    started: Instant,
    root_strategy: Strategy,
}

impl Tree {
    /// Starts the root supervisor and, synchronously and in order, the whole tree below it.
    /// If any child fails to start, what started is stopped again and the error names it.
    pub async fn start(spec: SupervisorSpec, events: EventSink) -> Result<Tree, StartError> {
        let directory = Directory::new();
        let root_strategy = spec.strategy;
        let (exit_tx, exit) = watch::channel(None);
        let args = GuardianArgs {
            spec,
            directory: directory.clone(),
            events,
            exit: exit_tx,
        };
        let (guardian, _join) = match Actor::spawn(None, GuardianActor, args).await {
            Ok(started) => started,
            Err(ractor::SpawnErr::StartupFailed(e)) => return Err(StartError(e.to_string())),
            Err(e) => return Err(StartError(e.to_string())),
        };
        Ok(Tree {
            guardian,
            directory,
            exit,
            started: Instant::now(),
            root_strategy,
        })
    }

    /// Where actors of this tree are found by path.
    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// The root supervisor, while it runs.
    pub fn root(&self) -> Option<ActorRef<SupervisorMessage>> {
        self.directory.get(ROOT)
    }

    /// How the root ended, once it has.
    pub fn exit_reason(&self) -> Option<ExitReason> {
        self.exit.borrow().clone()
    }

    /// Resolves when the root has exited (gave up, failed, or was shut down).
    pub fn exited(&self) -> impl Future<Output = ExitReason> + Send + 'static {
        let mut exit = self.exit.clone();
        async move {
            let waited = exit
                .wait_for(Option::is_some)
                .await
                .map(|reason| reason.clone());
            match waited {
                Ok(reason) => reason.unwrap_or(ExitReason::Shutdown),
                // The guardian is gone without saying why: it was killed.
                Err(_) => exit.borrow().clone().unwrap_or(ExitReason::Killed),
            }
        }
    }

    /// Stops the tree in order (every supervisor stops its children in reverse start order,
    /// each by its shutdown policy) and returns how the root ended. Idempotent.
    pub async fn shutdown(&self) -> ExitReason {
        let _ = self.guardian.stop_and_wait(None, None).await;
        self.exited().await
    }

    /// Every node, depth-first in start order, the root first.
    pub async fn snapshot(&self) -> Vec<NodeSnapshot> {
        let Some(root) = self.root() else {
            return Vec::new();
        };
        let mut nodes = vec![NodeSnapshot {
            path: ROOT.to_string(),
            name: ROOT.to_string(),
            depth: 0,
            kind: "supervisor".to_string(),
            restart: Restart::Permanent,
            state: NodeState::Running,
            restarts: 0,
            incarnation: 1,
            last_exit: None,
            uptime: Some(self.started.elapsed()),
            restart_in: None,
            error: None,
            strategy: Some(self.root_strategy),
            unresponsive: false,
        }];
        collect(root, 1, &mut nodes).await;
        nodes
    }

    /// Stop the actor at `path` and keep it stopped.
    pub async fn stop(&self, path: &str) -> Result<(), TreeError> {
        self.child_op(path, SupervisorMessage::StopChild).await
    }

    /// Start the stopped (or failed, or restart-pending) actor at `path`.
    pub async fn start_child(&self, path: &str) -> Result<(), TreeError> {
        self.child_op(path, SupervisorMessage::StartChild).await
    }

    /// Stop and start the actor at `path`.
    pub async fn restart(&self, path: &str) -> Result<(), TreeError> {
        self.child_op(path, SupervisorMessage::RestartChild).await
    }

    /// Stop and forget the actor at `path`.
    pub async fn remove(&self, path: &str) -> Result<(), TreeError> {
        self.child_op(path, SupervisorMessage::RemoveChild).await
    }

    /// Chaos: crash the actor at `path` (killed; its supervisor sees a failure).
    pub async fn inject_failure(&self, path: &str) -> Result<(), TreeError> {
        self.child_op(path, SupervisorMessage::InjectFailure).await
    }

    /// Add `spec` as the last child of the supervisor at `parent` and start it. If the start
    /// fails the child is not kept (OTP `start_child`).
    pub async fn add_child(&self, parent: &str, spec: ChildSpec) -> Result<(), TreeError> {
        let sup = self.supervisor(parent).await?;
        call(self, &sup, parent, |reply| SupervisorMessage::AddChild {
            spec,
            position: None,
            keep_failed: false,
            reply,
        })
        .await
    }

    /// Insert `spec` at `position` among the children of `parent` and start it. If the start
    /// fails the child stays, failed, with its error (what a declarative config wants); the
    /// error is returned too.
    pub async fn insert_child(
        &self,
        parent: &str,
        spec: ChildSpec,
        position: usize,
    ) -> Result<(), TreeError> {
        let sup = self.supervisor(parent).await?;
        call(self, &sup, parent, |reply| SupervisorMessage::AddChild {
            spec,
            position: Some(position),
            keep_failed: true,
            reply,
        })
        .await
    }

    /// Change the strategy, intensity, period and backoff of the supervisor at `path` in place.
    pub async fn reconfigure(
        &self,
        path: &str,
        settings: SupervisorSettings,
    ) -> Result<(), TreeError> {
        let sup = self.supervisor(path).await?;
        call(self, &sup, path, |reply| {
            SupervisorMessage::Reconfigure(settings, reply)
        })
        .await
    }

    /// Replace the stored spec of the existing child `spec.name` of `parent` without
    /// restarting it (its next start uses it).
    pub async fn update_spec(&self, parent: &str, spec: ChildSpec) -> Result<(), TreeError> {
        let sup = self.supervisor(parent).await?;
        call(self, &sup, parent, |reply| {
            SupervisorMessage::UpdateSpec(spec, reply)
        })
        .await
    }

    /// Reorder the children of the supervisor at `path`: the named ones first, in this order
    /// (names that are not children are skipped), the others after them.
    pub async fn set_order(&self, path: &str, names: Vec<String>) -> Result<(), TreeError> {
        let sup = self.supervisor(path).await?;
        call(self, &sup, path, |reply| {
            SupervisorMessage::SetOrder(names, reply)
        })
        .await
    }

    /// Replace the spec of the existing child `spec.name` of `parent` and restart it with it
    /// (a child an operator stopped stays stopped and gets the new spec at its next start).
    pub async fn replace_child(&self, parent: &str, spec: ChildSpec) -> Result<(), TreeError> {
        let sup = self.supervisor(parent).await?;
        call(self, &sup, parent, |reply| {
            SupervisorMessage::ReplaceChild(spec, reply)
        })
        .await
    }

    /// What the supervisor at `path` says about itself (waits at most `timeout`).
    pub async fn supervisor_report(
        &self,
        path: &str,
        timeout: Duration,
    ) -> Result<SupervisorReport, TreeError> {
        let sup = self.supervisor(path).await?;
        match sup.call(SupervisorMessage::Report, Some(timeout)).await {
            Ok(CallResult::Success(report)) => Ok(report),
            Ok(CallResult::Timeout) => Err(TreeError::Timeout(path.to_string())),
            _ => Err(TreeError::Unavailable),
        }
    }

    /// The kind of the actor at `path` (`supervisor` for the root), whether it runs or not.
    pub async fn kind_of(&self, path: &str) -> Result<String, TreeError> {
        check_path(path)?;
        if path == ROOT {
            return Ok("supervisor".to_string());
        }
        Ok(self.child_info(path).await?.kind)
    }

    /// What the parent of `path` says about it (`path` is not the root).
    async fn child_info(&self, path: &str) -> Result<ChildInfo, TreeError> {
        let Some((parent, name)) = path.rsplit_once('/') else {
            return Err(TreeError::Root);
        };
        let parent_sup = self.find_supervisor(parent).await?;
        let name = name.to_string();
        let info = parent_sup
            .call(
                |reply| SupervisorMessage::ChildInfo(name, reply),
                Some(SNAPSHOT_TIMEOUT),
            )
            .await;
        match info {
            Ok(CallResult::Success(Some(info))) => Ok(info),
            Ok(CallResult::Success(None)) => Err(TreeError::NotFound(path.to_string())),
            Ok(CallResult::Timeout) => Err(TreeError::Timeout(parent.to_string())),
            _ => Err(self.gone(parent)),
        }
    }

    /// The running supervisor at `path`; otherwise the error names the first path segment
    /// that is missing, not running, or not a supervisor.
    pub async fn supervisor(&self, path: &str) -> Result<ActorRef<SupervisorMessage>, TreeError> {
        check_path(path)?;
        self.find_supervisor(path).await
    }

    /// The error for a supervisor at `path` that stopped answering: it is not running, unless
    /// the whole tree is gone.
    fn gone(&self, path: &str) -> TreeError {
        if self.root().is_some() {
            TreeError::NotRunning(path.to_string())
        } else {
            TreeError::Unavailable
        }
    }

    fn find_supervisor<'a>(
        &'a self,
        path: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<ActorRef<SupervisorMessage>, TreeError>> + Send + 'a>>
    {
        Box::pin(async move {
            if let Some(sup) = self.directory.get::<SupervisorMessage>(path) {
                return Ok(sup);
            }
            if path == ROOT {
                return Err(TreeError::Unavailable);
            }
            let info = self.child_info(path).await?;
            match (info.strategy, info.supervisor) {
                (None, _) => Err(TreeError::NotASupervisor(path.to_string())),
                (Some(_), Some(sup)) => Ok(sup),
                (Some(_), None) => Err(TreeError::NotRunning(path.to_string())),
            }
        })
    }

    async fn child_op(
        &self,
        path: &str,
        op: impl FnOnce(String, RpcReplyPort<Result<(), TreeError>>) -> SupervisorMessage,
    ) -> Result<(), TreeError> {
        check_path(path)?;
        let Some((parent, name)) = path.rsplit_once('/') else {
            return Err(TreeError::Root);
        };
        let sup = self.find_supervisor(parent).await?;
        let name = name.to_string();
        call(self, &sup, parent, |reply| op(name, reply)).await
    }
}

/// A path is `root` or `root/NAME/...` with every NAME a valid child name (so no `..`, no
/// control characters, bounded).
pub fn check_path(path: &str) -> Result<(), TreeError> {
    let mut segments = path.split('/');
    let well_formed = segments.next() == Some(ROOT)
        && segments.all(|segment| crate::supervision::spec::check_name(segment).is_ok());
    if well_formed {
        Ok(())
    } else {
        Err(TreeError::InvalidPath(path.to_string()))
    }
}

/// Asks the supervisor at `path` and returns its answer. If it went away before answering (it
/// exited or gave up meanwhile), the error names it; only a tree that is gone is `Unavailable`.
async fn call(
    tree: &Tree,
    sup: &ActorRef<SupervisorMessage>,
    path: &str,
    message: impl FnOnce(RpcReplyPort<Result<(), TreeError>>) -> SupervisorMessage,
) -> Result<(), TreeError> {
    match sup.call(message, None).await {
        Ok(CallResult::Success(result)) => result,
        _ => Err(tree.gone(path)),
    }
}

/// Appends the children of `sup` (and, recursively, of its running supervisors).
fn collect<'a>(
    sup: ActorRef<SupervisorMessage>,
    depth: usize,
    nodes: &'a mut Vec<NodeSnapshot>,
) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
    Box::pin(async move {
        let children: Vec<ChildInfo> = match sup
            .call(SupervisorMessage::Snapshot, Some(SNAPSHOT_TIMEOUT))
            .await
        {
            Ok(CallResult::Success(children)) => children,
            _ => {
                if let Some(parent) = nodes.last_mut() {
                    parent.unresponsive = true;
                }
                return;
            }
        };
        for child in children {
            nodes.push(NodeSnapshot::from_child(&child, depth));
            if let Some(nested) = child.supervisor {
                collect(nested, depth + 1, nodes).await;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_checked() {
        assert!(check_path("root").is_ok());
        assert!(check_path("root/a/b").is_ok());
        for bad in [
            "",
            "a",
            "root/",
            "root//a",
            "/root",
            "rooty/a",
            "root/a/",
            "root/..",
            "root/a\n",
            "root/\u{0}",
        ] {
            assert_eq!(
                check_path(bad),
                Err(TreeError::InvalidPath(bad.into())),
                "{bad}"
            );
        }
    }
}
