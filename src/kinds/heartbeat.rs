//! `kind = "heartbeat"`: records a heartbeat event every `every` and pings the systemd
//! watchdog (see `metasystem_actors::heartbeat`).
//!
//! Config: `every` (100ms to 24h, default 10s).
//! Operations: `status` (interval, beats, last beat, watchdog), `beat` (record one now).

use std::time::Duration;

use metasystem_actors::heartbeat::{HeartbeatActor, HeartbeatArgs, HeartbeatMessage};
use metasystem_actors::ChildSpec;
use serde_json::Value;

use super::{ActorKind, CallCx, CallError, NoArgs, Op, ParseCx, Services};
use crate::config::bounded;
use crate::config::reader::Table;

const DEFAULT_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatConfig {
    /// How often a heartbeat event is recorded.
    pub every: Duration,
}

impl ActorKind for HeartbeatConfig {
    const NAME: &'static str = "heartbeat";
    const OPS: &'static [Op] = &[
        Op {
            name: "status",
            args: "",
            summary: "interval, beats recorded, last beat, systemd watchdog pings",
        },
        Op {
            name: "beat",
            args: "",
            summary: "record a heartbeat now",
        },
    ];

    fn parse(cx: &mut ParseCx<'_>, t: &mut Table<'_, '_>) -> Option<Self> {
        let every = bounded(
            cx.d,
            t,
            "every",
            Duration::from_millis(100),
            Duration::from_secs(24 * 3600),
        )
        .unwrap_or(DEFAULT_EVERY);
        Some(HeartbeatConfig { every })
    }

    fn child_spec(&self, name: &str, services: &Services) -> ChildSpec {
        let (every, services) = (self.every, services.clone());
        ChildSpec::worker(name, Self::NAME, move |ctx| {
            (
                HeartbeatActor,
                HeartbeatArgs {
                    path: ctx.path.clone(),
                    every,
                    store: Some(services.store.clone()),
                    watchdog: services.watchdog,
                },
            )
        })
    }

    async fn call(cx: CallCx<'_>, op: &str, args: Value) -> Result<Value, CallError> {
        super::check_op(Self::NAME, Self::OPS, op)?;
        super::args::<NoArgs>(op, args)?;
        match op {
            "beat" => {
                let beat = super::ask(&cx, HeartbeatMessage::Beat).await?;
                super::reply(&serde_json::json!({ "beat": beat }))
            }
            _ => super::reply(&super::ask(&cx, HeartbeatMessage::Status).await?),
        }
    }
}
