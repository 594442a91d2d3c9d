//! The supervision engine: Erlang/OTP's `supervisor` on ractor, plus restart backoff.
//!
//! Strategies, restart types, restart intensity with escalation, ordered synchronous start,
//! per-child shutdown in reverse start order, typed lifecycle events, and operations by tree
//! path. It receives typed specs ([`SupervisorSpec`], [`ChildSpec`]) and knows nothing of
//! SQLite, the filesystem, systemd, `supervision.toml` or the control socket: actor kinds and
//! the store plug in through start functions and the [`EventSink`].

pub mod backoff;
pub mod directory;
pub mod event;
pub mod exit;
pub mod guardian;
pub mod intensity;
pub mod snapshot;
pub mod spec;
pub mod supervisor;
pub mod tree;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use backoff::{Backoff, Jitter};
pub use directory::Directory;
pub use event::{EventKind, EventSink, LifecycleEvent};
pub use exit::{should_restart, ExitReason, MaxRestartIntensity};
pub use snapshot::{ChildInfo, NodeSnapshot, NodeState};
pub use spec::{
    check_name, ChildCtx, ChildSpec, Restart, Shutdown, StartFn, Strategy, SupervisorSettings,
    SupervisorSpec, WORKER_START_TIMEOUT,
};
pub use supervisor::{SupervisorActor, SupervisorArgs, SupervisorMessage, SupervisorReport};
pub use tree::{StartError, Tree, TreeError};
