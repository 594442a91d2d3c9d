//! The dashboard's state, with no terminal and no socket: the data of the last snapshot, the
//! events seen since, the selection, the filter, and what each key does. Everything here is
//! a plain function of its inputs (time is an argument), unit-tested below.

use std::collections::VecDeque;

use serde::Serialize;

use crate::control::protocol::{
    AlertRow, BreakerAction, BreakerRow, Command, Event, Node, SeriesRow,
};
use crate::control::request;
use metasystem_actors::sync::actor::TargetStatus;

/// Buckets of the restarts sparkline (one a minute).
pub const SPARK_MINUTES: usize = 30;
/// Recent events kept for the event line.
const RECENT_EVENTS: usize = 50;

/// A sync target with its last day's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyncRow {
    #[serde(flatten)]
    pub status: TargetStatus,
    /// Successful runs of the last 24 h over all runs (skipped runs are not runs).
    pub success_rate_24h: Option<f64>,
    /// Average run duration over the last 24 h, in seconds.
    pub avg_duration_s_24h: Option<f64>,
    pub runs_24h: u64,
}

/// What one refresh read from the daemon.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Snapshot {
    pub tree: Vec<Node>,
    pub sync: Vec<SyncRow>,
    pub breakers: Vec<BreakerRow>,
    /// The kinds' panels (`ActorKind::top_panel`), in the kinds' order.
    #[serde(skip)]
    pub panels: Vec<crate::kinds::Panel>,
    /// Newest first.
    pub alerts: Vec<AlertRow>,
    /// When it was read (ms since the epoch).
    pub at_ms: i64,
}

/// Where the keys go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    Tree,
    Breakers,
}

/// A key, as the model understands it (crossterm's are mapped to these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Char(char),
    Up,
    Down,
    Tab,
    Enter,
    Esc,
    Backspace,
    CtrlC,
}

/// What a key asks the loop to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Quit,
    /// Send this to the daemon (the reply shows in the message line).
    Send(Command),
}

/// The whole dashboard state.
#[derive(Debug, Clone)]
pub struct Model {
    pub snapshot: Option<Snapshot>,
    pub connected: bool,
    /// Why it is not connected.
    pub problem: Option<String>,
    pub focus: Focus,
    /// Selected tree path (kept across refreshes by path, not index).
    pub selected: Option<String>,
    pub selected_breaker: Option<String>,
    /// The applied filter (a substring of the path or kind).
    pub filter: String,
    /// The filter being typed after `/`, until Enter or Esc.
    pub editing: Option<String>,
    /// The last action's result, shown on the message line.
    pub message: Option<String>,
    /// A stop or kill waiting for `y` (any other key cancels it), asked on the message line.
    pub confirm: Option<Command>,
    /// Restart times (ms) seen in the last `SPARK_MINUTES` minutes.
    restarts: VecDeque<i64>,
    /// Newest last.
    pub recent: VecDeque<Event>,
    /// Events seen since the last snapshot that change what it shows.
    pub stale: bool,
    pub last_event_id: i64,
}

impl Default for Model {
    fn default() -> Self {
        Model::new()
    }
}

impl Model {
    pub fn new() -> Model {
        Model {
            snapshot: None,
            connected: false,
            problem: None,
            focus: Focus::Tree,
            selected: None,
            selected_breaker: None,
            filter: String::new(),
            editing: None,
            message: None,
            confirm: None,
            restarts: VecDeque::new(),
            recent: VecDeque::new(),
            stale: true,
            last_event_id: 0,
        }
    }

    /// A fresh snapshot: the selection stays on the same path when it is still there.
    pub fn apply_snapshot(&mut self, snap: Snapshot) {
        self.snapshot = Some(snap);
        self.connected = true;
        self.problem = None;
        self.stale = false;
        self.fix_selection();
    }

    /// The daemon went away (or could not be reached): the last data stays on screen.
    pub fn disconnected(&mut self, why: &str) {
        self.connected = false;
        self.problem = Some(why.to_string());
        self.stale = true;
    }

