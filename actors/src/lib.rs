//! `metasystem-actors`: the supervision engine of metasystem and, as they land, its actor kinds.
//!
//! The engine follows Erlang/OTP's `supervisor` (restart strategies, restart types, restart
//! intensity with escalation, ordered synchronous start, per-child shutdown in reverse start
//! order) on top of ractor, and adds restart backoff. It receives typed specs
//! ([`SupervisorSpec`], [`ChildSpec`]) and knows nothing of `supervision.toml` or of the control
//! socket. See ARCHITECTURE.md at the repository root for the invariants.

pub mod backoff;
pub mod directory;
pub mod event;
pub mod event_store;
pub mod exit;
pub mod guardian;
pub mod heartbeat;
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
    ChildCtx, ChildSpec, Restart, Shutdown, StartFn, Strategy, SupervisorSettings, SupervisorSpec,
};
pub use supervisor::{SupervisorActor, SupervisorArgs, SupervisorMessage};
pub use tree::{StartError, Tree, TreeError};
