//! `kind = "heartbeat"`: records a heartbeat event every `every` and pings the systemd
//! watchdog (see `metasystem_actors::heartbeat`).
//!
//! Config: `every` (100ms to 24h, default 10s).
//! Operations: `status` (interval, beats, last beat, watchdog), `beat` (record one now).
//! In `status`: a line per running heartbeat (`heartbeats`).

use std::time::Duration;

use metasystem_actors::heartbeat::{HeartbeatActor, HeartbeatArgs, HeartbeatMessage};
use metasystem_actors::ChildSpec;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::io::{self, Write};

use super::{
    ActorKind, CallCx, CallError, Cell, NoArgs, Op, Panel, ParseCx, Services, Tone, ViewCx,
};
use crate::config::bounded;
use crate::config::reader::Table;
use crate::config::schema::{key, Obj, Ty};
use crate::control::client::Connection;

const DEFAULT_EVERY: Duration = Duration::from_secs(10);
/// How long `status` waits for a heartbeat's answer.
const STATUS_WAIT: Duration = Duration::from_secs(1);

/// The heartbeats' part of `status`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct HeartbeatSection {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    heartbeats: Vec<HeartbeatLine>,
}

/// A running heartbeat in `status`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct HeartbeatLine {
    path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    every_s: Option<f64>,
    /// Beats recorded by its current incarnation.
    #[serde(default)]
    beats: u64,
    /// When it last recorded one (Unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_beat_ms: Option<i64>,
    /// The systemd watchdog's interval, when one is set, and the pings sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    watchdog_s: Option<f64>,
    #[serde(default)]
    watchdog_pings: u64,
    /// Why it did not answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// "10s", "1m 30s": whole seconds, or milliseconds below one.
fn short(secs: f64) -> String {
    let secs = if secs.is_finite() { secs.max(0.0) } else { 0.0 };
    if secs < 1.0 {
        format!("{}ms", (secs * 1000.0).round())
    } else {
        humantime::format_duration(Duration::from_secs(secs as u64)).to_string()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatConfig {
    /// How often a heartbeat event is recorded.
    pub every: Duration,
}

impl ActorKind for HeartbeatConfig {
    type Cli = super::NoCommands;
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

    fn schema() -> Obj {
        Obj::new(vec![key(
            "every",
            Ty::Duration,
            "How often a heartbeat is recorded and the systemd watchdog pinged (100ms to 24h).",
        )
        .default("10s")])
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

    /// Each running heartbeat's line: its interval, beats, last beat and watchdog pings, as
    /// the actor answers within a second (else why not).
    async fn status(cx: &ViewCx<'_>) -> Map<String, Value> {
        let asks = cx.paths_of(Self::NAME).map(|path| async move {
            let asked = super::ask(&cx.at(path, STATUS_WAIT), HeartbeatMessage::Status).await;
            match asked {
                Ok(s) => HeartbeatLine {
                    path: path.to_string(),
                    every_s: Some(s.every_s),
                    beats: s.beats,
                    last_beat_ms: s.last_beat_ms,
                    watchdog_s: s.watchdog_s,
                    watchdog_pings: s.watchdog_pings,
                    error: None,
                },
                Err(e) => HeartbeatLine {
                    path: path.to_string(),
                    error: Some(e.message),
                    ..Default::default()
                },
            }
        });
        let heartbeats = futures_util::future::join_all(asks).await;
        super::keys(&HeartbeatSection { heartbeats })
    }

    fn render_status(status: &Map<String, Value>, out: &mut dyn Write) -> io::Result<()> {
        let s: HeartbeatSection = super::section(status);
        let now_ms = metasystem_actors::store::unix_ms(std::time::SystemTime::now());
        for h in &s.heartbeats {
            if let Some(error) = &h.error {
                writeln!(out, "heartbeat: {} {error}", h.path)?;
                continue;
            }
            let every = h.every_s.map(short).unwrap_or_default();
            let last = match h.last_beat_ms {
                Some(at) => format!("last beat {} ago", short((now_ms - at) as f64 / 1000.0)),
                None => "no beat yet".to_string(),
            };
            let watchdog = match h.watchdog_s {
                Some(w) => format!(
                    "; systemd watchdog every {}: {} ping(s)",
                    short(w),
                    h.watchdog_pings
                ),
                None => String::new(),
            };
            writeln!(
                out,
                "heartbeat: {} every {every}: {last} ({} beat(s)){watchdog}",
                h.path, h.beats
            )?;
        }
        Ok(())
    }

    /// Each running heartbeat: its interval, beats, and how long since the last (from
    /// `status`).
    fn top_panel(conn: &mut Connection) -> Option<Result<Panel, String>> {
        let status = match super::fetch(conn, crate::control::request::Status {}) {
            Ok(status) => status,
            Err(e) => return Some(Err(e)),
        };
        let s: HeartbeatSection = super::section(&status.kinds);
        let now_ms = metasystem_actors::store::unix_ms(std::time::SystemTime::now());
        let rows = s
            .heartbeats
            .iter()
            .map(|h| {
                let (last, tone) = match (h.last_beat_ms, h.every_s, &h.error) {
                    (_, _, Some(error)) => (error.clone(), Tone::Bad),
                    (Some(at), Some(every), None) => {
                        let late = (now_ms - at) as f64 / 1000.0;
                        // Two intervals without a beat: something holds it up.
                        let tone = if late > 2.0 * every + 1.0 {
                            Tone::Warn
                        } else {
                            Tone::Good
                        };
                        (format!("{} ago", short(late)), tone)
                    }
                    _ => ("no beat yet".to_string(), Tone::Plain),
                };
                vec![
                    Cell::plain(&h.path),
                    Cell::plain(h.every_s.map(short).unwrap_or_default()),
                    Cell::plain(h.beats.to_string()),
                    Cell::toned(last, tone),
                ]
            })
            .collect();
        Some(Ok(Panel {
            key: "heartbeats",
            title: "heartbeats".into(),
            columns: vec![
                ("HEARTBEAT", None),
                ("EVERY", Some(8)),
                ("BEATS", Some(8)),
                ("LAST", Some(12)),
            ],
            rows,
            data: serde_json::to_value(&s.heartbeats).unwrap_or_default(),
        }))
    }

    fn absent(services: &Services) -> Option<String> {
        services.watchdog.map(|_| {
            "the systemd watchdog is on and the tree has no heartbeat: systemd will restart \
             the daemon; add a `kind = \"heartbeat\"` child"
                .to_string()
        })
    }
}