    /// One event from the subscription. Heartbeats change nothing on screen; other events
    /// mark the snapshot stale (refetched at the next tick).
    pub fn apply_event(&mut self, ev: Event) {
        if ev.id <= self.last_event_id {
            return;
        }
        self.last_event_id = ev.id;
        if ev.kind == "heartbeat" {
            return;
        }
        self.stale = true;
        if ev.kind == "restarted" {
            self.restarts.push_back(ev.at_ms);
        }
        self.recent.push_back(ev);
        while self.recent.len() > RECENT_EVENTS {
            self.recent.pop_front();
        }
    }

    /// Restarts seen before the subscription (from the stored events).
    pub fn seed_restarts(&mut self, at_ms: impl IntoIterator<Item = i64>) {
        let mut all: Vec<i64> = self.restarts.iter().copied().chain(at_ms).collect();
        all.sort_unstable();
        all.dedup();
        self.restarts = all.into();
    }

    /// Restarts per minute, oldest first, the last bucket ending at `now_ms`.
    pub fn restart_buckets(&mut self, now_ms: i64) -> Vec<u64> {
        let span = SPARK_MINUTES as i64 * 60_000;
        while self.restarts.front().is_some_and(|&t| t <= now_ms - span) {
            self.restarts.pop_front();
        }
        let mut buckets = vec![0u64; SPARK_MINUTES];
        for &t in &self.restarts {
            let age = now_ms - t;
            if (0..span).contains(&age) {
                buckets[SPARK_MINUTES - 1 - (age / 60_000) as usize] += 1;
            }
        }
        buckets
    }

    /// Tree rows that pass the filter.
    pub fn visible(&self) -> Vec<&Node> {
        let Some(snap) = &self.snapshot else {
            return Vec::new();
        };
        let f = self.filter.to_lowercase();
        snap.tree
            .iter()
            .filter(|n| {
                f.is_empty()
                    || n.path.to_lowercase().contains(&f)
                    || n.kind.to_lowercase().contains(&f)
                    || n.state.as_str().contains(&f)
            })
            .collect()
    }

    pub fn selected_node(&self) -> Option<&Node> {
        let sel = self.selected.as_deref()?;
        self.visible().into_iter().find(|n| n.path == sel)
    }

    /// The index of the selection among the visible rows.
    pub fn selected_index(&self) -> Option<usize> {
        let sel = self.selected.as_deref()?;
        self.visible().iter().position(|n| n.path == sel)
    }

    pub fn selected_breaker_index(&self) -> Option<usize> {
        let snap = self.snapshot.as_ref()?;
        let sel = self.selected_breaker.as_deref()?;
        snap.breakers.iter().position(|b| b.name == sel)
    }

    fn fix_selection(&mut self) {
        let paths: Vec<String> = self.visible().iter().map(|n| n.path.clone()).collect();
        if !self
            .selected
            .as_ref()
            .is_some_and(|s| paths.iter().any(|p| p == s))
        {
            self.selected = paths.first().cloned();
        }
        let names: Vec<String> = self
            .snapshot
            .as_ref()
            .map(|s| s.breakers.iter().map(|b| b.name.clone()).collect())
            .unwrap_or_default();
        if !self
            .selected_breaker
            .as_ref()
            .is_some_and(|s| names.iter().any(|n| n == s))
        {
            self.selected_breaker = names.first().cloned();
        }
    }

    fn move_selection(&mut self, down: bool) {
        match self.focus {
            Focus::Tree => {
                let paths: Vec<String> = self.visible().iter().map(|n| n.path.clone()).collect();
                self.selected = step(&paths, self.selected.as_deref(), down);
            }
            Focus::Breakers => {
                let names: Vec<String> = self
                    .snapshot
                    .as_ref()
                    .map(|s| s.breakers.iter().map(|b| b.name.clone()).collect())
                    .unwrap_or_default();
                self.selected_breaker = step(&names, self.selected_breaker.as_deref(), down);
            }
        }
    }

