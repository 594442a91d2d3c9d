//! The dashboard's side of the socket, on threads of their own so the screen never waits for
//! the daemon: the subscription reader (events as they are written, reconnecting), the
//! snapshot reader (one connection, the read-only queries), and one thread per operator
//! action (a forced sync can take minutes).

use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::model::{self, Snapshot};
use crate::control::client::{ClientError, Connection};
use crate::control::protocol::{Command, Event, Response, SeriesRow, StreamItem, Topic};
use crate::control::request::{self, Request};

/// The day's sync figures are read again at most this often.
const METRICS_EVERY: Duration = Duration::from_secs(60);
/// Recent alerts shown.
const ALERTS: usize = 10;

/// What the threads tell the loop.
pub enum Msg {
    Key(model::Key),
    Resize,
    /// The subscription is (again) up.
    StreamUp,
    StreamDown(String),
    Event(Event),
    Snapshot(Result<(Snapshot, Vec<i64>), String>),
    /// An action's outcome, for the message line.
    Reply(String),
}

/// Reads the snapshots: one connection, reopened when it breaks.
pub struct Fetcher {
    socket: PathBuf,
    timeout: Duration,
    conn: Option<Connection>,
    metrics: Option<(Instant, Vec<SeriesRow>)>,
    seeded: bool,
}

impl Fetcher {
    pub fn new(socket: &Path, timeout: Duration) -> Fetcher {
        Fetcher {
            socket: socket.to_path_buf(),
            timeout,
            conn: None,
            metrics: None,
            seeded: false,
        }
    }

    /// Every section, and (the first time after a connection) the restarts of the last
    /// half hour for the sparkline. An error drops the connection (the next call reopens it).
    pub fn fetch(&mut self) -> Result<(Snapshot, Vec<i64>), String> {
        let out = self.try_fetch();
        if out.is_err() {
            self.conn = None;
            self.seeded = false;
        }
        out
    }

    fn ask<R: Request>(&mut self, request: R) -> Result<R::Response, String> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            slot => slot.insert(
                Connection::open(&self.socket, Some(self.timeout)).map_err(|e| e.to_string())?,
            ),
        };
        match conn.call(request) {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(refused)) => Err(format!("{}: {}", R::NAME, refused.message)),
            Err(e) => Err(e.to_string()),
        }
    }

    fn try_fetch(&mut self) -> Result<(Snapshot, Vec<i64>), String> {
        let tree = self.ask(request::Tree {})?;
        let sync = self.ask(request::SyncStatus {})?;
        let breakers = self.ask(request::Breakers {})?;
        let alerts = self.ask(request::Alerts {
            limit: Some(ALERTS),
        })?;
        if self
            .metrics
            .as_ref()
            .is_none_or(|(at, _)| at.elapsed() >= METRICS_EVERY)
        {
            // The day's figures are a nicety: a daemon without metrics still shows the rest.
            let m = self
                .ask(request::Metrics {
                    name: Some("sync_run".into()),
                    since_s: Some(24 * 3600),
                })
                .map(|m| m.series)
                .unwrap_or_default();
            self.metrics = Some((Instant::now(), m));
        }
        let mut seeds = Vec::new();
        if !self.seeded {
            let page = self.ask(request::Events {
                since_s: Some(model::SPARK_MINUTES as u64 * 60),
                kind: Some("restarted".into()),
                limit: Some(1000),
                ..Default::default()
            })?;
            seeds = page.events.iter().map(|e| e.at_ms).collect();
            self.seeded = true;
        }
        let conn = self.conn.as_mut().ok_or("not connected")?;
        let panels = crate::kinds::Kind::top_panels(conn)?;
        let no_series = Vec::new();
        let series = self.metrics.as_ref().map_or(&no_series, |(_, m)| m);
        let snapshot = Snapshot {
            tree: tree.nodes,
            sync: model::sync_rows(sync.targets, series),
            breakers: breakers.breakers,
            panels,
            alerts: alerts.alerts,
            at_ms: now_ms(),
        };
        Ok((snapshot, seeds))
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The subscription, for as long as the dashboard runs: events to the loop; when it breaks,
/// "down" and a new try every `retry`.
pub fn stream(socket: PathBuf, timeout: Duration, retry: Duration, tx: Sender<Msg>) {
    loop {
        let why = match subscribe(&socket, timeout, &tx) {
            Ok(why) => why,
            Err(e) => e.to_string(),
        };
        if tx.send(Msg::StreamDown(why)).is_err() {
            return;
        }
        std::thread::sleep(retry);
    }
}

fn subscribe(socket: &Path, timeout: Duration, tx: &Sender<Msg>) -> Result<String, ClientError> {
    let mut conn = Connection::open(socket, Some(timeout))?;
    let r = conn.request(
        request::Subscribe {
            topic: Topic::Events,
            path: None,
            kind: None,
            after: None,
        }
        .into(),
    )?;
    if !r.ok {
        return Ok(r
            .error
            .map(|e| e.message)
            .unwrap_or_else(|| "subscription refused".into()));
    }
    if tx.send(Msg::StreamUp).is_err() {
        return Ok(String::new());
    }
    conn.wait_forever();
    loop {
        let Some(line) = conn.next_value()? else {
            return Ok("the daemon closed the connection".into());
        };
        let item = serde_json::from_value::<Response>(line)
            .ok()
            .and_then(|r| r.result)
            .and_then(|v| serde_json::from_value::<StreamItem>(v).ok());
        let msg = match item {
            Some(StreamItem::Event(ev)) => Msg::Event(ev),
            Some(StreamItem::End(why)) => return Ok(format!("the daemon is stopping ({why})")),
            // Fell behind: what was lost is in the next snapshot.
            Some(StreamItem::Dropped(_)) => Msg::StreamUp,
            _ => continue,
        };
        if tx.send(msg).is_err() {
            return Ok(String::new());
        }
    }
}

/// One operator action on a connection of its own; its outcome as one line.
pub fn act(socket: &Path, timeout: Duration, command: Command) -> String {
    let what = model::describe(&command);
    match crate::control::client::request(socket, command, timeout) {
        Ok(r) if r.ok => {
            let unchanged = r
                .result
                .as_ref()
                .and_then(|v| v.get("changed"))
                .and_then(Value::as_bool)
                == Some(false);
            if unchanged {
                format!("{what}: nothing to do")
            } else {
                format!("{what}: done")
            }
        }
        Ok(r) => format!(
            "{what}: {}",
            r.error
                .map(|e| e.message)
                .unwrap_or_else(|| "refused".into())
        ),
        Err(e) => format!("{what}: {e}"),
    }
}
