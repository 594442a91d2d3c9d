//! `kind = "breakers"`: circuit breakers in front of the dependencies the daemon calls, so a
//! dependency that keeps failing is left alone for a while instead of being hammered, and is
//! tried again carefully (HALF_OPEN) before traffic resumes.
//!
//! - [`machine`]: the state machine (pure: time is an argument), with its config, snapshot and
//!   transitions. The semantics — resilience4j's, without its stuck HALF_OPEN and without
//!   counting late reports against the wrong state — are documented there.
//! - `actor`: `BreakersActor`: fills the registry (restored from the store), persists
//!   transitions and counts, drives OPEN → HALF_OPEN by timer, reports samples and alerts.
//! - [`handle`]: [`Breaker`], the machine behind a lock for callers on any thread, reading the
//!   clock itself and notifying transitions outside the lock; [`Breakers`], the registry by name.
//! - [`guard`]: a [`Breaker`] as the `Guard` of a retry loop ([`crate::retry::retry()`]).

pub mod actor;
pub mod guard;
pub mod handle;
pub mod machine;

pub use guard::rejection;
pub use handle::{no_notifier, wall_clock_ms, Breaker, Breakers, CallError, Clock, Notifier};
pub use machine::{
    BreakerConfig, Counters, Machine, Permit, Rejected, Snapshot, State, StateName, Transition,
    Window, MAX_COUNT_WINDOW,
};