    /// What a key does. While a filter is typed, keys edit it; while a stop or kill waits
    /// for its confirmation, `y` sends it and any other key cancels it.
    pub fn on_key(&mut self, key: Key) -> Option<Action> {
        if key == Key::CtrlC {
            return Some(Action::Quit);
        }
        if let Some(command) = self.confirm.take() {
            if matches!(key, Key::Char('y' | 'Y')) {
                return Some(Action::Send(command));
            }
            self.message = Some(format!("{}: cancelled", describe(&command)));
            return None;
        }
        if let Some(text) = self.editing.as_mut() {
            match key {
                Key::Char(c) => text.push(c),
                Key::Backspace => {
                    text.pop();
                }
                Key::Enter => {
                    self.filter = self.editing.take().unwrap_or_default();
                    self.fix_selection();
                }
                Key::Esc => self.editing = None,
                _ => {}
            }
            return None;
        }
        let path = self.selected.clone();
        let on_path = |f: fn(String) -> Command| path.clone().map(f).map(Action::Send);
        // Stop and kill leave the actor down (or crash it): asked first.
        let ask = |m: &mut Model, f: fn(String) -> Command| {
            m.confirm = path.clone().map(f);
            None
        };
        match key {
            Key::Char('q') => Some(Action::Quit),
            Key::Up | Key::Char('k') => {
                self.move_selection(false);
                None
            }
            Key::Down | Key::Char('j') => {
                self.move_selection(true);
                None
            }
            Key::Tab => {
                self.focus = match self.focus {
                    Focus::Tree => Focus::Breakers,
                    Focus::Breakers => Focus::Tree,
                };
                None
            }
            Key::Char('/') => {
                self.editing = Some(self.filter.clone());
                None
            }
            Key::Esc => {
                self.filter.clear();
                self.fix_selection();
                None
            }
            Key::Char('r') => on_path(|path| request::Restart { path }.into()),
            Key::Char('s') => ask(self, |path| request::Stop { path }.into()),
            Key::Char('g') => on_path(|path| request::Start { path }.into()),
            Key::Char('x') => ask(self, |path| request::Kill { path }.into()),
            Key::Char('y') => {
                // The selected sync target, else every target.
                let target = self
                    .selected_node()
                    .filter(|n| n.kind == "sync_target")
                    .map(|n| n.name.clone());
                Some(Action::Send(
                    request::Sync {
                        target,
                        ..Default::default()
                    }
                    .into(),
                ))
            }
            Key::Char('b') => self.selected_breaker.clone().map(|name| {
                Action::Send(
                    request::BreakerOp {
                        name,
                        op: BreakerAction::Reset,
                    }
                    .into(),
                )
            }),
            _ => None,
        }
    }

    /// Uptime of a running node now: what the snapshot said plus the time since it was read.
    pub fn uptime_s(&self, node: &Node, now_ms: i64) -> Option<f64> {
        let at = self.snapshot.as_ref()?.at_ms;
        node.uptime_s
            .map(|u| u + ((now_ms - at).max(0) as f64) / 1000.0)
    }
}

/// "restart root/x", "sync icloud", "reset breaker b".
pub fn describe(command: &Command) -> String {
    match command {
        Command::Restart(request::Restart { path })
        | Command::Stop(request::Stop { path })
        | Command::Start(request::Start { path })
        | Command::Kill(request::Kill { path }) => format!("{} {path}", command.name()),
        Command::Sync(request::Sync {
            target: Some(t), ..
        }) => format!("sync {t}"),
        Command::Sync(request::Sync { target: None, .. }) => "sync (every target)".into(),
        Command::BreakerOp(request::BreakerOp { name, .. }) => format!("reset breaker {name}"),
        other => other.name().to_string(),
    }
}

/// The next (or previous) item after `current`, clamped at the ends; the first when none is.
fn step(items: &[String], current: Option<&str>, down: bool) -> Option<String> {
    let i = current.and_then(|c| items.iter().position(|p| p == c));
    let next = match (i, down) {
        (None, _) => 0,
        (Some(i), true) => (i + 1).min(items.len().saturating_sub(1)),
        (Some(i), false) => i.saturating_sub(1),
    };
    items.get(next).cloned()
}

/// A target's figures from `metrics --name sync_run --since 24h` series (subject = its name
/// or path).
pub fn sync_rows(targets: Vec<TargetStatus>, series: &[SeriesRow]) -> Vec<SyncRow> {
    targets
        .into_iter()
        .map(|status| {
            let row = series.iter().find(|s| {
                s.name == "sync_run" && (s.subject == status.name || s.subject == status.path)
            });
            SyncRow {
                success_rate_24h: row.and_then(|r| r.success_rate),
                avg_duration_s_24h: row.and_then(|r| r.avg),
                runs_24h: row.map_or(0, |r| r.count),
                status,
            }
        })
        .collect()
}

