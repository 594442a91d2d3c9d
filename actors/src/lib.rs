//! `metasystem-actors`: the supervision engine of metasystem, its store, and its actor kinds.
//!
//! - [`supervision`]: the engine (OTP restart trees with backoff on ractor). No SQLite, no
//!   filesystem, no systemd.
//! - [`store`]: the one SQLite writer and its typed tables.
//! - one module per actor kind ([`heartbeat`], ...): the actor plus its pure logic.
//! - [`host`]: this host's identity (hostname + machine id), which names it in sync targets.
//!
//! Dependency direction: kinds → store and supervision; the engine → nothing of theirs. The
//! crate knows nothing of `supervision.toml` or of the control socket; it receives typed specs.
//! See ARCHITECTURE.md at the repository root for the invariants.

pub mod alerts;
pub mod breakers;
pub mod heal;
pub mod heartbeat;
pub mod host;
pub mod logfile;
pub mod memory;
pub mod metrics;
pub mod observe;
pub mod paths;
pub mod probes;
pub mod process;
pub mod retry;
pub mod slot;
pub mod store;
pub mod supervision;
pub mod sync;

/// Loopback HTTP and SMTP sinks for tests (feature `testkit`).
#[cfg(feature = "testkit")]
#[path = "testkit_net.rs"]
pub mod sinks;

// The engine's API, at the crate root for brevity.
#[cfg(feature = "testkit")]
pub use supervision::testkit;
pub use supervision::{
    should_restart, Backoff, ChildCtx, ChildInfo, ChildSpec, Directory, EventKind, EventSink,
    ExitReason, Jitter, LifecycleEvent, MaxRestartIntensity, NodeSnapshot, NodeState, Restart,
    Shutdown, StartError, StartFn, Strategy, SupervisorActor, SupervisorArgs, SupervisorMessage,
    SupervisorReport, SupervisorSettings, SupervisorSpec, Tree, TreeError, WORKER_START_TIMEOUT,
};
