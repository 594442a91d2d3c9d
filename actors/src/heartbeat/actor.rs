//! The heartbeat actor.

use std::time::{Duration, SystemTime};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::time::Instant;

use super::schedule::{tick_interval, BeatSchedule};
use crate::store::{Store, StoredEvent};

pub struct HeartbeatActor;

#[derive(Clone)]
pub struct HeartbeatArgs {
    /// Its own tree path, for the events.
    pub path: String,
    pub every: Duration,
    /// Where heartbeat events go (`None` in tests that only watch the actor).
    pub store: Option<Store>,
    /// The systemd watchdog interval, when the service manager set one.
    pub watchdog: Option<Duration>,
}

pub enum HeartbeatMessage {
    /// Internal: the tick timer.
    Tick,
    /// `call PATH status`.
    Status(RpcReplyPort<HeartbeatStatus>),
    /// `call PATH beat`: record a beat now; answers its number.
    Beat(RpcReplyPort<u64>),
}

/// What `status` answers.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HeartbeatStatus {
    pub every_s: f64,
    /// Beats recorded by this incarnation.
    pub beats: u64,
    /// When the last beat was recorded (Unix milliseconds).
    pub last_beat_ms: Option<i64>,
    /// The systemd watchdog interval, when one is set.
    pub watchdog_s: Option<f64>,
    /// Watchdog pings sent by this incarnation.
    pub watchdog_pings: u64,
}

pub struct HeartbeatState {
    args: HeartbeatArgs,
    /// Which ticks record a beat (a fixed schedule: see `schedule`).
    schedule: BeatSchedule,
    /// Beats recorded by this incarnation.
    beats: u64,
    /// When the last beat was recorded, for `status`.
    last_recorded_at: Option<SystemTime>,
    /// Watchdog pings sent by this incarnation, for `status`.
    pings: u64,
}

impl HeartbeatState {
    fn record(&mut self) {
        self.beats += 1;
        self.last_recorded_at = Some(SystemTime::now());
        if let Some(store) = &self.args.store {
            let mut event = StoredEvent::new(
                &self.args.path,
                crate::store::events::Kind::Heartbeat,
                "heartbeat",
            );
            event.data = serde_json::json!({ "beat": self.beats });
            store.record(event);
        }
    }

    fn tick(&mut self, now: Instant) {
        if self.schedule.due(now) {
            self.record();
        }
        if self.args.watchdog.is_some() {
            match sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]) {
                Ok(()) => self.pings += 1,
                Err(e) => tracing::warn!(error = %e, "cannot ping the systemd watchdog"),
            }
        }
    }

    fn status(&self) -> HeartbeatStatus {
        HeartbeatStatus {
            every_s: self.args.every.as_secs_f64(),
            beats: self.beats,
            last_beat_ms: self.last_recorded_at.map(crate::store::unix_ms),
            watchdog_s: self.args.watchdog.map(|w| w.as_secs_f64()),
            watchdog_pings: self.pings,
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
        let tick = tick_interval(args.every, args.watchdog);
        myself.send_interval(tick, || HeartbeatMessage::Tick);
        let mut state = HeartbeatState {
            schedule: BeatSchedule::new(args.every, tick),
            args,
            beats: 0,
            last_recorded_at: None,
            pings: 0,
        };
        state.tick(Instant::now());
        Ok(state)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: HeartbeatMessage,
        state: &mut HeartbeatState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            HeartbeatMessage::Tick => state.tick(Instant::now()),
            HeartbeatMessage::Status(reply) => {
                let _ = reply.send(state.status());
            }
            HeartbeatMessage::Beat(reply) => {
                state.record();
                let _ = reply.send(state.beats);
            }
        }
        Ok(())
    }
}
