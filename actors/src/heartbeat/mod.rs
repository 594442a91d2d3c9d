//! `kind = "heartbeat"`: proves the tree is alive. Every `every` it records a heartbeat event;
//! when the daemon runs under systemd with a watchdog (`WatchdogSec=`, seen as WATCHDOG_USEC),
//! it also pings the watchdog at half the watchdog interval, so a wedged daemon (a blocked
//! scheduler thread, a heartbeat that cannot restart) is killed and restarted by systemd.

use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::time::Instant;

use crate::store::{EventStore, StoredEvent};

pub struct HeartbeatActor;

#[derive(Clone)]
pub struct HeartbeatArgs {
    /// Its own tree path, for the events.
    pub path: String,
    pub every: Duration,
    /// Where heartbeat events go.
    pub store: Option<EventStore>,
    /// The systemd watchdog interval, when the service manager set one.
    pub watchdog: Option<Duration>,
}

pub enum HeartbeatMessage {
    Tick,
}

pub struct HeartbeatState {
    args: HeartbeatArgs,
    beats: u64,
    last_recorded: Option<Instant>,
}

/// How often to tick: every `every`, or twice per watchdog interval if that is sooner.
pub fn tick_interval(every: Duration, watchdog: Option<Duration>) -> Duration {
    match watchdog {
        Some(w) if !w.is_zero() => every.min(w / 2),
        _ => every,
    }
    .max(Duration::from_millis(1))
}

impl HeartbeatState {
    fn beat(&mut self, now: Instant) {
        let due = self
            .last_recorded
            .is_none_or(|last| now.saturating_duration_since(last) >= self.args.every);
        if due {
            self.beats += 1;
            self.last_recorded = Some(now);
            if let Some(store) = &self.args.store {
                let mut event = StoredEvent::new(&self.args.path, "heartbeat", "heartbeat");
                event.data = serde_json::json!({ "beat": self.beats });
                store.record(event);
            }
        }
        if self.args.watchdog.is_some() {
            if let Err(e) = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]) {
                tracing::warn!(error = %e, "cannot ping the systemd watchdog");
            }
        }
    }
}

impl Actor for HeartbeatActor {
    type Msg = HeartbeatMessage;
    type State = HeartbeatState;
    type Arguments = HeartbeatArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: HeartbeatArgs,
    ) -> Result<HeartbeatState, ActorProcessingErr> {
        myself.send_interval(tick_interval(args.every, args.watchdog), || {
            HeartbeatMessage::Tick
        });
        let mut state = HeartbeatState {
            args,
            beats: 0,
            last_recorded: None,
        };
        state.beat(Instant::now());
        Ok(state)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: HeartbeatMessage,
        state: &mut HeartbeatState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            HeartbeatMessage::Tick => state.beat(Instant::now()),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_follow_the_watchdog_when_it_is_sooner() {
        let s = Duration::from_secs(1);
        assert_eq!(tick_interval(10 * s, None), 10 * s);
        assert_eq!(tick_interval(10 * s, Some(4 * s)), 2 * s);
        assert_eq!(tick_interval(s, Some(60 * s)), s);
        assert_eq!(
            tick_interval(Duration::ZERO, None),
            Duration::from_millis(1)
        );
    }
}
