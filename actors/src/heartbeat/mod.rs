//! `kind = "heartbeat"`: proves the tree is alive. Every `every` it records a heartbeat event;
//! under systemd with a watchdog (`WatchdogSec=`, seen as WATCHDOG_USEC) it also pings the
//! watchdog at half the watchdog interval, so a wedged daemon is killed and restarted.
//!
//! - [`actor`]: `HeartbeatActor`, its messages, state and arguments;
//! - [`schedule`]: when to tick and which ticks record a beat (pure, unit-tested).

pub mod actor;
pub mod schedule;

pub use actor::{HeartbeatActor, HeartbeatArgs, HeartbeatMessage, HeartbeatState, HeartbeatStatus};