/// "3d 4h", "2h 5m", "4m 10s", "12s".
pub fn human_duration(s: f64) -> String {
    let s = s.max(0.0) as u64;
    let (d, h, m, sec) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {sec}s")
    } else {
        format!("{sec}s")
    }
}

/// A probe's value for a narrow column: bytes in kB/MB/GB, seconds as a duration, ratios
/// as percentages, counts whole.
pub fn probe_value(v: f64, unit: &str) -> String {
    match unit {
        "bytes" => {
            let (mut x, mut i) = (v, 0);
            let units = ["B", "kB", "MB", "GB", "TB", "PB"];
            while x.abs() >= 1000.0 && i + 1 < units.len() {
                x /= 1000.0;
                i += 1;
            }
            if i == 0 {
                format!("{x:.0} B")
            } else {
                format!("{x:.1} {}", units[i])
            }
        }
        "seconds" | "s" => human_duration(v),
        "ratio" => format!("{:.1}%", v * 100.0),
        "count" | "events" => format!("{v:.0}"),
        "" => format!("{v:.2}"),
        other => format!("{v:.2} {other}"),
    }
}

/// "12s ago" from two instants in ms.
pub fn ago(then_ms: i64, now_ms: i64) -> String {
    format!(
        "{} ago",
        human_duration(((now_ms - then_ms) as f64) / 1000.0)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(path: &str, kind: &str, state: &str) -> Node {
        Node {
            path: path.into(),
            name: path.rsplit('/').next().unwrap_or(path).into(),
            depth: path.matches('/').count(),
            kind: kind.into(),
            state: serde_json::from_value(serde_json::json!(state)).unwrap(),
            restart: metasystem_actors::Restart::Permanent,
            restarts: 0,
            incarnation: 1,
            strategy: None,
            last_exit: None,
            uptime_s: Some(10.0),
            restart_in_s: None,
            error: None,
            unresponsive: false,
        }
    }

    fn breaker(name: &str) -> BreakerRow {
        BreakerRow {
            name: name.into(),
            state: metasystem_actors::breakers::StateName::Closed,
            since: String::new(),
            open_until: None,
            wait_s: 1.0,
            consecutive_failures: 0,
            calls: 0,
            failures: 0,
            rejections: 0,
            failure_threshold: 3,
            success_threshold: 1,
        }
    }

    fn event(id: i64, kind: &str, at_ms: i64) -> Event {
        Event {
            id,
            at: String::new(),
            at_ms,
            path: "root/x".into(),
            kind: kind.into(),
            message: String::new(),
            data: serde_json::Value::Null,
        }
    }

    fn model() -> Model {
        let mut m = Model::new();
        m.apply_snapshot(Snapshot {
            tree: vec![
                node("root", "supervisor", "running"),
                node("root/store", "metrics", "running"),
                node("root/sync/icloud", "sync_target", "running"),
                node("root/beat", "heartbeat", "failed"),
            ],
            breakers: vec![breaker("a"), breaker("b")],
            at_ms: 1_000,
            ..Snapshot::default()
        });
        m
    }

    #[test]
    fn selection_moves_clamps_and_survives_a_refresh() {
        let mut m = model();
        assert_eq!(m.selected.as_deref(), Some("root"));
        m.on_key(Key::Up);
        assert_eq!(m.selected.as_deref(), Some("root"));
        m.on_key(Key::Down);
        m.on_key(Key::Char('j'));
        assert_eq!(m.selected.as_deref(), Some("root/sync/icloud"));
        for _ in 0..10 {
            m.on_key(Key::Down);
        }
        assert_eq!(m.selected.as_deref(), Some("root/beat"));
        // A refresh in which rows moved keeps the same path selected.
        let mut snap = m.snapshot.clone().unwrap();
        snap.tree.reverse();
        m.apply_snapshot(snap.clone());
        assert_eq!(m.selected.as_deref(), Some("root/beat"));
        // Gone: the first row.
        snap.tree.retain(|n| n.path != "root/beat");
        m.apply_snapshot(snap);
        assert_eq!(m.selected.as_deref(), Some("root/sync/icloud"));
    }

    #[test]
    fn keys_act_on_the_selection() {
        let mut m = model();
        m.on_key(Key::Down);
        let restart = Some(Action::Send(Command::Restart(request::Restart {
            path: "root/store".into(),
        })));
        assert_eq!(m.on_key(Key::Char('r')), restart);
        // Stop and kill are asked first; `y` sends them.
        assert_eq!(m.on_key(Key::Char('s')), None);
        assert_eq!(
            m.confirm,
            Some(Command::Stop(request::Stop {
                path: "root/store".into()
            }))
        );
        assert!(matches!(
            m.on_key(Key::Char('y')),
            Some(Action::Send(Command::Stop(_)))
        ));
        assert_eq!(m.confirm, None);
        assert_eq!(m.on_key(Key::Char('x')), None);
        assert!(matches!(
            m.on_key(Key::Char('Y')),
            Some(Action::Send(Command::Kill(_)))
        ));
        assert!(matches!(
            m.on_key(Key::Char('g')),
            Some(Action::Send(Command::Start(_)))
        ));
        // Sync: every target unless a sync target is selected.
        assert!(matches!(
            m.on_key(Key::Char('y')),
            Some(Action::Send(Command::Sync(request::Sync {
                target: None,
                ..
            })))
        ));
        m.on_key(Key::Down);
        assert!(matches!(
            m.on_key(Key::Char('y')),
            Some(Action::Send(Command::Sync(request::Sync { target: Some(ref t), .. }))) if t == "icloud"
        ));
        // Breakers: Tab moves the focus, arrows pick one, b resets it.
        m.on_key(Key::Tab);
        m.on_key(Key::Down);
        assert_eq!(
            m.on_key(Key::Char('b')),
            Some(Action::Send(Command::BreakerOp(request::BreakerOp {
                name: "b".into(),
                op: BreakerAction::Reset
            })))
        );
        // The tree selection did not move meanwhile.
        assert_eq!(m.selected.as_deref(), Some("root/sync/icloud"));
        assert_eq!(m.on_key(Key::Char('q')), Some(Action::Quit));
        assert_eq!(m.on_key(Key::CtrlC), Some(Action::Quit));
    }

    #[test]
    fn any_key_but_y_cancels_a_stop_or_kill() {
        let mut m = model();
        for key in [
            Key::Char('n'),
            Key::Char('q'),
            Key::Char('s'),
            Key::Esc,
            Key::Enter,
            Key::Down,
        ] {
            for ask in ['s', 'x'] {
                assert_eq!(m.on_key(Key::Char(ask)), None);
                assert!(m.confirm.is_some());
                assert_eq!(m.on_key(key), None, "{key:?} after {ask}");
                assert_eq!(m.confirm, None);
                let what = if ask == 's' { "stop" } else { "kill" };
                assert_eq!(
                    m.message.as_deref(),
                    Some(format!("{what} root: cancelled").as_str())
                );
            }
        }
        // The cancelling key does nothing else: no quit, no move, no second question.
        assert_eq!(m.selected.as_deref(), Some("root"));
        // Ctrl-C still quits.
        m.on_key(Key::Char('x'));
        assert_eq!(m.on_key(Key::CtrlC), Some(Action::Quit));
        // Nothing selected: nothing to ask.
        let mut empty = Model::new();
        assert_eq!(empty.on_key(Key::Char('s')), None);
        assert_eq!(empty.confirm, None);
    }

    #[test]
    fn nothing_selected_sends_nothing() {
        let mut m = Model::new();
        assert_eq!(m.on_key(Key::Char('r')), None);
        assert_eq!(m.on_key(Key::Char('b')), None);
        assert_eq!(m.on_key(Key::Down), None);
    }

    #[test]
    fn the_filter_is_typed_then_applied_and_cleared() {
        let mut m = model();
        m.on_key(Key::Char('/'));
        for c in "syncx".chars() {
            m.on_key(Key::Char(c));
        }
        m.on_key(Key::Backspace);
        // Typing `q` or `r` in the filter neither quits nor restarts.
        assert_eq!(m.editing.as_deref(), Some("sync"));
        assert_eq!(m.visible().len(), 4, "not applied before Enter");
        m.on_key(Key::Enter);
        assert_eq!(m.filter, "sync");
        let paths: Vec<&str> = m.visible().iter().map(|n| n.path.as_str()).collect();
        assert_eq!(paths, ["root/sync/icloud"]);
        assert_eq!(m.selected.as_deref(), Some("root/sync/icloud"));
        // By state too.
        m.on_key(Key::Char('/'));
        m.on_key(Key::Char('q'));
        m.on_key(Key::Esc);
        assert_eq!(m.filter, "sync", "Esc while typing keeps the old filter");
        m.on_key(Key::Esc);
        assert_eq!(m.visible().len(), 4);
        m.filter = "FAILED".into();
        assert_eq!(m.visible().len(), 1);
    }

    #[test]
    fn events_mark_stale_and_feed_the_sparkline() {
        let mut m = model();
        assert!(!m.stale);
        m.apply_event(event(1, "heartbeat", 0));
        assert!(!m.stale, "a heartbeat changes nothing shown");
        let now = 100 * 60_000;
        m.apply_event(event(2, "restarted", now - 1));
        m.apply_event(event(3, "restarted", now - 61_000));
        m.apply_event(event(3, "restarted", now - 61_000)); // a repeat: ignored
        m.apply_event(event(4, "restarted", now - 31 * 60_000)); // too old
        assert!(m.stale);
        m.seed_restarts([now - 2, now - 1]);
        let b = m.restart_buckets(now);
        assert_eq!(b.len(), SPARK_MINUTES);
        assert_eq!(b[SPARK_MINUTES - 1], 2);
        assert_eq!(b[SPARK_MINUTES - 2], 1);
        assert_eq!(b.iter().sum::<u64>(), 3);
        assert_eq!(m.recent.len(), 3);
    }

    #[test]
    fn disconnection_keeps_the_data_and_a_snapshot_reconnects() {
        let mut m = model();
        m.disconnected("connection refused");
        assert!(!m.connected);
        assert!(m.snapshot.is_some());
        let snap = m.snapshot.clone().unwrap();
        m.apply_snapshot(snap);
        assert!(m.connected);
        assert_eq!(m.problem, None);
    }

    #[test]
    fn uptime_advances_from_the_snapshot() {
        let m = model();
        let n = &m.snapshot.as_ref().unwrap().tree[0];
        assert_eq!(m.uptime_s(n, 3_000), Some(12.0));
        assert_eq!(human_duration(12.0), "12s");
        assert_eq!(human_duration(125.0), "2m 5s");
        assert_eq!(human_duration(7_500.0), "2h 5m");
        assert_eq!(human_duration(90_000.0), "1d 1h");
        assert_eq!(ago(0, 5_000), "5s ago");
        assert_eq!(probe_value(38_937_817_088.0, "bytes"), "38.9 GB");
        assert_eq!(probe_value(512.0, "bytes"), "512 B");
        assert_eq!(probe_value(0.0, "count"), "0");
        assert_eq!(probe_value(0.25, "ratio"), "25.0%");
        assert_eq!(probe_value(1.5, "x"), "1.50 x");
    }

    #[test]
    fn sync_rows_take_their_figures_from_the_day_series() {
        let status: TargetStatus = serde_json::from_value(serde_json::json!({
            "name": "icloud", "path": "root/sync/icloud", "primary": "/p", "target": "/t",
            "online": true, "direction": "push", "strategy": "newest", "every_s": 600,
            "running": false, "progress": null, "last": null, "last_success_ms": null,
            "tracked": 0, "breaker": null
        }))
        .unwrap();
        let series: Vec<SeriesRow> = serde_json::from_value(serde_json::json!([
            {"name": "sync_run", "subject": "other", "unit": "s", "count": 9, "ok": 1,
             "failed": 8, "success_rate": 0.1, "avg": 9.0},
            {"name": "sync_run", "subject": "icloud", "unit": "s", "count": 4, "ok": 3,
             "failed": 1, "success_rate": 0.75, "avg": 1.5}
        ]))
        .unwrap();
        let rows = sync_rows(vec![status.clone()], &series);
        assert_eq!(rows[0].runs_24h, 4);
        assert_eq!(rows[0].success_rate_24h, Some(0.75));
        assert_eq!(rows[0].avg_duration_s_24h, Some(1.5));
        let rows = sync_rows(vec![status], &[]);
        assert_eq!(rows[0].success_rate_24h, None);
        assert_eq!(rows[0].runs_24h, 0);
    }
}
