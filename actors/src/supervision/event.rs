//! Typed lifecycle events: every start, exit, scheduled restart, restart and give-up in the
//! tree, delivered to one subscriber (the daemon's event store; a channel in tests).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::supervision::exit::ExitReason;

#[derive(Clone, Debug, PartialEq)]
pub enum EventKind {
    /// Started for the first time, or again by an operator (`start`, `restart`, add).
    Started { incarnation: u64 },
    /// A start failed (its `pre_start` returned an error or panicked, or did not return within
    /// the child's start timeout: "did not start within 1m").
    StartFailed { error: String },
    /// Exited; `incarnation` is the one that exited. A child that was already stopping on its
    /// own when its supervisor stopped it is reported once its own exit event is read, with its
    /// own reason (`unknown` if the supervisor ended first); after an operator's restart that
    /// can come after the next incarnation's `started`.
    Exited {
        reason: ExitReason,
        incarnation: u64,
    },
    /// A restart was decided and will happen after `delay`; `attempt` counts consecutive
    /// restarts of this child since it last stayed up for the backoff's `reset_after` (how long
    /// it must run after this restart for the count to start again).
    RestartScheduled {
        delay: Duration,
        attempt: u32,
        reset_after: Duration,
    },
    /// Started again by its supervisor after an exit.
    Restarted { incarnation: u64 },
    /// A supervisor reached its restart intensity, stopped its children and failed.
    GaveUp { intensity: u32, period: Duration },
}

impl EventKind {
    pub fn tag(&self) -> &'static str {
        match self {
            EventKind::Started { .. } => "started",
            EventKind::StartFailed { .. } => "start_failed",
            EventKind::Exited { .. } => "exited",
            EventKind::RestartScheduled { .. } => "restart_scheduled",
            EventKind::Restarted { .. } => "restarted",
            EventKind::GaveUp { .. } => "gave_up",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventKind::Started { incarnation } => write!(f, "started (incarnation {incarnation})"),
            EventKind::StartFailed { error } => write!(f, "start failed: {error}"),
            EventKind::Exited {
                reason,
                incarnation,
            } => write!(f, "exited: {reason} (incarnation {incarnation})"),
            EventKind::RestartScheduled { delay, attempt, .. } => {
                write!(f, "restart #{attempt} scheduled in {delay:?}")
            }
            EventKind::Restarted { incarnation } => {
                write!(f, "restarted (incarnation {incarnation})")
            }
            EventKind::GaveUp { intensity, period } => {
                write!(f, "gave up: more than {intensity} restarts in {period:?}")
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct LifecycleEvent {
    /// Wall-clock time, for the store and for people.
    pub at: SystemTime,
    /// Monotonic (tokio) time, for measuring intervals; follows a paused test clock.
    pub instant: Instant,
    /// Tree path of the actor the event is about, e.g. `root/sync/icloud`.
    pub path: String,
    pub kind: EventKind,
}

/// Where lifecycle events go. Cheap to clone; emitting never blocks and never fails the
/// supervisor (a subscriber that went away just stops receiving).
#[derive(Clone, Default)]
pub struct EventSink {
    inner: Option<Arc<dyn Fn(LifecycleEvent) + Send + Sync>>,
}

impl EventSink {
    /// Drops every event.
    pub fn none() -> Self {
        EventSink { inner: None }
    }

    /// Calls `f` for every event, on the emitting supervisor's task: `f` must be quick (send to
    /// a channel or an actor).
    pub fn from_fn(f: impl Fn(LifecycleEvent) + Send + Sync + 'static) -> Self {
        EventSink {
            inner: Some(Arc::new(f)),
        }
    }

    /// Events into an unbounded channel.
    pub fn channel() -> (Self, mpsc::UnboundedReceiver<LifecycleEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let sink = EventSink::from_fn(move |event| {
            let _ = tx.send(event);
        });
        (sink, rx)
    }

    pub fn is_none(&self) -> bool {
        self.inner.is_none()
    }

    pub fn emit(&self, path: &str, kind: EventKind) {
        if let Some(f) = &self.inner {
            f(LifecycleEvent {
                at: SystemTime::now(),
                instant: Instant::now(),
                path: path.to_string(),
                kind,
            });
        }
    }
}

impl fmt::Debug for EventSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventSink")
            .field("subscribed", &self.inner.is_some())
            .finish()
    }
}
