//! What a supervisor reports about its children, and the flattened view of a whole tree.

use std::fmt;
use std::time::Duration;

use ractor::ActorRef;

use crate::supervision::exit::ExitReason;
use crate::supervision::spec::{Restart, Strategy};
use crate::supervision::supervisor::SupervisorMessage;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// Being started; only visible for a supervisor that is still starting its own children.
    Starting,
    Running,
    /// Exited; a restart is scheduled (backoff) or in progress.
    Restarting,
    /// Not running and not going to be restarted: exited normally (transient), or stopped by an
    /// operator.
    Stopped,
    /// An operator's start (or a reload's) failed; the error is kept.
    Failed,
}

impl NodeState {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Starting => "starting",
            NodeState::Running => "running",
            NodeState::Restarting => "restarting",
            NodeState::Stopped => "stopped",
            NodeState::Failed => "failed",
        }
    }
}

impl fmt::Display for NodeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One child as its supervisor sees it.
#[derive(Clone, Debug)]
pub struct ChildInfo {
    pub name: String,
    pub path: String,
    pub kind: String,
    pub restart: Restart,
    pub state: NodeState,
    /// Restart attempts made by the supervisor (operator starts and restarts not included).
    pub restarts: u64,
    /// How many times it has been started, this incarnation included (0: never started).
    pub incarnation: u64,
    pub last_exit: Option<ExitReason>,
    /// Time since this incarnation started, when running.
    pub uptime: Option<Duration>,
    /// Time left before the scheduled restart, when restarting.
    pub restart_in: Option<Duration>,
    /// Why the last operator start failed, when failed.
    pub error: Option<String>,
    /// The strategy, when this child is a supervisor.
    pub strategy: Option<Strategy>,
    /// The running nested supervisor, to ask for its own children.
    pub supervisor: Option<ActorRef<SupervisorMessage>>,
}

/// One node of a whole tree, depth-first in start order.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeSnapshot {
    /// `root`, `root/sync`, `root/sync/icloud`, ...
    pub path: String,
    pub name: String,
    /// 0 for the root.
    pub depth: usize,
    pub kind: String,
    pub restart: Restart,
    pub state: NodeState,
    pub restarts: u64,
    pub incarnation: u64,
    pub last_exit: Option<ExitReason>,
    pub uptime: Option<Duration>,
    pub restart_in: Option<Duration>,
    pub error: Option<String>,
    pub strategy: Option<Strategy>,
    /// A running supervisor that did not answer in time (busy starting or stopping children):
    /// its children are missing from the snapshot.
    pub unresponsive: bool,
}

impl NodeSnapshot {
    pub(crate) fn from_child(info: &ChildInfo, depth: usize) -> Self {
        NodeSnapshot {
            path: info.path.clone(),
            name: info.name.clone(),
            depth,
            kind: info.kind.clone(),
            restart: info.restart,
            state: info.state,
            restarts: info.restarts,
            incarnation: info.incarnation,
            last_exit: info.last_exit.clone(),
            uptime: info.uptime,
            restart_in: info.restart_in,
            error: info.error.clone(),
            strategy: info.strategy,
            unresponsive: false,
        }
    }
}
